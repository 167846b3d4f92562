"""Fault injection over real loopback HTTP: one bad host never hurts the others, nothing crashes.

Exit code of `models` with a failing host: 0 (the failure is data: the group's status and error).
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from tests.fakehost import llama_swap_body
from tests.helpers import llama_swap

BIG = 50 * 1024 * 1024


def gzip_bomb(inside: int, layers: int = 2) -> bytes:
    """``inside`` bytes of JSON whitespace, gzipped ``layers`` times (2 layers: a few KB on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    body = b"".join(packer.compress(block) for _ in range(inside // len(block))) + packer.flush()
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body



FAULTS = [
    # (name, FakeHost kwargs, expected status, fragment of the error)
    ("refused", None, "offline", "cannot connect"),
    ("hang", {"fault": "hang"}, "offline", "no complete answer within 1 s"),
    ("http-500", {"fault": "status", "fault_arg": 500}, "error", "HTTP 500"),
    ("http-404", {"fault": "status", "fault_arg": 404}, "error", "HTTP 404"),
    ("http-401", {"fault": "status", "fault_arg": 401}, "error", "HTTP 401"),
    ("invalid-json", {"fault": "raw", "fault_arg": b'{"data": [ {"id": '}, "error", "not JSON"),
    ("html", {"fault": "raw", "fault_arg": b"<html><body>Bad gateway</body></html>"}, "error", "HTML"),
    ("json-list", {"models_body": [{"id": "a"}]}, "error", "not a model list"),
    ("data-not-list", {"models_body": {"data": {"id": "a"}}}, "error", "not a model list"),
    ("entry-without-id", {"models_body": {"data": [{"id": "ok"}, {"name": "no id"}]}}, "error", "entry 1 has no"),
    ("entry-id-not-string", {"models_body": {"data": [{"id": 42}]}}, "error", "entry 0 has no"),
    ("50MB-declared", {"fault": "big", "fault_arg": BIG}, "error", "limit is"),
    ("50MB-unsized", {"fault": "big-unsized", "fault_arg": BIG}, "error", "exceeds"),
    ("trickle", {"fault": "trickle", "fault_arg": 0.2}, "offline", "no complete answer within 1 s"),
    ("redirect-other-origin", {"fault": "redirect", "fault_arg": "http://127.0.0.2:1/v1/models"}, "error",
     "another origin"),
    # issue 11: each of these crashed every command for every provider
    ("nested-100000", {"fault": "raw", "fault_arg": b"[" * 100_000}, "error", "nested"),
    ("nested-objects", {"fault": "raw", "fault_arg": b'{"data": ' + b'{"a": ' * 100_000}, "error", "nested"),
    ("million-containers", {"fault": "raw", "fault_arg": b"[" + b"[]," * 1_000_000 + b"[]]"}, "error",
     "more than 1,000,000 objects and lists"),
    ("gzip-header-plain-body", {"fault": "encoded", "fault_arg": ("gzip", b'{"data": []}')}, "error",
     "not valid gzip"),
    ("deflate-header-junk-body", {"fault": "encoded", "fault_arg": ("deflate", b"junk")}, "error",
     "not valid deflate"),
    ("unknown-encoding", {"fault": "encoded", "fault_arg": ("br", b"junk")}, "error", "Content-Encoding 'br'"),
    ("gzip-gzip-bomb", {"fault": "encoded", "fault_arg": ("gzip, gzip", gzip_bomb(32 << 20))}, "error", "exceeds"),
]


@pytest.mark.parametrize(("name", "setup", "status", "fragment"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_is_reported_and_others_are_served(hosts, write_registry, run_cli, name, setup, status, fragment):
    good = hosts(name="good", models_body=llama_swap_body("fine-model"))
    bad_url = "http://127.0.0.1:9" if setup is None else hosts(name="bad", **setup).url
    registry = write_registry({"default_provider": "good", "providers": {
        "good": llama_swap(good.url),
        "bad": llama_swap(bad_url, timeout_s=1)}})
    result = run_cli("--registry", str(registry), "models", "--json")
    assert result.code == 0, result.err
    groups = {g["id"]: g for g in result.json()["providers"]}
    assert groups["good"]["status"] == "online" and [m["id"] for m in groups["good"]["models"]] == [
        "good/fine-model"]
    assert groups["bad"]["status"] == status
    assert fragment in groups["bad"]["error"] and "\n" not in groups["bad"]["error"]
    assert groups["bad"]["models"] == []  # a hanging or trickling host is cut by its 1 s total deadline


def test_same_origin_redirect_is_followed(hosts, write_registry, run_cli) -> None:
    mover = hosts(fault="redirect")
    mover.fault_arg = mover.url + "/v1/models-moved"
    mover.extra["/v1/models-moved"] = llama_swap_body("moved")
    registry = write_registry({"default_provider": "m", "providers": {
        "m": llama_swap(mover.url)}})
    groups = run_cli("--registry", str(registry), "models", "--json").json()["providers"]
    assert groups[0]["status"] == "online" and [m["model"] for m in groups[0]["models"]] == ["moved"]


def test_a_failing_host_keeps_its_last_known_models_for_offline_generate(hosts, write_registry, run_cli):
    host = hosts(models_body=llama_swap_body("kept"))
    registry = write_registry({"default_provider": "h", "providers": {
        "h": llama_swap(host.url, timeout_s=0.5)}})
    assert run_cli("--registry", str(registry), "models", "--json").code == 0
    host.fault, host.fault_arg = "raw", b"<html>"
    live = run_cli("--registry", str(registry), "models", "--json", "--refresh").json()
    assert live["providers"][0]["status"] == "error" and live["providers"][0]["models"] == []
    offline = run_cli("--registry", str(registry), "generate", "--offline").json()
    assert list(offline["provider"]["h"]["models"]) == ["kept"]


# --- issue 11: hostile hosts are isolated in errors, time, memory and display ------------------------------


def two_hosts(hosts, write_registry, bad_timeout: float = 5, **bad):
    """A good host and a bad one in one registry; returns (registry path, bad host)."""
    good = hosts(name="good", models_body=llama_swap_body("fine-model"))
    evil = hosts(name="bad", **bad)
    registry = write_registry({"default_provider": "good", "providers": {
        "good": {"kind": "llama-swap", "base_url": good.url},
        "bad": {"kind": "llama-swap", "base_url": evil.url, "timeout_s": bad_timeout}}})
    return registry, evil


def groups_of(run_cli, registry, *extra: str) -> dict:
    result = run_cli("--registry", str(registry), "models", "--json", *extra)
    assert result.code == 0, result.err
    groups = {g["id"]: g for g in result.json()["providers"]}
    assert groups["good"]["status"] == "online" and [m["model"] for m in groups["good"]["models"]] == ["fine-model"]
    return groups


def old_shape(*ids: str) -> dict:
    """A pre-v236 body: no status, no context, so the bridge asks /running and then /props."""
    return {"data": [{"id": i, "object": "model"} for i in ids]}


def test_a_5000_digit_integer_is_an_unknown_number_not_a_crash(hosts, write_registry, run_cli) -> None:
    body = b'{"data": [{"id": "m", "context_length": ' + b"9" * 5000 + b', "meta": {"n_ctx": 4096}}]}'
    registry, _ = two_hosts(hosts, write_registry, fault="raw", fault_arg=body)
    bad = groups_of(run_cli, registry)["bad"]
    assert bad["status"] == "online" and bad["models"][0]["context_window"] == 4096  # the next key is used


@pytest.mark.parametrize("running", [{"running": None}, [{"model": [1]}], {"running": [{"model": [1]}]},
                                     {"running": [{"model": "m", "state": {}}]}, {"running": "m"}, 7])
def test_a_bad_running_answer_keeps_the_list_and_says_so(hosts, write_registry, run_cli, running) -> None:
    registry, _ = two_hosts(hosts, write_registry, models_body=old_shape("m"), running=running)
    bad = groups_of(run_cli, registry)["bad"]
    assert bad["status"] == "online" and [m["model"] for m in bad["models"]] == ["m"]
    assert "/running" in bad["error"] and "\n" not in bad["error"]


def test_an_unexpected_exception_in_any_kind_is_that_providers_error(hosts, write_registry) -> None:
    """The structural guarantee: whatever a kind's discovery raises, only its provider fails, in one line."""
    from boocoder_bridge import Bridge, HostError, hookimpl
    from boocoder_bridge.kinds import ProviderKind
    from boocoder_bridge.plugins import make_plugin_manager

    class Exploding(ProviderKind):
        async def list_models(self, client):
            if self.name == "bogus":  # a HostError built wrong: no valid status, a reason that is not text
                raise HostError("bogus", 42)
            if self.name == "junk":  # not (models, skipped) at all
                return {"models": "no"}
            raise {"zero": ZeroDivisionError, "recursion": RecursionError, "type": TypeError}[self.name](
                "boom\non two lines \x1b[2J")

    class Plugin:
        @hookimpl
        def register_provider_kinds(self, register):
            for name in ("zero", "recursion", "type", "bogus", "junk"):
                register(Exploding(name=name))

    good = hosts(models_body=llama_swap_body("fine-model"))
    registry = write_registry({"default_provider": "good", "providers": {
        "good": {"kind": "llama-swap", "base_url": good.url},
        **{name: {"kind": name, "base_url": good.url} for name in ("zero", "recursion", "type", "bogus", "junk")}}})
    pm = make_plugin_manager(entry_points=False)
    pm.register(Plugin())
    reports = Bridge.load(registry, plugin_manager=pm).reports()
    assert reports["good"].status == "online"
    for name, exc in (("zero", "ZeroDivisionError"), ("recursion", "RecursionError"), ("type", "TypeError"),
                      ("bogus", "42"), ("junk", "ValueError")):
        assert reports[name].status == "error" and reports[name].models == []
        assert exc in reports[name].error and "\n" not in reports[name].error and "\x1b" not in reports[name].error


CRASHERS = {
    "nested": {"fault": "raw", "fault_arg": b"[" * 100_000},
    "digits": {"fault": "raw", "fault_arg": b'{"data": [{"id": "d", "context_length": ' + b"1" * 5000 + b"}]}"},
    "notgzip": {"fault": "encoded", "fault_arg": ("gzip", b'{"data": []}')},
    "runningnull": {"models_body": old_shape("r"), "running": {"running": None}},
    "runninglist": {"models_body": old_shape("r"), "running": [{"model": [1]}]},
}


@pytest.fixture
def crash_fleet(hosts, write_registry):
    good = hosts(name="good", models_body=llama_swap_body("fine-model"))
    providers = {"good": {"kind": "llama-swap", "base_url": good.url}}
    for name, setup in CRASHERS.items():
        providers[name] = {"kind": "llama-swap", "base_url": hosts(name=name, **setup).url, "timeout_s": 5}
    return write_registry({"default_provider": "good", "providers": providers})


def test_no_traceback_in_a_real_process(crash_fleet, isolated) -> None:
    from tests.conftest import run_process

    result = run_process("--registry", str(crash_fleet), "--state-dir", str(isolated), "models")
    assert result.code == 0 and "Traceback" not in result.err, result.err
    assert "fine-model" in result.out
    resolved = run_process("--registry", str(crash_fleet), "--state-dir", str(isolated), "resolve",
                           "good/fine-model", "--json")
    assert resolved.code == 0 and json.loads(resolved.out)["model"] == "fine-model", resolved.err


def test_the_server_serves_the_good_host_next_to_hostile_ones(crash_fleet, isolated) -> None:
    import httpx

    from tests.helpers import start_server

    process, url = start_server(crash_fleet, isolated)
    try:
        resolved = httpx.get(url + "/api/resolve", params={"model": "good/fine-model"}, timeout=30)
        assert resolved.status_code == 200 and resolved.json()["model"] == "fine-model"
        groups = {g["id"]: g for g in httpx.get(url + "/api/models", timeout=30).json()["providers"]}
        assert groups["good"]["status"] == "online"
        assert {groups[n]["status"] for n in ("nested", "notgzip")} == {"error"}
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "Traceback" not in err, err


# --- time ---------------------------------------------------------------------------------------------------


def test_props_lookups_are_bounded_in_number_and_concurrency(hosts, write_registry, run_cli) -> None:
    from boocoder_bridge.settings import PROPS_CONCURRENCY, PROPS_LOOKUPS

    ids = [f"m{i:04d}" for i in range(600)]
    registry, evil = two_hosts(hosts, write_registry, models_body=llama_swap_body(*ids, loaded=tuple(ids)),
                               props={i: 4096 for i in ids})
    bad = groups_of(run_cli, registry)["bad"]
    asked = [p for p in evil.paths() if p.endswith("/props")]
    assert len(asked) == PROPS_LOOKUPS and evil.props_peak <= PROPS_CONCURRENCY
    assert len(bad["models"]) == 600 and sum(m["context_window"] == 4096 for m in bad["models"]) == PROPS_LOOKUPS
    assert f"{600 - PROPS_LOOKUPS} loaded models" in bad["error"]


def test_props_lookups_stop_at_the_providers_deadline(hosts, write_registry, run_cli) -> None:
    ids = [f"m{i}" for i in range(20)]
    registry, _ = two_hosts(hosts, write_registry, bad_timeout=1,
                               models_body=llama_swap_body(*ids, loaded=tuple(ids)),
                               props={i: 4096 for i in ids}, props_delay_s=30)
    bad = groups_of(run_cli, registry)["bad"]
    assert bad["status"] == "online" and len(bad["models"]) == 20  # the list is kept
    assert "deadline" in bad["error"] and all(m["context_window"] is None for m in bad["models"])


# --- memory -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip,gzip", "x-gzip, gzip"])
def test_a_gzip_bomb_is_cut_on_decoded_bytes_chunk_by_chunk(hosts, write_registry, encoding) -> None:
    import tracemalloc

    from boocoder_bridge import Bridge
    from boocoder_bridge.settings import MAX_BODY_BYTES

    bomb = gzip_bomb(128 << 20)
    registry, _ = two_hosts(hosts, write_registry, fault="encoded", fault_arg=(encoding, bomb))
    bridge = Bridge.load(registry)
    tracemalloc.start()
    try:
        reports = bridge.reports()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reports["good"].status == "online"
    assert reports["bad"].status == "error" and "exceeds" in reports["bad"].error
    assert peak < 2 * MAX_BODY_BYTES + (8 << 20), f"peak {peak >> 20} MiB"  # 128 MiB before the fix


def test_a_small_gzip_body_is_read(hosts, write_registry, run_cli) -> None:
    body = gzip.compress(gzip.compress(json.dumps(llama_swap_body("zipped")).encode()))
    registry, _ = two_hosts(hosts, write_registry, fault="encoded", fault_arg=("gzip, gzip", body))
    bad = groups_of(run_cli, registry)["bad"]
    assert bad["status"] == "online" and [m["model"] for m in bad["models"]] == ["zipped"]


def test_entries_per_host_are_capped_and_the_cut_reported(hosts, write_registry, run_cli, isolated) -> None:
    from boocoder_bridge.settings import MAX_HOST_MODELS

    listed = MAX_HOST_MODELS + 25_000
    body = {"data": [{"id": f"m{i:06d}"} for i in range(listed)]}
    registry, _ = two_hosts(hosts, write_registry, models_body=body)
    bad = groups_of(run_cli, registry)["bad"]
    assert bad["status"] == "online" and len(bad["models"]) == MAX_HOST_MODELS
    assert f"{listed} entries" in bad["error"] and str(MAX_HOST_MODELS) in bad["error"]
    cache = json.loads((isolated / "discovery-cache.json").read_text())
    assert len(cache["providers"]["bad"]["latest"]["models"]) == MAX_HOST_MODELS  # later commands read no more


def test_duplicate_ids_are_reported(hosts, write_registry, run_cli) -> None:
    body = {"data": [{"id": "a", "name": "first"}, {"id": "b"}, {"id": "a", "name": "second"}, {"id": "a"}]}
    registry, _ = two_hosts(hosts, write_registry, models_body=body)
    bad = groups_of(run_cli, registry)["bad"]
    assert [m["model"] for m in bad["models"]] == ["a", "b"] and bad["models"][0]["name"] == "first"
    assert "2 duplicate" in bad["error"] and "'a'" in bad["error"]


# --- display ------------------------------------------------------------------------------------------------

HOSTILE_NAMES = {
    "title": "x\x1b]0;pwned\x07y", "clear": "\x1b[2Jcleared", "colour": "\x1b[31mred\x1b[0m",
    "newline": "fake\n * evil/model   128k ctx", "bidi": "abc\u202edcb", "isolate": "\u2066x\u2069",
    "surrogate": "\ud800lone", "c1": "\x9b31m", "linesep": "a\u2028b",
}
DANGEROUS = ["\x1b", "\x07", "\u202e", "\u2066", "\u2069", "\x9b", "\u2028", "\ud800"]


def test_host_text_is_shown_safely_in_cli_text_and_json(hosts, write_registry, run_cli) -> None:
    data = [{"id": key, "name": name} for key, name in HOSTILE_NAMES.items()]
    data += [{"id": "huge", "context_length": 10**80}, {"id": "evil\u202eid"}, {"id": "esc\x1b[2J"}]
    body = json.dumps({"data": data}).encode()  # ensure_ascii: the surrogate travels as \\ud800
    registry, _ = two_hosts(hosts, write_registry, fault="raw", fault_arg=body)
    text = run_cli("--registry", str(registry), "models")
    assert text.code == 0, text.err
    for bad in DANGEROUS:
        assert bad not in text.out and bad not in text.err
    lines = text.out.splitlines()
    assert not any(line.startswith(" * evil") for line in lines)  # no line faked by a newline in a name
    assert len(lines) == 8 + len(HOSTILE_NAMES) + 1  # favorites (2), good (3), bad: blank, title, note; models
    assert any(line.split()[:1] == ["huge"] and line.endswith("ctx ?") for line in lines)
    raw = run_cli("--registry", str(registry), "models", "--json")
    for bad in DANGEROUS:
        assert bad not in raw.out
    names = {m["model"]: m["name"] for m in raw.json()["providers"][1]["models"]}
    assert names["bidi"] == "abc\\u202edcb" and names["title"] == "x\\x1b]0;pwned\\x07y"  # escaped, visible
    assert "2 entries" in raw.json()["providers"][1]["error"]  # the two IDs with control characters


def test_the_server_json_escapes_host_text(hosts, write_registry, isolated) -> None:
    import httpx

    from tests.helpers import start_server

    registry, _ = two_hosts(hosts, write_registry, models_body={"data": [
        {"id": key, "name": name} for key, name in HOSTILE_NAMES.items() if key != "surrogate"]})
    process, url = start_server(registry, isolated)
    try:
        answer = httpx.get(url + "/api/models", timeout=30)
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert answer.status_code == 200
    for bad in DANGEROUS:
        assert bad not in answer.text


def test_a_body_of_tiny_containers_is_refused_before_it_is_parsed() -> None:
    """16 MiB of ``[],`` parsed to about 400 MiB of lists; counting brackets first refuses it, in milliseconds and
    without memory. A body at the limit still parses."""
    import tracemalloc

    from boocoder_bridge.errors import HostError
    from boocoder_bridge.reports import load_json
    from boocoder_bridge.settings import MAX_BODY_BYTES, MAX_JSON_CONTAINERS

    body = b"[" + b"[]," * (MAX_BODY_BYTES // 3 - 1) + b"[]]"
    tracemalloc.start()
    try:
        with pytest.raises(HostError, match=f"more than {MAX_JSON_CONTAINERS:,} objects and lists"):
            load_json(body, "/v1/models")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    at_limit = b"[" + b"[]," * (MAX_JSON_CONTAINERS - 2) + b"[]]"
    assert len(load_json(at_limit, "/v1/models")) == MAX_JSON_CONTAINERS - 1


def test_a_push_stream_is_inflated_in_bounded_pieces_too(hosts) -> None:
    """``HostClient.stream`` (llama-swap's /api/events) asks for no encoding; a host that sends a bomb anyway
    is inflated by the bridge, 64 KiB at a time, so the event reader's byte limit holds on what is in memory."""
    import asyncio
    import tracemalloc

    from boocoder_bridge import HostClient
    from boocoder_bridge.registry import registry_from_data

    host = hosts(fault="encoded", fault_arg=("gzip, gzip", gzip_bomb(128 << 20)))
    provider = registry_from_data({"default_provider": "h", "providers": {
        "h": {"kind": "llama-swap", "base_url": host.url}}}).providers["h"]

    async def read() -> tuple[int, int, int]:
        pieces = biggest = 0
        async with HostClient.connect(provider, {}) as client, client.stream("/v1/models") as (status, body):
            async for chunk in body:
                pieces, biggest = pieces + 1, max(biggest, len(chunk))
                if pieces * biggest > 8 << 20:  # a reader that stops, like the event reader's limit does
                    break
        return status, pieces, biggest

    tracemalloc.start()
    try:
        status, pieces, biggest = asyncio.run(read())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 200 and pieces > 1 and biggest <= 64 * 1024
    assert peak < 32 << 20, f"peak {peak >> 20} MiB"  # 128 MiB in one piece before the fix


def test_running_out_of_file_descriptors_is_named_as_ours_not_the_hosts(hosts, write_registry) -> None:
    """With more providers than open files allowed, the ones that could not open a socket read "refused or
    unreachable", blaming hosts that were up. They now name the cause and the fix."""
    import subprocess
    import sys

    host = hosts(models_body=llama_swap_body("m"))
    registry = write_registry({"default_provider": "p000", "providers": {
        f"p{i:03d}": {"kind": "llama-swap", "base_url": host.url, "timeout_s": 10} for i in range(120)}})
    script = (
        "import json, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from boocoder_bridge import Bridge\n"
        "reports = Bridge.load(sys.argv[1]).reports(refresh=True)\n"
        "print(json.dumps([[r.status, r.error] for r in reports.values()]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(registry)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    reports = json.loads(done.stdout)
    failed = [error for status, error in reports if status != "online"]
    assert failed and len(failed) < len(reports)  # some made it: the host is up
    assert all("ran out of file descriptors" in error and "ulimit -n" in error for error in failed), failed[:3]
