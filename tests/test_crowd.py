"""``serve`` under a crowd (issue 22): each version's frames encoded once, a client that never reads is dropped,
and the crowd benchmark's workload is what it claims (the 9,000-model catalog, to every client)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from boocoder_bridge import Bridge, HostModel, ProviderReport
from boocoder_bridge.settings import SERVE_SEND_BUFFER_BYTES, SERVE_STALL_DROP_S
from boocoder_bridge.web import live
from tests.fakehost import llama_swap_body
from tests.live_fleet import EventReader, Host, favorite_ids, serve_fleet, stalled_events_client

ROOT = Path(__file__).resolve().parents[1]


def _crowd_script():
    spec = importlib.util.spec_from_file_location("bench_crowd", ROOT / "benchmarks" / "crowd.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_crowd"] = module
    spec.loader.exec_module(module)
    return module


crowd = _crowd_script()


def test_each_version_is_encoded_once_whoever_asks(write_registry, monkeypatch) -> None:
    """50 clients connect at once: one snapshot encoding, not 50; and every frame is, byte for byte, the
    ``CatalogEvent`` pydantic would encode (the catalog JSON is spliced in, not encoded again)."""
    registry = write_registry({"default_provider": "h", "providers": {
        "h": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9"}}})
    encodes: list[list[str]] = []
    real_encode = live.LiveCatalog._encode
    monkeypatch.setattr(live.LiveCatalog, "_encode", lambda self, changed: encodes.append(changed) or
                        real_encode(self, changed))

    async def run() -> None:
        catalog = live.LiveCatalog(Bridge.load(registry))
        catalog._loop = asyncio.get_running_loop()
        catalog.reports = {"h": ProviderReport(provider="h", status="online",
                                               models=[HostModel(id=f"m{i}", context_window=4096) for i in range(50)])}
        catalog._rebuild()
        assert len(encodes) == 1  # the next version's frame (a diff for clients one version behind)
        streams = [catalog.stream() for _ in range(50)]
        firsts = await asyncio.gather(*(_first_frame(s) for s in streams))
        assert len(encodes) == 2 and encodes[1] == ["favorites", "h"]  # one snapshot for all 50
        assert len(set(firsts)) == 1
        data = firsts[0].split(b"data: ", 1)[1].rstrip(b"\n").decode()
        assert data == live.CatalogEvent.model_validate_json(data).model_dump_json()
        event = json.loads(data)
        assert event["catalog"] == json.loads(catalog.current_json) and len(event["catalog"]["providers"][0][
            "models"]) == 50
        catalog.favorites = ["h/m3"]
        catalog._rebuild()  # a new version: its snapshot is encoded again, once
        assert await _first_frame(catalog.stream()) != firsts[0] and len(encodes) == 4
        for stream in streams:
            await stream.aclose()

    asyncio.run(run())


async def _first_frame(stream) -> bytes:
    pieces = []
    async for piece in stream:
        if bytes(piece).startswith(b"retry:"):
            continue
        pieces.append(bytes(piece))
        if pieces[-1].endswith(b"\n\n"):
            return b"".join(pieces)
    raise AssertionError("the stream ended")


def test_connections_get_a_bounded_send_buffer_and_a_stall_timeout() -> None:
    from boocoder_bridge.web.app import bind

    listener = bind("127.0.0.1", 0)
    try:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * SERVE_SEND_BUFFER_BYTES  # Linux doubles
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == int(SERVE_STALL_DROP_S * 1000)
        conn.close()
        client.close()
    finally:
        listener.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="the stall timeout is Linux's TCP_USER_TIMEOUT")
def test_a_client_that_never_reads_is_dropped_and_a_reconnect_gets_a_snapshot(tmp_path: Path) -> None:
    many = [f"model-{i:04d}-" + "x" * 200 for i in range(1500)]  # ~400 KB per event: fills every buffer
    big = Host(name="big", models_body=llama_swap_body(*many))
    with serve_fleet(tmp_path, {"big": {"kind": "llama-swap", "base_url": big.url}}, {"big": big}) as fleet:
        stalled = stalled_events_client(fleet.url)  # it never reads a byte
        port = int(fleet.url.rsplit(":", 1)[1])
        for model in many[:3]:
            assert httpx.put(f"{fleet.url}/api/favorites/big/{model}").status_code == 200
        assert crowd.server_connections(port) == 1
        deadline = time.monotonic() + SERVE_STALL_DROP_S + 20
        while crowd.server_connections(port) and time.monotonic() < deadline:
            assert httpx.get(fleet.url + "/healthz", timeout=5).json() == {"status": "ok"}
            time.sleep(0.5)
        assert crowd.server_connections(port) == 0, "the server kept a client that never reads"
        stalled.settimeout(10)
        with pytest.raises(ConnectionResetError):  # reading again: the server has forgotten it
            while stalled.recv(1 << 16):
                pass
        stalled.close()
        reader = EventReader(fleet.url, last_event_id="0000-1")  # an id the server never gave: a snapshot
        again = reader.next()
        assert again["changed"] == ["favorites", "big"] and favorite_ids(again["catalog"]) == [
            f"big/{m}" for m in many[:3]]
        reader.close()


def test_the_crowd_gets_the_9000_model_catalog(tmp_path: Path) -> None:
    """The benchmark's workload at full size (3 hosts x 3,000 models), with a few clients instead of 200: each
    client's first event is the whole catalog, the same for all, equal to GET /api/models."""
    registry, hosts = crowd.fleet(tmp_path, 3, 3000)
    try:
        with crowd.serve(registry, tmp_path / "state") as (_, port):
            catalog = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=60).json()
            out = asyncio.run(crowd.crowd(port, 4))
            crowd.check_crowd(out, 3, 3000, catalog)
            assert out["event_bytes"] > 1_000_000 and out["clients"] == 4
            hosts[2].stop()  # a host gone: the same checks must refuse what would be a smaller workload
            httpx.get(f"http://127.0.0.1:{port}/api/models?refresh=true", timeout=60)
            smaller = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=60).json()
            out = asyncio.run(crowd.crowd(port, 2))
            with pytest.raises(crowd.WorkloadError, match="first event"):
                crowd.check_crowd(out, 3, 3000, smaller)
    finally:
        for host in hosts:
            host.stop()
