"""A llama-swap-shaped proxy (v250) in front of real llama.cpp servers, for the tests and the demo.

It answers like llama-swap v250 does (shapes from mostlygeek/llama-swap ``internal/server/api.go`` and
``apigroup.go``): ``GET /v1/models`` and ``/models`` (``meta.llamaswap``, ``status``, and ``context_length`` +
``meta.n_ctx`` only for a model whose context is configured), ``GET /running``, ``GET /health``,
``GET /api/version``, ``GET /api/events`` (Server-Sent Events, see :mod:`.events`), ``ANY /upstream/<model>/<path>``
and ``POST /v1/chat/completions`` / ``/v1/completions`` forwarded to the model's llama.cpp server, streaming
included. Like llama-swap, a request for a stopped model "swaps it in" (stopped -> starting -> ready, each a
``modelStatus`` event) before it is forwarded; :attr:`SwapProxy.swaps` records that, so a test can prove that
nothing asked a model that was not loaded. Standard library only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from boocoder_bridge.demo import events
from boocoder_bridge.demo.loopback import LoopbackServer

VERSION = {"version": "v250", "commit": "0bdb372", "build_date": "2026-08-22"}
NO_ROUTER = {"src": "llama-swap", "error": "no router for requested model"}  # v218-v250, HTTP 404
NO_MODEL = {"src": "llama-swap", "error": "no model id could be identified"}


@dataclass
class SwapModel:
    """One model of the proxy's config, served by the llama.cpp server at ``upstream``."""

    id: str
    upstream: str | None = None  # llama.cpp server root URL
    state: str = "ready"  # llama-swap's process state: stopped, starting, ready, stopping, shutdown
    context_length: int | None = None  # "capabilities.context" in llama-swap's config; None: not configured
    name: str = ""
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # the owner's free-form `metadata:` map


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class SwapProxy(LoopbackServer):
    """Start with :meth:`start` (or ``with``); ``url`` is ``http://127.0.0.1:<port chosen by the OS>``."""

    def __init__(self, models: list[SwapModel], *, created: int = 1787400000, swap: bool = False) -> None:
        self.models: dict[str, SwapModel] = {m.id: m for m in models}
        self.swap = swap  # llama-swap's `swap: true` group: one model runs at a time; starting one stops the other
        self.created = created
        self.requests: list[Seen] = []
        self.swaps: list[str] = []  # models this proxy had to start because a request named them
        self.forwarded: list[tuple[str, int]] = []  # (upstream path, llama.cpp's HTTP status) per forwarded request
        self.hub = events.EventHub()
        self._lock = threading.RLock()
        super().__init__(_handler(self))

    def stop(self) -> None:
        self.hub.close()  # ends open /api/events streams
        super().stop()

    # -- state changes (each one is pushed to /api/events clients, as llama-swap does) --

    def set_state(self, model_id: str, state: str) -> None:
        if state not in events.STATES:
            raise ValueError(f"state must be one of {events.STATES}")
        with self._lock:
            self.models[model_id].state = state
            self.hub.publish(events.frame("modelStatus", self.model_status()))

    def set_models(self, models: list[SwapModel]) -> None:
        """Replace the config (llama-swap's config reload)."""
        with self._lock:
            self.models = {m.id: m for m in models}
            self.hub.publish(events.frame("modelStatus", self.model_status()))

    def set_upstream(self, model_id: str, upstream: str) -> None:
        with self._lock:
            self.models[model_id].upstream = upstream

    # -- llama-swap's shapes --

    def model_status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [events.api_model(m.id, state=m.state, name=m.name, description=m.description,
                                     aliases=m.aliases, context_length=m.context_length)
                    for m in sorted(self.models.values(), key=lambda m: m.id)]

    def list_models(self) -> dict[str, Any]:
        data = []
        with self._lock:
            for model in sorted(self.models.values(), key=lambda m: m.id):
                entry: dict[str, Any] = {"id": model.id, "object": "model", "created": self.created,
                                         "owned_by": "llama-swap"}
                if model.name.strip():
                    entry["name"] = model.name.strip()
                if model.description.strip():
                    entry["description"] = model.description.strip()
                if model.context_length:
                    entry["context_length"] = model.context_length
                owner = {**model.metadata, "type": "model"}
                if model.aliases:
                    owner["aliases"] = model.aliases
                entry["meta"] = {"llamaswap": owner}
                if model.context_length:
                    entry["meta"]["n_ctx"] = model.context_length
                entry["status"] = {"value": "loaded" if model.state != "stopped" else "unloaded"}
                data.append(entry)
        return {"data": data, "object": "list"}

    def running(self) -> dict[str, Any]:
        with self._lock:
            return {"running": [{"model": m.id, "state": m.state, "cmd": "xllamacpp llama-server",
                                 "proxy": m.upstream or "", "ttl": 0, "name": m.name, "description": m.description}
                                for m in sorted(self.models.values(), key=lambda m: m.id) if m.state != "stopped"]}

    def find(self, name: str) -> SwapModel | None:
        """llama-swap's lookup: exact ID, then alias."""
        with self._lock:
            if name in self.models:
                return self.models[name]
            return next((m for m in self.models.values() if name in m.aliases), None)

    def ensure_running(self, model: SwapModel) -> None:
        """A request for a stopped model starts it, as llama-swap does (the bridge must never cause this)."""
        with self._lock:
            if model.state == "ready":
                return
            self.swaps.append(model.id)
            running = [m.id for m in self.models.values() if m.state != "stopped" and m.id != model.id]
        for other in running if self.swap else []:
            self.set_state(other, "stopping")
            self.set_state(other, "stopped")
        self.set_state(model.id, "starting")
        self.set_state(model.id, "ready")


