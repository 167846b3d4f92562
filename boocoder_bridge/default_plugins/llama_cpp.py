"""The ``llama-cpp`` kind: a plain llama.cpp ``llama-server``, no llama-swap in front (``owned_by: "llamacpp"``).

What it reads:

- ``GET /v1/models``: the model (its ``--alias``, else the file path), ``meta.n_ctx`` (newer builds) and
  ``meta.n_ctx_train`` (what the model was trained for);
- ``GET /props``: ``default_generation_settings.n_ctx``, the live context of one slot, which is what a single
  request can use (``-c`` divided by ``--parallel``). Safe here, unlike on llama-swap: a single-model server never
  swaps, so asking does not load anything. A server that lists more than one model (llama.cpp's router mode)
  could load one to answer, so ``/props`` is then not asked.

The context window is the live slot size from ``/props``, else ``meta.n_ctx``; never more than ``n_ctx_train``
when a server reports a larger ``-c`` than the model was trained for (current llama.cpp caps it so itself, seen
with xllamacpp 2026.10; the model degrades past it, and compacting early is safe where compacting late is not).
``n_ctx_train`` alone is never taken as the window: a server started with ``-c 4096`` on a 128k model would be
overrun.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boocoder_bridge import HostError, HostModel, ProviderKind, hookimpl, parse_model_list, positive_int

if TYPE_CHECKING:
    from boocoder_bridge import HostClient


def trained_contexts(body: Any) -> dict[str, int]:
    """``meta.n_ctx_train`` of each entry of a llama.cpp ``/v1/models`` body."""
    sizes: dict[str, int] = {}
    for entry in body.get("data", []) if isinstance(body, dict) else []:
        meta = entry.get("meta") if isinstance(entry, dict) else None
        size = positive_int(meta.get("n_ctx_train")) if isinstance(meta, dict) else None
        if size is not None and isinstance(entry.get("id"), str):
            sizes[entry["id"]] = size
    return sizes


def slot_context(props: Any) -> int | None:
    """``default_generation_settings.n_ctx`` of a ``/props`` answer (older builds: top-level ``n_ctx``)."""
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    found = positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return found or positive_int(props.get("n_ctx"))


def capped(model: HostModel, trained: int | None) -> HostModel:
    if trained is None or model.context_window is None or model.context_window <= trained:
        return model
    return model.model_copy(update={"context_window": trained,
                                    "context_source": f"{model.context_source}, capped at meta.n_ctx_train"})


@dataclass(frozen=True)
class LlamaCppKind(ProviderKind):
    """llama.cpp's own server: one model, always loaded, with its live context size."""

    name: str = "llama-cpp"
    local: bool = True

    async def list_models(self, client: HostClient) -> tuple[list[HostModel], int]:
        import asyncio

        body = await client.get_json("/v1/models")
        models, skipped = parse_model_list(body, notes=client.notes)
        trained = trained_contexts(body)
        single = len(models) == 1 and skipped == 0
        if single:
            models = [models[0].model_copy(update={"loaded": True})]  # a single-model server has it loaded
        budget = client.remaining() - 0.1 * client.provider.timeout_s
        if single and budget > 0:  # the list is what matters: /props is best effort within the deadline
            try:
                async with asyncio.timeout(budget):
                    n_ctx = slot_context(await client.get_json("/props"))
                if n_ctx is not None:
                    models = [models[0].model_copy(update={"context_window": n_ctx, "context_source": "props"})]
            except (TimeoutError, HostError):
                pass
        return [capped(m, trained.get(m.id)) for m in models], skipped

    async def probe(self, client: HostClient) -> None:
        """``GET /health``: llama-server's HTTP threads answer it within a millisecond while the inference thread
        evaluates a long prompt (503 while a model loads: still an answer, so the host is there)."""
        await client.status("/health")


LLAMA_CPP = LlamaCppKind()


@hookimpl
def register_provider_kinds(register: Callable[[ProviderKind], None]) -> None:
    register(LLAMA_CPP)
