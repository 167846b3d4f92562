"""The discovery cache (``discovery-cache.json`` in the state dir).

It keeps, per provider, the latest answer and the last *good* answer, so a host that goes down keeps its last
known models for ``generate --offline`` while the live catalog shows it offline. The last good answer is written
only while it differs from the latest (version 2): a good latest answer *is* the last good one, and writing it
twice doubled the file every command parses. Version 1 files (both written out) are still read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from . import completion
from .bulk import FieldsSetPool, bulk
from .errors import StateError
from .files import DISK_FULL_TEXT, ReadRefused, atomic_write, read_capped
from .registry import Provider
from .reports import ProviderReport
from .settings import CACHE_FILE, COMPLETION_FILE, MAX_CACHE_BYTES, STATE_DIR_ENV

CACHE_VERSION = 2
READABLE_VERSIONS = (1, CACHE_VERSION)


class CacheEntry(BaseModel):
    base_url: str
    latest: ProviderReport
    last_good: ProviderReport | None = None  # only while the latest answer is not a good one

    @property
    def good(self) -> ProviderReport | None:
        """The last good answer: the latest one when it is good, else the one kept from before."""
        return self.latest if self.latest.available else self.last_good


class CacheFile(BaseModel):
    version: int = CACHE_VERSION
    providers: dict[str, CacheEntry] = {}


class DiscoveryCache:
    """``discovery-cache.json`` in the state dir. Derived data: an unreadable cache is ignored, not fatal."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / CACHE_FILE
        self._data: CacheFile | None = None
        self._stamp: tuple[int, int] | None = None
        self.problem: str | None = None
        self.generation = 0  # bumps whenever the data changes, so users of it know to rebuild
        self._lock = threading.RLock()  # the HTTP server calls in from worker threads
        self._write_failed = False

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _load(self) -> CacheFile:
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> CacheFile:
        stamp = self._file_stamp()
        if self._data is None or stamp != self._stamp:  # another process may have refreshed it
            self._stamp, self._data, self.problem = stamp, None, None
            self.generation += 1
            try:
                raw = read_capped(self.path, MAX_CACHE_BYTES)  # a fifo would hang every command; /dev/zero never ends
                with bulk():
                    self._data = CacheFile.model_validate_json(raw)
                    pool = FieldsSetPool()
                    for entry in self._data.providers.values():
                        for report in (entry.latest, entry.last_good):
                            for model in report.models if report else ():
                                pool.add(model)
                if self._data.version not in READABLE_VERSIONS:
                    raise ValueError(f"cache version {self._data.version}")
            except FileNotFoundError:
                self._data = CacheFile()
            except (OSError, ValueError, ValidationError) as exc:
                why = str(exc) if isinstance(exc, ReadRefused) else exc.__class__.__name__
                self.problem = f"ignored unreadable cache {self.path} ({why})"
                self._data = CacheFile()
        return self._data

    def check(self) -> None:
        """Reload if the file changed since it was read."""
        self._load()

    def entry(self, provider: Provider) -> CacheEntry | None:
        """The cached entry, if it was made for this provider's current base_url."""
        entry = self._load().providers.get(provider.id)
        return entry if entry is not None and entry.base_url == provider.base_url else None

    def fresh(self, provider: Provider, ttl_s: float, now: float | None = None) -> ProviderReport | None:
        entry = self.entry(provider)
        now = time.time() if now is None else now
        if entry is not None and 0 <= now - entry.latest.fetched_at <= ttl_s:
            return entry.latest
        return None

    def last_good(self, provider: Provider) -> ProviderReport | None:
        entry = self.entry(provider)
        return entry.good if entry else None

    def store(self, providers: Mapping[str, Provider], reports: Mapping[str, ProviderReport]) -> str | None:
        """Keep the answers. Returns the one-line problem when this write failed and the one before did not (so a
        long-lived process logs each outage once); the problem stays in :attr:`problem` meanwhile."""
        with self._lock:
            return self._store_locked(providers, reports)

    def _store_locked(self, providers: Mapping[str, Provider], reports: Mapping[str, ProviderReport]
                      ) -> str | None:
        data = self._load()
        for pid, report in reports.items():
            if report.status == "disabled":
                continue
            old = self.entry(providers[pid])
            kept = None if report.available or old is None else old.good
            data.providers[pid] = CacheEntry(base_url=providers[pid].base_url, latest=report, last_good=kept)
        data.version = CACHE_VERSION
        self.generation += 1  # the answers are used even if they cannot be kept
        failing = self._write_failed
        try:
            atomic_write(self.path, data.model_dump_json(exclude_none=True))
            self._stamp = self._file_stamp()
            self._write_failed = False
            self._write_candidates(data)
            return None
        except StateError as exc:  # derived data: the commands still work, they only ask again next time
            fix = "" if DISK_FULL_TEXT in str(exc) else \
                f" (make the state dir writable: --state-dir or {STATE_DIR_ENV})"
            self.problem = f"{exc}; the answers are not kept{fix}"
            self._write_failed = True
            return None if failing else self.problem

    def _write_candidates(self, data: CacheFile) -> None:
        """The IDs for TAB completion beside the cache, stamped with it (completion.py reads them)."""
        stamp = completion.cache_stamp(self.path)
        ids = {pid: (entry.base_url, [m.id for m in entry.latest.models]) for pid, entry in data.providers.items()}
        atomic_write(self.path.with_name(COMPLETION_FILE), completion.candidates_text(ids, stamp))
