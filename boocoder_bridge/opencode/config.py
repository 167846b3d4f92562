"""opencode config: one ``provider`` entry per enabled provider, so ``opencode run -m P/M`` reaches the right
host with the right upstream model name, and nothing else. Every rule below answers a trap measured with the
real opencode 1.18.33 (docs/opencode.md):

- exact providers: opencode deep-merges a provider whose key is one of its catalog ids (``openai``, ``deepseek``,
  ...) with the catalog entry; ``whitelist``, ``env: []``, an explicit ``apiKey`` and explicit model fields
  (:data:`NEUTRAL_MODEL`) leave nothing for the catalog, the environment or a stored login to fill in;
- limits: :func:`plan_limit` (the output budget fits the window and leaves working room);
- host text is data: :func:`render` writes every ``{`` in a string as ``\\u007b``, so opencode's text-level
  ``{env:...}``/``{file:...}`` substitution never sees host text, while JSON still reads the exact id;
- no hang: ``options.timeout`` bounds a request that gets no answer;
- the fleet wins: :func:`dispatch_content` puts the providers into ``OPENCODE_CONFIG_CONTENT``.

Output is deterministic (sorted) and never holds a secret: keys are written as ``{env:NAME}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from ..errors import BridgeError
from ..files import atomic_write, holds
from ..registry import Provider
from ..routing import ModelFacts
from ..settings import (
    DEFAULT_HEADROOM_CAP,
    DEFAULT_HEADROOM_SHARE,
    DEFAULT_OUTPUT_SHARE,
    MAX_OUTPUT_SHARE,
    OPENCODE_CONTENT_ENV,
)

SCHEMA_URL = "https://opencode.ai/config.json"
EntryHook = Callable[[Provider, dict[str, Any]], dict[str, Any]]

# --- limits ------------------------------------------------------------------------------------------
# opencode 1.18.33: max output is capped at 32000 (also what it sends with no limit); it compacts when a step's
# tokens reach ``limit.input - min(20000, output)`` (``context - output`` without ``input``); a step sends about
# 31 KB (~7.9k tokens) of system prompt and tool definitions before any conversation.
OPENCODE_OUTPUT_CAP = 32000
OPENCODE_RESERVE_CAP = 20000
OPENCODE_BASE_TOKENS = 8192
MIN_COMPACTION_THRESHOLD = OPENCODE_BASE_TOKENS + OPENCODE_BASE_TOKENS // 4


@dataclass(frozen=True, slots=True)
class Limit:
    """What opencode gets as ``limit`` for a model with a known window, and when it will compact."""

    context: int
    input: int
    output: int

    @property
    def threshold(self) -> int:
        """The step size (tokens) at which opencode starts compacting."""
        return max(0, self.input - min(OPENCODE_RESERVE_CAP, self.output))

    @property
    def compaction_works(self) -> bool:
        """False when opencode's own prompt plus a summary cannot fit under the threshold: it would compact
        again right after compacting (measured: 104 requests in 60 s at 8192 tokens)."""
        return self.threshold >= MIN_COMPACTION_THRESHOLD

    def as_json(self) -> dict[str, int]:
        return {"context": self.context, "input": self.input, "output": self.output}


def plan_limit(context: int | None, max_output: int | None = None, headroom: int | None = None) -> Limit | None:
    """The output budget and compaction point for a window; None when the window is unknown (never invented).

    output = ``max_output`` clamped to half the window, else a quarter of the window (at most 32000);
    input = window - headroom (default an eighth of the window, at most 8192), so a step that arrives just under
    the compaction point plus one more turn still fits with its whole output budget.
    """
    if context is None:
        return None
    if max_output is not None:
        output = min(max_output, context // MAX_OUTPUT_SHARE, OPENCODE_OUTPUT_CAP)
    else:
        output = min(context // DEFAULT_OUTPUT_SHARE, OPENCODE_OUTPUT_CAP)
    if headroom is None:
        headroom = min(context // DEFAULT_HEADROOM_SHARE, DEFAULT_HEADROOM_CAP)
    headroom = min(headroom, context // 2)
    return Limit(context=context, input=context - headroom, output=max(1, output))


# --- provider entries --------------------------------------------------------------------------------
# Every model field opencode would otherwise take from a same-named catalog model, set to what opencode uses for
# a model it has never heard of. ``limit`` and ``interleaved`` are set per model.
NEUTRAL_MODEL: dict[str, Any] = {
    "attachment": False,
    "cost": {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0},
    "family": "",
    "modalities": {"input": ["text"], "output": ["text"]},
    "reasoning": False,
    "release_date": "",
    "status": "active",
    "temperature": False,
    "tool_call": True,
}
NOTE_NAMES_SHOWN = 5  # models named in one warning line; the rest are counted
UNKNOWN_LIMIT = {"context": 0, "output": 0}  # opencode's own "unknown": no compaction, max_tokens 32000


def model_entry(facts: ModelFacts) -> dict[str, Any]:
    limit = plan_limit(facts.context_window, facts.max_output, facts.headroom)
    # opencode's own rule for an unknown model: a DeepSeek upstream name streams reasoning in reasoning_content.
    interleaved: Any = {"field": "reasoning_content"} if "deepseek" in facts.upstream_model else False
    return {"name": facts.name, "id": facts.upstream_model, **NEUTRAL_MODEL, "interleaved": interleaved,
            "limit": limit.as_json() if limit else dict(UNKNOWN_LIMIT)}


def provider_entry(provider: Provider, npm: str, models: Iterable[tuple[str, ModelFacts]]) -> dict[str, Any]:
    """The opencode entry for one provider: exactly these models, this host, this key and nothing else."""
    options: dict[str, Any] = {
        "baseURL": provider.route_base,
        # Always set: opencode fills a missing apiKey from a stored login or a catalog env var.
        "apiKey": "{env:" + provider.api_key_env + "}" if provider.api_key_env else "",
        "timeout": max(1, round(provider.request_timeout_s * 1000)),  # opencode refuses 0: the whole config fails
    }
    entries = {key: model_entry(facts) for key, facts in sorted(models, key=lambda item: item[0])}
    return {"npm": npm, "name": provider.display_name, "env": [], "whitelist": list(entries), "options": options,
            "models": entries}


def build_config(entries: Iterable[tuple[Provider, dict[str, Any]]], adjust: EntryHook | None = None) -> dict[str, Any]:
    providers = {}
    for provider, entry in sorted(entries, key=lambda item: item[0].id):
        providers[provider.id] = adjust(provider, entry) if adjust else entry
    return {"$schema": SCHEMA_URL, "provider": providers}


def window_notes(config: dict[str, Any]) -> list[str]:
    """One line per model whose window is unknown or too small for opencode's compaction, with the fix."""
    unknown, small = [], []
    for pid, entry in config.get("provider", {}).items():
        for key, model in entry.get("models", {}).items():
            limit = model.get("limit") or {}
            if not limit.get("context"):
                unknown.append(f"{pid}/{key}")
            elif not _limit(limit).compaction_works:
                small.append(f"{pid}/{key} ({limit['context']})")
    notes = []
    if unknown:
        notes.append(f"no known context window for {_some(unknown)}: opencode sends max_tokens "
                     f"{OPENCODE_OUTPUT_CAP} and never compacts; set context_window for the model in the registry "
                     "(or have the host declare it)")
    if small:
        notes.append(f"context window too small for opencode's compaction: {_some(small)}; dispatch turns "
                     "auto-compaction off for these models (a long session ends with the server's context error)")
    return notes


