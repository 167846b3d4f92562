"""The state dir and the files in it: atomic writes and the discovery cache.

The cache keeps, per provider, the latest answer and the last *good* answer, so a host that goes down keeps
its last known models for ``generate --offline`` while the live catalog shows it offline.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .errors import StateError
from .hostdata import ProviderReport
from .registry import Provider

STATE_DIR_ENV = "BOOCODER_BRIDGE_STATE_DIR"
CACHE_FILE = "discovery-cache.json"
CACHE_VERSION = 1


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$BOOCODER_BRIDGE_STATE_DIR``, else the user's data dir (XDG on Linux)."""
    env = os.environ if env is None else env
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "boocoder-bridge"
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "boocoder-bridge"
    return Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "boocoder-bridge"


def atomic_write(path: Path, text: str) -> None:
    """Write to a temp file beside ``path``, fsync, then rename: readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CacheEntry(BaseModel):
    base_url: str
    latest: ProviderReport
    last_good: ProviderReport | None = None


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
                self._data = CacheFile.model_validate_json(self.path.read_bytes())
                if self._data.version != CACHE_VERSION:
                    raise ValueError(f"cache version {self._data.version}")
            except FileNotFoundError:
                self._data = CacheFile()
            except (OSError, ValueError, ValidationError) as exc:
                self.problem = f"ignored unreadable cache {self.path} ({exc.__class__.__name__})"
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
        return entry.last_good if entry else None

    def store(self, providers: Mapping[str, Provider], reports: Mapping[str, ProviderReport]) -> None:
        with self._lock:
            self._store_locked(providers, reports)

    def _store_locked(self, providers: Mapping[str, Provider], reports: Mapping[str, ProviderReport]) -> None:
        data = self._load()
        for pid, report in reports.items():
            if report.status == "disabled":
                continue
            old = self.entry(providers[pid])
            good = report if report.status in ("online", "static") else (old.last_good if old else None)
            data.providers[pid] = CacheEntry(base_url=providers[pid].base_url, latest=report, last_good=good)
        try:
            atomic_write(self.path, data.model_dump_json())
            self._stamp = self._file_stamp()
            self.generation += 1
        except OSError as exc:
            raise StateError(f"cannot write {self.path}: {exc.strerror or exc}; check the state dir "
                             f"(--state-dir or {STATE_DIR_ENV})") from None
