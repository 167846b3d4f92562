"""Is a provider's host there *now*? A bounded probe before opencode starts, and a watchdog while it runs.

Why: opencode retries a refused host with no limit on attempts and waits out ``request_timeout_s`` (300 s) on a
silent one, saying nothing meanwhile. The discovery cache may be 30 s old. So the bridge asks the host itself:

- before a dispatch, one probe per provider, even right after discovery saw the host (it costs about a
  millisecond on a LAN host, and a host can die between the two);
- while opencode runs, a :class:`Watch` probes every ``WATCH_INTERVAL_S``. A refused connection means gone at
  once; a host silent ``WATCH_MISSES`` times in a row is gone too (one lost answer is not enough).

A probe is the kind's :meth:`ProviderKind.probe`: a GET that never loads a model and that the host answers even
while it evaluates a long prompt (llama-swap and llama.cpp: ``/health``; others: ``/v1/models``). Any HTTP answer
proves the host is there. Providers not asked over the network (``discover: false``, such as a cloud API) and
providers with ``probe_timeout_s: 0`` are never probed: their models come from the registry alone, a cloud API
should not be polled every second on the user's quota, and its failures (4xx) are not retried by opencode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from .errors import HostError
from .kinds import ProviderKind
from .registry import Provider
from .settings import WATCH_INTERVAL_S, WATCH_MISSES

if TYPE_CHECKING:
    from .discovery import HostClient

log = logging.getLogger("boocoder_bridge")
Outcome = Literal["answered", "refused", "silent", "dropped"]


def probed(provider: Provider, env: Mapping[str, str]) -> bool:
    """Whether the bridge probes this provider's host at all (see the module docstring)."""
    return provider.asks_host(env) and provider.probe_timeout_s > 0


@dataclass(frozen=True)
class Probe:
    """One probe's outcome; ``reason`` is one line naming the provider and what happened (empty if answered)."""

    provider: str
    outcome: Outcome
    reason: str = ""
    seconds: float = 0.0

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"


async def probe_once(provider: Provider, kind: ProviderKind, client: HostClient) -> Probe:
    """Run the kind's probe on ``client``, bounded by ``probe_timeout_s``."""
    from .discovery import probe_failure

    started = time.monotonic()
    outcome: Outcome = "answered"
    reason = ""
    try:
        async with asyncio.timeout(provider.probe_timeout_s):
            await kind.probe(client)
    except HostError as exc:  # a kind's own verdict: offline means gone, a bad answer is still an answer
        if exc.status == "offline":
            outcome, reason = "refused", exc.reason
    except Exception as exc:
        failure = probe_failure(exc, provider)
        if failure is None:  # a bug in a kind's probe is no sign the host went away: never stop a task for it
            log.debug("probe of %s failed", provider.id, exc_info=True)
        else:
            outcome, reason = failure[0], failure[1]  # type: ignore[assignment]
    line = f"provider {provider.id}: {reason}" if reason else ""
    return Probe(provider.id, outcome, line, time.monotonic() - started)


def check(targets: Sequence[tuple[Provider, ProviderKind]], env: Mapping[str, str]) -> list[Probe]:
    """Probe every target's host at once (a dispatch, or an arena's providers); one :class:`Probe` each."""
    from .discovery import HostClient

    async def one(provider: Provider, kind: ProviderKind) -> Probe:
        async with HostClient.connect(provider, env) as client:
            return await probe_once(provider, kind, client)

    async def every() -> list[Probe]:
        return list(await asyncio.gather(*(one(p, k) for p, k in targets)))

    return asyncio.run(every()) if targets else []


@dataclass(eq=False)
class Watch:
    """Watches one provider's host from a daemon thread until :meth:`stop` (or the ``with`` block ends).

    When the host goes away, :attr:`reason` is set (one line naming the provider and what happened), :attr:`gone`
    is set, and ``on_gone(reason)`` is called once, from the watch's thread. A host that answers its probe is never
    gone, however long its model takes to answer a prompt.
    """

    provider: Provider
    kind: ProviderKind
    env: Mapping[str, str]
    on_gone: Callable[[str], None] | None = None
    interval_s: float = WATCH_INTERVAL_S
    misses: int = WATCH_MISSES
    reason: str | None = None
    probes: int = 0  # how many probes were sent (the benchmark's and the tests' check of the workload)
    gone: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.provider.id}", daemon=True)

    def start(self) -> Self:
        """Start probing (nothing happens for a provider that is never probed: see :func:`probed`)."""
        if probed(self.provider, self.env):
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once (the thread is a daemon and is not waited for); no verdict comes after this returns."""
        with self._lock:
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the host is gone (True) or ``timeout`` passes (False)."""
        return self.gone.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self.run())
        except Exception:  # the watch is a safety net: its own failure must never end the user's task
            log.debug("watch of %s failed", self.provider.id, exc_info=True)

    async def run(self) -> None:
        """The watch on the caller's event loop (``serve`` runs one per provider it handed a plan for): returns
        once the host is gone (``on_gone`` called from this loop) or :meth:`stop` was called; cancel it to end it
        at once. Returns at once for a provider that is never probed."""
        from .discovery import HostClient

        if not probed(self.provider, self.env):
            return
        missed = 0
        async with HostClient.connect(self.provider, self.env) as client:
            while not self._stopped.is_set():
                started = time.monotonic()
                result = await probe_once(self.provider, self.kind, client)
                self.probes += 1
                missed = 0 if result.answered else missed + 1
                if result.outcome == "refused" or missed >= self.misses:
                    self._gone(result.reason + ("" if result.outcome == "refused" else
                                                f" ({missed} probes in a row)"))
                    return
                while not self._stopped.is_set() and time.monotonic() - started < self.interval_s:
                    await asyncio.sleep(min(0.05, self.interval_s))

    def _gone(self, reason: str) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self.reason = reason
            self.gone.set()
        if self.on_gone is not None:
            with contextlib.suppress(Exception):  # a host's callback failing must not hide the verdict
                self.on_gone(reason)
