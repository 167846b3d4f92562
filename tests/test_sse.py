"""Reading and writing Server-Sent Events, and llama-swap's ``modelStatus`` messages (hostile ones too)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from boocoder_bridge import ModelState
from boocoder_bridge.default_plugins.llama_swap import parse_model_status
from boocoder_bridge.sse import Event, StreamTooLarge, frame, read_events


def read(*chunks: bytes, limit: int = 1024) -> list[Event]:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[Event]:
        return [event async for event in read_events(source(), limit)]

    return asyncio.run(collect())


def test_events_split_anywhere_and_in_any_line_ending() -> None:
    wire = b": hello\r\nevent:message\r\ndata:{\"a\":\r\ndata: 1}\r\nid: 7\r\n\r\nretry: 10\n\ndata: x\r\rdata:y\n\n"
    # The last event id carries over to later events until a new one is given (as in the HTML standard).
    expected = [Event("message", '{"a":\n1}', "7"), Event("message", "x", "7"), Event("message", "y", "7")]
    assert read(wire) == expected
    assert read(*(wire[i:i + 1] for i in range(len(wire)))) == expected  # one byte at a time, CRLF split too


def test_our_frames_read_back() -> None:
    assert read(frame("catalog", "line one\nline two", "ab-3")) == [Event("catalog", "line one\nline two", "ab-3")]


def test_an_endless_line_or_event_is_cut_off() -> None:
    with pytest.raises(StreamTooLarge):
        read(b"data: " + b"x" * 600, b"x" * 600)  # no newline ever comes
    with pytest.raises(StreamTooLarge):
        read(*[b"data: " + b"x" * 100 + b"\n"] * 20)  # many short lines, one event
    assert read(*[b"data: " + b"x" * 100 + b"\n\n"] * 20)[-1].data == "x" * 100  # many small events are fine


def status_message(data: object) -> str:
    return json.dumps({"type": "modelStatus", "data": data})


def test_model_status_in_llama_swaps_shapes() -> None:
    models = [{"id": "coder", "name": "", "description": "", "state": "ready", "unlisted": False, "peerID": "",
               "context_length": 65536},
              {"id": "chat", "state": "stopped", "peerID": ""},
              {"id": "peer1/m", "name": "", "state": "", "peerID": "peer1"}]
    # llama-swap's words in the bridge's (ready -> loaded, stopped -> unloaded); a peer's state is not known
    expected = [ModelState(id="coder", state="loaded", context_window=65536), ModelState(id="chat", state="unloaded"),
                ModelState(id="peer1/m", state=None)]
    assert parse_model_status(status_message(json.dumps(models))) == expected  # data double-encoded, as sent
    assert parse_model_status(status_message(models)) == expected  # or a plain list


@pytest.mark.parametrize("data", [
    json.dumps({"type": "logData", "data": "{\"source\": \"proxy\"}"}),
    status_message("not json ["), status_message({"id": "x"}), "[1, 2", "null", '"text"',
])
def test_other_messages_and_junk_are_ignored(data: str) -> None:
    assert parse_model_status(data) is None


def test_junk_entries_are_skipped_and_fields_bounded() -> None:
    models = [None, 3, {"id": 5}, {"id": ""}, {"state": "ready"},
              {"id": "ok", "state": "s" * 1000, "context_length": -1},
              {"id": "ok2", "state": ["ready"], "context_length": True},
              {"id": "ok3", "state": "starting", "peerID": ""}]
    assert parse_model_status(status_message(models)) == [ModelState(id="ok", state=None),
                                                         ModelState(id="ok2", state=None),
                                                         ModelState(id="ok3", state="loading")]
