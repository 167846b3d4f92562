"""The fleet state: one immutable snapshot of what the hosts said, and the one path that makes new ones.

Why one: every operation must see one fleet. A dispatch that resolved against one answer, checked the ID against
another and refused by a third could route to a model its own check never saw. So a :class:`FleetState` holds
the registry (its environment bound at load), each provider's report, the last known good answers, the favorites
when read, a generation and the resolver built from them; a ``Bridge`` operation takes one and reads nothing else.

:class:`FleetSource` is the only producer, and the one owner of the rules for host data:

- **static**: a provider not asked over the network (``Provider.asks_host``) gets a report from the registry alone.
- **fresh**: a cached answer younger than the TTL is served as it is; an older one is asked again.
- **last known**: a host that is down or answers badly keeps its last *good* answer for routing and config.
- **offline**: ``generate --offline`` reads the cache only; a host never seen has an error report.
- **stored**: every answer goes to the cache file, which other processes (the CLI, ``generate --offline``) read.
- **stale**: the opencode config names the providers whose models come from a last known (not live) answer.

The CLI takes snapshots through the cache and its TTL; ``serve``'s live loop (web/live.py) publishes its own with
:meth:`FleetSource.publish`, and from then on every request reads the published one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from .bulk import bulk
from .cache import DiscoveryCache
from .catalog import Catalog, build_catalog, why_hidden
from .errors import ProviderOfflineError, ProviderUnavailableError
from .registry import Provider, Registry
from .reports import ProviderReport, Status, static_report
from .routing import ContextHook, Resolver, Route
from .settings import CACHE_CHECK_INTERVAL_S

if TYPE_CHECKING:
    from .idcheck import Verdict

log = logging.getLogger("boocoder_bridge")
Lister = Callable[[Provider], Any]  # a kind's list_models, for discovery


class ProviderRow(BaseModel):
    """One provider as ``providers --json`` and ``GET /api/providers`` show it."""

    model_config = ConfigDict(defer_build=True)  # built on first use: a warm `resolve` never makes one

    id: str
    label: str
    kind: str
    base_url: str
    route_base_url: str
    via_sidecar: bool
    enabled: bool
    default: bool
    status: Status
    error: str | None
    model_count: int  # the models a picker lists (aliases stay requestable but are not counted)
    checked_at: float | None = None  # unix time the host was last asked (None: never asked over the network)


@dataclass(frozen=True, eq=False)
class FleetState:
    """One consistent view of the fleet. ``reports``: what each provider says now (its status, shown);
    ``known``: what routes and config use (the last good answer while a host is down)."""

    registry: Registry
    reports: Mapping[str, ProviderReport]
    known: Mapping[str, ProviderReport]
    resolver: Resolver
    generation: int
    ttl_s: float
    favorites: tuple[str, ...] | None = None  # None: not read for this snapshot
    made_at: float = field(default_factory=time.time)

    def with_favorites(self, favorites: Iterable[str]) -> FleetState:
        return replace(self, favorites=tuple(favorites))

    def resolve(self, model_id: str, purpose: str = "dispatch") -> Route:
        return self.resolver.resolve(model_id, purpose)

    def check(self, model_id: str, route: Route | None = None) -> Verdict | None:
        """Whether ``model_id`` names a listed model (the rule is in idcheck.py); ``route``: its route, so the
        ID is not parsed again."""
        from . import idcheck
        from .ids import ModelRef

        parsed = (ModelRef(route.provider, route.model), route.legacy) if route is not None else None
        return idcheck.check(self.registry, self.known, model_id, parsed)

    def refuse_unavailable(self, routes: Sequence[Route]) -> None:
        """Fail fast instead of letting opencode retry a dead host for a minute (disabled is refused earlier)."""
        for route in routes:
            report = self.reports[route.provider]
            if not report.available:
                error = ProviderUnavailableError if report.status == "disabled" else ProviderOfflineError
                raise error(f"{route.id}: provider {route.provider} is {report.status}"
                            + (f" ({report.error})" if report.error else ""))

    def catalog(self) -> Catalog:
        """Favorites first (visible ones only), then each provider's group."""
        with bulk():
            return build_catalog(self.registry, self.reports, self.resolver, self.favorites or ())

    def hidden(self) -> dict[str, str]:
        """The stored favorites not shown now, each with the reason (provider down, model not listed, ...)."""
        found = {f: why_hidden(self.registry, self.reports, f) for f in self.favorites or ()}
        return {f: reason for f, reason in found.items() if reason is not None}

    def config_reports(self) -> tuple[dict[str, ProviderReport], list[str]]:
        """Each enabled provider's report to build the opencode config from (last known), and the stale ones."""
        used, stale = {}, []
        for pid, provider in self.registry.providers.items():
            if not provider.enabled():
                continue
            report = self.reports[pid]
            used[pid] = self.known[pid]
            if provider.discover and (used[pid] is not report or self.made_at - report.fetched_at > self.ttl_s
                                      or not report.available):
                stale.append(pid)
        return used, stale

    def rows(self) -> list[ProviderRow]:
        """The provider status rows: the same for the CLI and the server."""
        return [ProviderRow(
            id=pid, label=provider.display_name, kind=provider.kind, base_url=provider.base_url,
            route_base_url=provider.route_base, via_sidecar=provider.sidecar_url is not None,
            enabled=provider.enabled(), default=pid == self.registry.default_provider,
            status=report.status, error=report.error,
            model_count=sum(1 for m in report.models if m.type != "alias"),
            checked_at=report.fetched_at if provider.asks_host() else None,
        ) for (pid, provider), report in zip(self.registry.providers.items(), self.reports.values(), strict=True)]


