"""What hosts said, with no network: parsed model lists and per-provider reports.

Kept apart from :mod:`boocoder_bridge.discovery` so that commands served from the cache never import httpx or
asyncio (a warm ``models`` process starts faster).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .errors import HostError, ModelIdError
from .ids import check_id_text
from .registry import Provider

Status = Literal["online", "offline", "error", "disabled", "static"]
AVAILABLE: frozenset[Status] = frozenset({"online", "static"})  # a host answer that can be used


class HostModel(BaseModel):
    """One entry of a host's model list, reduced to what the bridge uses. Keys read are listed in the README."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None = None
    type: str = "model"  # model, alias, peer, selector, profile (llama-swap's meta.llamaswap.type)
    alias_of: str | None = None
    loaded: bool | None = None  # None: the host does not say
    context_window: int | None = None
    context_source: str | None = None
    max_output: int | None = None


class ProviderReport(BaseModel):
    """What one provider said at ``fetched_at`` (unix seconds)."""

    provider: str
    status: Status
    error: str | None = None
    models: list[HostModel] = []
    fetched_at: float = 0.0

    @property
    def available(self) -> bool:
        """Usable for routing and listing: the host answered well, or the registry alone lists the models."""
        return self.status in AVAILABLE


def positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


EntryReader = Callable[[Mapping[str, Any], dict[str, Any]], dict[str, Any]]
"""A kind's extra reading of one ``/v1/models`` entry: gets the entry and the fields read so far, returns them
updated (see :mod:`boocoder_bridge.default_plugins.llama_swap`)."""


def _context(entry: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """The context window a host declares in its list, without loading anything (first found wins)."""
    for source, value in (("context_length", entry.get("context_length")), ("meta.n_ctx", meta.get("n_ctx"))):
        if (size := positive_int(value)) is not None:
            return size, source
    return None, None


def parse_model_list(body: Any, read_entry: EntryReader | None = None) -> tuple[list[HostModel], int]:
    """Parse a plain OpenAI ``/v1/models`` body; returns models and skipped count.

    ``read_entry`` lets a kind read what its servers add to each entry. Raises :class:`HostError` for a body that
    is not a model list at all.
    """
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise HostError("error", "/v1/models answer is not a model list (expected an object with a 'data' list)")
    seen: dict[str, HostModel] = {}
    skipped = 0
    for index, entry in enumerate(body["data"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise HostError("error", f"/v1/models entry {index} has no string 'id'")
        try:
            check_id_text(entry["id"])
        except ModelIdError:
            skipped += 1
            continue
        meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
        status = entry.get("status")
        context, source = _context(entry, meta)
        fields: dict[str, Any] = {
            "id": entry["id"],
            "name": entry.get("name") if isinstance(entry.get("name"), str) and entry.get("name") else None,
            "loaded": status.get("value") == "loaded" if isinstance(status, dict) and "value" in status else None,
            "context_window": context, "context_source": source,
        }
        if read_entry is not None:
            fields = read_entry(entry, fields)
        seen.setdefault(entry["id"], HostModel(**fields))
    return sorted(seen.values(), key=lambda m: m.id), skipped


def static_report(provider: Provider, env: Mapping[str, str]) -> ProviderReport:
    """A provider not asked over the network: disabled, or listed from the registry alone."""
    if not provider.enabled(env):
        return ProviderReport(provider=provider.id, status="disabled", error=provider.disabled_reason())
    names = dict.fromkeys([*provider.models, *provider.bare_ids])
    return ProviderReport(provider=provider.id, status="static", models=[HostModel(id=n) for n in sorted(names)],
                          fetched_at=time.time())
