"""Provider kinds: how a kind of server lists its models. Registered through the ``register_provider_kinds``
hook; the two built-in kinds below are registered by :mod:`boocoder_bridge.default_plugins` like any plugin's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .hostdata import HostError, HostModel, parse_model_list

if TYPE_CHECKING:
    from .discovery import HostClient


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
        return parse_model_list(await client.get_json("/v1/models"))


@dataclass(frozen=True)
class LlamaSwapKind(ProviderKind):
    """llama-swap, old and current: also reads live context sizes of loaded models (best effort)."""

    name: str = "llama-swap"
    local: bool = True

    async def list_models(self, client: HostClient) -> tuple[list[HostModel], int]:
        import asyncio

        from .discovery import live_context

        models, skipped = await super().list_models(client)
        # The list is what matters: never lose it to slow /props, so stop enriching well before the deadline.
        budget = client.remaining() - 0.1 * client.provider.timeout_s
        if budget <= 0:
            return models, skipped
        try:
            async with asyncio.timeout(budget):
                models = await live_context(client, models)
        except (TimeoutError, HostError):
            pass
        return models, skipped


OPENAI_COMPATIBLE = ProviderKind(name="openai-compatible")
LLAMA_SWAP = LlamaSwapKind()