def _handler(proxy: SwapProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode())

        def _record(self, body: bytes) -> Any:
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            proxy.requests.append(Seen(self.command, self.path, dict(self.headers), parsed))
            return parsed

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            self._route(b"")

        def do_POST(self) -> None:
            self._route(self._body())

        def _route(self, raw: bytes) -> None:
            body = self._record(raw)
            path = urlsplit(self.path).path
            if self.command == "GET" and path in ("/v1/models", "/models"):
                return self._json(200, proxy.list_models())
            if self.command == "GET" and path == "/running":
                return self._json(200, proxy.running())
            if self.command == "GET" and path == "/health":
                return self._send(200, b"OK", "text/plain; charset=utf-8")
            if self.command == "GET" and path == "/api/version":
                return self._json(200, VERSION)
            if self.command == "GET" and path == "/api/events":
                return events.stream(self, proxy.hub, events.connect_frames(proxy.model_status()))
            if path.startswith("/upstream/"):
                return self._upstream(raw)
            if self.command == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
                if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                    return self._json(400, NO_MODEL)
                model = proxy.find(body["model"])
                if model is None or model.upstream is None:
                    return self._json(404, NO_ROUTER)
                proxy.ensure_running(model)
                return self._forward(model.upstream, self.path, raw)
            return self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

        def _upstream(self, raw: bytes) -> None:
            rest = self.path[len("/upstream/"):]
            with proxy._lock:
                names = sorted([*proxy.models, *(a for m in proxy.models.values() for a in m.aliases)],
                               key=len, reverse=True)
            name = next((n for n in names if rest == n or rest.startswith(n + "/") or rest.startswith(n + "?")),
                        None)
            model = proxy.find(name) if name else None
            if model is None or model.upstream is None:
                return self._json(404, NO_ROUTER)
            proxy.ensure_running(model)
            tail = rest[len(name):] or "/"  # type: ignore[arg-type]
            return self._forward(model.upstream, tail if tail.startswith("/") else "/" + tail, raw)

        def _forward(self, upstream: str, path: str, raw: bytes) -> None:
            """Pass the request to llama.cpp and its answer back, chunk by chunk (SSE streams stay live)."""
            target = urlsplit(upstream)
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "connection", "transfer-encoding")}
            sent = False
            try:
                connection.request(self.command, path, body=raw or None, headers=headers)
                answer = connection.getresponse()
                proxy.forwarded.append((path, answer.status))
                sent = True
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive"):
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while chunk := answer.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError as exc:
                self.close_connection = True
                if not sent:  # else the client sees a cut stream, as it would from llama-swap
                    with contextlib.suppress(OSError):
                        self._json(502, {"src": "llama-swap", "error": f"upstream error: {exc}"})
            finally:
                connection.close()

    return Handler