class FleetSource:
    """Makes :class:`FleetState` snapshots for every provider of ``registry``, from the cache or the hosts.

    ``registry`` must be bound to its environment (:meth:`Registry.bind`). Thread-safe: ``serve`` calls in from
    request threads while its live loop publishes.
    """

    def __init__(self, registry: Registry, cache: DiscoveryCache, lister: Lister, env: Mapping[str, str],
                 ttl_s: float, context_hook: ContextHook | None = None, generation: int = 0) -> None:
        self.registry, self.cache, self.lister, self.env, self.ttl_s = registry, cache, lister, env, ttl_s
        self.context_hook = context_hook
        self._discovery_lock = threading.Lock()  # one discovery at a time; callers that waited reuse its answers
        # Progress hooks (the CLI's, on a terminal): which providers are about to be asked, and each report.
        self.on_asking: Callable[[list[str]], None] | None = None
        self.on_report: Callable[[ProviderReport], None] | None = None
        self._discoveries = 0
        self._last_found: dict[str, ProviderReport] = {}
        self._state: FleetState | None = None
        self._state_cache_generation = -1
        self._checked_at = 0.0
        self._generation = generation  # a source that replaces another (a registry reload) counts on from it
        self._make_lock = threading.Lock()
        # A static report depends only on the bound registry: made once, so snapshots can tell "nothing changed"
        # by identity and keep their resolver (and its memoised routes).
        self._static = {pid: static_report(p) for pid, p in registry.providers.items() if not p.asks_host()}
        self.live = False  # set by serve's live loop: from then on only its published snapshots are served

    @property
    def generation(self) -> int:
        """The newest snapshot's generation (each snapshot made counts one)."""
        return self._generation

    # --- the snapshots -----------------------------------------------------------------------------

    def current(self) -> FleetState:
        """The newest snapshot: published by the live loop, else the cache's latest answers (no TTL), asking
        only hosts never seen. Rebuilt only when the cache file changed (here or in another process)."""
        state = self._state
        if self.live and state is not None:
            return state
        now = time.monotonic()
        if now - self._checked_at > CACHE_CHECK_INTERVAL_S:
            self.cache.check()  # notices a file another process rewrote (a stat call, so not on every call)
            self._checked_at = now
        if state is not None and self._state_cache_generation == self.cache.generation:
            return state
        # The generation is read before the reports: a store by another thread while they are read then makes
        # the next call rebuild. Read after, it marked the old reports as current until the cache changed again.
        generation = self.cache.generation
        reports = self._gather(lambda provider: entry.latest if (entry := self.cache.entry(provider)) else None)
        return self._keep(self._make(reports), generation)

    def fresh(self, refresh: bool = False) -> FleetState:
        """Answers no older than the TTL (none at all with ``refresh``); the rest asked concurrently."""
        if self.live and self._state is not None:
            return self._state  # the live loop keeps it fresh; refresh is live.refresh()
        generation = self.cache.generation
        reports = self._gather(lambda provider: None if refresh else self.cache.fresh(provider, self.ttl_s))
        if not refresh and (state := self._state) is not None and _same(state.reports, reports):
            return state
        return self._keep(self._make(reports), generation)

    def offline(self) -> FleetState:
        """What the cache holds, without any network (providers never seen have an error report)."""
        if self.live and self._state is not None:
            return self._state
        return self._make(self.cached_reports())

    def publish(self, reports: Mapping[str, ProviderReport], favorites: Iterable[str] | None = None) -> FleetState:
        """The live loop's new snapshot (``reports`` with what push channels said); served from now on."""
        state = self._make(reports, favorites)
        self._state, self.live = state, True
        return state

    def cached_reports(self, unseen: str = "never discovered (no cache)") -> dict[str, ProviderReport]:
        """Static reports and the cache's latest answers; a provider never seen gets an error saying ``unseen``."""
        out = {}
        for pid, provider in self.registry.providers.items():
            if pid in self._static:
                out[pid] = self._static[pid]
            elif (entry := self.cache.entry(provider)) is not None:
                out[pid] = entry.latest
            else:
                out[pid] = ProviderReport(provider=pid, status="error", error=unseen)
        return out

    def _make(self, reports: Mapping[str, ProviderReport], favorites: Iterable[str] | None = None) -> FleetState:
        with self._make_lock:
            previous = self._state
            known = {pid: self._last_known(self.registry.providers[pid], r) for pid, r in reports.items()}
            if previous is not None and _same(previous.known, known):
                resolver = previous.resolver  # the same answers: keep the memoised routes
            else:
                resolver = Resolver(self.registry, known, self.context_hook)
            self._generation += 1
            return FleetState(self.registry, reports, known, resolver, self._generation, self.ttl_s,
                              tuple(favorites) if favorites is not None else None)

    def _keep(self, state: FleetState, cache_generation: int) -> FleetState:
        if not self.live:
            self._state, self._state_cache_generation = state, cache_generation
        return state

    def _last_known(self, provider: Provider, report: ProviderReport) -> ProviderReport:
        if report.available or not provider.asks_host():
            return report
        return self.cache.last_good(provider) or report

    # --- asking the hosts --------------------------------------------------------------------------

    def _gather(self, cached: Callable[[Provider], ProviderReport | None]) -> dict[str, ProviderReport]:
        """Static reports for providers not asked over the network, ``cached`` ones, and the rest discovered."""
        started = self._discoveries
        out: dict[str, ProviderReport] = {}
        ask: list[str] = []
        for pid, provider in self.registry.providers.items():
            if pid in self._static:
                out[pid] = self._static[pid]
            elif (report := cached(provider)) is not None:
                out[pid] = report
            else:
                ask.append(pid)
        if ask:
            out.update(self._discover(ask, started))
        return {pid: out[pid] for pid in self.registry.providers}

    def _discover(self, ask: list[str], started: int) -> dict[str, ProviderReport]:
        """Coalesced: if a discovery finished while this caller waited for the lock, its answers are the
        fresh ones, so only providers it did not ask are asked again (threads share one Bridge)."""
        with self._discovery_lock:
            found = {pid: self._last_found[pid] for pid in ask
                     if self._discoveries != started and pid in self._last_found}
            rest = [pid for pid in ask if pid not in found]
            if rest:
                from .discovery import discover  # httpx and asyncio load only when a host is really asked

                if self.on_asking is not None:
                    self.on_asking(rest)
                new = discover(self.registry, self.lister, only=rest, env=self.env, on_report=self.on_report)
                self._discoveries += 1
                self._last_found = new
                self.cache.store(self.registry.providers, new)
                found.update(new)
            return found

    async def discover_one(self, provider: Provider) -> ProviderReport:
        """The live loop's discovery of one provider: whatever a kind raises becomes that provider's error."""
        from .discovery import discover_async  # httpx loads only in a process that serves

        try:
            found = await discover_async(self.registry, self.lister, only=[provider.id], env=self.env)
            return found[provider.id]
        except Exception as exc:  # a plugin's kind may fail in any way: that provider shows the error
            log.warning("discovering %s failed: %s", provider.id, exc)
            return ProviderReport(provider=provider.id, status="error", fetched_at=time.time(),
                                  error=f"discovery failed ({exc.__class__.__name__})")

    def store(self, provider: Provider, report: ProviderReport) -> str | None:
        """Share an answer with other processes (the CLI, ``generate --offline``) through the cache file; returns
        the one-line problem when this write failed and the one before did not (see DiscoveryCache.store)."""
        return self.cache.store({provider.id: provider}, {provider.id: report})


def _same(a: Mapping[str, ProviderReport], b: Mapping[str, ProviderReport]) -> bool:
    """The same report objects (a cheap identity test: the cache hands out one object per answer)."""
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a)
