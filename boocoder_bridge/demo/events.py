"""llama-swap's live events (``GET /api/events``), with the shapes of its real source.

From mostlygeek/llama-swap v250, ``internal/server/apigroup.go`` (``handleAPIEvents``, ``modelStatus``, ``apiModel``):

- each frame is ``event:message\\ndata:<envelope>\\n\\n`` (no space after the colons);
- the envelope is ``{"type": T, "data": S}`` where ``S`` is a JSON **string** holding the payload (double-encoded);
- types: ``modelStatus`` (a list of ``apiModel``), ``logData``, ``activity``, ``inflight``, ``uiConfig``,
  ``profileChanged``;
- on connect: logData (proxy), logData (upstream), modelStatus, uiConfig, profileChanged, inflight (snapshot);
- then a ``modelStatus`` with the whole list on every process state change (stopped, starting, ready, stopping,
  shutdown) and config change.

``apiModel`` is ``{id, name, description, state, unlisted, peerID, aliases?, capabilities?, context_length?}``
(the last three omitted when empty; ``state`` is ``stopped`` for a model with no process; peer models are
``{id: "<peer>/<model>", peerID}`` with empty strings elsewhere).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

STATES = ("stopped", "starting", "ready", "stopping", "shutdown")


def frame(kind: str, payload: Any) -> bytes:
    """One SSE frame exactly as llama-swap writes it."""
    envelope = {"type": kind, "data": json.dumps(payload, separators=(",", ":"))}
    return b"event:message\ndata:" + json.dumps(envelope, separators=(",", ":")).encode() + b"\n\n"


def api_model(model_id: str, *, state: str = "stopped", name: str = "", description: str = "",
              unlisted: bool = False, peer_id: str = "", aliases: Iterable[str] = (),
              capabilities: dict[str, Any] | None = None, context_length: int | None = None) -> dict[str, Any]:
    """One ``modelStatus`` entry (Go's ``omitempty`` fields left out when empty)."""
    entry: dict[str, Any] = {"id": model_id, "name": name, "description": description, "state": state,
                             "unlisted": unlisted, "peerID": peer_id}
    if aliases := list(aliases):
        entry["aliases"] = aliases
    if capabilities:
        entry["capabilities"] = capabilities
    if context_length:
        entry["context_length"] = context_length
    return entry


def connect_frames(models: list[dict[str, Any]]) -> list[bytes]:
    """What a client gets first on connect, in llama-swap's order."""
    return [frame("logData", {"source": "proxy", "data": ""}), frame("logData", {"source": "upstream", "data": ""}),
            frame("modelStatus", models), frame("uiConfig", {"activity": {"session_id": None}}),
            frame("profileChanged", {"active": None}), frame("inflight", {"operation": "snapshot"})]


def parse_frames(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """Decode an SSE stream of llama-swap frames into ``(type, payload)`` pairs (for tests and the demo)."""
    data: list[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif not line and data:
            envelope = json.loads("\n".join(data))
            data = []
            yield envelope["type"], json.loads(envelope["data"])


class EventHub:
    """Fan-out of frames to every connected ``/api/events`` client. Thread-safe; ``close()`` ends all streams."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[queue.Queue[bytes | None]] = []
        self.closed = False

    def subscribe(self, first: list[bytes]) -> queue.Queue[bytes | None]:
        """A new client's queue, already holding ``first`` (the snapshot), atomically with later publishes."""
        subscriber: queue.Queue[bytes | None] = queue.Queue()
        with self._lock:
            for item in first:
                subscriber.put(item)
            if self.closed:
                subscriber.put(None)
            self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: queue.Queue[bytes | None]) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def publish(self, item: bytes) -> int:
        """Send ``item`` to every client; returns how many got it."""
        with self._lock:
            for subscriber in self._subscribers:
                subscriber.put(item)
            return len(self._subscribers)

    def clients(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            for subscriber in self._subscribers:
                subscriber.put(None)


def stream(handler: Any, hub: EventHub, first: list[bytes]) -> None:
    """Serve one ``GET /api/events`` on a ``BaseHTTPRequestHandler``: SSE headers, then frames (chunked, as Go's
    net/http streams), until the hub closes or the client goes away."""
    subscriber = hub.subscribe(first)
    try:
        handler.send_response(200)
        for key, value in (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                           ("Connection", "keep-alive"), ("X-Content-Type-Options", "nosniff"),
                           ("X-Accel-Buffering", "no"), ("Transfer-Encoding", "chunked")):
            handler.send_header(key, value)
        handler.end_headers()
        while True:
            item = subscriber.get()
            if item is None:
                handler.wfile.write(b"0\r\n\r\n")
                break
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(item), item))
            handler.wfile.flush()
    except OSError:
        pass  # the client went away
    finally:
        hub.unsubscribe(subscriber)
        handler.close_connection = True
