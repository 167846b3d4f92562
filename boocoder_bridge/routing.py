"""The one resolver. Dispatch, arena, compaction, task-model selection and context lookup all call
:meth:`Resolver.resolve`, so they always agree on provider, model, host and context window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, computed_field

from .bulk import FieldsSetPool, bulk
from .errors import ModelIdError, ProviderUnavailableError
from .ids import Spellings
from .registry import Provider, Registry
from .reports import HostModel, ProviderReport
from .settings import PURPOSES

Purpose = Literal[PURPOSES]  # type: ignore[valid-type]  # a tuple subscript: Literal["dispatch", "arena", ...]
MEMO_LIMIT = 8192  # routes kept per resolver; past it the older half goes (a hit is a dict lookup)
ContextHook = Callable[[Provider, str], int | None]


class Route(BaseModel):
    """Where requests for one model go. ``base_url`` includes ``/v1``; ``id`` is the composite form.

    Its JSON (``model_dump()``) is the ``resolve --json`` contract, ``schemas/resolve.schema.json``.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    provider: str
    model: str
    legacy: bool
    base_url: str
    via_sidecar: bool
    upstream_model: str
    api_key_env: str | None
    context_window: int | None
    max_output: int | None
    purpose: str = Field(default="dispatch", exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def opencode_model(self) -> str:
        """What to pass to ``opencode run -m``: the composite ID, since the generated config names providers
        and models exactly as the bridge does. Derived, so it can never disagree with ``id``."""
        return self.id

    def as_json(self) -> dict[str, Any]:
        return self.model_dump()


class ModelFacts(NamedTuple):
    """What is known about one model, from the registry first and the host second. A named tuple: built once per
    model seen, and a tuple is built several times faster than a frozen dataclass."""

    name: str
    upstream_model: str
    context_window: int | None
    max_output: int | None
    headroom: int | None = None  # registry: tokens kept free below the window (opencode.plan_limit)


class Resolver:
    """Resolves IDs against the registry plus the last known host answers. Pure and memoised: no network."""

    def __init__(self, registry: Registry, reports: Mapping[str, ProviderReport],
                 context_hook: ContextHook | None = None) -> None:
        """``registry`` bound to its environment (:meth:`Registry.bind`) says which providers are enabled."""
        self.registry = registry
        self.context_hook = context_hook
        with bulk():
            self._hosts: dict[tuple[str, str], HostModel] = {
                (pid, m.id): m for pid, report in reports.items() for m in report.models
            }
        self._reports = reports
        self._spellings: dict[str, Spellings] = {}
        self._memo: dict[tuple[str, str], Route] = {}
        self._shared: dict[str, dict[str, Any]] = {}
        self._routes = FieldsSetPool()  # every route is given the same fields: one set for all of them

    def resolve(self, model_id: str, purpose: str = "dispatch") -> Route:
        key = (model_id, purpose)
        route = self._memo.get(key)
        if route is None:
            route = self._resolve(model_id, purpose)
            if len(self._memo) >= MEMO_LIMIT:  # drop the older half: cheaper than an LRU on every hit
                for old in list(islice(self._memo, MEMO_LIMIT // 2)):
                    del self._memo[old]
            self._memo[key] = route
        return route

    def _resolve(self, model_id: str, purpose: str) -> Route:
        if purpose not in PURPOSES:
            raise ModelIdError(f"unknown purpose {purpose!r}; use one of: {', '.join(PURPOSES)}")
        ref, legacy = self.registry.parse_model_id(model_id)
        provider = self.registry.providers[ref.provider]
        if not provider.enabled():
            raise ProviderUnavailableError(f"{model_id}: {provider.disabled_reason()}")
        model = self._spelled(provider, ref.model)
        facts = self.facts(provider, model)
        composite = f"{ref.provider}/{model}" if legacy or model != ref.model else model_id  # already composite
        # model_validate, not Route(**...): the same checks at about half the cost (pydantic's __init__ wrapper).
        return self._routes.add(Route.model_validate({
            **self._provider_fields(provider), "id": composite, "model": model, "legacy": legacy,
            "upstream_model": facts.upstream_model, "context_window": facts.context_window,
            "max_output": facts.max_output, "purpose": purpose,
        }))

    def _spelled(self, provider: Provider, model: str) -> str:
        """The model as the host (or the registry) names it, when only its Unicode form differs (ids.Spellings)."""
        if model in provider.models or (provider.id, model) in self._hosts:
            return model
        spellings = self._spellings.get(provider.id)
        if spellings is None:
            report = self._reports.get(provider.id)
            spellings = self._spellings[provider.id] = Spellings(
                {*provider.models, *(m.id for m in report.models)} if report else set(provider.models))
        return spellings.exact(model) or model

    def _provider_fields(self, provider: Provider) -> dict[str, Any]:
        """The route fields every model of ``provider`` shares, worked out once per resolver."""
        fields = self._shared.get(provider.id)
        if fields is None:
            fields = self._shared[provider.id] = {
                "provider": provider.id, "base_url": provider.route_base,
                "via_sidecar": provider.sidecar_url is not None, "api_key_env": provider.api_key_env}
        return fields

    def facts(self, provider: Provider, model: str) -> ModelFacts:
        """Registry override, then the host's declared (or live /props) value, then plugins, else unknown."""
        configured = provider.models.get(model)
        host = self._hosts.get((provider.id, model))
        target = self._hosts.get((provider.id, host.alias_of)) if host and host.alias_of else None
        context = configured.context_window if configured else None
        output = configured.max_output if configured else None
        for known in (host, target):
            if known is not None:
                context = context or known.context_window
                output = output or known.max_output
        if context is None and self.context_hook is not None:
            context = self.context_hook(provider, model)
        name = (configured and configured.name) or (host and host.name) or model
        upstream = (configured and configured.upstream_id) or model
        return ModelFacts(name=name, upstream_model=upstream, context_window=context, max_output=output,
                          headroom=configured.headroom if configured else None)
