"""The HTTP API's guards, over a real uvicorn process on a free loopback port: DNS rebinding (Host), cross-site
requests (Origin, Sec-Fetch-Site), the bearer token, and refreshes that cannot starve the server."""

from __future__ import annotations

import http.client
import ipaddress
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boocoder_bridge.web.guard import HostPolicy, host_name
from tests.fakehost import FakeHost, llama_swap_body
from tests.helpers import start_server


def server_env() -> dict[str, str]:
    """The environment at call time (so the session's own XDG_STATE_HOME), without a token."""
    return {k: v for k, v in os.environ.items() if k != "BOOCODER_BRIDGE_TOKEN"}


def write_fleet(folder: Path, host: FakeHost, timeout_s: float = 2) -> Path:
    registry = folder / "fleet.json"
    registry.write_text(f'{{"default_provider": "h", "providers": {{"h": {{"kind": "llama-swap", '
                        f'"base_url": "{host.url}", "timeout_s": {timeout_s}}}}}}}')
    return registry


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Iterator[tuple[str, FakeHost]]:
    folder = tmp_path_factory.mktemp("guard")
    host = FakeHost(models_body=llama_swap_body("coder")).start()
    process, url = start_server(write_fleet(folder, host), folder / "state", "--allow-host", "Box.LAN",
                                env=server_env())
    yield url, host
    process.terminate()
    process.wait(timeout=10)
    host.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("host_header", ["attacker.example:{port}", "attacker.example", "localhost.attacker.example",
                                         "127.0.0.1.nip.io:{port}", "box.lan.evil:{port}", ""])
def test_a_foreign_host_header_is_refused_before_anything_runs(guarded, host_header: str) -> None:
    """DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 sends its own Host."""
    url, host = guarded
    port = port_of(url)
    seen = len(host.requests)
    headers = {"Host": host_header.format(port=port)}
    for method, path in (("PUT", "/api/favorites/h/stolen"), ("GET", "/api/models?refresh=1"),
                         ("GET", "/api/opencode-config"), ("GET", "/healthz")):
        response = httpx.request(method, url + path, headers=headers)
        assert response.status_code == 421, (method, path, response.text)
        assert set(response.json()) == {"error"} and "Host" in response.json()["error"]
    assert "h/stolen" not in httpx.get(url + "/api/favorites").json()["favorites"]
    assert len(host.requests) == seen  # the refresh never reached the host


@pytest.mark.parametrize("host_header", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}",
                                         "127.0.0.1", "box.lan:{port}", "BOX.lan"])
def test_hosts_naming_the_bound_address_or_a_configured_name_are_served(guarded, host_header: str) -> None:
    url, _ = guarded
    response = httpx.get(url + "/api/favorites", headers={"Host": host_header.format(port=port_of(url))})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("headers", [{"Origin": "http://attacker.example"}, {"Origin": "null"},
                                     {"Origin": "http://localhost:1"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}])
def test_cross_site_requests_cannot_refresh_or_change_anything(guarded, headers: dict[str, str]) -> None:
    """A simple cross-origin GET (an <img>, a no-cors fetch) carries Sec-Fetch-Site or Origin: refused, so a web
    page cannot make the server ask the hosts, nor change favorites."""
    url, host = guarded
    seen = len(host.requests)
    assert httpx.get(url + "/api/models", params={"refresh": 1}, headers=headers).status_code == 403
    assert httpx.put(url + "/api/favorites/h/planted", headers=headers).status_code == 403
    assert len(host.requests) == seen
    assert "h/planted" not in httpx.get(url + "/api/favorites").json()["favorites"]


