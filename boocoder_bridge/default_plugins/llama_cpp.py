"""The ``llama-cpp`` kind: llama.cpp's ``llama-server``, no llama-swap in front (``owned_by: "llamacpp"``), with
one model (always loaded) or as a *router* that loads and unloads models itself (``--models-dir``,
``--models-max``: llama.cpp PR #17470).

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

A router is told by its ``/v1/models`` entries (each has ``status.value``: ``loaded``, ``loading``, ``unloaded``,
``sleeping``, ``downloading``) or by ``/props`` saying ``"role": "router"``. Nothing is ever loaded to learn about
it (``/props?model=X`` loads X unless ``autoload=false``, which is always sent): a loaded model's window is its
``/props?model=X&autoload=false`` slot size, else ``meta.n_ctx``; an unloaded one's is the ``--ctx-size``/``-c``
the router will start it with (``status.args``, or ``ctx-size`` in ``status.preset``); ``--n-predict``/``-n``
likewise gives ``max_output``. ``/props`` ``max_instances`` (``--models-max``; 0 is no limit) is how many models
it holds at once. ``serve`` follows ``GET /models/sse``: one event per model change, applied to the list read
when the stream opened (a plain server answers 404 there, and is polled).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from boocoder_bridge import (
    PROPS_CONCURRENCY,
    PROPS_LOOKUPS,
    HostError,
    HostModel,
    ModelState,
    ProviderKind,
    PushUnsupported,
    hookimpl,
    load_json,
    parse_model_list,
    positive_int,
    read_events,
)

if TYPE_CHECKING:
    from boocoder_bridge import HostClient, Provider

# The router's model states in the bridge's words: a model being downloaded is on its way to loading.
ROUTER_STATES = {"loaded": "loaded", "loading": "loading", "downloading": "loading", "unloaded": "unloaded",
                 "sleeping": "sleeping"}
# llama.cpp's spellings of a setting: its command-line flags, and its keys in a preset INI section
CTX_SIZE = (("--ctx-size", "-c"), ("ctx-size",))
N_PREDICT = (("--n-predict", "--predict", "-n"), ("n-predict", "predict"))
_INT = re.compile(r"^\s*(\d{1,12})\s*$")


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


def launch_setting(status: Mapping[str, Any], names: tuple[tuple[str, ...], tuple[str, ...]]) -> int | None:
    """A count the router starts a model with: ``--flag N`` or ``--flag=N`` in ``status.args``, else ``key = N``
    in ``status.preset`` (the model's INI section). None when absent, or not a count (``-1``, ``0``, junk)."""
    flags, keys = names
    args = status.get("args")
    if isinstance(args, list):
        for index, arg in enumerate(args[:1000]):
            if not isinstance(arg, str):
                continue
            if arg in flags and index + 1 < len(args) and isinstance(args[index + 1], str):
                return _count(args[index + 1])
            if arg.startswith(tuple(flag + "=" for flag in flags)):
                return _count(arg.partition("=")[2])
    preset = status.get("preset")
    if isinstance(preset, str):
        for line in preset[:65536].splitlines():
            name, eq, value = line.partition("=")
            if eq and name.strip() in keys:
                return _count(value)
    return None


def _count(text: str) -> int | None:
    match = _INT.match(text)
    return positive_int(int(match[1])) if match else None


def read_router_entry(entry: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """A router's ``/v1/models`` entry: its state, and for a model not loaded the window it will be started with."""
    status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
    value = status.get("value")
    out = {**fields, "state": ROUTER_STATES.get(value) if isinstance(value, str) else None}
    if out.get("context_window") is None and (size := launch_setting(status, CTX_SIZE)):
        out["context_window"], out["context_source"] = size, "launch settings (status.args, status.preset)"
    out["max_output"] = launch_setting(status, N_PREDICT)
    return out


def is_router_list(body: Any) -> bool:
    """Whether a ``/v1/models`` body is a router's: its entries carry ``status.value``."""
    data = body.get("data") if isinstance(body, dict) else None
    return isinstance(data, list) and any(
        isinstance(e, dict) and isinstance(e.get("status"), dict) and "value" in e["status"] for e in data[:100])


async def best_effort(client: HostClient, path: str) -> Any:
    """``path``'s JSON, or None when it fails or the provider's deadline is near (the list itself comes first)."""
    import asyncio

    budget = client.remaining() - 0.1 * client.provider.timeout_s
    if budget <= 0:
        return None
    try:
        async with asyncio.timeout(budget):
            return await client.get_json(path)
    except (TimeoutError, HostError):
        return None


async def router_models(client: HostClient, body: Any, props: Any) -> tuple[list[HostModel], int]:
    """A router's models, states and windows, loading nothing; ``client.max_loaded`` from ``max_instances``."""
    import asyncio

    models, skipped = parse_model_list(body, read_router_entry, client.notes)
    if props is None:
        props = await best_effort(client, "/props")
    if isinstance(props, dict):
        client.max_loaded = positive_int(props.get("max_instances"))  # 0: no limit
    loaded = [m for m in models if m.state == "loaded"]
    if len(loaded) > PROPS_LOOKUPS:
        client.note(f"context sizes of {len(loaded) - PROPS_LOOKUPS} loaded models not read (at most "
                    f"{PROPS_LOOKUPS} /props lookups per discovery)")
    gate = asyncio.Semaphore(PROPS_CONCURRENCY)

    async def slot(model: HostModel) -> tuple[str, int | None]:
        async with gate:  # autoload=false: a model that was unloaded meanwhile is not loaded by asking
            answer = await best_effort(client, f"/props?model={quote(model.id, safe='')}&autoload=false")
        return model.id, slot_context(answer)

    slots = dict(await asyncio.gather(*(slot(m) for m in loaded[:PROPS_LOOKUPS])))
    trained = trained_contexts(body)
    models = [m.model_copy(update={"context_window": slots[m.id], "context_source": "props"}) if slots.get(m.id)
              else m for m in models]
    return [capped(m, trained.get(m.id)) for m in models], skipped


@dataclass(frozen=True)
class LlamaCppKind(ProviderKind):
    """llama.cpp's own server: one model, always loaded, with its live context size; or a router (see above)."""

    name: str = "llama-cpp"
    local: bool = True

    async def list_models(self, client: HostClient) -> tuple[list[HostModel], int]:
        body = await client.get_json("/v1/models")
        if is_router_list(body):
            return await router_models(client, body, None)
        models, skipped = parse_model_list(body, notes=client.notes)
        trained = trained_contexts(body)
        if len(models) == 1 and skipped == 0:
            props = await best_effort(client, "/props")  # best effort within the deadline
            if isinstance(props, dict) and props.get("role") == "router":  # a router of an older shape
                return await router_models(client, body, props)
            models = [models[0].model_copy(update={"state": "loaded"})]  # a single-model server has it loaded
            if (n_ctx := slot_context(props)) is not None:
                models = [models[0].model_copy(update={"context_window": n_ctx, "context_source": "props"})]
        return [capped(m, trained.get(m.id)) for m in models], skipped

    async def probe(self, client: HostClient) -> None:
        """``GET /health``: llama-server's HTTP threads answer it within a millisecond while the inference thread
        evaluates a long prompt (503 while a model loads: still an answer, so the host is there)."""
        await client.status("/health")

    async def watch(self, provider: Provider, env: Mapping[str, str]) -> AsyncIterator[list[ModelState]]:
        """A router's ``GET /models/sse``: the list read as the stream opens, then again after every event.

        A single-model server has no such stream (404): :class:`PushUnsupported`, and ``serve`` polls it.
        """
        from boocoder_bridge import HostClient

        async with HostClient.connect(provider, env) as client, client.stream("/models/sse") as (status, body):
            if status in (404, 405):
                raise PushUnsupported(f"/models/sse answered HTTP {status}")
            if not 200 <= status < 300:
                raise HostError("error", f"/models/sse answered HTTP {status}")
            states = snapshot(await client.get_json("/v1/models"))  # after connecting: no event falls between
            yield list(states.values())
            async for event in read_events(body):
                change = parse_router_event(event.data)
                if change is None:
                    continue
                if change == "reload":
                    states = snapshot(await client.get_json("/v1/models"))
                elif change.state is None:  # model_remove
                    states.pop(change.id, None)
                else:
                    states[change.id] = change
                yield list(states.values())


def snapshot(body: Any) -> dict[str, ModelState]:
    """Each model's state in a router's ``/v1/models`` body (a plain server's entries say nothing: skipped)."""
    data = body.get("data") if isinstance(body, dict) else None
    states = {}
    for entry in data if isinstance(data, list) else []:
        status = entry.get("status") if isinstance(entry, dict) else None
        value = status.get("value") if isinstance(status, dict) else None
        if isinstance(entry.get("id"), str) and entry["id"] and isinstance(value, str) and value in ROUTER_STATES:
            states[entry["id"]] = ModelState(id=entry["id"], state=ROUTER_STATES[value])
    return states


def parse_router_event(data: str) -> ModelState | str | None:
    """One ``/models/sse`` message ``{"model", "event", "data": {"status", "progress", "info"}}``: the model's new
    state; ``"reload"`` when the whole list changed (``models_reload``); a :class:`ModelState` with no state
    for ``model_remove``; None for anything else (download progress, junk)."""
    try:
        message = load_json(data.encode("utf-8", "replace"), "/models/sse")
    except HostError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        return None
    if message["event"] == "models_reload":
        return "reload"
    model, body = message.get("model"), message.get("data")
    if not isinstance(model, str) or not model or model == "*":
        return None
    if message["event"] == "model_remove":
        return ModelState(id=model)
    if message["event"] not in ("model_status", "status_change") or not isinstance(body, dict):
        return None
    state = ROUTER_STATES.get(body["status"]) if isinstance(body.get("status"), str) else None
    if state is None:
        return None
    info = body.get("info") if isinstance(body.get("info"), dict) else {}
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    return ModelState(id=model, state=state, context_window=positive_int(meta.get("n_ctx")),
                      load_progress=load_progress(body.get("progress")) if state == "loading" else None)


def load_progress(progress: Any) -> float | None:
    """``{"stages": [...], "current": "text_model", "value": 0.4}``: the share of all stages done, 0..1."""
    if not isinstance(progress, dict):
        return None
    value, stages = progress.get("value"), progress.get("stages")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        return None
    if isinstance(stages, list) and stages and progress.get("current") in stages:
        return (stages.index(progress["current"]) + value) / len(stages)
    return float(value)


LLAMA_CPP = LlamaCppKind()


@hookimpl
def register_provider_kinds(register: Callable[[ProviderKind], None]) -> None:
    register(LLAMA_CPP)
