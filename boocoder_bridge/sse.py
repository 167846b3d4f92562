"""Server-Sent Events, both ways: reading a host's stream (bounded) and writing the bridge's own frames.

Why its own module: the llama-swap kind reads ``/api/events`` and the live catalog writes ``/api/events``; both
must agree on the wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html), and a hostile
host must not be able to grow memory by sending one endless line or event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

MAX_EVENT_BYTES = 4 * 1024 * 1024  # a llama-swap modelStatus message for hundreds of models is well under 1 MB


class StreamTooLarge(ValueError):
    """One line or one event of a stream went over the limit; the caller drops the connection."""


@dataclass(frozen=True)
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None


async def read_events(chunks: AsyncIterator[bytes], limit: int = MAX_EVENT_BYTES) -> AsyncIterator[Event]:
    """Parse a byte stream into events (``event``, ``data``, ``id``; comments and ``retry`` are skipped).

    Raises :class:`StreamTooLarge` as soon as one event holds more than ``limit`` bytes, without buffering more.
    """
    pending = b""
    event, data, event_id, size = "", [], None, 0
    async for chunk in chunks:
        buffer, held = pending + chunk, b""
        if buffer.endswith(b"\r"):  # maybe the first half of a CRLF split across chunks
            buffer, held = buffer[:-1], b"\r"
        *lines, pending = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        pending += held
        if len(pending) > limit:  # an unfinished line: only this part is ever buffered
            raise StreamTooLarge(f"an event stream line exceeds {limit} bytes")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if not line:  # a blank line dispatches the event
                if data:
                    yield Event(event or "message", "\n".join(data), event_id)
                event, data, size = "", [], 0
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                size += len(raw)
                if size > limit:
                    raise StreamTooLarge(f"an event holds more than {limit} bytes")
                data.append(value)
            elif field == "id" and "\0" not in value:
                event_id = value


def frame(event: str, data: str, event_id: str | None = None) -> bytes:
    """One event on the wire. ``data`` may hold newlines (each becomes its own ``data:`` line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}event: {event}\n{body}\n".encode()


def comment(text: str) -> bytes:
    """A comment line: keeps idle connections open through proxies and lets the server notice a gone client."""
    return f": {text}\n\n".encode()
