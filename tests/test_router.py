"""Which model is hot (issue 24): model state in the catalog, from a REAL llama.cpp router (``llama-server
--models-dir --models-max 1``, built by tests/llama_router.py) and from the llama-swap-shaped proxy over real
llama.cpp, followed live by ``serve``; plus the router's shapes read with hostile input.

The router's shapes (``/models``, ``/models/sse``, ``/props``) were measured on a real router built the same way
(2026-12-02; llama.cpp's tools/server/README.md "Using multiple models" documents them)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from boocoder_bridge import Bridge, ModelState
from boocoder_bridge.default_plugins.llama_cpp import (
    CTX_SIZE,
    N_PREDICT,
    launch_setting,
    load_progress,
    parse_router_event,
)
from tests.conftest import REAL_MODEL, ROUTER_MODELS, ROUTER_N_CTX
from tests.live_fleet import serve_fleet
from tests.test_cli import assert_valid

ALPHA, BETA = ROUTER_MODELS
SEEN_WITHIN_S = 5.0  # how long a test waits for serve to show a change (the bound is "a second or two";
# timings are measured by benchmarks/model_state.py, not asserted here)


def chat(url: str, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text


def router_says(url: str) -> dict[str, str]:
    """Each model's state as the router itself reports it."""
    return {m["id"]: m["status"]["value"] for m in httpx.get(url + "/models", timeout=10).json()["data"]}


def states(catalog: dict[str, Any], provider: str) -> dict[str, Any]:
    group = next(g for g in catalog["providers"] if g["id"] == provider)
    return {m["model"]: m["state"] for m in group["models"]}


def wait_for(url: str, provider: str, wanted: dict[str, str]) -> dict[str, Any]:
    """Poll serve's GET /api/models until ``provider``'s states are ``wanted``; the catalog then."""
    deadline = time.monotonic() + SEEN_WITHIN_S
    while True:
        catalog = httpx.get(url + "/api/models", timeout=10).json()
        if states(catalog, provider) == wanted or time.monotonic() > deadline:
            assert states(catalog, provider) == wanted
            return catalog
        time.sleep(0.02)


# --- the real router ------------------------------------------------------------------------------------------


def test_router_models_are_listed_with_windows_and_unloaded_and_discovery_loads_nothing(
        llama_router, write_registry, run_cli) -> None:
    path = write_registry({"default_provider": "box", "providers": {
        "box": {"kind": "llama-cpp", "base_url": llama_router.url}}})
    listed = run_cli("--registry", str(path), "models", "--json", "--refresh").json()
    assert_valid("models.schema.json", listed)
    group = next(g for g in listed["providers"] if g["id"] == "box")
    assert (group["status"], group["max_loaded"]) == ("online", 1)  # --models-max 1, from /props max_instances
    assert [(m["model"], m["context_window"], m["state"]) for m in group["models"]] == [
        (ALPHA, ROUTER_N_CTX, "unloaded"), (BETA, ROUTER_N_CTX, "unloaded")]  # windows from status.args
    assert router_says(llama_router.url) == {ALPHA: "unloaded", BETA: "unloaded"}  # nothing was loaded

    httpx.post(llama_router.url + "/models/load", json={"model": ALPHA}, timeout=10).raise_for_status()
    deadline = time.monotonic() + 60
    while router_says(llama_router.url)[ALPHA] != "loaded" and time.monotonic() < deadline:
        time.sleep(0.05)
    bridge = Bridge.load(path)
    models = {m.model: m for m in bridge.catalog(refresh=True).providers[0].models}
    assert (models[ALPHA].state, models[ALPHA].context_window) == ("loaded", ROUTER_N_CTX)  # the live slot size
    assert (models[BETA].state, models[BETA].context_window) == ("unloaded", ROUTER_N_CTX)
    assert router_says(llama_router.url) == {ALPHA: "loaded", BETA: "unloaded"}  # beta was not loaded to ask
    text = run_cli("--registry", str(path), "models").out
    assert f"{ALPHA}" in text and "[loaded]" in next(line for line in text.splitlines() if ALPHA in line)
    assert "[loaded]" not in next(line for line in text.splitlines() if BETA in line)


def test_serve_shows_a_load_and_a_swap_on_the_router_at_once(llama_router, tmp_path: Path) -> None:
    """refresh_s is 300: only the router's /models/sse can bring the change to GET /api/models this soon."""
    providers = {"box": {"kind": "llama-cpp", "base_url": llama_router.url, "refresh_s": 300}}
    with serve_fleet(tmp_path, providers, {}) as fleet:
        wait_for(fleet.url, "box", {ALPHA: "unloaded", BETA: "unloaded"})
        chat(llama_router.url, ALPHA)
        catalog = wait_for(fleet.url, "box", {ALPHA: "loaded", BETA: "unloaded"})
        assert catalog["providers"][0]["max_loaded"] == 1
        chat(llama_router.url, BETA)  # --models-max 1: the router unloads alpha to load beta
        wait_for(fleet.url, "box", {ALPHA: "unloaded", BETA: "loaded"})
        assert router_says(llama_router.url) == {ALPHA: "unloaded", BETA: "loaded"}


