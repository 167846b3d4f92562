"""The live catalog of ``serve``: background discovery, the event stream, favorites from other processes,
shutdown. Real ``serve`` processes and hosts on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from boocoder_bridge.demo.loopback import LoopbackServer
from tests.conftest import REAL_MODEL, REAL_N_CTX
from tests.fakehost import llama_swap_body
from tests.live_fleet import EventReader, Host, favorite_ids, group, serve_fleet, stalled_events_client


@pytest.fixture
def sam() -> Host:
    host = Host(name="sam", models_body=llama_swap_body("coder", "chat", "unsloth/Qwen3:Q4_K_M",
                                                        contexts={"coder": 65536}))
    yield host
    host.stop()


def test_event_ids_and_last_event_id(tmp_path: Path, sam: Host) -> None:
    providers = {"sam": {"kind": "llama-swap", "base_url": sam.url},
                 "cloud": {"kind": "openai-compatible", "base_url": "https://127.0.0.1:9", "discover": False,
                           "models": {"big": {"context_window": 131072}}}}
    with serve_fleet(tmp_path, providers, {"sam": sam}) as fleet:
        first = EventReader(fleet.url)
        snapshot = first.next()
        assert snapshot["changed"] == ["favorites", "sam", "cloud"]  # a snapshot names every section
        assert group(snapshot["catalog"], "sam")["status"] == "online"
        assert snapshot["catalog"] == httpx.get(fleet.url + "/api/models").json()  # the same live state

        httpx.put(fleet.url + "/api/favorites/sam/coder")
        second = first.next()
        assert favorite_ids(second["catalog"]) == ["sam/coder"]
        assert second["changed"] == ["favorites", "sam"]  # a diff: only what changed (the star in sam's group)
        epoch, number = second["version"].rsplit("-", 1)
        assert snapshot["version"] == f"{epoch}-{int(number) - 1}"

        # Up to date: reconnecting gets nothing until the next change, and then exactly that change.
        current = EventReader(fleet.url, last_event_id=second["version"])
        httpx.put(fleet.url + "/api/favorites/cloud/big")
        third = current.next()
        assert third["version"] == f"{epoch}-{int(number) + 1}" and third["changed"] == ["favorites", "cloud"]
        assert first.next() == third

        # Unknown (or another process's) id: a full snapshot of the newest version.
        stale = EventReader(fleet.url, last_event_id="0000-1")
        again = stale.next()
        assert again["version"] == third["version"] and again["changed"] == ["favorites", "sam", "cloud"]
        assert favorite_ids(again["catalog"]) == ["sam/coder", "cloud/big"]
        for reader in (first, current, stale):
            reader.close()


def test_host_down_and_back_is_pushed_with_favorites_in_order(tmp_path: Path, sam: Host) -> None:
    providers = {"sam": {"kind": "llama-swap", "base_url": sam.url, "refresh_s": 1}}
    with serve_fleet(tmp_path, providers, {"sam": sam}) as fleet:
        for model in ("chat", "unsloth/Qwen3:Q4_K_M", "coder"):
            httpx.put(f"{fleet.url}/api/favorites/sam/{model}")
        events = EventReader(fleet.url)
        order = ["sam/chat", "sam/unsloth/Qwen3:Q4_K_M", "sam/coder"]
        assert favorite_ids(events.until(lambda c: len(c["favorites"]) == 3)["catalog"]) == order

        sam.down()  # nobody asks the bridge anything: it notices by itself
        # A request that reached the host as it went down is reset ("ReadError talking to ..."), also offline;
        # the next round, 0.5 s later, is refused. Wait for that one: it is the state the host stays in.
        gone = events.until(lambda c: group(c, "sam")["status"] == "offline"
                            and "cannot connect" in group(c, "sam")["error"])["catalog"]
        assert gone["favorites"] == [] and group(gone, "sam")["models"] == []
        assert httpx.get(fleet.url + "/api/favorites").json()["favorites"] == order  # hidden, never deleted
        rows = {row["id"]: row for row in httpx.get(fleet.url + "/api/providers").json()["providers"]}
        assert (rows["sam"]["status"], rows["sam"]["model_count"]) == ("offline", 0)  # the same live state

        sam.up()
        back = events.until(lambda c: group(c, "sam")["status"] == "online")["catalog"]
        assert favorite_ids(back) == order
        assert httpx.get(fleet.url + "/api/models").json() == back
        events.close()


def test_favorite_from_another_process_is_pushed(tmp_path: Path, sam: Host) -> None:
    with serve_fleet(tmp_path, {"sam": {"kind": "llama-swap", "base_url": sam.url}}, {"sam": sam}) as fleet:
        events = EventReader(fleet.url)
        assert events.next()["catalog"]["favorites"] == []
        fleet.cli("favorites", "add", "sam/chat")  # another process writes the SQLite database
        assert favorite_ids(events.until(lambda c: c["favorites"])["catalog"]) == ["sam/chat"]
        fleet.cli("favorites", "remove", "sam/chat")
        assert events.until(lambda c: not c["favorites"])["changed"] == ["favorites", "sam"]
        events.close()


def test_models_never_waits_on_a_hanging_host(tmp_path: Path, sam: Host) -> None:
    stuck = Host(name="stuck", fault="hang")
    providers = {"sam": {"kind": "llama-swap", "base_url": sam.url},
                 "stuck": {"kind": "openai-compatible", "base_url": stuck.url, "timeout_s": 120}}
    with serve_fleet(tmp_path, providers, {"sam": sam, "stuck": stuck}) as fleet:
        # The hanging host is still being asked (for two minutes), yet the catalog is served from live state.
        catalog = httpx.get(fleet.url + "/api/models", timeout=10).json()
        assert group(catalog, "sam")["status"] == "online"
        assert group(catalog, "stuck")["error"] == "not checked yet"


def test_shutdown_ends_every_stream_cleanly(tmp_path: Path, sam: Host) -> None:
    with serve_fleet(tmp_path, {"sam": {"kind": "llama-swap", "base_url": sam.url}}, {"sam": sam}) as fleet:
        readers = [EventReader(fleet.url) for _ in range(3)]
        for reader in readers:
            reader.next()
        fleet.process.send_signal(signal.SIGTERM)
        assert fleet.process.wait(timeout=15) == -signal.SIGTERM  # uvicorn re-raises the signal once it is done
        for reader in readers:
            reader.wait_end()
            assert reader.ended_cleanly  # the chunked body was finished, not cut off
        assert "Traceback" not in fleet.process.stderr.read()


def test_a_client_that_never_reads_does_not_hold_up_the_others(tmp_path: Path) -> None:
    many = [f"model-{i:04d}-" + "x" * 200 for i in range(1500)]  # ~400 KB per event: fills socket buffers fast
    big = Host(name="big", models_body=llama_swap_body(*many))
    with serve_fleet(tmp_path, {"big": {"kind": "llama-swap", "base_url": big.url}}, {"big": big}) as fleet:
        stalled = stalled_events_client(fleet.url)  # it never reads a byte
        reader = EventReader(fleet.url)
        reader.next()
        for model in many[:12]:  # 12 new versions: more than the stalled socket's buffers can take
            assert httpx.put(f"{fleet.url}/api/favorites/big/{model}").status_code == 200
        last = reader.until(lambda c: favorite_ids(c) == [f"big/{m}" for m in many[:12]])
        assert last["changed"] == ["favorites", "big"]
        assert httpx.get(fleet.url + "/healthz", timeout=5).json() == {"status": "ok"}
        stalled.close()
        reader.close()


def test_llama_swap_events_make_a_loaded_models_context_known(tmp_path: Path, swap_proxy) -> None:
    """A real llama.cpp server behind a llama-swap-shaped proxy: the model loads (a ``modelStatus`` event), the
    bridge asks again at once and reads the live context size, and pushes it. Polling is set to once an hour,
    so only the host's event stream can explain what the page sees; when that stream drops, the bridge looks
    at once and pushes the host offline."""
    swap_proxy.set_state(REAL_MODEL, "stopped")
    providers = {"swap": {"kind": "llama-swap", "base_url": swap_proxy.url, "refresh_s": 3600}}
    with serve_fleet(tmp_path, providers, {}) as fleet:
        events = EventReader(fleet.url)
        model = f"swap/{REAL_MODEL}"
        stopped = events.until(lambda c: group(c, "swap")["status"] == "online")["catalog"]
        assert [(m["id"], m["context_window"]) for m in group(stopped, "swap")["models"]] == [(model, None)]

        swap_proxy.set_state(REAL_MODEL, "ready")  # llama-swap pushes modelStatus to /api/events clients
        loaded = events.until(lambda c: group(c, "swap")["models"][0]["context_window"] is not None)
        assert group(loaded["catalog"], "swap")["models"][0]["context_window"] == REAL_N_CTX
        assert loaded["changed"] == ["swap"]
        assert swap_proxy.swaps == []  # the bridge never made the proxy load a model
        assert [s.path for s in swap_proxy.requests].count("/api/events") == 1  # one stream, still open

        swap_proxy.stop()  # ends the event stream: the bridge asks at once and finds nobody there
        gone = events.until(lambda c: group(c, "swap")["status"] == "offline")["catalog"]
        assert group(gone, "swap")["models"] == []
        events.close()


class HostileEvents(BaseHTTPRequestHandler):
    """A llama-swap with a plain one-model list; each subclass writes its own ``/api/events`` stream."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != "/api/events":
            self.listed()
            body = json.dumps(llama_swap_body("coder")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        with contextlib.suppress(OSError):  # the bridge hung up
            self.stream()

    def listed(self) -> None:
        """Called on each GET /v1/models."""

    def stream(self) -> None:
        raise NotImplementedError


class EndlessEvents(HostileEvents):
    """Its ``/api/events`` sends one line that never ends."""

    written: ClassVar[list[int]] = []  # bytes sent on each /api/events connection

    def stream(self) -> None:
        sent, chunk = 0, b"x" * 65536
        try:
            self.wfile.write(b"event: message\ndata: ")
            while sent < 256 * 1024 * 1024:
                self.wfile.write(chunk)
                sent += len(chunk)
        finally:
            self.written.append(sent)


class FlappingEvents(HostileEvents):
    """Its ``/api/events`` flips its model between starting and ready as fast as it can."""

    model_lists: ClassVar[list[float]] = []  # when each GET /v1/models came

    def listed(self) -> None:
        self.model_lists.append(time.monotonic())

    def stream(self) -> None:
        from boocoder_bridge.demo.events import api_model, frame

        flips = [frame("modelStatus", [api_model("coder", state=state)]) for state in ("starting", "ready")]
        for n in range(2_000_000):
            self.wfile.write(flips[n % 2])


def test_a_flapping_host_is_discovered_at_most_once_a_second(tmp_path: Path) -> None:
    """Every changed push message asked for a rediscovery: a host flipping its states as fast as it can got about
    9 GET /v1/models a second, each answer an fsync'd cache write, and kept serve's CPU busy reading."""
    from boocoder_bridge.web.live import ROUND_MIN_S

    FlappingEvents.model_lists.clear()
    with LoopbackServer(FlappingEvents) as host:
        providers = {"flappy": {"kind": "llama-swap", "base_url": host.url}}
        with serve_fleet(tmp_path, providers, {}) as fleet:
            events = EventReader(fleet.url)
            assert group(events.next()["catalog"], "flappy")["status"] == "online"
            time.sleep(4)
            window = [t for t in FlappingEvents.model_lists if t > time.monotonic() - 3]
            assert 1 <= len(window) <= 3 / ROUND_MIN_S + 1, len(window)  # still rediscovered, but paced
            assert httpx.get(fleet.url + "/healthz", timeout=5).status_code == 200
            events.close()


def test_a_host_event_stream_that_never_ends_a_line_is_cut_off(tmp_path: Path) -> None:
    with LoopbackServer(EndlessEvents) as host:
        providers = {"evil": {"kind": "llama-swap", "base_url": host.url}}
        with serve_fleet(tmp_path, providers, {}) as fleet:
            events = EventReader(fleet.url)
            assert group(events.next()["catalog"], "evil")["status"] == "online"
            deadline = time.monotonic() + 60
            while len(EndlessEvents.written) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            # The bridge hung up on each stream after its 4 MiB limit (plus what socket buffers hold), and
            # reconnected; the provider stayed online and the server kept serving.
            assert len(EndlessEvents.written) >= 2
            assert max(EndlessEvents.written) < 32 * 1024 * 1024
            assert group(httpx.get(fleet.url + "/api/models").json(), "evil")["status"] == "online"
            events.close()


def test_the_same_answer_again_does_not_rebuild_the_catalog(tmp_path: Path, monkeypatch) -> None:
    """Every discovery round of every provider ends in _set_report; an answer that differs only in fetched_at
    rebuilt the whole catalog on the event loop (57 ms for 20 x 500 models) for an identical result."""
    import asyncio

    from boocoder_bridge import Bridge, fleetstate
    from boocoder_bridge.reports import HostModel, ProviderReport
    from boocoder_bridge.web import live

    registry = tmp_path / "fleet.json"
    registry.write_text(json.dumps({"default_provider": "h", "providers": {
        "h": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9"}}}))
    builds: list[int] = []
    real_build = fleetstate.build_catalog
    monkeypatch.setattr(fleetstate, "build_catalog", lambda *a, **k: builds.append(1) or real_build(*a, **k))

    async def run() -> None:
        catalog = live.LiveCatalog(Bridge.load(registry, tmp_path / "state"))
        catalog.reports = {"h": ProviderReport(provider="h", status="offline", error="x", fetched_at=1.0)}
        catalog._rebuild()
        online = ProviderReport(provider="h", status="online", models=[HostModel(id="m")], fetched_at=2.0)
        catalog._set_report("h", online)
        assert len(builds) == 2 and [m["id"] for m in catalog.current.model_dump()["providers"][0]["models"]] == ["h/m"]
        catalog._set_report("h", online.model_copy(update={"fetched_at": 3.0}))  # the next round, same answer
        assert len(builds) == 2
        catalog._set_report("h", online.model_copy(update={"models": [HostModel(id="m"), HostModel(id="n")]}))
        assert len(builds) == 3

    asyncio.run(run())


def test_a_host_streaming_changes_cannot_keep_the_loop_rebuilding(write_registry) -> None:
    """A push channel that sends changed model states as fast as it can gets one catalog rebuild per
    PUSH_REBUILD_S, not one per message (each rebuild is ~57 ms of the event loop at 20 x 500 models)."""
    import asyncio

    from boocoder_bridge import Bridge, HostModel, ModelState, ProviderReport
    from boocoder_bridge.web.live import PUSH_REBUILD_S, LiveCatalog

    registry = write_registry({"default_provider": "sam", "providers": {
        "sam": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9"}}})
    live = LiveCatalog(Bridge.load(registry))
    rebuilds: list[int] = []
    rebuild = live._rebuild

    def counted() -> None:
        rebuilds.append(live.version)
        rebuild()

    async def flood() -> None:
        live.reports = {"sam": ProviderReport(provider="sam", status="online", models=[HostModel(id="m")])}
        live._rebuild, live.poke = counted, lambda pid: None
        for n in range(500):
            live._apply_pushed("sam", [ModelState(id="m", state="loaded", context_window=1000 + n)])
        await asyncio.sleep(PUSH_REBUILD_S * 5)

    asyncio.run(flood())
    assert 1 <= len(rebuilds) <= 2, len(rebuilds)
    assert live.current.providers[0].models[0].context_window == 1499  # the newest message counts


def test_a_favorite_changed_over_the_api_is_in_the_very_next_catalog(write_registry, monkeypatch) -> None:
    """Regression: PUT and DELETE /api/favorites only told the background loop to look again, so a GET
    /api/models right after the answer could still show the old favorites (2 of 40 tries on a loaded machine).
    The loop is switched off here: only the change itself can bring it into the catalog."""
    import asyncio

    from fastapi.testclient import TestClient

    from boocoder_bridge import Bridge
    from boocoder_bridge.web import live
    from boocoder_bridge.web.app import create_app

    async def never_looks(self: live.LiveCatalog) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(live.LiveCatalog, "_favorites_loop", never_looks)
    registry = write_registry({"default_provider": "desk", "providers": {"desk": {
        "kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False, "models": {"a": {}, "b": {}}}}})
    with TestClient(create_app(Bridge.load(registry)), base_url="http://127.0.0.1") as client:  # with its lifespan
        for method, model, expected in (("PUT", "desk/a", ["desk/a"]), ("PUT", "desk/b", ["desk/a", "desk/b"]),
                                        ("DELETE", "desk/a", ["desk/b"])):
            assert client.request(method, f"/api/favorites/{model}").status_code == 200
            assert favorite_ids(client.get("/api/models").json()) == expected
