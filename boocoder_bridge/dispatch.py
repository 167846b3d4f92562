"""What the host needs to run opencode on a route: argv, env and the generated config, for one coder task or
for an arena match of several contestants.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import BridgeError, OpencodeNotFoundError, OpencodeTimeoutError
from .routing import Route
from .settings import OPENCODE_CONTENT_ENV, OPENCODE_ENV, environ

Mode = Literal["run", "acp"]


def find_opencode(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """``explicit``, else ``$BOOCODER_BRIDGE_OPENCODE``, else ``opencode`` on PATH."""
    env = environ(env)
    for candidate, origin in ((explicit, "--opencode"), (env.get(OPENCODE_ENV), OPENCODE_ENV)):
        if candidate:
            if Path(candidate).is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
            raise OpencodeNotFoundError(f"{origin} names {candidate}, which is not an executable file")
    found = shutil.which("opencode", path=env.get("PATH"))
    if found is None:
        raise OpencodeNotFoundError(f"no opencode binary: install it (npm install -g opencode-ai), put it on PATH, "
                                    f"set {OPENCODE_ENV} or pass --opencode PATH")
    return found


@dataclass
class Dispatch:
    """Start opencode with ``argv`` and the host's environment updated with ``env``.

    In ``acp`` mode opencode takes no ``-m``: select ``opencode_model`` in the ACP session instead.
    """

    route: Route
    config_path: Path
    argv: list[str]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)  # this dispatch's own warnings (also in Bridge.warnings)

    @property
    def opencode_model(self) -> str:
        return self.route.opencode_model

    def as_json(self) -> dict[str, Any]:
        """For display (``arena --json``). The config content is left out: it holds the caller's own
        ``OPENCODE_CONFIG_CONTENT``, which may carry keys; ``env`` itself is what a host starts opencode with."""
        env = {key: (f"<{len(value)} characters: the fleet's providers over the caller's own config; not shown>"
                     if key == OPENCODE_CONTENT_ENV else value) for key, value in self.env.items()}
        return {"model": self.route.id, "opencode_model": self.opencode_model, "config_path": str(self.config_path),
                "argv": self.argv, "env": env, "route": self.route.as_json()}


@dataclass
class ArenaMatch:
    """One match: every contestant's dispatch, all on one shared config. Plugins may add ``notes``."""

    contestants: list[Dispatch]
    config_path: Path
    notes: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"config_path": str(self.config_path), "notes": self.notes,
                "contestants": [c.as_json() for c in self.contestants]}


@dataclass
class Answer:
    model: str
    returncode: int
    seconds: float
    output: str


def run_attached(dispatch: Dispatch, base_env: Mapping[str, str] | None = None, timeout: float | None = None) -> int:
    """Run one dispatch with the terminal attached (output streams through); returns opencode's exit code.

    Raises :class:`OpencodeTimeoutError` (opencode stopped) when it runs longer than ``timeout`` seconds."""
    try:
        return subprocess.run(dispatch.argv, env={**environ(base_env), **dispatch.env}, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        raise OpencodeTimeoutError(f"{dispatch.route.id}: opencode did not finish within {timeout:g} s and was "
                                   "stopped; raise --timeout for long tasks") from None
    except OSError as exc:  # not executable, not a program, or an environment too large to pass
        raise BridgeError(_cannot_start(dispatch, exc)) from None


def _cannot_start(dispatch: Dispatch, exc: OSError) -> str:
    return f"{dispatch.route.id}: cannot start {dispatch.argv[0]} ({exc.strerror or exc})"


def run_one(dispatch: Dispatch, base_env: Mapping[str, str] | None = None, timeout: float | None = None) -> Answer:
    env = {**environ(base_env), **dispatch.env}
    started = time.monotonic()
    try:
        done = subprocess.run(dispatch.argv, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        output, code = done.stdout.strip() or done.stderr.strip()[-2000:], done.returncode
    except subprocess.TimeoutExpired:
        output, code = f"(no answer within {timeout:g} s)", 124
    except OSError as exc:
        output, code = _cannot_start(dispatch, exc), 126
    return Answer(dispatch.route.id, code, time.monotonic() - started, output)


def run_match(match: ArenaMatch, prompt: Sequence[str], base_env: Mapping[str, str] | None = None,
              timeout: float | None = None, on_answer: Callable[[Answer], None] | None = None) -> list[Answer]:
    """Run every contestant at once on the same prompt; answers in contestant order. ``on_answer`` hears of
    each answer as it comes (the CLI's progress)."""
    runs = [Dispatch(c.route, c.config_path, [*c.argv, *prompt], c.env) for c in match.contestants]

    def one(dispatch: Dispatch) -> Answer:
        answer = run_one(dispatch, base_env, timeout)
        if on_answer is not None:
            on_answer(answer)
        return answer

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return list(pool.map(one, runs))
