"""The bridge's favorites in opencode's own TUI model picker, and the TUI's ctrl+f toggles back in the bridge.

opencode 1.18.33 keeps its picker's Favorites in ``$XDG_STATE_HOME/opencode/model.json`` (default
``~/.local/state/opencode/model.json``) as ``{"recent": [...], "favorite": [{"providerID", "modelID"}...],
"variant": {...}}``. Seen under tmux: the TUI reads the file once at start, shows ``favorite`` in file order at
the top of the picker, and on each toggle rewrites the whole file from memory (a new star goes first).

Only entries of fleet providers (the registry's provider IDs) are ours; every other key and entry is written
back exactly as read. Who changed what is decided by a three-way merge against the fleet list mirrored last
time (kept in the bridge's state dir, per model.json path): a star added or removed on either side survives,
and when both sides changed, both changes are kept. A model.json that cannot be read is left alone.

A side that is not there is unknown, never empty: a missing favorites database (moved away, the state dir
removed) or a missing model.json makes the merge a union, so the stars come back from the other side instead
of being removed from it. A database that cannot be read stops the sync before anything is written.

Order: opencode puts a new star first, so its list runs newest first while the bridge's runs oldest first.
Stars taken in from the TUI are stored oldest first, and stars mirrored into it go first newest first, so a
list restored from either side keeps its order.

When it runs: an explicit step, never a side effect of a read. ``favorites add``/``remove`` (and PUT/DELETE)
sync around their write, ``favorites sync`` on demand, ``generate``/``run``/``arena`` before opencode starts,
and ``serve`` at start and whenever the database or model.json changes (its favorites watch).

Limit: a TUI that is running when the bridge mirrors a change still holds the old list, and its next toggle
rewrites the file without that change; the merge then sees it as removed in the TUI.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ModelIdError
from ..files import ReadRefused, atomic_write, ensure_dir, read_capped
from ..ids import ModelRef
from ..settings import OPENCODE_TUI_BASE_FILE as BASE_FILE
from ..settings import OPENCODE_TUI_ENV as OPT_OUT_ENV
from ..settings import OPENCODE_TUI_LOCK_FILE as LOCK_FILE

MAX_MODEL_JSON_BYTES = 4 * 1024 * 1024
LOCK_WAIT_S = 10.0  # a sync takes milliseconds; one held longer is stuck, and is not waited for
_OFF = {"0", "off", "false", "no"}


class FavoriteStore(Protocol):
    """What the merge needs of :class:`boocoder_bridge.favorites.Favorites`."""

    def read(self) -> list[str] | None: ...
    def add(self, model_id: str) -> str: ...
    def remove(self, model_id: str) -> bool: ...


@dataclass
class SyncResult:
    """What one sync did. ``favorites`` is the merged fleet list; ``warning`` says why nothing was done."""

    favorites: list[str] = field(default_factory=list)
    added_to_bridge: list[str] = field(default_factory=list)
    removed_from_bridge: list[str] = field(default_factory=list)
    wrote: bool = False
    warning: str | None = None


def enabled(env: Mapping[str, str]) -> bool:
    return (env.get(OPT_OUT_ENV) or "").strip().lower() not in _OFF


def model_json_path(env: Mapping[str, str]) -> Path:
    """Where opencode keeps it: ``$XDG_STATE_HOME/opencode``, else ``~/.local/state/opencode`` (all platforms)."""
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(state) / "opencode" / "model.json"


def merge(base: Sequence[str] | None, ours: Sequence[str], theirs: Sequence[str]) -> list[str]:
    """Three-way merge of two favorite lists. Without a base (first sync) it is the union: nothing is lost.

    An ID stays when both sides have it, or when one side has it and the base did not (added there). An ID in
    the base that one side dropped is gone (removed there). Order: ours (oldest first), then what only theirs
    added, oldest first (``theirs`` is opencode's list, newest first).
    """
    both = list(dict.fromkeys([*ours, *reversed(theirs)]))
    if base is None:
        return both
    was, mine, other = set(base), set(ours), set(theirs)
    keep = (mine & other) | (mine - was) | (other - was)
    return [i for i in both if i in keep]


def _fleet_id(entry: Any, fleet: Collection[str]) -> str | None:
    """The composite ID of a fleet entry of ``favorite``, or None for anything that is not ours to change."""
    if not isinstance(entry, dict):
        return None
    provider, model = entry.get("providerID"), entry.get("modelID")
    if not (isinstance(provider, str) and isinstance(model, str)) or provider not in fleet:
        return None
    try:
        return str(ModelRef(provider, model))
    except ModelIdError:
        return None


def _entry(model_id: str) -> dict[str, str]:
    ref = ModelRef.parse(model_id)
    return {"providerID": ref.provider, "modelID": ref.model}


class _Unreadable(Exception):
    pass


class _NotLocked(Exception):
    pass


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _read_model_json(path: Path) -> dict[str, Any] | None:
    """The parsed file, None when there is none; raises _Unreadable (one-line reason) for anything else."""
    try:
        raw = read_capped(path, MAX_MODEL_JSON_BYTES)  # a fifo or device is refused, never read
    except FileNotFoundError:
        return None
    except ReadRefused as exc:
        raise _Unreadable(str(exc)) from None
    except OSError as exc:
        raise _Unreadable(f"cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Unreadable(f"it is not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise _Unreadable("it is not a JSON object")
    try:  # valid JSON can hold a lone surrogate ("\ud800"), which no UTF-8 file can hold when written back
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _Unreadable("it holds an unpaired surrogate escape, which cannot be written back as UTF-8") from None
    if not isinstance(data.get("favorite", []), list):
        raise _Unreadable("its 'favorite' is not a list")
    return data


def _load_base(path: Path) -> Any:
    """The base file's JSON. Our own derived data, yet read like any input: capped, never a fifo, and deep
    nesting a ValueError (a RecursionError was a traceback on every favorites command)."""
    try:
        return json.loads(read_capped(path, MAX_MODEL_JSON_BYTES).decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _read_base(path: Path, key: str) -> list[str] | None:
    """The fleet list mirrored last time into the model.json at ``key``; None when unknown (derived data)."""
    try:
        data = _load_base(path)
        listed = data["files"][key]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [i for i in listed if isinstance(i, str)] if isinstance(listed, list) else None


def _write_base(path: Path, key: str, favorites: list[str]) -> None:
    try:
        data = _load_base(path)
        files = data["files"] if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}
    except (OSError, ValueError):
        files = {}
    if files.get(key) == favorites:
        return
    files[key] = favorites
    atomic_write(path, json.dumps({"version": 1, "files": files}, indent=1, ensure_ascii=False) + "\n")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One sync at a time per state dir (bridge processes only; the TUI takes no lock). Raises _NotLocked after
    ``LOCK_WAIT_S``, or for a lock path that is no regular file: a sync is never worth hanging a command for."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; the merge still loses nothing it can see
        yield
        return
    ensure_dir(path.parent)
    try:  # without blocking: opening a fifo to write would wait for a reader
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise _NotLocked(f"cannot open the lock file {path} ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotLocked(f"the lock file {path} is not a regular file")
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _NotLocked(f"another boocoder-bridge process has held {path} for over "
                                     f"{LOCK_WAIT_S:g} s") from None
                time.sleep(0.05)
        yield  # closing the descriptor below releases the lock
    finally:
        os.close(fd)


def _write_model_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, compact like opencode's own writes, through a symlink, keeping the file's mode."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode: int | None = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    atomic_write(target, json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    if mode is not None:
        os.chmod(target, mode)


def pending(stored: Sequence[str], fleet: Collection[str], state_dir: Path, env: Mapping[str, str]) -> bool:
    """Whether opencode's TUI list changed since the last sync (so a read can say "sync to take it in" without
    syncing). Reads only; anything unreadable is no news."""
    path = model_json_path(env)
    try:
        data = _read_model_json(path)
    except _Unreadable:
        return False
    if data is None:
        return False
    theirs = {i for e in data.get("favorite", []) if (i := _fleet_id(e, fleet)) is not None}
    kept = _read_base(state_dir / BASE_FILE, str(path.absolute()))
    if kept is None:
        return bool(theirs - set(stored))
    return theirs != {i for i in kept if i.partition("/")[0] in fleet}


def sync(favorites: FavoriteStore, fleet: Collection[str], state_dir: Path, env: Mapping[str, str]) -> SyncResult:
    """Merge the bridge's fleet favorites with the TUI's, then store the result on both sides."""
    try:
        with _locked(state_dir / LOCK_FILE):
            return _sync_locked(favorites, fleet, state_dir, model_json_path(env))
    except _NotLocked as exc:
        return SyncResult(warning=f"opencode's TUI favorites not synced: {exc}")


def _sync_locked(favorites: FavoriteStore, fleet: Collection[str], state_dir: Path, path: Path) -> SyncResult:
    """The body of :func:`sync`, run while the lock is held."""
    try:
        data = _read_model_json(path)
    except _Unreadable as exc:
        return SyncResult(warning=f"{path}: {exc}; left it as it is (opencode's TUI favorites not synced)")
    listed: list[Any] = list(data.get("favorite", [])) if data is not None else []
    theirs = list(dict.fromkeys(i for e in listed if (i := _fleet_id(e, fleet)) is not None))
    stored = favorites.read()  # raises for a damaged database: nothing below runs, nothing is written
    ours = [i for i in stored or () if i.partition("/")[0] in fleet]
    base_path, key = state_dir / BASE_FILE, str(path.absolute())
    # The mirror holds every registry's fleet used with this state dir; a sync reads and replaces only the
    # part of this fleet (another registry's sync once emptied it, and a TUI unstar then came back).
    kept = _read_base(base_path, key)
    others = [i for i in kept or () if i.partition("/")[0] not in fleet]
    # A side that is not there is unknown, not empty (module docstring): without a base, nothing is removed.
    known = kept is not None and stored is not None and data is not None
    merged = merge([i for i in kept or () if i.partition("/")[0] in fleet] if known else None, ours, theirs)
    result = SyncResult(favorites=merged)
    for model_id in merged:
        if model_id not in ours:
            favorites.add(model_id)
            result.added_to_bridge.append(model_id)
    for model_id in ours:
        if model_id not in merged:
            favorites.remove(model_id)
            result.removed_from_bridge.append(model_id)
    keep = set(merged)
    new = [_entry(i) for i in reversed(merged) if i not in theirs]  # first, newest first, as a TUI toggle puts them
    new += [e for e in listed if (i := _fleet_id(e, fleet)) is None or i in keep]
    if new != listed and (data is not None or new):
        out = dict(data) if data is not None else {"recent": [], "favorite": [], "variant": {}}
        out["favorite"] = new
        _write_model_json(path, out)
        result.wrote = True
    _write_base(base_path, key, [*others, *merged])
    return result