def _some(names: list[str], shown: int = NOTE_NAMES_SHOWN) -> str:
    """The first few names and how many more: a warning stays one readable line for a 50,000-model host."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown:,} more"


def _limit(limit: dict[str, Any]) -> Limit:
    return Limit(context=limit["context"], input=limit.get("input", limit["context"]), output=limit["output"])


def compaction_works(config: dict[str, Any], provider: str, model: str) -> bool:
    """False only for a model with a known window too small for opencode's compaction."""
    limit = config.get("provider", {}).get(provider, {}).get("models", {}).get(model, {}).get("limit") or {}
    return not limit.get("context") or _limit(limit).compaction_works


# --- rendering ---------------------------------------------------------------------------------------
PIECE_BYTES = 1 << 18  # a written piece of config text: large enough that writing is a few system calls
SPLIT_DEPTH = 4  # config > providers > one provider > its models: the objects that grow with the fleet
# A JSON string literal as pydantic's encoder writes it (indent=2): it never holds a raw newline, and a
# structural ``{`` is always the last thing on its line (or ``{}``), so a literal holding a ``{`` is matched whole.
_BRACED_STRING = re.compile(r'"(?:[^"\\\n{]|\\.)*\{(?:[^"\\\n]|\\.)*"')
_OWN_KEY = re.compile(r'"apiKey": "\\u007benv:([A-Za-z_][A-Za-z0-9_]*)}"')


