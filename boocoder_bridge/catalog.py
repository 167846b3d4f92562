"""The picker's data: a Favorites section first, then one group per provider.

A favorite shows while its provider is up and lists the model; otherwise it is hidden (never deleted) and
comes back by itself. Context windows come from the same resolver dispatch uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from .bulk import FieldsSetPool
from .ids import Spellings, exact_spelling
from .registry import Registry
from .reports import AVAILABLE, HostModel, LoadState, ProviderReport, Status
from .routing import Resolver

LAZY = ConfigDict(defer_build=True)  # built on first use, not on import: a warm `resolve` never makes a catalog


class CatalogModel(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)  # frozen: its fields set is shared (bulk.py)

    id: str
    provider: str
    model: str
    name: str
    context_window: int | None
    favorite: bool
    max_output: int | None = None
    state: LoadState | None = None  # None: the host does not say
    load_progress: float | None = None  # 0..1 while "loading", when the host says


class CatalogGroup(BaseModel):
    model_config = LAZY

    id: str
    label: str
    kind: str
    status: Status
    error: str | None
    max_loaded: int | None = None  # models the host holds at once: choosing a cold one may unload another
    models: list[CatalogModel]


class HiddenFavorite(BaseModel):
    model_config = LAZY

    id: str
    reason: str


class Catalog(BaseModel):
    """The ``models --json`` contract (``schemas/models.schema.json``)."""

    model_config = LAZY

    favorites: list[CatalogModel]
    hidden_favorites: list[HiddenFavorite] = []  # stored favorites not shown now, each with why (they come back)
    providers: list[CatalogGroup]

    def render_text(self, width: int = 80, notes: Mapping[str, str] | None = None) -> str:
        """The text view; ``notes`` adds to a group's title (the CLI puts the age of cached host data there)."""
        lines = ["Favorites"]
        lines += [_line(m, width, with_provider=True) for m in self.favorites]
        lines += [_fit(f"   {h.id}  (hidden: {h.reason})", width) for h in self.hidden_favorites]
        if len(lines) == 1:
            lines.append("  (none)")
        for group in self.providers:
            note = (notes or {}).get(group.id)
            title = f"{group.label} [{group.id}, {group.kind}]: {group.status}" + (f" ({note})" if note else "")
            lines += ["", title[:width]]
            if group.error:
                lines.append(_fit(f"  ! {group.error}", width))
            lines += [_line(m, width) for m in group.models]
            if not group.models and group.status in AVAILABLE:
                lines.append("  (no models)")
        return "\n".join(lines) + "\n"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _tokens(count: int) -> str:
    """64k for 65536; a count that is no whole number of K as it is (1000 once showed as "0k")."""
    return f"{count // 1024}k" if count % 1024 == 0 else f"{count:,}"


def state_label(model: CatalogModel) -> str:
    """The state as words (never a colour alone): loaded, loading 40 %, sleeping; nothing for unloaded or unknown."""
    if model.state == "loading" and model.load_progress is not None:
        return f"loading {round(model.load_progress * 100)} %"
    return model.state if model.state in ("loaded", "loading", "sleeping") else ""


def _line(model: CatalogModel, width: int, with_provider: bool = False) -> str:
    star = "*" if model.favorite else " "
    context = f"{_tokens(model.context_window)} ctx" if model.context_window else "ctx ?"
    if label := state_label(model):
        context = f"[{label}] {context}"
    label = model.id if with_provider else model.model
    if model.name not in (model.model, model.id):
        label += f" ({model.name})"
    room = max(width - len(context) - 5, 8)  # never a negative width, whatever the numbers
    return f" {star} {_fit(label, room):<{room}} {context}"


def listed_models(report: ProviderReport) -> list[HostModel]:
    """What a picker offers from one report: not aliases (they stay requestable), nothing from a dead host."""
    if not report.available:
        return []
    return [m for m in report.models if m.type != "alias"]


def build_catalog(registry: Registry, reports: Mapping[str, ProviderReport], resolver: Resolver,
                  favorites: Iterable[str]) -> Catalog:
    favorite_ids = list(dict.fromkeys(favorites))
    wanted = set(favorite_ids)
    groups: list[CatalogGroup] = []
    by_id: dict[str, CatalogModel] = {}
    pool = FieldsSetPool()
    for pid, provider in registry.providers.items():
        report = reports[pid]
        entries = []
        for host_model in listed_models(report):
            facts = resolver.facts(provider, host_model.id)
            composite = f"{pid}/{host_model.id}"
            entry = pool.add(CatalogModel(id=composite, provider=pid, model=host_model.id, name=facts.name,
                                          context_window=facts.context_window, max_output=facts.max_output,
                                          favorite=composite in wanted, state=host_model.state,
                                          load_progress=host_model.load_progress))
            entries.append(entry)
            by_id[composite] = entry
        groups.append(CatalogGroup(id=pid, label=provider.display_name, kind=provider.kind, status=report.status,
                                   error=report.error, max_loaded=report.max_loaded, models=entries))
    missing = [f for f in favorite_ids if f not in by_id]
    if missing:  # stored in another Unicode form than the host lists now (ids.Spellings): the same model
        favorite_ids = _as_listed(favorite_ids, missing, groups, by_id)
    favorite_ids = list(dict.fromkeys(favorite_ids))
    visible = [by_id[f] for f in favorite_ids if f in by_id]
    hidden = [HiddenFavorite(id=f, reason=why_hidden(registry, reports, f) or "not listed now")
              for f in favorite_ids if f not in by_id]
    return Catalog(favorites=visible, hidden_favorites=hidden, providers=groups)


def _as_listed(favorite_ids: list[str], missing: list[str], groups: list[CatalogGroup],
               by_id: dict[str, CatalogModel]) -> list[str]:
    """``favorite_ids`` with each one not listed as stored renamed to the one listed entry in another Unicode
    form of it, which is then marked a favorite (rare: only on a miss)."""
    spellings = {g.id: Spellings(m.model for m in g.models) for g in groups}
    renamed: dict[str, str] = {}
    for favorite in missing:
        pid, _, model = favorite.partition("/")
        found = spellings[pid].exact(model) if pid in spellings else None
        if found is None:
            continue
        renamed[favorite] = composite = f"{pid}/{found}"
        entry = by_id[composite]
        if not entry.favorite:
            group = next(g for g in groups if g.id == pid)
            starred = by_id[composite] = entry.model_copy(update={"favorite": True})
            group.models[group.models.index(entry)] = starred
    return [renamed.get(f, f) for f in favorite_ids]


def why_hidden(registry: Registry, reports: Mapping[str, ProviderReport], favorite: str) -> str | None:
    """Why a stored favorite is not shown now (the rule of :func:`build_catalog`), or None when it is."""
    provider_id, _, model = favorite.partition("/")
    provider = registry.providers.get(provider_id)
    if provider is None:
        return f"provider {provider_id} is not in the registry"
    report = reports[provider_id]
    if report.status == "disabled":
        return provider.disabled_reason() if provider.enabled_if_env else f"provider {provider_id} is disabled"
    if not report.available:
        return f"provider {provider_id} is {report.status}" + (f": {report.error}" if report.error else "")
    name = exact_spelling(model, [m.id for m in report.models])  # the same rule as build_catalog
    host_model = next((m for m in report.models if m.id == name), None)
    if host_model is None:
        return f"{provider_id} does not list {model} now"
    if host_model.type == "alias":
        return "an alias (aliases stay requestable but are not listed)"
    return None
