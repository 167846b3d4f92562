"""The provider-kind base class: how a kind of server lists its models.

Kinds are registered through the ``register_provider_kinds`` hook; the built-in ones live in
:mod:`boocoder_bridge.default_plugins` and are registered like any plugin's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .hostdata import HostModel, parse_model_list

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
        """Models and the count of entries skipped; raise :class:`boocoder_bridge.HostError` for a bad answer."""
        return parse_model_list(await client.get_json("/v1/models"), notes=client.notes)
