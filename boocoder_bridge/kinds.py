"""The provider-kind base class: how a kind of server lists its models, and (optionally) pushes changes.

Kinds are registered through the ``register_provider_kinds`` hook; the built-in ones live in
:mod:`boocoder_bridge.default_plugins` and are registered like any plugin's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from .reports import HostModel, LoadState, parse_model_list

if TYPE_CHECKING:
    from .discovery import HostClient
    from .registry import Provider


class ModelState(BaseModel):
    """One model as a host's push channel reports it: its state in the bridge's words (the kind translates its
    host's: llama-swap's ``ready`` is ``loaded``; None when the host does not say) and, when the host says, its
    load progress and context size."""

    model_config = ConfigDict(frozen=True)

    id: str
    state: LoadState | None = None
    load_progress: Annotated[float, Field(ge=0, le=1)] | None = None
    context_window: int | None = None


class PushUnsupported(Exception):
    """The host has no push channel (an older release): ``serve`` polls it instead."""


@dataclass(frozen=True)
class ProviderKind:
    """A kind of model server. Subclass and override :meth:`list_models` for servers that speak otherwise.

    ``local``: the models run on the user's own hardware (shown in the catalog; a local model is never
    sent anywhere but its own provider). ``npm``: the AI SDK adapter opencode uses for this kind.
    """

    name: str
    local: bool = False
    npm: str = "@ai-sdk/openai-compatible"

    async def list_models(self, client: HostClient) -> tuple[list[HostModel], int]:
        """Models and the count of entries skipped; raise :class:`boocoder_bridge.HostError` for a bad answer."""
        return parse_model_list(await client.get_json("/v1/models"), notes=client.notes)

    async def probe(self, client: HostClient) -> None:
        """Whether the host is there *now*, cheaply: a GET that never loads a model, answered even while the host
        evaluates a long prompt. Any HTTP answer (even 401 or 404) proves it; raise or let a transport error or
        ``TimeoutError`` through for a host that is not. The default asks ``/v1/models``, which every
        OpenAI-compatible server answers from its config; a kind with a cheaper endpoint overrides this."""
        await client.status("/v1/models")

    def watch(self, provider: Provider, env: Mapping[str, str]) -> AsyncIterator[list[ModelState]]:
        """The host's push channel, for ``serve``: yield the whole model list each time the host reports a
        change, until the connection ends. A kind without one leaves this alone and is only polled. Raise
        :class:`PushUnsupported` when a host turns out to have none, :class:`HostError` for a bad answer."""
        raise PushUnsupported(f"the {self.name} kind has no push channel")


def has_push_channel(kind: ProviderKind) -> bool:
    """Whether ``kind`` overrides :meth:`ProviderKind.watch` (llama-swap does; plain OpenAI servers do not)."""
    return type(kind).watch is not ProviderKind.watch
