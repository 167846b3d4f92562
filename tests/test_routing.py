"""The one resolver: every purpose agrees; sidecar per provider; context never invented."""

from __future__ import annotations

import json

import pytest

from boocoder_bridge import Bridge
from boocoder_bridge.errors import ModelIdError, ProviderUnavailableError
from boocoder_bridge.routing import PURPOSES
from tests.fakehost import llama_swap_body
from tests.helpers import build_fleet, deepseek


@pytest.fixture
def fleet(hosts, write_registry):
    fleet = build_fleet(hosts, write_registry, {
        "sam-desktop": {"models_body": llama_swap_body(
            "qwen3-coder-30b", "deepseek-r1-distill-qwen-32b", "unsloth/Qwen3:Q4_K_M", "hot", "shared",
            loaded=("hot",), contexts={"qwen3-coder-30b": 65536}, outputs={"qwen3-coder-30b": 8192}),
            "props": {"hot": 16384},
            "provider": {"models": {"shared": {"context_window": 32768, "upstream_id": "shared-q8"}}}},
        "embedding": {"models_body": llama_swap_body("shared", "bge-m3", contexts={"shared": 4096})},
    }, others={"deepseek": deepseek()})
    sam = fleet.hosts["sam-desktop"]
    data = json.loads(fleet.registry.read_text())  # the sidecar is the host's own /sidecar path
    data["providers"]["sam-desktop"]["sidecar_url"] = sam.url + "/sidecar"
    fleet.registry.write_text(json.dumps(data))
    return fleet


def test_all_purposes_agree(fleet) -> None:
    path, _, _ = fleet
    bridge = Bridge.load(path)
    for model_id in ("sam-desktop/qwen3-coder-30b", "qwen3-coder-30b", "embedding/shared", "llama-swap/hot"):
        routes = [bridge.resolve(model_id, purpose) for purpose in PURPOSES]
        assert len({(r.provider, r.model, r.base_url, r.upstream_model, r.context_window, r.max_output,
                     r.opencode_model) for r in routes}) == 1
        assert bridge.context_window(model_id) == routes[0].context_window


def test_sidecar_is_an_attribute_of_the_provider(fleet) -> None:
    path, sam, emb = fleet
    bridge = Bridge.load(path)
    on_sam = bridge.resolve("sam-desktop/shared")
    on_emb = bridge.resolve("embedding/shared")
    assert (on_sam.base_url, on_sam.via_sidecar) == (sam.url + "/sidecar/v1", True)
    assert (on_emb.base_url, on_emb.via_sidecar) == (emb.url + "/v1", False)


def test_same_model_name_on_two_hosts_stays_apart(fleet) -> None:
    path, _, _ = fleet
    bridge = Bridge.load(path)
    on_sam, on_emb = bridge.resolve("sam-desktop/shared"), bridge.resolve("embedding/shared")
    assert (on_sam.upstream_model, on_sam.context_window) == ("shared-q8", 32768)  # registry override wins
    assert (on_emb.upstream_model, on_emb.context_window) == ("shared", 4096)  # the host's declaration


def test_context_window_sources_and_unknown(fleet) -> None:
    path, sam, _ = fleet
    bridge = Bridge.load(path)
    assert bridge.context_window("sam-desktop/qwen3-coder-30b") == 65536
    assert bridge.context_window("sam-desktop/hot") == 16384  # loaded: llama.cpp /props
    assert bridge.context_window("sam-desktop/unsloth/Qwen3:Q4_K_M") is None  # unloaded, undeclared
    assert bridge.context_window("sam-desktop/not-listed-anywhere") is None
    assert bridge.resolve("sam-desktop/hot").max_output is None
    assert not any("unsloth" in p for p in sam.paths())  # never swapped in to learn its size


def test_a_local_model_never_routes_to_the_cloud(fleet, monkeypatch) -> None:
    path, sam, _ = fleet
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-secret-value")
    bridge = Bridge.load(path)
    for model_id in ("deepseek-r1-distill-qwen-32b", "sam-desktop/deepseek-r1-distill-qwen-32b",
                     "llama-swap/deepseek-chat"):
        route = bridge.resolve(model_id)
        assert route.provider == "sam-desktop" and route.base_url.startswith(sam.url), model_id
        assert route.api_key_env is None
    cloud = bridge.resolve("deepseek-chat")
    assert (cloud.provider, cloud.legacy, cloud.context_window, cloud.api_key_env) == (
        "deepseek", True, 131072, "DEEPSEEK_API_KEY")
    assert bridge.resolve("deepseek-reasoner").context_window is None  # no invented default


def test_disabled_provider_is_refused_not_rerouted(fleet) -> None:
    path, _, _ = fleet
    bridge = Bridge.load(path)
    for model_id in ("deepseek/deepseek-chat", "deepseek-chat"):
        with pytest.raises(ProviderUnavailableError, match="DEEPSEEK_API_KEY"):
            bridge.resolve(model_id)


def test_unknown_purpose_and_bad_ids(fleet) -> None:
    path, _, _ = fleet
    bridge = Bridge.load(path)
    with pytest.raises(ModelIdError, match="purpose"):
        bridge.resolve("sam-desktop/x", "training")
    with pytest.raises(ModelIdError):
        bridge.resolve("sam-desktop/")


def test_resolver_uses_cache_without_network(fleet) -> None:
    path, sam, _ = fleet
    Bridge.load(path).resolve("sam-desktop/hot")
    asked = len(sam.requests)
    again = Bridge.load(path)
    assert again.resolve("sam-desktop/hot").context_window == 16384
    assert len(sam.requests) == asked
