"""TAB completion's model IDs, read without pydantic, httpx or pluggy.

A shell starts the program on every TAB. Loading the registry and the discovery cache as models cost 0.3-0.4 s
per TAB on a 20 x 500 fleet (issue 22). So whenever the cache is written, the IDs it holds are written beside it
(``completion-ids.txt``: a JSON header line, then one composite ID a line), stamped with the cache file's mtime
and size. The completer keeps the lines that start with what was typed, and reads the registry's raw JSON with
``json`` alone: no model is built, and 10,000 IDs are not parsed as JSON for the 500 of one provider. When the
file is missing, does not match the cache (another version wrote it), or the registry cannot be read that way,
the completer takes the full path (``slow``: the CLI's ``slow_ids``), which gives the same answer, only
slower.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .settings import (
    CACHE_FILE,
    COMPLETION_FILE,
    FAVORITES_FILE,
    MAX_COMPLETION_BYTES,
    MAX_REGISTRY_BYTES,
    REGISTRY_ENV,
    STATE_DIR_ENV,
    default_state_dir,
)

VERSION = 1


class Stale(Exception):
    """The fast path cannot answer exactly: take the full one."""


def cache_stamp(cache_path: str | os.PathLike[str]) -> list[int] | None:
    """What ties the candidates to one version of the cache file: its mtime (ns) and size."""
    try:
        info = os.stat(cache_path)
    except OSError:
        return None
    return [info.st_mtime_ns, info.st_size]


def candidates_text(providers: Mapping[str, tuple[str, Iterable[str]]], stamp: list[int] | None) -> bytes:
    """The file's bytes: ``{"version", "cache", "providers": {pid: base_url}}``, then ``pid/model`` lines (an ID
    never holds a line break: ids.check_id_text)."""
    head = {"version": VERSION, "cache": stamp, "providers": {pid: url for pid, (url, _) in providers.items()}}
    lines = [json.dumps(head, ensure_ascii=False, separators=(",", ":"))]
    lines += [f"{pid}/{model}" for pid, (_, ids) in providers.items() for model in ids]
    return "\n".join(lines).encode() + b"\n"


def _read(path: str, limit: int) -> str:
    from .files import read_capped  # a fifo or /dev/zero in its place must not hang a TAB

    try:
        return read_capped(path, limit).decode()
    except (OSError, ValueError) as exc:
        raise Stale(str(exc)) from None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Stale(str(exc)) from None


def fast_ids(prefix: str, registry: str | None, state_dir: str | None, env: Mapping[str, str]) -> list[str]:
    """Every ID starting with ``prefix`` that the full path would offer, from the candidates file, the registry's
    JSON and the favorites. Raises :class:`Stale` when it cannot be sure of that."""
    chosen = registry or env.get(REGISTRY_ENV)
    if not chosen:
        raise Stale("the registry comes from the legacy environment")
    # default_state_dir's first rule, asked here first: a Path would load pathlib for nothing
    folder = state_dir or env.get(STATE_DIR_ENV) or str(default_state_dir(env))
    candidates, stamp = os.path.join(folder, COMPLETION_FILE), cache_stamp(os.path.join(folder, CACHE_FILE))
    if stamp is None and not os.path.lexists(candidates):  # nothing discovered yet: the registry alone
        data, body = {"providers": {}}, ""
    else:
        head, _, body = _read(candidates, MAX_COMPLETION_BYTES).partition("\n")
        data = _json(head)
        if not isinstance(data, dict) or data.get("version") != VERSION or data.get("cache") is None or \
                data.get("cache") != stamp:
            raise Stale("the candidates do not match the cache")
    reg = _json(_read(chosen, MAX_REGISTRY_BYTES))
    providers = reg.get("providers") if isinstance(reg, dict) else None
    cached = data.get("providers")
    if not isinstance(providers, dict) or not isinstance(cached, dict):
        raise Stale("unexpected shape")
    ids: list[str] = []
    kept = set()
    for pid, entry in providers.items():
        if not isinstance(entry, dict):
            raise Stale("unexpected shape")
        if entry.get("enabled_if_env") and not env.get(entry["enabled_if_env"]):
            continue
        if entry.get("discover", True) is False:  # listed in the registry alone (reports.static_report)
            ids += [f"{pid}/{name}" for name in _static_names(entry)]
        elif isinstance(base_url := entry.get("base_url"), str) and cached.get(pid) == base_url.rstrip("/"):
            kept.add(pid)
    # A provider ID holds no '/' (registry schema), so the part before the first '/' is the provider.
    ids += [line for line in body.split("\n") if line.startswith(prefix) and line.partition("/")[0] in kept]
    return [i for i in ids if i.startswith(prefix)] + _favorites(folder, prefix)


def _static_names(body: Mapping[str, Any]) -> list[str]:
    from .errors import ModelIdError
    from .ids import check_id_text

    models, bare = body.get("models", {}), body.get("bare_ids", [])
    if not isinstance(models, dict) or not isinstance(bare, list):
        raise Stale("unexpected shape")
    names = []
    for name in dict.fromkeys([*models, *bare]):
        try:
            names.append(check_id_text(name))
        except ModelIdError:
            continue
    return names


def _favorites(folder: str, prefix: str) -> list[str]:
    path = os.path.join(folder, FAVORITES_FILE)
    if not os.path.exists(path):  # sqlite3 is not even imported
        return []
    from pathlib import Path

    from .favorites import Favorites

    return [i for i in Favorites(Path(path), str).list() if i.startswith(prefix)]


def complete_ids(prefix: str, registry: str | None, state_dir: str | None, env: Mapping[str, str] | None = None,
                 slow: Callable[[str | None, str | None], list[str]] | None = None) -> list[str]:
    """Model IDs from the cache and the favorites, without any network, sorted; never raises.

    Before the first ``/`` the provider is completed (``host-01`` offers ``host-010/`` ... ``host-019/``, and
    the shell adds no space after a ``/``): 5,000 model IDs would be no help to read, and cost argcomplete
    0.15 s to quote."""
    env = os.environ if env is None else env
    try:
        try:
            ids = fast_ids(prefix, registry, state_dir, env)
        except Stale:
            if slow is None:
                return []
            ids = slow(registry, state_dir)
    except Exception:  # a completer must never print a traceback into the user's shell
        return []
    if "/" not in prefix:
        return sorted({i.partition("/")[0] + "/" for i in ids if i.startswith(prefix)})
    return sorted({i for i in ids if i.startswith(prefix)})