def test_serve_shows_a_swap_through_the_llama_swap_proxy_over_real_llama_cpp(
        llama_server, tmp_path: Path) -> None:
    """The same on the llama-swap-shaped proxy (one model at a time, like a `swap: true` group) in front of the
    real llama.cpp server: its /api/events carries starting, ready, stopping and stopped."""
    from boocoder_bridge.demo.proxy import SwapModel, SwapProxy

    models = [SwapModel(ALPHA, llama_server.url, state="stopped"), SwapModel(BETA, llama_server.url, state="stopped")]
    with SwapProxy(models, swap=True) as proxy:
        providers = {"sam": {"kind": "llama-swap", "base_url": proxy.url, "refresh_s": 300}}
        with serve_fleet(tmp_path, providers, {}) as fleet:
            wait_for(fleet.url, "sam", {ALPHA: "unloaded", BETA: "unloaded"})
            chat(proxy.url, ALPHA)
            wait_for(fleet.url, "sam", {ALPHA: "loaded", BETA: "unloaded"})
            chat(proxy.url, BETA)
            wait_for(fleet.url, "sam", {ALPHA: "unloaded", BETA: "loaded"})
        assert proxy.swaps == [ALPHA, BETA]  # only the chats started models; the bridge never did
        # the two chats, and at most a loaded model's /props (its live window): nothing else reached llama.cpp
        assert [path for path, _ in proxy.forwarded if path != "/props"] == ["/v1/chat/completions"] * 2


def test_a_plain_llama_server_has_its_one_model_loaded(llama_server, write_registry) -> None:
    path = write_registry({"default_provider": "box", "providers": {
        "box": {"kind": "llama-cpp", "base_url": llama_server.url}}})
    group = Bridge.load(path).catalog(refresh=True).providers[0]
    assert [(m.model, m.state) for m in group.models] == [(REAL_MODEL, "loaded")]
    assert group.max_loaded is None
    assert httpx.get(llama_server.url + "/models/sse", timeout=10).status_code == 404  # no push channel: polled


# --- the router's shapes, hostile input ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "expected"), [
    ({"args": ["llama-server", "--ctx-size", "1024", "--model", "m.gguf"]}, 1024),
    ({"args": ["llama-server", "-c", "2048"]}, 2048),
    ({"args": ["llama-server", "--ctx-size=4096"]}, 4096),
    ({"preset": "[alpha]\nctx-size = 8192\nmodel = /m.gguf\n"}, 8192),
    ({"args": ["llama-server", "--model", "m.gguf"], "preset": "[a]\nctx-size = 512\n"}, 512),
    ({"args": ["llama-server", "-c"]}, None),  # the flag with no value
    ({"args": ["llama-server", "-c", "0"]}, None),  # 0: the model's own size, unknown here
    ({"args": ["llama-server", "-c", "9" * 40]}, None),  # digits past any window
    ({"args": ["llama-server", "-c", "-5"]}, None),
    ({"args": [None, 3, {"x": 1}, "-c", ["1024"]]}, None),
    ({"args": "--ctx-size 1024"}, None),  # not a list
    ({"preset": "ctx-size = lots"}, None),
    ({"preset": 7}, None),
    ({}, None),
])
def test_window_from_the_launch_settings(status: dict[str, Any], expected: int | None) -> None:
    assert launch_setting(status, CTX_SIZE) == expected


def test_max_output_from_the_launch_settings() -> None:
    assert launch_setting({"args": ["llama-server", "-n", "512", "-c", "4096"]}, N_PREDICT) == 512
    assert launch_setting({"args": ["llama-server", "--predict=256"]}, N_PREDICT) == 256
    assert launch_setting({"preset": "[m]\nn-predict = 128\n"}, N_PREDICT) == 128
    assert launch_setting({"args": ["llama-server", "-n", "-1"]}, N_PREDICT) is None  # -1: no limit


def event(model: str, kind: str, data: Any) -> str:
    return json.dumps({"model": model, "event": kind, "data": data})


