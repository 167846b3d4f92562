"""What the host needs to run opencode on a route: argv, env and the generated config, for one coder task or
for an arena match of several contestants; and the runners that start opencode and watch its host.

Each runner starts opencode in a session (and process group) of its own, with a :class:`probe.Watch` on the
route's host: when the host goes away, the whole group is stopped (SIGTERM, then SIGKILL after
``STOP_GRACE_S``) instead of retrying for minutes, and the runner says which provider and what happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import BridgeError, HostLostError, OpencodeNotFoundError, OpencodeTimeoutError
from ..routing import Route
from ..settings import OPENCODE_CONTENT_ENV, OPENCODE_ENV, STOP_GRACE_S, environ

if TYPE_CHECKING:
    from ..probe import Watch

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

    In ``acp`` mode opencode takes no ``-m``: select ``opencode_model`` in the ACP session instead. ``watch``
    makes a :class:`probe.Watch` on the route's host (``Bridge.watch``); the runners here use it.
    """

    route: Route
    config_path: Path
    argv: list[str]
    env: dict[str, str]
    watch: Callable[[Callable[[str], None] | None], Watch] | None = field(default=None, repr=False, compare=False)
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


class _Group:
    """A started opencode: its own session and process group, stopped as a whole."""

    def __init__(self, dispatch: Dispatch, env: Mapping[str, str], **popen: Any) -> None:
        self.dispatch = dispatch
        self.lost: str | None = None  # why the watch stopped it
        try:  # a session of its own: the group holds opencode and whatever it starts, and nothing of ours
            self.process = subprocess.Popen(dispatch.argv, env=env, start_new_session=True, **popen)
        except OSError as exc:  # not executable, not a program, or an environment too large to pass
            raise BridgeError(_cannot_start(dispatch, exc)) from None
        self._lock = threading.Lock()

    def stop(self, first: signal.Signals = signal.SIGTERM) -> bool:
        """``first`` to the whole group, SIGKILL after ``STOP_GRACE_S`` if opencode is still there. False when
        opencode had already ended."""
        with self._lock:
            if self.process.poll() is not None:
                return False
            self._signal(first)
        timer = threading.Timer(STOP_GRACE_S, self._kill_if_running)
        timer.daemon = True
        timer.start()
        return True

    def _kill_if_running(self) -> None:
        with self._lock:
            if self.process.poll() is None:
                self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def host_gone(self, reason: str) -> None:
        """The watch's verdict: remember why (before any signal, so the runner's wait sees it), stop opencode."""
        with self._lock:
            if self.process.poll() is not None:
                return
            self.lost = reason
        self.stop()

    @contextlib.contextmanager
    def watched(self) -> Iterator[None]:
        """The route's host watched while the block runs; any exception (Ctrl-C too) stops the whole group."""
        watch = self.dispatch.watch(self.host_gone) if self.dispatch.watch is not None else None
        if watch is not None:
            watch.start()
        try:
            yield
        except BaseException:  # Ctrl-C reaches only the bridge: opencode is in a session of its own
            if self.stop(signal.SIGINT):
                self.process.wait()  # SIGKILL follows within STOP_GRACE_S
            raise
        finally:
            if watch is not None:
                watch.stop()

    def lost_line(self) -> str:
        return f"{self.dispatch.route.id}: {self.lost}; opencode stopped"


def run_attached(dispatch: Dispatch, base_env: Mapping[str, str] | None = None, timeout: float | None = None) -> int:
    """Run one dispatch with the terminal attached (output streams through); returns opencode's exit code.

    Raises :class:`OpencodeTimeoutError` when it runs longer than ``timeout`` seconds, and
    :class:`HostLostError` when the route's host goes away meanwhile (opencode stopped in both cases)."""
    group = _Group(dispatch, {**environ(base_env), **dispatch.env})
    with group.watched():
        try:
            code = group.process.wait(timeout)
        except subprocess.TimeoutExpired:
            group.stop()
            group.process.wait()
            raise OpencodeTimeoutError(f"{dispatch.route.id}: opencode did not finish within {timeout:g} s and "
                                       "was stopped; raise --timeout for long tasks") from None
    if group.lost is not None:
        raise HostLostError(group.lost_line())
    return code


def _cannot_start(dispatch: Dispatch, exc: OSError) -> str:
    return f"{dispatch.route.id}: cannot start {dispatch.argv[0]} ({exc.strerror or exc})"


def run_one(dispatch: Dispatch, base_env: Mapping[str, str] | None = None, timeout: float | None = None, *,
            _started: Callable[[_Group], None] | None = None) -> Answer:
    """Run one dispatch with its output captured. Exit 124: past ``timeout``; exit 75 (:class:`HostLostError`):
    the host went away, and ``output`` says which and how; 126: opencode could not be started."""
    env = {**environ(base_env), **dispatch.env}
    started = time.monotonic()
    try:
        group = _Group(dispatch, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       text=True)
    except BridgeError as exc:
        return Answer(dispatch.route.id, 126, time.monotonic() - started, str(exc))
    if _started is not None:
        _started(group)
    with group.watched():
        try:
            out, err = group.process.communicate(timeout=timeout)
            output, code = out.strip() or err.strip()[-2000:], group.process.returncode
        except subprocess.TimeoutExpired:
            group.stop()
            group.process.communicate()
            output, code = f"(no answer within {timeout:g} s)", OpencodeTimeoutError.exit_code
    if group.lost is not None:
        output, code = group.lost_line(), HostLostError.exit_code
    return Answer(dispatch.route.id, code, time.monotonic() - started, output)


def _lost_the_first_start_race(answer: Answer) -> bool:
    """Whether opencode failed creating its own database. opencode 1.18.33 migrates its SQLite database at start,
    unguarded: two of them started at once on a data dir that has none both run ``CREATE TABLE``, and one exits 1
    with ``Failed query: CREATE TABLE ...`` before it asks any host (seen in about one arena in three on a fresh
    data dir). Such a contestant is started once more; its host has not been asked anything yet."""
    return answer.returncode == 1 and "Failed query" in answer.output and "CREATE TABLE" in answer.output


def run_match(match: ArenaMatch, prompt: Sequence[str], base_env: Mapping[str, str] | None = None,
              timeout: float | None = None, on_answer: Callable[[Answer], None] | None = None) -> list[Answer]:
    """Run every contestant at once on the same prompt; answers in contestant order. ``on_answer`` hears of
    each answer as it comes (the CLI's progress)."""
    runs = [replace(c, argv=[*c.argv, *prompt]) for c in match.contestants]

    groups: list[_Group] = []

    def one(dispatch: Dispatch) -> Answer:
        answer = run_one(dispatch, base_env, timeout, _started=groups.append)
        if _lost_the_first_start_race(answer):  # the other opencode has made the database by now: once more
            answer = run_one(dispatch, base_env, timeout, _started=groups.append)
        if on_answer is not None:
            on_answer(answer)
        return answer

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        try:
            return list(pool.map(one, runs))
        except BaseException:  # Ctrl-C in the main thread: every contestant's group is stopped, none left behind
            for group in groups:
                group.stop(signal.SIGINT)
            raise