def test_same_origin_and_direct_requests_are_served(guarded) -> None:
    url, host = guarded
    seen = len(host.requests)
    for headers in ({"Origin": url, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        assert httpx.get(url + "/api/models", params={"refresh": 1}, headers=headers).status_code == 200
    assert len(host.paths()) > seen
    put = httpx.put(url + "/api/favorites/h/coder", headers={"Origin": url, "Sec-Fetch-Site": "same-origin"})
    assert put.status_code == 200 and "h/coder" in put.json()["favorites"]


def test_bearer_scheme_is_case_insensitive_and_401_says_how_to_authenticate(tmp_path) -> None:
    host = FakeHost().start()
    process, url = start_server(write_fleet(tmp_path, host), tmp_path / "state",
                                env={**server_env(), "BOOCODER_BRIDGE_TOKEN": "t0ken-abc"})
    try:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            answer = httpx.get(url + "/api/favorites", headers={"Authorization": f"{scheme} t0ken-abc"})
            assert answer.status_code == 200, scheme
        for given in (None, "Bearer wrong", "Basic dDBrZW4tYWJj", "t0ken-abc", "Bearer  t0ken-abc x", "Bearer"):
            answer = httpx.get(url + "/api/favorites", headers={"Authorization": given} if given else {})
            assert answer.status_code == 401, given
            assert answer.headers["WWW-Authenticate"].startswith("Bearer realm=")
            assert "t0ken-abc" not in answer.text
        # The page and its files load without the token (the page then sends it itself); nothing else does.
        for path in ("/", "/static/picker.js", "/static/picker.css"):
            assert httpx.get(url + path).status_code == 200, path
        assert httpx.post(url + "/").status_code == 401 and httpx.delete(url + "/static/picker.js").status_code == 401
        address = httpx.URL(url)
        for raw in ("/static/../api/favorites", "/static/%2e%2e/api/favorites", "/static/..%2fapi/favorites",
                    "/static//../../api/favorites", "//api/favorites", "/static/../healthz"):
            connection = http.client.HTTPConnection(address.host, address.port, timeout=10)
            connection.request("GET", raw)  # sent as written: no client-side clean-up of the path
            answer = connection.getresponse()
            body = answer.read().decode(errors="replace")
            connection.close()
            assert answer.status in (401, 404), (raw, answer.status, body)  # refused, or no such file
    finally:
        process.terminate()
        process.wait(timeout=10)
        host.stop()


def test_refreshes_are_coalesced_and_never_starve_other_requests(tmp_path) -> None:
    """45 refreshes against a host that hangs: one discovery is in flight, the rest wait for it without holding
    the server's workers, so /healthz and the favorites answer while the host still hangs."""
    hanging = FakeHost(fault="hang").start()
    process, url = start_server(write_fleet(tmp_path, hanging, timeout_s=30), tmp_path / "state", env=server_env())
    answers: list[httpx.Response | Exception] = []

    def refresh() -> None:
        try:
            answers.append(httpx.get(url + "/api/models", params={"refresh": 1}, timeout=120))
        except Exception as exc:  # reported by the assertions below
            answers.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(45)]
    try:
        for thread in threads:
            thread.start()
        with httpx.Client(base_url=url, timeout=20) as client:
            while not hanging.paths():  # the first discovery has reached the host
                assert client.get("/healthz").status_code == 200
            for _ in range(5):  # while it hangs, the server still answers everything else
                assert client.get("/healthz").json() == {"status": "ok"}
                assert client.get("/api/favorites").status_code == 200
            listed = [path for path in hanging.paths() if path == "/v1/models"]
            assert len(listed) == 1, hanging.paths()  # one discovery in flight, not 45
            assert answers == []  # ... and it is still in flight: nothing above waited for it
    finally:
        hanging.stop()  # the hang ends: discovery reports the host offline
        for thread in threads:
            thread.join(timeout=120)
        process.terminate()
        process.wait(timeout=10)
    assert len(answers) == 45
    assert all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers), answers[:3]
    assert {a.json()["providers"][0]["status"] for a in answers if isinstance(a, httpx.Response)} <= {
        "offline", "error"}


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60) | st.from_regex(r"\A\[?[0-9a-fA-F:.]{0,40}\]?(:[0-9]{0,6})?\Z"))
def test_no_host_header_outside_loopback_names_is_accepted(header: str) -> None:
    """Fuzzed: whatever the header, a loopback-bound server accepts it only when it names localhost or a
    loopback IP, and never raises."""
    name = host_name(header)
    allowed = HostPolicy("127.0.0.1").allows(header)
    if allowed:
        assert name is not None
        assert name == "localhost" or ipaddress.ip_address(name).is_loopback
    assert not HostPolicy("127.0.0.1").allows(header + ".attacker.example")


@pytest.mark.parametrize(("bound", "names", "header", "allowed"), [
    ("0.0.0.0", (), "192.168.1.5:8765", True),  # all addresses: any IP literal (it cannot be rebound)
    ("0.0.0.0", (), "box.lan:8765", False),  # ... but a name only when configured
    ("0.0.0.0", ("box.lan",), "box.lan:8765", True),
    ("::", (), "[fd00::5]:8765", True),
    ("192.168.1.5", (), "192.168.1.5", True),
    ("192.168.1.5", (), "192.168.1.6", False),
    ("box.lan", (), "box.lan:8765", True),  # bound by name: that name
    ("box.lan", (), "10.0.0.1", False),
    ("127.0.0.1", (), "127.0.0.2:8765", True),
    ("127.0.0.1", (), "10.0.0.1:8765", False),
    ("localhost", (), "127.0.0.1:8765", True),  # bound by the loopback name: serve prints the IP it got
    ("localhost", (), "[::1]:8765", True),
    ("localhost", (), "10.0.0.1:8765", False),
    ("localhost", (), "box.lan:8765", False),
    ("0.0.0.0", ("Box.LAN:8765",), "box.lan:8765", True),  # --allow-host with a port: the name part counts
    ("127.0.0.1", ("[fd00::1]",), "[fd00::1]:8765", True),
    ("192.168.1.5", ("box.lan.",), "box.lan", True),
])
def test_which_hosts_name_the_bound_address(bound: str, names: tuple[str, ...], header: str, allowed: bool) -> None:
    assert HostPolicy(bound, names).allows(header) is allowed


def test_the_url_serve_prints_for_host_localhost_is_served(tmp_path) -> None:
    """``serve --host localhost`` prints the socket's address (``http://127.0.0.1:PORT``); that URL answered 421."""
    import subprocess
    import sys

    host = FakeHost(models_body=llama_swap_body("coder")).start()
    process = subprocess.Popen([sys.executable, "-m", "boocoder_bridge", "--registry", str(write_fleet(tmp_path, host)),
                                "--state-dir", str(tmp_path / "state"), "serve", "--host", "localhost", "--port", "0"],
                               env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving http://"), (line, process.poll())
        url = line.split()[1]
        answer = httpx.get(url + "/api/models", timeout=30)
        assert answer.status_code == 200, (url, answer.text)
        assert [g["id"] for g in answer.json()["providers"]] == ["h"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        host.stop()