def test_router_events_in_the_bridges_words() -> None:
    assert parse_router_event(event(ALPHA, "model_status", {"status": "loading"})) == ModelState(
        id=ALPHA, state="loading")
    progress = {"stages": ["text_model", "mmproj"], "current": "mmproj", "value": 0.5}
    assert parse_router_event(event(ALPHA, "status_change", {"status": "loading", "progress": progress})) == (
        ModelState(id=ALPHA, state="loading", load_progress=0.75))
    loaded = {"status": "loaded", "info": {"id": ALPHA, "meta": {"n_ctx": 1024, "n_ctx_train": 32768}}}
    assert parse_router_event(event(ALPHA, "status_change", loaded)) == ModelState(
        id=ALPHA, state="loaded", context_window=1024)
    assert parse_router_event(event(ALPHA, "status_change", {"status": "unloaded", "exit_code": 0})) == (
        ModelState(id=ALPHA, state="unloaded"))
    assert parse_router_event(event(BETA, "status_change", {"status": "sleeping"})).state == "sleeping"
    assert parse_router_event(event(BETA, "status_change", {"status": "downloading"})).state == "loading"
    assert parse_router_event(event(BETA, "model_remove", {})) == ModelState(id=BETA)
    assert parse_router_event(event("*", "models_reload", {})) == "reload"


@pytest.mark.parametrize("data", [
    "not json", "[]", "null", json.dumps({"event": 3}), event("", "status_change", {"status": "loaded"}),
    event(ALPHA, "status_change", {"status": "exploded"}), event(ALPHA, "status_change", {"status": ["loaded"]}),
    event(ALPHA, "status_change", "loaded"), event(ALPHA, "download_progress", {"done": 1}),
    "[" * 100_000, event(ALPHA, "status_change", {"status": "loaded", "info": {"meta": {"n_ctx": 10}}}).replace(
        "10", "1" * 5000),
])
def test_junk_router_events_are_ignored_or_bounded(data: str) -> None:
    result = parse_router_event(data)
    assert result is None or (isinstance(result, ModelState) and result.context_window is None)


@pytest.mark.parametrize(("progress", "expected"), [
    ({"value": 0.25}, 0.25), ({"stages": ["a"], "current": "a", "value": 1}, 1.0), ({"value": 2}, None),
    ({"value": -0.1}, None), ({"value": True}, None), ({"value": "0.5"}, None), ([0.5], None), (None, None),
    ({"stages": ["a", "b"], "current": "zzz", "value": 0.5}, 0.5),
])
def test_load_progress_is_a_share_or_nothing(progress: Any, expected: float | None) -> None:
    assert load_progress(progress) == expected


def test_an_older_router_is_told_by_its_props_role(hosts, write_registry) -> None:
    """A router whose entries carry no status: /props says role router; nothing is loaded to learn more."""
    body = {"object": "list", "data": [{"id": "solo", "object": "model", "owned_by": "llamacpp"}]}
    props = {"role": "router", "max_instances": 2, "default_generation_settings": {"n_ctx": 0}}
    router = hosts(models_body=body, extra={"/props": props})
    path = write_registry({"default_provider": "r", "providers": {"r": {"kind": "llama-cpp", "base_url": router.url}}})
    group = Bridge.load(path).catalog(refresh=True).providers[0]
    assert (group.max_loaded, [(m.model, m.state, m.context_window) for m in group.models]) == (
        2, [("solo", None, None)])  # not "loaded": a router's model may be cold, and it did not say


def test_a_pushed_state_shows_before_the_discovery_it_triggers(write_registry) -> None:
    """What a push channel says (a load, a swap) is in the next catalog version at once; a push that does not
    know a model's state (a llama-swap peer) leaves the listed state alone."""
    import asyncio

    from boocoder_bridge import HostModel, ProviderReport
    from boocoder_bridge.web.live import PUSH_REBUILD_S, LiveCatalog

    registry = write_registry({"default_provider": "box", "providers": {
        "box": {"kind": "llama-cpp", "base_url": "http://127.0.0.1:9"}}})
    live = LiveCatalog(Bridge.load(registry))

    async def run() -> dict[str, Any]:
        live.reports = {"box": ProviderReport(provider="box", status="online", models=[
            HostModel(id=ALPHA, state="unloaded"), HostModel(id=BETA, state="loaded"), HostModel(id="peer")])}
        live.poke = lambda pid: None
        live._rebuild()
        live._apply_pushed("box", [ModelState(id=ALPHA, state="loading", load_progress=0.5),
                                   ModelState(id=BETA, state="unloaded"), ModelState(id="peer", state=None)])
        await asyncio.sleep(PUSH_REBUILD_S * 3)
        return {m.model: (m.state, m.load_progress) for m in live.current.providers[0].models}

    assert asyncio.run(run()) == {ALPHA: ("loading", 0.5), BETA: ("unloaded", None), "peer": (None, None)}
