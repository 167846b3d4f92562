"""Discovery over real HTTP against llama-swap-like servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading

import pytest

from boocoder_bridge import HostError
from boocoder_bridge.default_plugins.llama_swap import LLAMA_SWAP, parse_models
from boocoder_bridge.default_plugins.openai_compatible import OPENAI_COMPATIBLE
from boocoder_bridge.registry import registry_from_data
from tests.fakehost import RESPONSES, llama_swap_body
from tests.helpers import down, llama_swap, registry_data


def fixture(name: str) -> dict:
    return json.loads((RESPONSES / name).read_text())


def fleet(**providers: dict) -> object:
    return registry_from_data(registry_data(providers))


def kinds(provider):
    return {"llama-swap": LLAMA_SWAP, "openai-compatible": OPENAI_COMPATIBLE}[provider.kind].list_models


def run(registry, env=None):
    from boocoder_bridge.discovery import discover

    return discover(registry, kinds, env=env or {})


@pytest.mark.parametrize("name", [
    "example-v1-models-minimal.json", "example-v1-models-metadata.json",
    "example-v1-models-aliases-peers.json", "example-v1-models-legacy-v179-v217.json",
])
def test_every_llama_swap_shape_is_read(hosts, name: str) -> None:
    body = fixture(name)
    host = hosts(models_body=body)
    report = run(fleet(a=llama_swap(host.url)))["a"]
    assert report.status == "online", report.error
    assert [m.id for m in report.models] == sorted(e["id"] for e in body["data"])


def test_metadata_keys_give_context_and_output(hosts) -> None:
    host = hosts(models_body=fixture("example-v1-models-metadata.json"))
    models = {m.id: m for m in run(fleet(a=llama_swap(host.url)))["a"].models}
    assert (models["qwen3-coder-30b"].context_window, models["qwen3-coder-30b"].max_output) == (65536, 8192)
    assert models["qwen3-coder-30b"].context_source == "context_length"
    assert models["gemma-3-27b-vision"].context_window == 32768
    assert models["bge-reranker"].context_window is None  # unloaded and undeclared: unknown, never invented
    assert models["qwen3-coder-30b"].loaded is True and models["bge-reranker"].loaded is False


def test_types_aliases_peers_and_legacy_peers() -> None:
    models = {m.id: m for m in parse_models(fixture("example-v1-models-aliases-peers.json"))[0]}
    assert models["gpt-oss-20b:high"].type == "alias" and models["gpt-oss-20b:high"].alias_of == "gpt-oss-20b"
    assert models["gpu-box/qwen3-32b"].type == "peer"
    assert models["coding"].type == "selector"
    legacy = {m.id: m for m in parse_models(fixture("example-v1-models-legacy-v179-v217.json"))[0]}
    assert legacy["qwen3-32b"].type == "peer"
    assert legacy["llama-3.1-8b"].context_window == 131072
    assert legacy["llama-3.1-8b"].context_source == "meta.llamaswap.context_window"


def test_context_read_order() -> None:
    entry = {"id": "m", "context_length": 1000, "meta": {"n_ctx": 2000, "llamaswap": {"context_length": 3000}}}
    assert parse_models({"data": [entry]})[0][0].context_window == 1000
    del entry["context_length"]
    assert parse_models({"data": [entry]})[0][0].context_window == 2000
    del entry["meta"]["n_ctx"]
    assert parse_models({"data": [entry]})[0][0].context_source == "meta.llamaswap.context_length"
    entry["meta"]["llamaswap"]["context_length"] = "big"
    assert parse_models({"data": [entry]})[0][0].context_window is None


def test_oldest_shape_without_object_field() -> None:
    models, skipped = parse_models({"data": [{"id": "b"}, {"id": "a"}, {"id": "a"}, {"id": "bad id"}]})
    assert [m.id for m in models] == ["a", "b"] and skipped == 1


@pytest.mark.parametrize("body", [[], {"data": {}}, {"models": []}, {"data": [{"name": "x"}]}, {"data": [3]}])
def test_bodies_that_are_not_model_lists_raise(body) -> None:
    with pytest.raises(HostError):
        parse_models(body)


def test_props_only_for_loaded_models(hosts) -> None:
    body = llama_swap_body("loaded-one", "cold-one", loaded=("loaded-one",))
    host = hosts(models_body=body, props={"loaded-one": 40960, "cold-one": 8192})
    models = {m.id: m for m in run(fleet(a=llama_swap(host.url)))["a"].models}
    assert models["loaded-one"].context_window == 40960 and models["loaded-one"].context_source == "props"
    assert models["cold-one"].context_window is None
    assert "/upstream/cold-one/props" not in host.paths()  # asking would swap the model in
    assert "/running" not in host.paths()  # the host reports status itself


def test_old_host_without_status_asks_running(hosts) -> None:
    body = {"data": [{"id": "qwen3-coder-30b", "object": "model"}, {"id": "other", "object": "model"}]}
    running = fixture("example-running.json")
    host = hosts(models_body=body, running=running, props={"qwen3-coder-30b": 65536, "other": 1})
    models = {m.id: m for m in run(fleet(a=llama_swap(host.url)))["a"].models}
    assert models["qwen3-coder-30b"].context_window == 65536
    assert models["other"].context_window is None and models["other"].loaded is False
    assert host.paths().count("/running") == 1
    assert "/upstream/other/props" not in host.paths()


def test_discovery_asks_base_url_never_the_sidecar(hosts) -> None:
    host, sidecar = hosts(), hosts()
    report = run(fleet(a=llama_swap(host.url, sidecar_url=sidecar.url)))["a"]
    assert report.status == "online"
    assert host.paths() == ["/v1/models"] and sidecar.requests == []


def test_hosts_are_asked_concurrently_and_failures_are_isolated(hosts) -> None:
    # Each of the four hosts answers only once all four have been asked: asked one after another, they would
    # all fail. No timing is measured; the figures are in BENCHMARKS.md.
    barrier = threading.Barrier(4)
    together = [hosts(name=f"s{i}", barrier=barrier) for i in range(4)]
    dead = hosts(fault="status", fault_arg=500)
    providers = {f"s{i}": llama_swap(h.url, timeout_s=10) for i, h in enumerate(together)}
    providers["dead"] = llama_swap(dead.url)
    providers["gone"] = down(timeout_s=1)
    reports = run(fleet(**providers))
    assert [reports[f"s{i}"].status for i in range(4)] == ["online"] * 4, [reports[f"s{i}"].error for i in range(4)]
    assert reports["dead"].status == "error" and "HTTP 500" in reports["dead"].error
    assert reports["gone"].status == "offline" and "cannot connect" in reports["gone"].error


def test_api_key_is_sent_from_the_named_env_var(hosts) -> None:
    host = hosts()
    registry = fleet(a={"kind": "openai-compatible", "base_url": host.url, "api_key_env": "FLEET_KEY"})
    assert run(registry, env={"FLEET_KEY": "sk-test-1"})["a"].status == "online"
    assert host.requests[0].headers["Authorization"] == "Bearer sk-test-1"


def test_disabled_and_static_providers_are_not_asked(hosts) -> None:
    host = hosts()
    registry = fleet(
        a={"kind": "openai-compatible", "base_url": host.url, "enabled_if_env": "NEED_ME"},
        b={"kind": "openai-compatible", "base_url": host.url, "discover": False, "bare_ids": ["y"],
           "models": {"x": {}}},
    )
    reports = run(registry)
    assert reports["a"].status == "disabled" and "NEED_ME" in reports["a"].error
    assert reports["b"].status == "static" and [m.id for m in reports["b"].models] == ["x", "y"]
    assert host.requests == []


def test_plain_http_fleet_loads_no_ca_bundle_and_https_still_verifies(hosts, monkeypatch) -> None:
    # Loading the CA bundle is the largest fixed cost of a refresh (BENCHMARKS.md); LAN hosts on http never need it.
    import ssl

    from boocoder_bridge.discovery import _tls_context

    loaded: list[object] = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations",
                        lambda self, *a, **k: loaded.append(a or k) or real(self, *a, **k))
    host = hosts()
    registry = fleet(a=llama_swap(host.url), b=llama_swap(host.url))
    assert {r.status for r in run(registry).values()} == {"online"}
    assert loaded == []
    bare = _tls_context(registry.providers.values())
    assert bare.verify_mode == ssl.CERT_REQUIRED and bare.check_hostname and bare.cert_store_stats()["x509_ca"] == 0
    mixed = fleet(a=llama_swap(host.url), s={"kind": "llama-swap", "base_url": "https://127.0.0.1:9"})
    assert _tls_context(mixed.providers.values()).cert_store_stats()["x509_ca"] > 0 and loaded


class RawHost:
    """A host on 127.0.0.1 that answers every connection with the same bytes, then closes: framing faults that
    the fake HTTP server cannot produce. Records each request head."""

    def __init__(self, answer: bytes) -> None:
        import socket

        self.answer, self.requests = answer, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (piece := conn.recv(4096)):
                    head += piece
                self.requests.append(head)
                with contextlib.suppress(OSError):  # the client may hang up before it has read everything
                    conn.sendall(self.answer)


BODY = json.dumps(llama_swap_body("m-1", "m-2")).encode()
CHUNKED = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(BODY[i:i + 7]), BODY[i:i + 7]) for i in range(0, len(BODY), 7))
FRAMINGS = [  # (name, answer, status, fragment of the error or None)
    ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY), "online", None),
    ("chunked-with-trailer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED
     + b"0\r\nX-Trailer: 1\r\n\r\n", "online", None),
    ("until-close", b"HTTP/1.0 200 OK\r\n\r\n" + BODY, "online", None),
    ("informational-first", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
     % (len(BODY), BODY), "online", None),
    ("cut-short", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY) + 5, BODY), "offline",
     "RemoteProtocolError"),
    ("bad-chunk-size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "offline",
     "RemoteProtocolError"),
    ("chunked-cut", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED, "offline",
     "RemoteProtocolError"),
    ("other-transfer-coding", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "offline",
     "RemoteProtocolError"),
    ("two-lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n{}", "offline",
     "RemoteProtocolError"),
    ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "offline", "RemoteProtocolError"),
    ("no-answer", b"", "offline", "RemoteProtocolError"),
    ("endless-head", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200_000, "offline", "RemoteProtocolError"),
    ("folded-header", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", "offline",
     "RemoteProtocolError"),
]


@pytest.mark.parametrize(("name", "answer", "status", "fragment"), FRAMINGS, ids=[f[0] for f in FRAMINGS])
def test_plain_http_framing_is_read_or_refused_in_one_line(name, answer, status, fragment) -> None:
    # Plain-http hosts are read by discovery's own HTTP/1.1 client (PlainHttp), not httpx: its framing is tested here.
    host = RawHost(answer)
    report = run(fleet(a=llama_swap(host.url, timeout_s=5), b=down(timeout_s=1)))["a"]
    assert report.status == status, report.error
    if fragment is None:
        assert [m.id for m in report.models] == ["m-1", "m-2"]
    else:
        assert fragment in report.error and "\n" not in report.error and not report.models
    request = host.requests[0]
    assert request.startswith(b"GET /v1/models HTTP/1.1\r\n") and b"\r\nHost: 127.0.0.1:" in request


def test_an_api_key_with_a_line_break_adds_no_header() -> None:
    host = RawHost(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
    registry = fleet(a={"kind": "llama-swap", "base_url": host.url, "api_key_env": "KEY"})
    report = run(registry, env={"KEY": "sk-1\r\nX-Injected: 1"})["a"]
    assert report.status == "offline" and "LocalProtocolError" in report.error and "sk-1" not in report.error
    assert host.requests == []
