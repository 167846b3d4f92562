"""A small llama-swap-like server on 127.0.0.1 for tests: real HTTP, llama-swap's real response shapes.

It serves ``/v1/models`` (any body you give it), ``/running``, ``/upstream/<model>/props`` and an
OpenAI-compatible ``/v1/chat/completions`` (streaming or not) that answers ``reply from <name> model <m>``,
and records every request. Faults: ``hang``, ``status``, ``raw`` body, ``trickle``, ``redirect``, ``big``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(eq=False)
class FakeHost:
    name: str = "host"
    models_body: Any = field(default_factory=lambda: llama_swap_body("llama-3.2-3b"))
    running: Any = field(default_factory=lambda: {"running": []})
    props: dict[str, int] = field(default_factory=dict)  # model -> n_ctx that /props reports
    fault: str | None = None  # hang | status | raw | trickle | redirect | big
    fault_arg: Any = None
    delay_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # more GET paths -> JSON bodies
    barrier: threading.Barrier | None = None  # /v1/models answers only once every host sharing it was asked
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
                model = self.path[len("/upstream/"):-len("/props")]
                if model in host.props:
                    return self._json(200, {"default_generation_settings": {"n_ctx": host.props[model]},
                                            "total_slots": 1, "model_alias": model})
                return self._json(404, {"src": "llama-swap", "error": "no router for requested model"})
            if self.path in host.extra:
                return self._json(200, host.extra[self.path])
            if self.path == "/health":
                return self._send(200, b"OK", "text/plain")
            return self._json(404, {"error": "not found"})

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
            model = body.get("model", "?")
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
