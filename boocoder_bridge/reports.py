"""What hosts said, with no network: parsed model lists and per-provider reports.

Kept apart from :mod:`boocoder_bridge.discovery` so that commands served from the cache never import httpx or
asyncio (a warm ``models`` process starts faster).

This module owns the rule for **host text and numbers**: whatever a host sends reaches the bridge only as a
:class:`HostModel` or a :class:`ProviderReport`, and their fields escape control, bidi/format and line-separator
characters (:func:`safe_text`), cut long text, and refuse IDs and token counts out of range. The rule sits on the
models, not in one parser, so it holds for every kind (a plugin's too) and for what is read back from the cache;
the CLI, the JSON outputs, the server and the web page print these fields as they are.
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .bulk import FieldsSetPool, bulk
from .errors import HostError, ModelIdError
from .ids import MAX_ID_LENGTH, check_id_text
from .registry import Provider
from .settings import MAX_HOST_MODELS, MAX_JSON_CONTAINERS, MAX_NAME_CHARS, MAX_REASON_CHARS, MAX_TOKENS

Status = Literal["online", "offline", "error", "disabled", "static"]
LoadState = Literal["loaded", "loading", "unloaded", "sleeping"]  # a model on its host; None: the host does not say
LOAD_STATES: frozenset[str] = frozenset({"loaded", "loading", "unloaded", "sleeping"})
AVAILABLE: frozenset[Status] = frozenset({"online", "static"})  # a host answer that can be used
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, bidi/format, surrogates, line breaks


def safe_text(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """``text`` as it may be shown anywhere: unsafe characters become visible escapes (``ESC`` -> ``\\x1b``,
    U+202E -> ``\\u202e``), and more than ``limit`` characters are cut with an ellipsis."""
    cut, text = len(text) > limit, text[:limit]  # never more work than the limit, however long the text
    if not text.isprintable():  # fast path: printable text (most of it) has nothing to escape
        text = "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)
    return text[: limit - 1] + "…" if cut or len(text) > limit else text


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _text(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda value: safe_text(value, limit) if isinstance(value, str) else value)


ShortText = Annotated[str, _text(64)]
# An ID is never escaped (it must round-trip to the host): one that is not plain printable text is refused.
HostId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\p{C}\p{Z}]+$")]
TokenCount = Annotated[int, Field(gt=0, le=MAX_TOKENS)]


class HostModel(BaseModel):
    """One entry of a host's model list, reduced to what the bridge uses. Keys read are listed in docs/discovery.md."""

    model_config = ConfigDict(frozen=True)

    id: HostId
    name: Annotated[str, _text(MAX_NAME_CHARS)] | None = None
    type: ShortText = "model"  # model, alias, peer, selector, profile (llama-swap's meta.llamaswap.type)
    alias_of: Annotated[str, _text(MAX_ID_LENGTH)] | None = None
    state: LoadState | None = None  # None: the host does not say (a peer, a plain OpenAI server)
    load_progress: Annotated[float, Field(ge=0, le=1)] | None = None  # while "loading", when the host says
    context_window: TokenCount | None = None
    context_source: ShortText | None = None
    max_output: TokenCount | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_loaded(cls, data: Any) -> Any:
        """``loaded=True/False`` (cache files and plugins from before ``state``) is read as that state."""
        if isinstance(data, dict) and "loaded" in data:
            data = dict(data)
            loaded = data.pop("loaded")
            if data.get("state") is None and isinstance(loaded, bool):
                data["state"] = "loaded" if loaded else "unloaded"
        return data

    @property
    def loaded(self) -> bool | None:
        return None if self.state is None else self.state == "loaded"


class ProviderReport(BaseModel):
    """What one provider said at ``fetched_at`` (unix seconds). ``error`` is the one-line reason of an ``error``
    or ``offline`` status, or notes (cuts, skipped entries) on an ``online`` one."""

    provider: str
    status: Status
    error: Annotated[str, _text(MAX_REASON_CHARS)] | None = None
    models: list[HostModel] = []
    fetched_at: float = 0.0
    # the host holds at most this many models at once: loading another unloads one (llama.cpp's --models-max)
    max_loaded: Annotated[int, Field(gt=0, le=MAX_TOKENS)] | None = None

    @property
    def available(self) -> bool:
        """Usable for routing and listing: the host answered well, or the registry alone lists the models."""
        return self.status in AVAILABLE


