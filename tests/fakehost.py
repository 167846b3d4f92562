"""A small llama-swap-like server on 127.0.0.1 for tests: real HTTP, llama-swap's real response shapes.

It serves ``/v1/models`` (any body you give it), ``/running``, ``/upstream/<model>/props`` and an
OpenAI-compatible ``/v1/chat/completions`` (streaming or not) that answers ``reply from <name> model <m>``,
and records every request. Faults: ``hang``, ``status``, ``raw`` body, ``encoded`` body (any
``Content-Encoding``), ``trickle``, ``redirect``, ``big``. ``props_delay_s`` slows each ``/props`` answer and
``props_peak`` records how many were in flight at once.

With ``events=True`` it also serves llama-swap v250's live ``GET /api/events`` (Server-Sent Events, the shapes
of llama-swap's source: see :mod:`boocoder_bridge.demo.events`): on connect a snapshot whose ``modelStatus`` is
derived from ``models_body``, then one ``modelStatus`` per change made with :meth:`FakeHost.set_state` or
:meth:`FakeHost.set_models_body`. Without it, ``/api/events`` is a 404, as on older llama-swap releases.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from boocoder_bridge.demo import events
from boocoder_bridge.demo.loopback import LoopbackServer

RESPONSES = Path(__file__).resolve().parents[1] / "fixtures" / "llama-swap"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OPENCODE_SCHEMA = FIXTURES / "opencode" / "opencode-config.schema.json"  # see fixtures/SOURCE.md


def llama_swap_body(*ids: str, loaded: tuple[str, ...] = (), contexts: dict[str, int] | None = None,
                    outputs: dict[str, int] | None = None) -> dict[str, Any]:
    """A current-shape (v250) ``/v1/models`` body for the given model IDs."""
    contexts, outputs = contexts or {}, outputs or {}
    data = []
    for model_id in sorted(ids):
        owner: dict[str, Any] = {"type": "model"}
        entry: dict[str, Any] = {"id": model_id, "object": "model", "created": 1787400000, "owned_by": "llama-swap"}
        if model_id in outputs:
            owner["max_output_tokens"] = outputs[model_id]
        entry["meta"] = {"llamaswap": owner}
        if model_id in contexts:
            entry["context_length"] = contexts[model_id]
            entry["meta"]["n_ctx"] = contexts[model_id]
        entry["status"] = {"value": "loaded" if model_id in loaded else "unloaded"}
        data.append(entry)
    return {"data": data, "object": "list"}


def router_body(states: dict[str, str], n_ctx: int = 1024) -> dict[str, Any]:
    """A llama.cpp router's ``/models`` body (the shape measured on a real router, 2026-12-02): each model with
    ``status.value`` and the ``args`` it is started with; a loaded one also with ``meta``."""
    data = []
    for model_id, state in sorted(states.items()):
        args = ["llama-server", "--host", "127.0.0.1", "--port", "0", "--alias", model_id, "--ctx-size", str(n_ctx),
                "--model", f"/models/{model_id}.gguf"]
        entry: dict[str, Any] = {"id": model_id, "aliases": [], "tags": [], "object": "model",
                                 "owned_by": "llamacpp", "created": 1796183433, "source": "models_dir",
                                 "status": {"value": state, "args": args}}
        if state == "loaded":
            entry["meta"] = {"n_ctx": n_ctx, "n_ctx_train": 32768}
        data.append(entry)
    return {"data": data, "object": "list"}


ROUTER_PROPS = {"role": "router", "max_instances": 1, "models_autoload": True,
                "default_generation_settings": {"n_ctx": 0}}  # a router's own /props: n_ctx 0 is no window


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(eq=False)
class FakeHost(LoopbackServer):
    name: str = "host"
    models_body: Any = field(default_factory=lambda: llama_swap_body("llama-3.2-3b"))
    running: Any = field(default_factory=lambda: {"running": []})
    props: dict[str, int] = field(default_factory=dict)  # model -> n_ctx that /props reports
    fault: str | None = None  # hang | status | raw | trickle | redirect | big
    fault_arg: Any = None
    delay_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # more GET paths -> JSON bodies
    barrier: threading.Barrier | None = None  # /v1/models answers only once every host sharing it was asked
    props_delay_s: float = 0.0
    props_peak: int = 0  # most /props requests in flight at once
    chat_fault: str | None = None  # silent: chat requests are read and never answered
    chat_delay_s: float = 0.0  # slow: each chat answer waits this long (GETs such as /health still answer)
    n_ctx: int | None = None  # chat: refuse prompt (JSON chars / 4) + max_tokens > n_ctx as llama.cpp does
    requests: list[Recorded] = field(default_factory=list)
    events: bool = False  # serve llama-swap's GET /api/events (v250); else 404 as older releases
    states: dict[str, str] = field(default_factory=dict)  # model -> process state, overriding models_body
    port: int = 0  # 0: the OS picks; give a stopped host's port to bring "the same host" back

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self.hub = events.EventHub()
        self._props_lock = threading.Lock()
        self._props_in_flight = 0
        super().__init__(_handler(self), self.port)

    def stop(self) -> None:
        self._stop.set()
        self.hub.close()
        super().stop()

    def model_status(self) -> list[dict[str, Any]]:
        """llama-swap's ``modelStatus`` list for ``models_body``: configured models (not aliases or selectors)
        sorted by id, state ``ready`` if listed as loaded else ``stopped`` (or what ``set_state`` said), then
        peer models with their ``peerID``."""
        entries = self.models_body.get("data", []) if isinstance(self.models_body, dict) else []
        local, peers = [], []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
            owner = meta.get("llamaswap") if isinstance(meta.get("llamaswap"), dict) else {}
            kind = owner.get("type", "model")
            if kind == "peer":
                peers.append(events.api_model(entry["id"], state="", peer_id=str(owner.get("peerID", ""))))
            elif kind == "model":
                loaded = isinstance(entry.get("status"), dict) and entry["status"].get("value") == "loaded"
                local.append(events.api_model(
                    entry["id"], state=self.states.get(entry["id"], "ready" if loaded else "stopped"),
                    name=entry.get("name", ""), description=entry.get("description", ""),
                    aliases=owner.get("aliases", ()), capabilities=entry.get("capabilities"),
                    context_length=entry.get("context_length")))
        return sorted(local, key=lambda m: m["id"]) + peers

    def set_state(self, model_id: str, state: str) -> int:
        """Change one model's process state (``/v1/models`` status follows) and push ``modelStatus`` to every
        ``/api/events`` client, as llama-swap does on each process state change. Returns how many got it."""
        if state not in events.STATES:
            raise ValueError(f"state must be one of {events.STATES}")
        self.states[model_id] = state
        for entry in self.models_body.get("data", []):
            if isinstance(entry, dict) and entry.get("id") == model_id and isinstance(entry.get("status"), dict):
                entry["status"] = {"value": "unloaded" if state == "stopped" else "loaded"}
        return self.hub.publish(events.frame("modelStatus", self.model_status()))

    def set_models_body(self, body: Any) -> int:
        """Replace the model list (llama-swap's config reload) and push ``modelStatus``."""
        self.models_body = body
        return self.hub.publish(events.frame("modelStatus", self.model_status()))

    def paths(self, method: str = "GET") -> list[str]:
        return [r.path for r in self.requests if r.method == method]

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/chat/completions")]


def _handler(host: FakeHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json",
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode())

        def do_GET(self) -> None:
            host.requests.append(Recorded("GET", self.path, dict(self.headers), None))
            if host.delay_s:
                time.sleep(host.delay_s)
            if self.path in ("/v1/models", "/models") and host.barrier is not None:
                try:
                    host.barrier.wait(timeout=5)
                except threading.BrokenBarrierError:
                    return self._json(503, {"error": "the other hosts were never asked at the same time"})
            if self.path in ("/v1/models", "/models") and host.fault:
                return self._fault()
            if self.path in ("/v1/models", "/models"):
                return self._json(200, host.models_body)
            if self.path == "/running":
                return self._json(200, host.running)
            if self.path.startswith("/upstream/") and self.path.endswith("/props"):
                return self._props(self.path[len("/upstream/"):-len("/props")])
            if self.path in host.extra:
                return self._json(200, host.extra[self.path])
            if self.path == "/health":
                return self._send(200, b"OK", "text/plain")
            if self.path == "/api/events" and host.events:
                return events.stream(self, host.hub, events.connect_frames(host.model_status()))
            return self._json(404, {"error": "not found"})

        def _props(self, model: str) -> None:
            with host._props_lock:
                host._props_in_flight += 1
                host.props_peak = max(host.props_peak, host._props_in_flight)
            try:
                if host.props_delay_s and host._stop.wait(host.props_delay_s):
                    return None
                if model in host.props:
                    return self._json(200, {"default_generation_settings": {"n_ctx": host.props[model]},
                                            "total_slots": 1, "model_alias": model})
                return self._json(404, {"src": "llama-swap", "error": "no router for requested model"})
            finally:
                with host._props_lock:
                    host._props_in_flight -= 1

        def _fault(self) -> None:
            kind, arg = host.fault, host.fault_arg
            if kind == "hang":
                host._stop.wait(60)
                self.close_connection = True  # stopping ends the hang: the client sees the connection close
                return None
            if kind == "status":
                return self._json(arg, {"src": "llama-swap", "error": "unauthorized: invalid or missing API key"})
            if kind == "raw":
                body = arg if isinstance(arg, bytes) else str(arg).encode()
                return self._send(200, body, "text/html" if body.lstrip().startswith(b"<") else "application/json")
            if kind == "encoded":  # (Content-Encoding value, body bytes as sent on the wire)
                encoding, body = arg
                return self._send(200, body, extra={"Content-Encoding": encoding})
            if kind == "redirect":
                return self._send(302, b"", extra={"Location": arg})
            if kind in ("big", "big-unsized"):  # arg bytes, streamed; unsized: only a running count stops it
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if kind == "big":
                    self.send_header("Content-Length", str(arg))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                chunk = b" " * 65536
                try:
                    for _ in range(arg // len(chunk)):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                return None
            if kind == "trickle":  # one byte per arg seconds, never finishing in time
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(100000):
                        if host._stop.wait(arg):
                            return None
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:
                    pass
                return None
            raise AssertionError(f"unknown fault {kind}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except json.JSONDecodeError:
                body = None
            host.requests.append(Recorded("POST", self.path, dict(self.headers), body))
            if not self.path.endswith("/chat/completions") or not isinstance(body, dict):
                return self._json(404, {"error": "not found"})
            if host.chat_fault == "silent":
                host._stop.wait(120)
                return None
            if host.chat_delay_s and host._stop.wait(host.chat_delay_s):
                return None
            model = body.get("model", "?")
            prompt_tokens = len(json.dumps([body.get("messages"), body.get("tools")])) // 4
            if host.n_ctx is not None and prompt_tokens + (body.get("max_tokens") or 0) > host.n_ctx:
                return self._json(400, {"error": {  # llama.cpp's own answer (server.cpp, exceed_context_size_error)
                    "code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": prompt_tokens,
                    "n_ctx": host.n_ctx, "message": f"request ({prompt_tokens} tokens) exceeds the available "
                                                    f"context size ({host.n_ctx} tokens), try increasing it"}})
            text = f"reply from {host.name} model {model}"
            if not body.get("stream"):
                return self._json(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1787400000, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}})
            chunks = [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}},
            ]
            payload = b"".join(
                b"data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                        "created": 1787400000, "model": model, **chunk}).encode() + b"\n\n"
                for chunk in chunks) + b"data: [DONE]\n\n"
            return self._send(200, payload, "text/event-stream")

    return Handler
