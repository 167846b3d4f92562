"""The live catalog behind ``serve``: every provider's state kept current in the background, pushed to clients.

Why: the picker must show a host going down and coming back, a favorite added by another process and a context
window that became known, without anybody asking again. So ``serve`` owns one :class:`LiveCatalog` that

- re-discovers each network provider on its own loop (``refresh_s`` from the registry, with jitter so hosts are
  not asked in lockstep; faster with backoff while a provider is down, so its return is seen within seconds),
- listens to a host's push channel when its kind has one (llama-swap's ``GET /api/events``): any model status
  message makes that provider be discovered again at once, and a dropped stream does too (the host may be
  gone); the stream reconnects with backoff, or at once when polling finds the host back; a host without one
  (404) is simply polled,
- watches the favorites database, including writes by other processes,
- watches its registry file (a stat call every ``REGISTRY_CHECK_S``): a valid edit is applied at once (new
  providers' loops start, removed ones stop, changed ones restart; one new fleet source is swapped into the
  Bridge, see :meth:`Bridge.reload`); an invalid edit or a deleted file keeps the last good registry and is said
  in the log and in :attr:`LiveCatalog.registry_error` (``GET /api/providers``) until it is fixed,
- watches the host of each provider it handed a dispatch plan for (``POST /api/dispatch``, ``/api/arena``), for a
  lease of ``DISPATCH_LEASE_S`` renewed by each plan, with the probe of probe.py: a host that refuses (or stays
  silent twice) is published as offline at once, so a host running opencode itself (ACP) can cancel it; a host
  nobody dispatched to is never probed,
- rebuilds the catalog after each of these and, when its JSON changed, publishes it as a new version.

Clients read :attr:`LiveCatalog.current` (no request ever waits on a host) or follow :meth:`LiveCatalog.stream`.
Every version is a full snapshot, encoded once for all clients: a client that falls behind (or reconnects with
an old ``Last-Event-ID``) simply gets the newest one, so nothing is ever queued per client and a slow client
only slows itself. Its frames (the next version's, and the full snapshot a new client gets) are encoded once per
version, whoever asks, from the catalog JSON already encoded: 200 clients connecting at once on a 9,000-model
catalog each encoded it again before (8.6 ms each, all on the event loop). A frame goes out in
``EVENT_CHUNK_BYTES`` pieces, so a client that stops reading holds one piece, not a copy of the frame (the
socket limits are set in app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import to_json

from .. import sse
from ..catalog import Catalog
from ..errors import BridgeError
from ..kinds import PushUnsupported, has_push_channel
from ..probe import Watch
from ..registry import Provider, Registry, load_registry
from ..reports import HostModel, ProviderReport
from ..settings import (
    CLIENT_RETRY_MS,
    DISPATCH_LEASE_S,
    EVENT_CHUNK_BYTES,
    FAVORITES_CHECK_S,
    FAVORITES_REREAD_S,
    JITTER,
    KEEPALIVE_S,
    PUSH_MESSAGES_PER_S,
    PUSH_REBUILD_S,
    REGISTRY_CHECK_S,
    REGISTRY_REREAD_S,
    RETRY_FIRST_S,
    RETRY_MAX_S,
    ROUND_MIN_S,
    STARTUP_WAIT_S,
    WATCH_RETRY_MAX_S,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from ..bridge import Bridge
    from ..fleetstate import FleetSource, FleetState
    from ..kinds import ModelState

log = logging.getLogger("boocoder_bridge")

EVENT = "catalog"


class CatalogEvent(BaseModel):
    """The ``data`` of each ``catalog`` event on ``GET /api/events`` (its SSE ``id`` is ``version``)."""

    version: str
    changed: list[str]  # "favorites" and/or provider ids whose group changed; every section on a full snapshot
    catalog: Catalog


def jittered(seconds: float) -> float:
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)


class LiveCatalog:
    """The live state of one ``serve`` process. Create, ``await start()``, ``await stop()``; all in one loop."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.epoch = secrets.token_hex(4)  # versions restart with the process; the epoch tells them apart
        self.version = 0
        self.reports: dict[str, ProviderReport] = {}
        self.pushed: dict[str, dict[str, ModelState]] = {}  # provider -> model -> what its push channel said
        self.favorites: list[str] = []
        self.state: FleetState | None = None  # the newest snapshot this loop published
        self._catalog: Catalog | None = None
        self._json = ""
        self._frame = b""
        self._snapshot_frame: tuple[str, bytes] | None = None  # (event id, frame): built once, on first ask
        self._groups: dict[str, str] = {}
        self._favorites_json = ""
        self._published = asyncio.Event()  # replaced by a new one at every version
        self._closing = asyncio.Event()
        self._pokes: dict[str, asyncio.Event] = {}
        self._rounds: dict[str, asyncio.Future[None]] = {}
        self._favorites_read = asyncio.Lock()  # one read of the favorites at a time: the last applied is the newest
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._discovered: set[str] = set()
        self._reconnect: dict[str, asyncio.Event] = {}  # set: reopen a push channel without waiting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pushed_rebuild: asyncio.TimerHandle | None = None  # a rebuild for push messages, due soon
        self._provider_tasks: dict[str, list[asyncio.Task[None]]] = {}  # each provider's loops, stopped together
        self._retired: set[asyncio.Task[None]] = set()  # loops of providers removed or changed, still ending
        self.registry_error: str | None = None  # why the registry file's newest text is not applied (one line)
        self._leases: dict[str, float] = {}  # provider -> monotonic time its dispatch watch ends (renewed per plan)
        self._lease_tasks: dict[str, asyncio.Task[None]] = {}
        self._gone_at: dict[str, float] = {}  # provider -> when its dispatch watch found the host gone
        self.clients = 0

    # --- lifecycle ---------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._closing.is_set()

    @property
    def current(self) -> Catalog:
        """The newest catalog (built from the cache before the first round of discovery ends)."""
        assert self._catalog is not None, "start() first"
        return self._catalog

    @property
    def current_json(self) -> str:
        """:attr:`current` as JSON, encoded once per version."""
        return self._json

    @property
    def event_id(self) -> str:
        return f"{self.epoch}-{self.version}"

    async def start(self, wait_s: float = STARTUP_WAIT_S) -> None:
        """Start the loops; return after the first round of discovery (or ``wait_s``), with a catalog to serve."""
        self._loop = asyncio.get_running_loop()
        bridge = self.bridge
        with contextlib.suppress(BridgeError):
            self.favorites = await asyncio.to_thread(bridge.list_favorites)
        self.reports = bridge.fleet.cached_reports(unseen="not checked yet")
        first = [self._start_provider(p) for p in bridge.registry.providers.values()]
        self._tasks.append(asyncio.create_task(self._favorites_loop(), name="live:favorites"))
        if bridge.registry_file is not None:  # the legacy environment has no file to watch
            self._tasks.append(asyncio.create_task(self._registry_loop(bridge.registry_file), name="live:registry"))
        self._rebuild()
        if rounds := [f for f in first if f is not None]:
            await asyncio.wait(rounds, timeout=wait_s)

    def _start_provider(self, provider: Provider) -> asyncio.Future[None] | None:
        """Start a network provider's discovery loop (and its push channel's); returns its first round."""
        if not provider.asks_host():
            return None
        pid = provider.id
        self._pokes[pid] = asyncio.Event()
        first = self._round(pid)
        tasks = self._provider_tasks[pid] = [asyncio.create_task(self._provider_loop(provider), name=f"live:{pid}")]
        if has_push_channel(self.bridge.kinds[provider.kind]):
            self._reconnect[pid] = asyncio.Event()
            tasks.append(asyncio.create_task(self._watch_loop(provider), name=f"watch:{pid}"))
        return first

    def _stop_provider(self, pid: str) -> None:
        """Stop a provider's loops, push channel and dispatch watch, and forget what they said."""
        for task in [*self._provider_tasks.pop(pid, []), *filter(None, [self._lease_tasks.pop(pid, None)])]:
            task.cancel()
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
        if (stream := self._streams.pop(pid, None)) is not None:
            stream.cancel()
        if (round_ := self._rounds.pop(pid, None)) is not None and not round_.done():
            round_.set_result(None)  # nobody waiting on a refresh waits for a provider that left
        for mapping in (self._pokes, self._reconnect, self.pushed, self._gone_at):
            mapping.pop(pid, None)
        self._discovered.discard(pid)

    def close(self) -> None:
        """End every event stream now (called when the server is asked to stop; safe from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._set_closing)

    def _set_closing(self) -> None:
        self._closing.set()
        self._published.set()  # wakes every stream, which then sees it is closing
        for reconnect in self._reconnect.values():
            reconnect.set()

    async def stop(self) -> None:
        self._set_closing()
        if self._pushed_rebuild is not None:
            self._pushed_rebuild.cancel()
        tasks = [*self._tasks, *(t for ts in self._provider_tasks.values() for t in ts), *self._lease_tasks.values(),
                 *self._retired]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._provider_tasks.clear()
        self._lease_tasks.clear()
        self.bridge.fleet.live = False  # nobody keeps the published snapshot current any more

    # --- what changes the state ----------------------------------------------------------------------------

    def _round(self, pid: str) -> asyncio.Future[None]:
        """A future that resolves after ``pid``'s next discovery (shared by everyone waiting for it)."""
        future = self._rounds.get(pid)
        if future is None or future.done():
            future = self._rounds[pid] = asyncio.get_running_loop().create_future()
        return future

    def poke(self, pid: str) -> None:
        """Discover ``pid`` again now instead of at its next turn."""
        if pid in self._pokes:
            self._pokes[pid].set()

    async def refresh(self, timeout_s: float | None = None) -> Catalog:
        """Discover every network provider now (joining discoveries already under way) and return the catalog."""
        waits = [self._round(pid) for pid in self._pokes]
        for pid in self._pokes:
            self.poke(pid)
        if waits:
            limit = timeout_s or max(p.timeout_s for p in self.bridge.registry.providers.values()) + 1.0
            await asyncio.wait(waits, timeout=limit)
        return self.current

    async def reload_favorites(self) -> None:
        """Read the favorites now and publish them if they changed; raises :class:`BridgeError` if unreadable.

        Why a writer awaits this before it answers: a client that changed a favorite and then asks for
        :attr:`current` must see its change (it did not, when only the background loop was told to look). Reads
        are serialised, so one that started before the write can never be applied after one that started later.
        """
        async with self._favorites_read:
            favorites = await asyncio.to_thread(self.bridge.sync_favorites)  # the TUI sync step of serve
            if favorites != self.favorites:
                self.favorites = favorites
                self._rebuild()

    async def _provider_loop(self, provider: Provider) -> None:
        failures = 0
        poke = self._pokes[provider.id]
        while not self._closing.is_set():
            poke.clear()
            round_ = self._round(provider.id)
            started = time.monotonic()
            report = await self.bridge.fleet.discover_one(provider)  # the fleet of now: a reload may swap it
            # An answer from before the dispatch watch found the host gone is older news than that: the watch
            # poked this loop, whose next round asks again.
            if not (report.available and self._gone_at.get(provider.id, -1.0) > started):
                self._set_report(provider.id, report)
            if not round_.done():
                round_.set_result(None)
            if self.reports.get(provider.id) is report:
                await self._store(provider, report)
            failures = 0 if report.available else failures + 1
            delay = provider.refresh_s if not failures else min(
                RETRY_FIRST_S * 2 ** (failures - 1), RETRY_MAX_S, provider.refresh_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poke.wait(), jittered(delay))
            # Poked at once again (a host flapping its models): still one round, and one cache write, per second.
            await asyncio.sleep(max(0.0, started + ROUND_MIN_S - time.monotonic()))

    async def _store(self, provider: Provider, report: ProviderReport) -> None:
        """Share the answer with other processes (the CLI, ``generate --offline``) through the cache file."""
        problem = await asyncio.to_thread(self.bridge.fleet.store, provider, report)
        if problem:  # a read-only state dir or a full disk: the live catalog still works; said once per outage
            log.warning("%s", problem)

    def _set_report(self, pid: str, report: ProviderReport) -> None:
        old = self.reports.get(pid)
        if old is None:  # a provider that left the registry
            return
        came_back = report.available and not old.available
        self.reports[pid] = report
        if came_back and pid in self._reconnect:
            self._reconnect[pid].set()  # reopen its push channel now, not when the backoff ends
        self._discovered.add(pid)
        stream = self._streams.get(pid)
        if not report.available and stream is not None and not stream.done():
            stream.cancel()  # a host that stopped answering may have left a half-open stream: drop it
        # The catalog shows status, error and models, not fetched_at: the same answer again (every round of every
        # provider) would rebuild the whole catalog (57 ms for 20 x 500 models, on the event loop) to no change.
        if (report.status, report.error, report.models) != (old.status, old.error, old.models):
            self._rebuild()

    async def _watch_loop(self, provider: Provider) -> None:
        """Follow the provider's push channel; every message or drop triggers a discovery of that provider."""
        failures = 0
        while not self._closing.is_set():
            received = [0]
            follow = asyncio.create_task(self._follow(provider, received))
            self._streams[provider.id] = follow
            try:
                await follow
            except PushUnsupported as exc:  # an older host: polling it is all we can do, until it changes
                log.info("%s has no push channel (%s); polling it every %g s", provider.id, exc, provider.refresh_s)
                await self._wait_for_change(provider.id)
                continue
            except asyncio.CancelledError:
                stopped = (task := asyncio.current_task()) is not None and task.cancelling() > 0  # _stop_provider
                if self._closing.is_set() or stopped or not follow.cancelled():
                    follow.cancel()
                    raise
                # only the stream was cancelled: its host went down (see _set_report)
            except Exception as exc:  # a dropped or bad stream is routine: reconnect
                log.debug("push channel of %s ended: %s", provider.id, exc)
            finally:
                if self._streams.get(provider.id) is follow:
                    del self._streams[provider.id]
                    if self.pushed.pop(provider.id, None) is not None:
                        self._rebuild()
            reconnect = self._reconnect[provider.id]
            reconnect.clear()
            self.poke(provider.id)  # the stream ended: maybe the host is gone, look now
            failures = 1 if received[0] else failures + 1  # a stream that worked a while starts over
            delay = min(RETRY_FIRST_S * 2 ** (failures - 1), WATCH_RETRY_MAX_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reconnect.wait(), jittered(delay))

    async def _follow(self, provider: Provider, received: list[int]) -> None:
        second, count = time.monotonic(), 0
        async for states in self.bridge.kinds[provider.kind].watch(provider, self.bridge.env):
            received[0] += 1
            self._apply_pushed(provider.id, states)
            count += 1
            if count >= PUSH_MESSAGES_PER_S:  # a flood: wait out this second; the host's sends then wait too
                await asyncio.sleep(max(0.0, second + 1.0 - time.monotonic()))
                second, count = time.monotonic(), 0
            elif time.monotonic() - second >= 1.0:
                second, count = time.monotonic(), 0

    async def _wait_for_change(self, pid: str) -> None:
        """Wait until the provider went down and came back (it may have been upgraded meanwhile)."""
        seen_down = False
        while not self._closing.is_set():
            report = self.reports[pid]
            seen_down = seen_down or (pid in self._discovered and not report.available)
            if seen_down and report.available:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), 60)

    def _apply_pushed(self, pid: str, states: list[ModelState]) -> None:
        new = {s.id: s for s in states}
        old = self.pushed.get(pid)
        self.pushed[pid] = new
        if old is None or {k: v.state for k, v in old.items()} != {k: v.state for k, v in new.items()}:
            self.poke(pid)  # a model loaded, stopped, appeared or left: ask the host for the details
        if (old is None or old != new) and self._pushed_rebuild is None:
            self._pushed_rebuild = asyncio.get_running_loop().call_later(PUSH_REBUILD_S, self._rebuild_pushed)

    def _rebuild_pushed(self) -> None:
        """One rebuild for every push message since the last (a host may send them as fast as it likes)."""
        self._pushed_rebuild = None
        if not self._closing.is_set():
            self._rebuild()

    async def _favorites_loop(self) -> None:
        """Changes by other processes (the CLI, opencode's TUI); this process's own are read by their writer."""
        stamp, reread_at = self._favorites_stamp(), time.monotonic() + FAVORITES_REREAD_S
        while not self._closing.is_set():
            await asyncio.sleep(FAVORITES_CHECK_S)
            now_stamp = self._favorites_stamp()
            if now_stamp == stamp and time.monotonic() < reread_at:
                continue
            stamp, reread_at = now_stamp, time.monotonic() + FAVORITES_REREAD_S
            try:
                await self.reload_favorites()
            except BridgeError as exc:  # unreadable now: keep showing the last good list
                log.warning("%s", exc)

    def _favorites_stamp(self) -> tuple[Any, ...]:
        """Changes whenever another process writes the favorites database or opencode's TUI list."""
        from ..opencode import tui as opencode_tui

        tui = opencode_tui.model_json_path(self.bridge.env) if opencode_tui.enabled(self.bridge.env) else None
        return _stamp(self.bridge.favorites.path), _stamp(tui) if tui else None

    # --- the registry file ----------------------------------------------------------------------------------

    async def _registry_loop(self, path: Path) -> None:
        """Apply edits of the registry file while serving (a stat call per ``REGISTRY_CHECK_S``)."""
        stamp, reread_at = _stamp(path), time.monotonic() + REGISTRY_REREAD_S
        while not self._closing.is_set():
            await asyncio.sleep(REGISTRY_CHECK_S)
            now_stamp = _stamp(path)
            if now_stamp == stamp and time.monotonic() < reread_at:
                continue
            stamp, reread_at = now_stamp, time.monotonic() + REGISTRY_REREAD_S
            try:
                await self.reload_registry()
            except Exception:  # a bug here must not end the watch, nor serve
                log.exception("reloading the registry %s failed", path)

    async def reload_registry(self) -> bool:
        """Read the registry file again and apply it if it changed; returns whether the fleet changed.

        A file that is invalid or gone keeps the last good registry: the problem (one line naming the file) is
        logged once and kept in :attr:`registry_error` until a good file is read."""
        path = self.bridge.registry_file
        if path is None:
            return False
        try:
            registry = await asyncio.to_thread(load_registry, path, self.bridge.kinds)
        except BridgeError as exc:
            problem = " ".join(str(exc).split())  # one line, whatever the message held
            if problem != self.registry_error:
                log.warning("registry not applied, still serving the last good one: %s", problem)
            self.registry_error = problem
            return False
        if self.registry_error is not None:
            log.warning("registry %s is valid again: applied", path)
            self.registry_error = None
        return self.apply_registry(registry)

    def apply_registry(self, registry: Registry) -> bool:
        """Swap in ``registry``: new providers' loops start, removed ones' stop, changed ones' restart (their
        dispatch watch too); unchanged ones keep running. Clients get a new catalog version if it changed."""
        bridge = self.bridge
        old, new = bridge.registry, registry.bind(bridge.env)
        # Compared as JSON (settings and their order), not as objects: where the file was named from is no change.
        if new.model_dump_json() == old.model_dump_json():
            return False  # the same fleet (the periodic reread, an editor saving it unchanged, only whitespace)
        redo = {pid for pid, p in old.providers.items()  # removed or changed
                if pid not in new.providers or new.providers[pid].model_dump_json() != p.model_dump_json()}
        added = {pid for pid in new.providers if pid not in old.providers}
        leased = {pid: self._leases[pid] for pid in redo if pid in self._leases and pid in new.providers}
        for pid in redo:
            self._stop_provider(pid)
            self._leases.pop(pid, None)

        def prepare(fleet: FleetSource) -> None:  # before any request can read the new fleet
            cached = fleet.cached_reports(unseen="not checked yet")
            self.reports = {pid: cached[pid] if pid in redo | added else self.reports[pid]
                            for pid in fleet.registry.providers}
            self.state = fleet.publish({pid: self._effective(pid) for pid in fleet.registry.providers},
                                       self.favorites)

        bridge.reload(registry, prepare)
        for pid in new.providers:
            if pid in redo | added:
                self._start_provider(bridge.registry.providers[pid])
        for pid, until in leased.items():
            self._leases[pid] = until
            self._lease_tasks[pid] = asyncio.create_task(self._lease_loop(pid), name=f"lease:{pid}")
        removed, changed = redo - new.providers.keys(), redo & new.providers.keys()
        log.warning("registry %s applied: added %s, removed %s, changed %s", bridge.registry_file,
                    *(", ".join(sorted(pids)) or "none" for pids in (added, removed, changed)))
        self._rebuild()
        return True

    # --- hosts of dispatches in flight -------------------------------------------------------------------------

    def watch_dispatch(self, providers: Iterable[str]) -> None:
        """A dispatch plan was handed out for ``providers``: probe their hosts for ``DISPATCH_LEASE_S`` from now
        (renewing a lease under way). Safe from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._lease, list(providers))

    def _lease(self, providers: list[str]) -> None:
        until = time.monotonic() + DISPATCH_LEASE_S
        for pid in providers:
            if self._closing.is_set() or pid not in self.bridge.registry.providers:
                continue
            self._leases[pid] = until
            task = self._lease_tasks.get(pid)
            if task is None or task.done():
                self._lease_tasks[pid] = asyncio.create_task(self._lease_loop(pid), name=f"lease:{pid}")

    async def _lease_loop(self, pid: str) -> None:
        """Probe ``pid``'s host until its lease ends or the host is gone (probe.Watch: refused at once, silent
        twice); a loss ends the lease (the dispatch on it is over) and is published at once."""
        provider = self.bridge.registry.providers[pid]
        watch = Watch(provider, self.bridge.kinds[provider.kind], self.bridge.env)
        probing = asyncio.create_task(watch.run(), name=f"probe:{pid}")
        try:
            while not probing.done() and (left := self._leases.get(pid, 0.0) - time.monotonic()) > 0:
                await asyncio.wait([probing], timeout=left)
        finally:
            probing.cancel()
            await asyncio.wait([probing])  # its connection closed before this lease ends
        if self._lease_tasks.get(pid) is asyncio.current_task():
            del self._lease_tasks[pid]
            self._leases.pop(pid, None)
        if watch.reason is not None:
            self._host_gone(pid, watch.reason)

    def _host_gone(self, pid: str, reason: str) -> None:
        """Publish ``pid`` as offline now (not at its discovery loop's next turn) and have it asked again."""
        if pid not in self.reports:
            return
        reason = reason.removeprefix(f"provider {pid}: ")
        log.warning("provider %s: host gone while a dispatch on it may run: %s", pid, reason)
        self._gone_at[pid] = time.monotonic()
        self._set_report(pid, ProviderReport(provider=pid, status="offline", error=reason, fetched_at=time.time()))
        self.poke(pid)

    # --- the published catalog -----------------------------------------------------------------------------

    def _effective(self, pid: str) -> ProviderReport:
        """The report with what the push channel told us since (a context size the list did not carry)."""
        report = self.reports[pid]
        pushed = self.pushed.get(pid)
        if not pushed or not report.available:
            return report
        models: list[HostModel] = []
        for model in report.models:
            state = pushed.get(model.id)
            if state is not None and model.context_window is None and state.context_window:
                model = model.model_copy(update={"context_window": state.context_window,
                                                 "context_source": "events"})
            if state is not None and state.state is not None:  # newer than the list: a load or swap shows at once
                model = model.model_copy(update={"state": state.state, "load_progress": state.load_progress})
            models.append(model)
        return report.model_copy(update={"models": models})

    def _rebuild(self) -> None:
        reports = {pid: self._effective(pid) for pid in self.bridge.registry.providers}
        self.state = self.bridge.fleet.publish(reports, self.favorites)
        catalog = self.state.catalog()
        body = catalog.model_dump_json()
        if body == self._json:
            return
        groups = {g.id: g.model_dump_json() for g in catalog.providers}
        favorites = catalog.model_dump_json(include={"favorites"})
        changed = (["favorites"] if favorites != self._favorites_json else []) + [
            pid for pid, text in groups.items() if self._groups.get(pid) != text]
        self._catalog, self._json, self._groups, self._favorites_json = catalog, body, groups, favorites
        self.version += 1
        self._frame = self._encode(changed)
        self._published.set()  # wake every client; they read the newest frame
        self._published = asyncio.Event()

    def _encode(self, changed: list[str]) -> bytes:
        """A :class:`CatalogEvent` frame, byte for byte its ``model_dump_json()``, with the catalog JSON spliced in
        as it was encoded once for :attr:`current_json` (encoding 9,000 models again cost 8.6 ms a frame)."""
        head = to_json({"version": self.event_id, "changed": changed})[:-1]  # the same encoder, field order as in
        return sse.frame(EVENT, f'{head.decode()},"catalog":{self._json}}}', self.event_id)  # CatalogEvent

    # --- event stream ----------------------------------------------------------------------------------------

    async def stream(self, last_event_id: str | None = None) -> AsyncIterator[bytes | memoryview]:
        """``GET /api/events``: the newest version at once (unless ``last_event_id`` is it), then each new one.

        A client that missed versions gets the newest full snapshot, which says everything it missed (its
        ``changed`` lists every section). Ends when the server shuts down.
        """
        self.clients += 1
        try:
            yield f"retry: {CLIENT_RETRY_MS}\n\n".encode()
            sent = last_event_id
            while not self._closing.is_set():
                if sent != self.event_id:
                    frame = self._frame if sent == f"{self.epoch}-{self.version - 1}" else self._snapshot()
                    sent = self.event_id
                    view = memoryview(frame)  # pieces without copies; the frame is shared by every client
                    for start in range(0, len(view), EVENT_CHUNK_BYTES):
                        yield view[start:start + EVENT_CHUNK_BYTES]
                    continue
                try:
                    await asyncio.wait_for(self._published.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield sse.comment("keep-alive")
        finally:
            self.clients -= 1

    def _snapshot(self) -> bytes:
        """The newest version as a full snapshot (every section changed), encoded once per version."""
        if self._snapshot_frame is None or self._snapshot_frame[0] != self.event_id:
            self._snapshot_frame = (self.event_id, self._encode(["favorites", *self._groups]))
        return self._snapshot_frame[1]


def _stamp(path: os.PathLike[str]) -> tuple[Any, ...] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size
