"""A :class:`FakeHost` in a process of its own, for faults a thread in the test process cannot play: SIGSTOP (a
host frozen, like one whose network went away) and SIGKILL (a host that crashes).

Run as ``python -m tests.hostproc '{"name": "sam", "models": ["coder"], "chat_fault": "silent"}'``: it prints its
URL, then one line per request (``POST /v1/chat/completions``) as it arrives, and serves until killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any


class HostProcess:
    """The parent's handle: ``url``, :meth:`wait_for` a request, :meth:`freeze`, :meth:`kill`."""

    def __init__(self, name: str, models: list[str], **settings: Any) -> None:
        spec = json.dumps({"name": name, "models": models, **settings})
        self.process = subprocess.Popen([sys.executable, "-m", "tests.hostproc", spec], stdout=subprocess.PIPE,
                                        text=True)
        self.url = (self.process.stdout.readline() if self.process.stdout else "").strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.process.kill()
            raise RuntimeError(f"the host process did not start: {self.url!r}")
        self.lines: list[str] = []
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout or ():
            with self._seen:
                self.lines.append(line.strip())
                self._seen.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        with self._seen:
            if not self._seen.wait_for(lambda: any(text in line for line in self.lines), timeout):
                raise AssertionError(f"no {text!r} request within {timeout} s; got {self.lines}")

    def freeze(self) -> float:
        os.kill(self.process.pid, signal.SIGSTOP)
        return time.monotonic()

    def kill(self) -> float:
        self.process.kill()
        self.process.wait()
        return time.monotonic()

    def close(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.kill()


def main() -> None:
    from tests.fakehost import FakeHost, llama_swap_body

    spec = json.loads(sys.argv[1])
    models = spec.pop("models")

    class Announcing(list):  # FakeHost appends each request here: say so on stdout as it arrives
        def append(self, item: Any) -> None:
            super().append(item)
            print(f"{item.method} {item.path}", flush=True)

    host = FakeHost(models_body=llama_swap_body(*models), requests=Announcing(), **spec).start()
    print(host.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
