"""A real llama.cpp server (xllamacpp, a tiny generated model) in the loop: discovery of a plain llama.cpp server,
live n_ctx through the llama-swap-shaped proxy, and what the server answers to a request that asks too much.

All tests here use the session's server (``llama_server``, marked ``realserver`` by conftest)."""

from __future__ import annotations

import json

import httpx
import pytest

from boocoder_bridge import Bridge
from boocoder_bridge.demo.model import N_CTX_TRAIN
from boocoder_bridge.demo.proxy import SwapModel
from tests.conftest import REAL_MODEL, REAL_N_CTX


def chat(url: str, content: str, **extra: object) -> httpx.Response:
    body = {"model": REAL_MODEL, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def test_plain_llama_cpp_server_is_discovered_with_its_live_context(llama_server, write_registry, run_cli) -> None:
    raw = httpx.get(llama_server.url + "/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["owned_by"], m["meta"]["n_ctx"], m["meta"]["n_ctx_train"]) for m in raw] == [
        (REAL_MODEL, "llamacpp", REAL_N_CTX, N_CTX_TRAIN)]
    path = write_registry({"default_provider": "box", "providers": {
        "box": {"kind": "llama-cpp", "base_url": llama_server.url}}})
    route = Bridge.load(path).resolve(f"box/{REAL_MODEL}")
    assert (route.context_window, route.base_url, route.upstream_model) == (
        REAL_N_CTX, llama_server.url + "/v1", REAL_MODEL)
    listed = run_cli("--registry", str(path), "models", "--json", "--refresh").json()
    group = next(g for g in listed["providers"] if g["id"] == "box")
    assert (group["status"], group["kind"]) == ("online", "llama-cpp")
    assert [(m["id"], m["context_window"]) for m in group["models"]] == [(f"box/{REAL_MODEL}", REAL_N_CTX)]


def test_llama_cpp_kind_prefers_the_slot_size_from_props(llama_server, hosts, write_registry) -> None:
    """/props (one slot's context) wins over meta.n_ctx; a larger -c than n_ctx_train is capped at n_ctx_train."""
    body = httpx.get(llama_server.url + "/v1/models", timeout=10).json()
    props = httpx.get(llama_server.url + "/props", timeout=10).json()
    assert props["default_generation_settings"]["n_ctx"] == REAL_N_CTX  # the real server's shape
    body["data"][0]["meta"]["n_ctx"] = 4 * REAL_N_CTX  # e.g. -c 2048 --parallel 4: the slot has a quarter
    body["data"][0]["meta"]["n_ctx_train"] = 8 * REAL_N_CTX
    slots = hosts(models_body=body, extra={"/props": props})
    wide = json.loads(json.dumps(body))
    wide["data"][0]["meta"]["n_ctx_train"] = 256  # the server runs with more than the model was trained for
    over = hosts(models_body=wide, extra={"/props": props})
    path = write_registry({"default_provider": "slots", "providers": {
        "slots": {"kind": "llama-cpp", "base_url": slots.url}, "over": {"kind": "llama-cpp", "base_url": over.url}}})
    bridge = Bridge.load(path)
    assert bridge.context_window(f"slots/{REAL_MODEL}") == REAL_N_CTX
    assert bridge.context_window(f"over/{REAL_MODEL}") == 256
    assert "/props" in slots.paths()


def test_llama_cpp_kind_never_asks_props_of_a_multi_model_server(hosts, write_registry) -> None:
    """llama.cpp's router mode lists several models; its /props could load one, so it is not asked."""
    body = {"object": "list", "data": [
        {"id": "a", "object": "model", "owned_by": "llamacpp", "meta": {"n_ctx": 8192, "n_ctx_train": 32768}},
        {"id": "b", "object": "model", "owned_by": "llamacpp"}]}
    router = hosts(models_body=body, extra={"/props": {"default_generation_settings": {"n_ctx": 1}}})
    path = write_registry({"default_provider": "r", "providers": {"r": {"kind": "llama-cpp", "base_url": router.url}}})
    bridge = Bridge.load(path)
    assert (bridge.context_window("r/a"), bridge.context_window("r/b")) == (8192, None)
    assert "/props" not in router.paths()


def test_live_context_through_the_proxy_comes_from_the_real_server(swap_proxy, llama_server, write_registry) -> None:
    """llama-swap in front of llama.cpp: no configured context, so the bridge asks the loaded model's /props
    through /upstream/<model>/props and gets llama.cpp's own n_ctx; the stopped model is never asked (no swap)."""
    swap_proxy.set_models([SwapModel(REAL_MODEL, llama_server.url),
                           SwapModel("cold", llama_server.url, state="stopped")])
    path = write_registry({"default_provider": "sam", "providers": {
        "sam": {"kind": "llama-swap", "base_url": swap_proxy.url}}})
    bridge = Bridge.load(path)
    assert bridge.context_window(f"sam/{REAL_MODEL}") == REAL_N_CTX
    assert bridge.context_window("sam/cold") is None
    asked = [r.path for r in swap_proxy.requests]
    assert f"/upstream/{REAL_MODEL}/props" in asked
    assert not any(p.startswith("/upstream/cold") for p in asked) and swap_proxy.swaps == []


def test_chat_through_the_proxy_reaches_llama_cpp_streaming_too(swap_proxy) -> None:
    answer = chat(swap_proxy.url, "hi", max_tokens=4)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] <= 4 and answer.json()["model"] == REAL_MODEL
    with httpx.stream("POST", swap_proxy.url + "/v1/chat/completions", timeout=60, json={
            "model": REAL_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "stream": True}) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"
    unknown = httpx.post(swap_proxy.url + "/v1/chat/completions", json={"model": "nope", "messages": []}, timeout=10)
    assert unknown.status_code == 404
    assert unknown.json() == {"src": "llama-swap", "error": "no router for requested model"}


