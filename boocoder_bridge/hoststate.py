"""Host state: the one owner of the rules for what hosts said and how old it may be.

- **fresh**: a cached answer younger than the TTL is served as it is; an older one is asked again.
- **last known**: a host that is down or answers badly keeps its last *good* answer for routing and config.
- **offline**: ``generate --offline`` and friends read the cache only; a host never seen has an error report.
- **stale**: the opencode config names the providers whose models come from a last known (not live) answer.

Whether a provider is asked over the network at all is :meth:`Provider.asks_host`; whether an answer is usable
is :attr:`ProviderReport.available`. The provider status rows (CLI ``providers``, ``GET /api/providers``) are
made here too, so the CLI and the server show the same thing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from .cache import DiscoveryCache
from .hostdata import ProviderReport, Status, static_report
from .registry import Provider, Registry

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


class HostState:
    """Reports for every provider of ``registry``, from the cache or the hosts, by the rules above."""

    def __init__(self, registry: Registry, cache: DiscoveryCache, lister: Lister, env: Mapping[str, str],
                 ttl_s: float) -> None:
        self.registry, self.cache, self.lister, self.env, self.ttl_s = registry, cache, lister, env, ttl_s
        self._discovery_lock = threading.Lock()  # one discovery at a time; callers that waited reuse its answers
        # Progress hooks (the CLI's, on a terminal): which providers are about to be asked, and each report.
        self.on_asking: Callable[[list[str]], None] | None = None
        self.on_report: Callable[[ProviderReport], None] | None = None
        self._discoveries = 0
        self._last_found: dict[str, ProviderReport] = {}

    def reports(self, refresh: bool = False) -> dict[str, ProviderReport]:
        """Fresh answers: the cache within the TTL unless ``refresh``, the rest asked concurrently."""
        return self._gather(lambda provider: None if refresh else self.cache.fresh(provider, self.ttl_s))

    def known_reports(self) -> dict[str, ProviderReport]:
        """The last known good answer of each provider, asking only hosts never seen before."""
        reports = self._gather(lambda provider: entry.latest if (entry := self.cache.entry(provider)) else None)
        return {pid: self.last_known(self.registry.providers[pid], r) for pid, r in reports.items()}

    def cached_reports(self) -> dict[str, ProviderReport]:
        """What the cache holds, without any network (providers never seen have an error report)."""
        out = {}
        for pid, provider in self.registry.providers.items():
            if not provider.asks_host(self.env):
                out[pid] = static_report(provider, self.env)
            elif (entry := self.cache.entry(provider)) is not None:
                out[pid] = entry.latest
            else:
                out[pid] = ProviderReport(provider=pid, status="error", error="never discovered (no cache)")
        return out

    def last_known(self, provider: Provider, report: ProviderReport) -> ProviderReport:
        return report if report.available else self.cache.last_good(provider) or report

    def for_config(self, offline: bool = False) -> tuple[dict[str, ProviderReport], list[str]]:
        """Each enabled provider's report to build config from (last known), and the stale providers."""
        now = time.time()
        reports = self.cached_reports() if offline else self.reports()
        used, stale = {}, []
        for pid, provider in self.registry.providers.items():
            if not provider.enabled(self.env):
                continue
            report = reports[pid]
            used[pid] = self.last_known(provider, report)
            if provider.discover and (used[pid] is not report or now - report.fetched_at > self.ttl_s
                                      or not report.available):
                stale.append(pid)
        return used, stale

    def rows(self, refresh: bool = False) -> list[ProviderRow]:
        return self.rows_from(self.reports(refresh))

    def rows_from(self, reports: Mapping[str, ProviderReport]) -> list[ProviderRow]:
        """The rows for reports already at hand (``serve``'s live state)."""
        return [ProviderRow(
            id=pid, label=provider.display_name, kind=provider.kind, base_url=provider.base_url,
            route_base_url=provider.route_base, via_sidecar=provider.sidecar_url is not None,
            enabled=provider.enabled(self.env), default=pid == self.registry.default_provider,
            status=reports[pid].status, error=reports[pid].error,
            model_count=sum(1 for m in reports[pid].models if m.type != "alias"),
            checked_at=reports[pid].fetched_at if provider.asks_host(self.env) else None,
        ) for pid, provider in self.registry.providers.items()]

    def _gather(self, cached: Callable[[Provider], ProviderReport | None]) -> dict[str, ProviderReport]:
        """Static reports for providers not asked over the network, ``cached`` ones, and the rest discovered."""
        started = self._discoveries
        out: dict[str, ProviderReport] = {}
        ask: list[str] = []
        for pid, provider in self.registry.providers.items():
            if not provider.asks_host(self.env):
                out[pid] = static_report(provider, self.env)
            elif (report := cached(provider)) is not None:
                out[pid] = report
            else:
                ask.append(pid)
        if ask:
            out.update(self._discover(ask, started))
        return {pid: out[pid] for pid in self.registry.providers}

    def _discover(self, ask: list[str], started: int) -> dict[str, ProviderReport]:
        """Coalesced: if a discovery finished while this caller waited for the lock, its answers are the
        fresh ones, so only providers it did not ask are asked again (threads share one Bridge in ``serve``)."""
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
