"""llama-swap's live ``GET /api/events`` as the fakes serve it: the wire format and shapes of llama-swap v250's
source (internal/server/apigroup.go), a snapshot on connect, a ``modelStatus`` on every change, 404 on hosts
without it."""

from __future__ import annotations

import json

import httpx

from boocoder_bridge.demo import events
from boocoder_bridge.demo.proxy import SwapModel
from tests.conftest import REAL_MODEL
from tests.fakehost import llama_swap_body

TIMEOUT = httpx.Timeout(10, read=10)  # a missing event fails the test instead of hanging it


def models_v250() -> dict:
    body = llama_swap_body("coder", "embed", loaded=("coder",), contexts={"coder": 65536})
    body["data"][0]["meta"]["llamaswap"]["aliases"] = ["c"]
    body["data"][0]["capabilities"] = {"function_calling": True}
    body["data"].append({"id": "gpu-box/qwen3-32b", "object": "model", "created": 1787400000,
                         "owned_by": "llama-swap", "meta": {"llamaswap": {"type": "peer", "peerID": "gpu-box"}},
                         "status": {"value": "unloaded"}})
    return body


def test_snapshot_on_connect_then_a_model_status_on_every_change(hosts) -> None:
    host = hosts(models_body=models_v250(), events=True)
    with httpx.stream("GET", host.url + "/api/events", timeout=TIMEOUT) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream"
        assert answer.headers["cache-control"] == "no-cache"
        received = events.parse_frames(answer.iter_lines())
        first = [next(received) for _ in range(6)]
        assert [kind for kind, _ in first] == ["logData", "logData", "modelStatus", "uiConfig", "profileChanged",
                                               "inflight"]
        assert first[2][1] == [
            {"id": "coder", "name": "", "description": "", "state": "ready", "unlisted": False, "peerID": "",
             "aliases": ["c"], "capabilities": {"function_calling": True}, "context_length": 65536},
            {"id": "embed", "name": "", "description": "", "state": "stopped", "unlisted": False, "peerID": ""},
            {"id": "gpu-box/qwen3-32b", "name": "", "description": "", "state": "", "unlisted": False,
             "peerID": "gpu-box"}]
        assert host.set_state("embed", "starting") == 1  # one client connected, and it gets it
        kind, status = next(received)
        assert kind == "modelStatus" and {m["id"]: m["state"] for m in status}["embed"] == "starting"
        host.set_state("embed", "ready")
        assert {m["id"]: m["state"] for m in next(received)[1]}["embed"] == "ready"
        host.set_models_body(llama_swap_body("coder", loaded=("coder",)))  # a config reload
        assert [m["id"] for m in next(received)[1]] == ["coder"]
    listed = httpx.get(host.url + "/v1/models", timeout=TIMEOUT).json()["data"]
    assert [(m["id"], m["status"]["value"]) for m in listed] == [("coder", "loaded")]


def test_wire_format_is_llama_swaps_double_encoded_envelope(hosts) -> None:
    host = hosts(models_body=llama_swap_body("m"), events=True)
    with httpx.stream("GET", host.url + "/api/events", timeout=TIMEOUT) as answer:
        raw = b""
        for chunk in answer.iter_raw():
            raw += chunk
            if raw.count(b"\n\n") >= 3:
                break
    frames = raw.split(b"\n\n")
    assert frames[0] == b'event:message\ndata:{"type":"logData","data":"{\\"source\\":\\"proxy\\",\\"data\\":\\"\\"}"}'
    envelope = json.loads(frames[2].split(b"data:", 1)[1])
    assert envelope["type"] == "modelStatus" and isinstance(envelope["data"], str)  # the payload is a JSON string
    assert json.loads(envelope["data"])[0]["id"] == "m"


def test_hosts_without_events_answer_404(hosts) -> None:
    host = hosts(models_body=llama_swap_body("m"))
    assert httpx.get(host.url + "/api/events", timeout=TIMEOUT).status_code == 404


def test_stopping_the_host_ends_open_streams(hosts) -> None:
    host = hosts(models_body=llama_swap_body("m"), events=True)
    with httpx.stream("GET", host.url + "/api/events", timeout=TIMEOUT) as answer:
        received = events.parse_frames(answer.iter_lines())
        for _ in range(6):
            next(received)
        host.stop()
        assert list(received) == []  # the stream ends, no hang


def test_the_proxy_swaps_a_stopped_model_in_and_says_so(swap_proxy, llama_server) -> None:
    """The demo proxy in front of the real llama.cpp server: a chat for a stopped model starts it, as llama-swap
    does, and every /api/events client sees starting, then ready."""
    swap_proxy.set_models([SwapModel(REAL_MODEL, llama_server.url, state="stopped")])
    with httpx.stream("GET", swap_proxy.url + "/api/events", timeout=TIMEOUT) as answer:
        received = events.parse_frames(answer.iter_lines())
        snapshot = [next(received) for _ in range(6)][2][1]
        assert [(m["id"], m["state"]) for m in snapshot] == [(REAL_MODEL, "stopped")]
        chat = httpx.post(swap_proxy.url + "/v1/chat/completions", timeout=60, json={
            "model": REAL_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert chat.status_code == 200
        assert [next(received)[1][0]["state"] for _ in range(2)] == ["starting", "ready"]
    assert swap_proxy.swaps == [REAL_MODEL]



def test_a_push_channel_whose_host_never_answers_ends_at_the_providers_timeout() -> None:
    """The stream's read timeout is off (an idle stream is normal), which also left waiting for the response
    head unbounded: a host that accepted and never answered held the push channel forever."""
    import asyncio
    import socket

    from boocoder_bridge import HostClient
    from boocoder_bridge.registry import Provider

    async def run(url: str) -> bool:
        provider = Provider(id="h", kind="llama-swap", base_url=url, timeout_s=1)
        async with asyncio.timeout(30) as outer:
            try:
                async with HostClient.connect(provider, {}) as client, client.stream("/api/events"):
                    raise AssertionError("a host that never answered gave a status")
            except TimeoutError:
                pass
        return outer.expired()

    with socket.socket() as silent:  # the kernel accepts the connection; nobody ever reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert asyncio.run(run(f"http://127.0.0.1:{silent.getsockname()[1]}")) is False  # 1 s, not the 30 s guard