def _escape_braces(match: re.Match[str]) -> str:
    # Inside a JSON string literal ``{`` is never part of an escape, so this only changes how it is spelled.
    return match.group(0).replace("{", "\\u007b")


def render(config: dict[str, Any]) -> str:
    """JSON text opencode can load, in which only the bridge's own ``{env:NAME}`` keys can be substituted.

    opencode replaces ``{env:...}`` and ``{file:...}`` in the config TEXT before parsing it; every ``{`` inside a
    string is written as ``\\u007b``, which JSON reads back as ``{`` (ids stay exact) but substitution never
    matches."""
    return b"".join(render_pieces(config)).decode()


def render_pieces(config: dict[str, Any]) -> Iterator[bytes]:
    """:func:`render`'s text as UTF-8, in pieces of about ``PIECE_BYTES`` that each end at a line end.

    Why pieces: a 50,000-model config is 42 MB of text; encoded whole it was held three times over (the encoder's
    buffer, its bytes, the str). Each member of the outer objects is encoded on its own by pydantic's encoder
    (Python's json is about 10x slower), indented as ``to_json(config, indent=2)`` would, byte for byte."""
    escape = _foreign_braces(config)  # the usual case has none: no regex pass over megabytes of text
    buffer = bytearray()
    for part in _json_parts(config, b"\n", 0):
        buffer += part
        if len(buffer) >= PIECE_BYTES and (end := buffer.rfind(b"\n") + 1):
            yield _escaped(bytes(buffer[:end])) if escape else bytes(buffer[:end])
            del buffer[:end]
    buffer += b"\n"
    yield _escaped(bytes(buffer)) if escape else bytes(buffer)


def _json_parts(value: Any, newline: bytes, depth: int) -> Iterator[bytes]:
    """``value`` as indented JSON. Objects down to ``SPLIT_DEPTH`` (config, providers, a provider, its models)
    are opened here; anything deeper (one model entry) is encoded whole."""
    if not (isinstance(value, dict) and value and depth < SPLIT_DEPTH):
        yield to_json(value, indent=2).replace(b"\n", newline)
        return
    inner = newline + b"  "
    separator = b"{" + inner
    for key, item in value.items():
        yield separator + to_json(key if isinstance(key, str) else str(key)) + b": "  # a str enum: its value
        yield from _json_parts(item, inner, depth + 1)
        separator = b"," + inner
    yield newline + b"}"


def _escaped(piece: bytes) -> bytes:
    # Both patterns match within one line, and a piece ends at a line end: escaping piece by piece is exact.
    text = _BRACED_STRING.sub(_escape_braces, piece.decode())
    return _OWN_KEY.sub(r'"apiKey": "{env:\1}"', text).encode()


_OWN_KEY_VALUE = re.compile(r"\{env:[A-Za-z_][A-Za-z0-9_]*}")


def _foreign_braces(value: Any, key: str = "") -> bool:
    """Whether any string in ``value`` holds a ``{`` other than an ``apiKey`` that is exactly ``{env:NAME}``.

    When none does, escaping and un-escaping would give back the encoder's text unchanged."""
    if isinstance(value, str):
        return "{" in value and not (key == "apiKey" and _OWN_KEY_VALUE.fullmatch(value))
    if isinstance(value, dict):
        return any("{" in k or _foreign_braces(v, k) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_foreign_braces(item) for item in value)
    return False


