"""The ``llama-swap`` kind, and everything specific to llama-swap: its ``meta.llamaswap`` keys in ``/v1/models``,
``/running`` and ``/upstream/<model>/props`` for live context sizes of loaded models, and ``/api/events`` (the
push channel ``serve`` follows).

Uses only the public API, so a third-party kind can do all of this too. asyncio is imported inside the
functions that need it: building the plugin list must stay cheap for commands served from the cache.
"""

from __future__ import annotations

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
from boocoder_bridge.default_plugins.llama_cpp import slot_context  # /upstream/<m>/props is llama.cpp's /props

if TYPE_CHECKING:
    from boocoder_bridge import HostClient, Provider


def read_llamaswap_meta(entry: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``meta.llamaswap``: entry type, an alias's target, and the owner's free-form context and output sizes."""
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    owner = meta.get("llamaswap") if isinstance(meta.get("llamaswap"), dict) else {}
    kind = owner.get("type") if isinstance(owner.get("type"), str) else ("peer" if "peerID" in owner else "model")
    out = {**fields, "type": kind, "max_output": positive_int(owner.get("max_output_tokens")),
           "alias_of": owner.get("modelID") if isinstance(owner.get("modelID"), str) else None}
    if kind == "peer":  # llama-swap lists every peer model as unloaded: it does not know
        out["state"] = None
    if out.get("context_window") is None:  # the host's declared size (context_length, meta.n_ctx) comes first
        for key in ("context_length", "context_window"):
            if (size := positive_int(owner.get(key))) is not None:
                out["context_window"], out["context_source"] = size, f"meta.llamaswap.{key}"
                break
    return out


def parse_models(body: Any, notes: list[str] | None = None) -> tuple[list[HostModel], int]:
    """Any llama-swap ``/v1/models`` body, old or current (a plain OpenAI list too)."""
    return parse_model_list(body, read_llamaswap_meta, notes)


# llama-swap's process states (/running, /api/events) in the bridge's words; "stopping" is on its way out: a
# request would load it again. Anything else (unknown, a peer's "") is not a state the bridge can vouch for.
STATES = {"ready": "loaded", "starting": "loading", "stopping": "unloaded", "stopped": "unloaded",
          "shutdown": "unloaded"}


def running_states(running: Any) -> dict[str, str]:
    """The state of each model ``/running`` lists (a model it does not list is unloaded); :class:`HostError`
    for any other shape than llama-swap's ``{"running": [{"model": "...", "state": "ready"}, ...]}``."""
    entries = running.get("running") if isinstance(running, dict) else None
    if not isinstance(entries, list):
        raise HostError("error", "/running answer is not an object with a 'running' list")
    states = {}
    for index, entry in enumerate(entries):
        if not (isinstance(entry, dict) and isinstance(entry.get("model"), str)
                and isinstance(entry.get("state", "ready"), str)):
            raise HostError("error", f"/running entry {index} is not {{'model': str, 'state': str}}")
        if (state := STATES.get(entry.get("state", "ready"))) is not None:
            states[entry["model"]] = state
    return states


async def live_context(client: HostClient, models: list[HostModel]) -> list[HostModel]:
    """Fill unknown context windows of *loaded* models from llama.cpp's ``/props`` (never swaps a model in), and
    unknown states (hosts older than v236) from ``/running``.

    Best effort, bounded: at most ``PROPS_LOOKUPS`` lookups, ``PROPS_CONCURRENCY`` at once, all ending 10 % of
    ``timeout_s`` before the provider's deadline so the list itself is never lost. What was found by then is
    kept; what was not is said in ``client.notes``.
    """
    import asyncio

    wanted = [m for m in models if m.type == "model" and (m.context_window is None or m.state is None)]
    budget = client.remaining() - 0.1 * client.provider.timeout_s
    if not wanted or budget <= 0:
        return models
    found: dict[str, HostModel] = {}
    gate = asyncio.Semaphore(PROPS_CONCURRENCY)

    async def props(model: HostModel) -> None:
        async with gate:
            try:
                n_ctx = slot_context(await client.get_json(f"/upstream/{quote(model.id, safe='/:@')}/props"))
            except HostError:
                return
        if n_ctx:
            found[model.id] = model.model_copy(update={"context_window": n_ctx, "context_source": "props"})

    try:
        async with asyncio.timeout(budget):
            if any(m.state is None for m in wanted):  # hosts older than v236 say nothing: ask /running
                running = running_states(await client.get_json("/running"))
                wanted = [m.model_copy(update={"state": running.get(m.id, "unloaded")}) if m.state is None else m
                          for m in wanted]
                found.update((m.id, m) for m in wanted)
            loaded = [m for m in wanted if m.loaded and m.context_window is None]
            if len(loaded) > PROPS_LOOKUPS:
                client.note(f"context sizes of {len(loaded) - PROPS_LOOKUPS} loaded models not read (at most "
                            f"{PROPS_LOOKUPS} /props lookups per discovery)")
            await asyncio.gather(*(props(m) for m in loaded[:PROPS_LOOKUPS]))
    except TimeoutError:
        client.note(f"live context sizes: lookups stopped at the deadline ({client.provider.timeout_s:g} s)")
    except HostError as exc:
        client.note(f"live context sizes not read: {exc.reason}")
    return [found.get(m.id, m) for m in models]


@dataclass(frozen=True)
class LlamaSwapKind(ProviderKind):
    """llama-swap, old and current: also reads live context sizes of loaded models (best effort)."""

    name: str = "llama-swap"
    local: bool = True

    async def list_models(self, client: HostClient) -> tuple[list[HostModel], int]:
        models, skipped = parse_models(await client.get_json("/v1/models"), client.notes)
        return await live_context(client, models), skipped

    async def probe(self, client: HostClient) -> None:
        """``GET /health`` (``OK``, no key needed): llama-swap answers it from its own HTTP server while any model
        loads or evaluates, and it never starts a model (``/upstream/...`` and ``/props?model=`` would)."""
        await client.status("/health")

    async def watch(self, provider: Provider, env: Mapping[str, str]) -> AsyncIterator[list[ModelState]]:
        """``GET /api/events`` (current releases): a ``modelStatus`` message on connect and on every change.

        Older hosts answer 404: :class:`PushUnsupported`, and ``serve`` polls them. Needs the API key like
        every other request. No read timeout: an idle host sends nothing at all; a host that vanished without
        closing the connection is noticed by the poll loop, which then drops this stream.
        """
        from boocoder_bridge import HostClient

        async with HostClient.connect(provider, env) as client, client.stream("/api/events") as (status, body):
            if status in (404, 405):
                raise PushUnsupported(f"/api/events answered HTTP {status}")
            if not 200 <= status < 300:
                raise HostError("error", f"/api/events answered HTTP {status}")
            async for event in read_events(body):
                states = parse_model_status(event.data)
                if states is not None:
                    yield states


def parse_model_status(data: str) -> list[ModelState] | None:
    """One ``/api/events`` message: its model list when it is a ``modelStatus`` message, else None.

    The envelope is ``{"type": ..., "data": ...}``, and llama-swap sends ``data`` as a JSON *string* holding the
    list (a list itself is accepted too). Each entry: ``id``, ``state`` (``stopped``, ``starting``, ``ready``,
    ``stopping``, ...: see ``STATES``; a peer's, with ``peerID``, is not known), and on newer releases
    ``context_length``. Entries without a string ``id`` are skipped.
    """
    try:  # load_json: deep nesting and over-long integers are a HostError, never a crash
        envelope = load_json(data.encode("utf-8", "replace"), "/api/events")
        body: Any = envelope.get("data") if isinstance(envelope, dict) else None
        if not isinstance(envelope, dict) or envelope.get("type") != "modelStatus":
            return None
        if isinstance(body, str):
            body = load_json(body.encode("utf-8", "replace"), "/api/events")
    except HostError:
        return None
    if not isinstance(body, list):
        return None
    return [ModelState(id=entry["id"], context_window=positive_int(entry.get("context_length")),
                       state=None if entry.get("peerID") or not isinstance(entry.get("state"), str)
                       else STATES.get(entry["state"]))
            for entry in body if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]]


LLAMA_SWAP = LlamaSwapKind()


@hookimpl
def register_provider_kinds(register: Callable[[ProviderKind], None]) -> None:
    register(LLAMA_SWAP)