def positive_int(value: Any) -> int | None:
    """A token count from a host: an int in 1..``MAX_TOKENS``, else None (unknown, never a guess)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS else None


def _bounded_int(digits: str) -> int | None:
    return int(digits) if len(digits) <= sys.get_int_max_str_digits() else None


def load_json(body: bytes | bytearray, path: str) -> Any:
    """A host's JSON body, or :class:`HostError`. An integer past Python's conversion limit (4300 digits) reads
    as null; nesting too deep for the parser is an error, not a crash. The collector is paused while parsing
    (the result holds no cycles), which keeps 16 MiB of tiny containers from costing seconds of GC."""
    if body.count(b"[") + body.count(b"{") > MAX_JSON_CONTAINERS:  # memory: 16 MiB of "[]," parses to 400 MiB
        raise HostError("error", f"{path} answered JSON with more than {MAX_JSON_CONTAINERS:,} objects and lists")
    try:
        with bulk():
            try:
                return json.loads(body)
            except json.JSONDecodeError:
                raise
            except ValueError:  # only an over-long integer: read again, with such integers as null
                return json.loads(body, parse_int=_bounded_int)
    except RecursionError:
        raise HostError("error", f"{path} answered JSON nested too deeply to read") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = "HTML" if body.lstrip()[:1] == b"<" else "not JSON"
        raise HostError("error", f"{path} answered {kind}, not a JSON model list") from None


EntryReader = Callable[[Mapping[str, Any], dict[str, Any]], dict[str, Any]]
"""A kind's extra reading of one ``/v1/models`` entry: gets the entry and the fields read so far, returns them
updated (see :mod:`boocoder_bridge.default_plugins.llama_swap`)."""


def _context(entry: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """The context window a host declares in its list, without loading anything (first found wins)."""
    for source, value in (("context_length", entry.get("context_length")), ("meta.n_ctx", meta.get("n_ctx"))):
        if (size := positive_int(value)) is not None:
            return size, source
    return None, None


def parse_model_list(body: Any, read_entry: EntryReader | None = None,
                     notes: list[str] | None = None) -> tuple[list[HostModel], int]:
    """Parse a plain OpenAI ``/v1/models`` body; returns models and skipped count.

    ``read_entry`` lets a kind read what its servers add to each entry. Only the first ``MAX_HOST_MODELS``
    entries are read; that cut and duplicate IDs (the first one is kept) are added to ``notes``. Raises
    :class:`HostError` for a body that is not a model list at all.
    """
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise HostError("error", "/v1/models answer is not a model list (expected an object with a 'data' list)")
    seen: dict[str, HostModel] = {}
    skipped, duplicates = 0, []
    listed = len(body["data"])
    if listed > MAX_HOST_MODELS and notes is not None:
        notes.append(f"listed {listed} entries; only the first {MAX_HOST_MODELS} are read (the limit per host)")
    pool = FieldsSetPool()
    with bulk():  # up to MAX_HOST_MODELS models at once: no collector passes while they are built
        for index, entry in enumerate(body["data"][:MAX_HOST_MODELS]):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
                raise HostError("error", f"/v1/models entry {index} has no string 'id'")
            try:
                check_id_text(entry["id"])
            except ModelIdError:
                skipped += 1
                continue
            if entry["id"] in seen:
                duplicates.append(entry["id"])
                continue
            meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
            status = entry.get("status")
            value = status.get("value") if isinstance(status, dict) else None
            context, source = _context(entry, meta)
            fields: dict[str, Any] = {
                "id": entry["id"],
                "name": entry.get("name") if isinstance(entry.get("name"), str) and entry.get("name") else None,
                "state": value if isinstance(value, str) and value in LOAD_STATES else None,
                "context_window": context, "context_source": source,
            }
            if read_entry is not None:
                fields = read_entry(entry, fields)
            seen[entry["id"]] = pool.add(HostModel.model_validate(fields))  # half the cost of HostModel(**fields)
    if duplicates and notes is not None:
        shown = ", ".join(repr(d) for d in dict.fromkeys(duplicates[:3]))
        notes.append(f"{len(duplicates)} duplicate {'ID' if len(duplicates) == 1 else 'IDs'} ({shown}"
                     f"{', ...' if len(set(duplicates)) > 3 else ''}); the first entry of each is used")
    return sorted(seen.values(), key=lambda m: m.id), skipped


def static_report(provider: Provider, env: Mapping[str, str] | None = None) -> ProviderReport:
    """A provider not asked over the network: disabled, or listed from the registry alone."""
    if not provider.enabled(env):
        return ProviderReport(provider=provider.id, status="disabled", error=provider.disabled_reason())
    names = [n for n in dict.fromkeys([*provider.models, *provider.bare_ids]) if _is_id(n)]
    return ProviderReport(provider=provider.id, status="static", models=[HostModel(id=n) for n in sorted(names)],
                          fetched_at=time.time())


def _is_id(text: str) -> bool:
    try:
        check_id_text(text)
    except ModelIdError:
        return False
    return True