def write_config(path: Path, config: dict[str, Any]) -> bool:
    """Write atomically (``files.atomic_write``), piece by piece. A file that already holds exactly this text is
    left alone (its mtime too, and a read-only folder is no error then); returns whether the file was written."""
    if holds(path, render_pieces(config)):
        return False
    atomic_write(path, render_pieces(config))
    return True


# --- dispatch: the fleet wins --------------------------------------------------------------------------
# Linux's limit for one environment string (MAX_ARG_STRLEN, 32 pages), less "NAME=" and the closing NUL.
CONTENT_LIMIT_BYTES = 32 * 4096 - len(OPENCODE_CONTENT_ENV) - 2
PINNED_KEYS = ("npm", "name", "env", "options")  # what decides the host, the key and the request timeout


@dataclass(frozen=True)
class DispatchContent:
    """``OPENCODE_CONFIG_CONTENT`` for one dispatch, and a warning when the whole fleet did not fit in it."""

    text: str
    warning: str | None = None


def dispatch_content(config: dict[str, Any], caller_content: str | None, dispatched: tuple[str, str],
                     compaction: bool = True, session_model: str | None = None) -> DispatchContent:
    """``OPENCODE_CONFIG_CONTENT`` for a dispatch of ``dispatched`` (provider id, model key): the caller's own
    content with the fleet's provider entries put over it. opencode loads this after the global config,
    ``OPENCODE_CONFIG`` and the project's config, so a fleet provider's keys win there; the user's other settings
    and providers are left as they are. ``session_model`` (the ACP mode) makes a new session start there.

    An environment variable holds at most ``CONTENT_LIMIT_BYTES`` (Linux), about a hundred models' entries. A
    larger fleet pins what decides where a request goes and with which key (every provider's ``npm``, ``env`` and
    ``options``) and the dispatched model's whole entry; the rest comes from ``OPENCODE_CONFIG`` alone."""
    base: dict[str, Any] = {}
    if caller_content and caller_content.strip():
        try:
            base = json.loads(caller_content)
        except json.JSONDecodeError as exc:
            raise BridgeError(f"${OPENCODE_CONTENT_ENV} is not valid JSON (line {exc.lineno} column "
                              f"{exc.colno}): fix or unset it") from None
        if not isinstance(base, dict):
            raise BridgeError(f"${OPENCODE_CONTENT_ENV} is not a JSON object: fix or unset it")
    extra: dict[str, Any] = {} if session_model is None else {"model": session_model}
    if not compaction:
        extra["compaction"] = {**(base.get("compaction") or {}), "auto": False}
    fleet = config.get("provider", {})
    text = _with_fleet(base, fleet, extra)
    if _fits(text):
        return DispatchContent(text)
    provider_id, model = dispatched
    for keys in ((*PINNED_KEYS, "whitelist"), PINNED_KEYS):  # the model lists too, if they fit
        pinned = {pid: {key: entry[key] for key in keys if key in entry} for pid, entry in fleet.items()}
        if (entry := fleet.get(provider_id, {}).get("models", {}).get(model)) is not None:
            pinned[provider_id]["models"] = {model: entry}
        text = _with_fleet(base, pinned, extra)
        if _fits(text):
            break
    else:
        raise BridgeError(f"${OPENCODE_CONTENT_ENV} with the fleet's {len(fleet)} providers is {len(text):,} bytes, "
                          f"over the {CONTENT_LIMIT_BYTES:,} an environment variable may hold; make the caller's "
                          f"${OPENCODE_CONTENT_ENV} smaller")
    models = sum(len(entry.get("models", {})) for entry in fleet.values())
    return DispatchContent(text, f"the fleet's {models:,} models are too many to pin in ${OPENCODE_CONTENT_ENV}; "
                                 "pinned: every provider's host and key, and the dispatched model (a project "
                                 "opencode.json can still change or hide the other models)")


def _with_fleet(base: dict[str, Any], fleet: dict[str, Any], extra: dict[str, Any]) -> str:
    return render({**base, "provider": {**(base.get("provider") or {}), **fleet}, **extra})


def _fits(text: str) -> bool:
    return len(text.encode()) <= CONTENT_LIMIT_BYTES


