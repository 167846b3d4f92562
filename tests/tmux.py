"""A terminal program under tmux, for tests that drive a real TUI: send keys, read the screen."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class Tmux:
    """One detached tmux server on its own socket (never the user's), with one session running ``argv``."""

    def __init__(self, socket: Path, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                 size: tuple[int, int] = (120, 60)) -> None:
        binary = shutil.which("tmux")
        if binary is None:
            raise RuntimeError("tmux is needed to drive opencode's TUI (apt-get install tmux)")
        self.base = [binary, "-S", str(socket)]
        env_args = [f"{k}={v}" for k, v in env.items()]
        command = shlex.join(["env", "-i", *env_args, *argv])
        self._tmux("new-session", "-d", "-s", "t", "-x", str(size[0]), "-y", str(size[1]), "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30, check=True).stdout

    def send(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        """Poll the screen until ``check`` holds; fail with the last screen otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)
