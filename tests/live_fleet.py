"""A real ``serve`` process over hosts on 127.0.0.1 that can go down and come back, and a reader for its
``GET /api/events`` stream. Shared by the live-catalog tests and the browser tests."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fakehost import FakeHost
from tests.helpers import start_server


class Host:
    """A fake host that can be stopped and started again at the same address (a restart of "the same host")."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.fake: FakeHost | None = FakeHost(**kwargs).start()
        self.url = self.fake.url
        self.port = int(self.url.rsplit(":", 1)[1])

    def down(self) -> None:
        assert self.fake is not None
        self.fake.stop()
        self.fake = None

    def up(self) -> None:
        assert self.fake is None
        self.fake = FakeHost(**{**self.kwargs, "port": self.port}).start()

    def stop(self) -> None:
        if self.fake is not None:
            self.down()


@dataclass
class Fleet:
    url: str
    process: subprocess.Popen[str]
    registry: Path
    state: Path
    hosts: dict[str, Host] = field(default_factory=dict)

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """The CLI as another process on the same registry and state dir (it writes the same database)."""
        import sys

        return subprocess.run([sys.executable, "-m", "boocoder_bridge", "--registry", str(self.registry),
                               "--state-dir", str(self.state), *argv], capture_output=True, text=True,
                              timeout=60, check=True)


@contextmanager
def serve_fleet(folder: Path, providers: dict[str, dict[str, Any]], hosts: dict[str, Host],
                default: str | None = None, token: str | None = None, env: dict[str, str] | None = None
                ) -> Iterator[Fleet]:
    registry = folder / "fleet.json"
    registry.write_text(json.dumps({"default_provider": default or next(iter(providers)), "providers": providers}))
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != "BOOCODER_BRIDGE_TOKEN"}
    if token is not None:
        env["BOOCODER_BRIDGE_TOKEN"] = token
    process, url = start_server(registry, folder / "state", env=env)
    try:
        yield Fleet(url, process, registry, folder / "state", hosts)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for host in hosts.values():
            host.stop()


class EventReader:
    """Follows ``GET /api/events`` on a thread; :meth:`next` returns the next ``catalog`` event's data."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
        self.ids: list[str] = []
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._response = self._client.send(self._client.build_request("GET", url + "/api/events", headers=headers),
                                           stream=True)
        assert self._response.status_code == 200, self._response.read()
        self.ended_cleanly = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event_id, data = None, []
        try:
            for line in self._response.iter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    body = json.loads("\n".join(data))
                    assert body["version"] == event_id, "the event's id and its version differ"
                    self.ids.append(event_id)
                    self.events.put(body)
                    event_id, data = None, []
            self.ended_cleanly = True
        except BaseException as exc:  # handed to the test thread
            self.events.put(exc)
        self.events.put(None)

    def next(self, timeout: float = 20) -> dict[str, Any]:
        item = self.events.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        assert item is not None, "the event stream ended"
        return item

    def until(self, check: Any, timeout: float = 20) -> dict[str, Any]:
        """The first event whose catalog passes ``check`` (earlier ones are skipped)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.01))
            if check(event["catalog"]):
                return event

    def wait_end(self, timeout: float = 20) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the event stream did not end"

    def close(self) -> None:
        self._response.close()
        self._client.close()


def stalled_events_client(url: str) -> socket.socket:
    """A client of ``GET /api/events`` that never reads a byte, with a tiny receive buffer so the server's fill."""
    port = int(url.rsplit(":", 1)[1])
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", port))
    stalled.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return stalled


def group(catalog: dict[str, Any], provider: str) -> dict[str, Any]:
    return next(g for g in catalog["providers"] if g["id"] == provider)


def favorite_ids(catalog: dict[str, Any]) -> list[str]:
    return [m["id"] for m in catalog["favorites"]]