# What a real llama.cpp server (xllamacpp 2026.10.11549) answers when a request asks more than n_ctx
# (recorded 2026-11-25; the opencode limits policy depends on it):
# - a prompt that does not fit: HTTP 400, JSON (also when "stream": true; no SSE), exactly
#   {"error": {"code": 400, "message": "request (N tokens) exceeds the available context size (CTX tokens),
#    try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": N, "n_ctx": CTX}};
# - a prompt that fits with a max_tokens beyond what is left: HTTP 200, generation silently stops when the
#   context is full, finish_reason "length", prompt_tokens + completion_tokens == n_ctx (no error at all).
# - opencode 1.18.33 itself (`opencode run -m P/M "hi"`, no limit emitted, so max_tokens 32000): its main request
#   is about 12.6k tokens of this byte vocabulary (31 KB of JSON), its title request about 2.6k; against a
#   512-token server both get the 400 above, opencode prints llama.cpp's message ("Error: request (12580 tokens)
#   exceeds the available context size (512 tokens), try increasing it") and exits 1 after about 40 s.
# - llama.cpp serves no more than the model's n_ctx_train: -c 32768 on a model trained for 4096 serves 4096.
@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_a_prompt_beyond_n_ctx_gets_llama_cpps_exceed_context_error(via, llama_server, swap_proxy) -> None:
    url = llama_server.url if via == "direct" else swap_proxy.url
    for stream in (False, True):
        answer = chat(url, "x" * (REAL_N_CTX + 100), max_tokens=8, stream=stream)
        assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        tokens = error["n_prompt_tokens"]
        assert tokens > REAL_N_CTX
        assert error == {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": tokens,
                         "n_ctx": REAL_N_CTX, "message": f"request ({tokens} tokens) exceeds the available "
                                                         f"context size ({REAL_N_CTX} tokens), try increasing it"}


def test_max_tokens_beyond_what_is_left_is_cut_at_n_ctx_without_error(llama_server) -> None:
    answer = chat(llama_server.url, "hi", max_tokens=32000, ignore_eos=True)  # opencode's default without limit
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    assert answer.json()["choices"][0]["finish_reason"] == "length"
    assert usage["prompt_tokens"] + usage["completion_tokens"] == REAL_N_CTX


def test_llama_cpp_serves_no_more_than_n_ctx_train_and_the_kind_agrees(tmp_path, write_registry) -> None:
    """A server started with a larger -c than the model was trained for serves n_ctx_train (llama.cpp caps it);
    the llama-cpp kind's cap gives the same number even from a server that did not cap."""
    from boocoder_bridge.demo.llama_server import LlamaServer
    from boocoder_bridge.demo.model import write_tiny_llama

    model = write_tiny_llama(tmp_path / "short.gguf", n_ctx_train=384)
    with LlamaServer(model, n_ctx=2048, alias="short", log=tmp_path / "server.log") as server:
        props = httpx.get(server.url + "/props", timeout=10).json()
        meta = httpx.get(server.url + "/v1/models", timeout=10).json()["data"][0]["meta"]
        assert (props["default_generation_settings"]["n_ctx"], meta["n_ctx"], meta["n_ctx_train"]) == (384, 384, 384)
        path = write_registry({"default_provider": "box", "providers": {
            "box": {"kind": "llama-cpp", "base_url": server.url}}})
        assert Bridge.load(path).context_window("box/short") == 384


@pytest.mark.opencode
def test_opencode_reaches_a_real_llama_cpp_server_within_its_limits(llama_server_16k, write_registry, tmp_path) -> None:
    """The real opencode, with the bridge's config, through the llama-swap-shaped proxy to a real llama.cpp
    server: the live context comes from llama.cpp's /props, and every request opencode sends is one the server
    accepts (200, no exceed_context_size_error) with max_tokens from the emitted limit."""
    import subprocess

    from boocoder_bridge.demo.proxy import SwapProxy
    from tests.conftest import REAL_N_CTX_OPENCODE
    from tests.opencode_bin import opencode_binary, opencode_env

    opencode = opencode_binary()
    with SwapProxy([SwapModel(REAL_MODEL, llama_server_16k.url)]) as proxy:
        registry = write_registry({"default_provider": "sam", "providers": {"sam": {
            "kind": "llama-swap", "base_url": proxy.url, "models": {REAL_MODEL: {"max_output": 32}}}}})
        bridge = Bridge.load(registry, tmp_path / "state")
        assert bridge.context_window(f"sam/{REAL_MODEL}") == REAL_N_CTX_OPENCODE  # live, from llama.cpp
        config_path, _ = bridge.write_opencode_config()
        run = subprocess.run([str(opencode), "run", "-m", f"sam/{REAL_MODEL}", "hi"], capture_output=True,
                             text=True, timeout=180, env=opencode_env(tmp_path / "home", config_path))
        chats = [r.body for r in proxy.requests if r.method == "POST" and r.path == "/v1/chat/completions"]
        assert run.returncode == 0, run.stderr[-2000:]
        assert chats and {c["model"] for c in chats} == {REAL_MODEL}
        assert all(0 < c["max_tokens"] <= 32 for c in chats)
        assert {status for path, status in proxy.forwarded} == {200}
