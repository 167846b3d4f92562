"""The ``llama-swap`` kind, and everything specific to llama-swap: its ``meta.llamaswap`` keys in ``/v1/models``,
``/running`` and ``/upstream/<model>/props`` for live context sizes of loaded models.

Uses only the public API, so a third-party kind can do all of this too. asyncio is imported inside the
functions that need it: building the plugin list must stay cheap for commands served from the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from boocoder_bridge import HostError, HostModel, ProviderKind, hookimpl, parse_model_list, positive_int

if TYPE_CHECKING:
    from boocoder_bridge import HostClient


def read_llamaswap_meta(entry: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``meta.llamaswap``: entry type, an alias's target, and the owner's free-form context and output sizes."""
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    owner = meta.get("llamaswap") if isinstance(meta.get("llamaswap"), dict) else {}
    kind = owner.get("type") if isinstance(owner.get("type"), str) else ("peer" if "peerID" in owner else "model")
    out = {**fields, "type": kind, "max_output": positive_int(owner.get("max_output_tokens")),
           "alias_of": owner.get("modelID") if isinstance(owner.get("modelID"), str) else None}
    if out.get("context_window") is None:  # the host's declared size (context_length, meta.n_ctx) comes first
        for key in ("context_length", "context_window"):
            if (size := positive_int(owner.get(key))) is not None:
                out["context_window"], out["context_source"] = size, f"meta.llamaswap.{key}"
                break
    return out


def parse_models(body: Any) -> tuple[list[HostModel], int]:
    """Any llama-swap ``/v1/models`` body, old or current (a plain OpenAI list too)."""
    return parse_model_list(body, read_llamaswap_meta)


async def live_context(client: HostClient, models: list[HostModel]) -> list[HostModel]:
    """Fill unknown context windows of *loaded* models from llama.cpp's ``/props`` (never swaps a model in)."""
    import asyncio

    wanted = [m for m in models if m.context_window is None and m.type == "model"]
    if not wanted:
        return models
    if any(m.loaded is None for m in wanted):  # hosts older than v236 say nothing: ask /running
        running = await client.get_json("/running")
        ready = {r.get("model") for r in running.get("running", []) if isinstance(r, dict)
                 and r.get("state", "ready") == "ready"} if isinstance(running, dict) else set()
        models = [m.model_copy(update={"loaded": m.id in ready}) if m.loaded is None else m for m in models]
        wanted = [m for m in models if m.context_window is None and m.type == "model"]

    async def props(model: HostModel) -> HostModel:
        try:
            answer = await client.get_json(f"/upstream/{quote(model.id, safe='/:@')}/props")
        except HostError:
            return model
        settings = answer.get("default_generation_settings") if isinstance(answer, dict) else None
        n_ctx = positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
        n_ctx = n_ctx or (positive_int(answer.get("n_ctx")) if isinstance(answer, dict) else None)
        return model.model_copy(update={"context_window": n_ctx, "context_source": "props"}) if n_ctx else model

    loaded = {m.id: m for m in await asyncio.gather(*(props(m) for m in wanted if m.loaded))}
    return [loaded.get(m.id, m) for m in models]


@dataclass(frozen=True)
class LlamaSwapKind(ProviderKind):
    """llama-swap, old and current: also reads live context sizes of loaded models (best effort)."""

    name: str = "llama-swap"
    local: bool = True

    async def list_models(self, client: HostClient) -> tuple[list[HostModel], int]:
        import asyncio

        models, skipped = parse_models(await client.get_json("/v1/models"))
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


LLAMA_SWAP = LlamaSwapKind()


@hookimpl
def register_provider_kinds(register: Callable[[ProviderKind], None]) -> None:
    register(LLAMA_SWAP)
