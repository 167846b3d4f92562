from __future__ import annotations

import json
from pathlib import Path

import pytest

from boocoder_bridge.errors import RegistryError
from boocoder_bridge.registry import load_registry, registry_from_env
from tests.fakehost import FIXTURES

KINDS = ("llama-swap", "openai-compatible")


def base() -> dict:
    return {"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1"}}}


def problem(tmp_path: Path, data: object) -> RegistryError:
    path = tmp_path / "fleet.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(RegistryError) as caught:
        load_registry(path, KINDS)
    error = caught.value
    assert str(path) in str(error)
    return error


def test_example_fleet_loads_with_every_field() -> None:
    registry = load_registry(FIXTURES / "fleet.example.json", KINDS)
    assert list(registry.providers) == ["sam-desktop", "embedding", "deepseek"]
    sam = registry.providers["sam-desktop"]
    assert sam.route_base == "http://100.101.41.16:8402/v1"
    assert sam.discovery_base == "http://100.101.41.16:8401/v1"
    assert registry.providers["embedding"].route_base == "http://100.90.172.55:8411/v1"
    deepseek = registry.providers["deepseek"]
    assert (deepseek.discover, deepseek.timeout_s, deepseek.api_key_env) == (False, 2.0, "DEEPSEEK_API_KEY")
    assert deepseek.models["deepseek-chat"].context_window == 131072
    assert not deepseek.enabled({}) and deepseek.enabled({"DEEPSEEK_API_KEY": "x"})
    assert not deepseek.enabled({"DEEPSEEK_API_KEY": ""})


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    data = base()
    data["providers"]["home"]["sidcar_url"] = "http://h:2"
    error = problem(tmp_path, data)
    assert error.json_path == "$.providers.home.sidcar_url"
    assert "did you mean 'sidecar_url'" in str(error)


def test_a_secret_in_the_registry_is_refused(tmp_path: Path) -> None:
    data = base()
    data["providers"]["home"]["api_key"] = "sk-live-123"
    error = problem(tmp_path, data)
    assert error.json_path == "$.providers.home.api_key"
    assert "api_key_env" in str(error)
    assert "sk-live-123" not in str(error)


@pytest.mark.parametrize(("mutate", "path", "fragment"), [
    (lambda d: d.update(default_provider="nope"), "$.default_provider", "not a provider"),
    (lambda d: d["providers"].update({"Bad/Id": {"kind": "llama-swap", "base_url": "http://h"}}),
     '$.providers["Bad/Id"]', "not a valid ID"),
    (lambda d: d["providers"]["home"].update(kind="ollama"), "$.providers.home.kind", "unknown provider kind"),
    (lambda d: d["providers"]["home"].update(base_url="ftp://h"), "$.providers.home.base_url", "http(s) URL"),
    (lambda d: d["providers"]["home"].update(base_url="http://h:1/v1"), "$.providers.home.base_url", "/v1"),
    (lambda d: d["providers"]["home"].update(base_url="http://h:abc"), "$.providers.home.base_url", "port"),
    (lambda d: d["providers"]["home"].update(sidecar_url="http://h:70000"), "$.providers.home.sidecar_url", "port"),
    (lambda d: d["providers"]["home"].update(base_url="http://h:0"), "$.providers.home.base_url", "1 to 65535"),
    (lambda d: d["providers"]["home"].pop("kind"), "$.providers.home", "missing key 'kind'"),
    (lambda d: d["providers"]["home"].update(api_key_env="MY KEY"), "$.providers.home.api_key_env", "env var"),
    (lambda d: d["providers"]["home"].update(timeout_s=0), "$.providers.home.timeout_s", ""),
    (lambda d: d["providers"]["home"].update(models={"m": {"context_window": "big"}}),
     "$.providers.home.models.m.context_window", "whole number"),
    (lambda d: d["providers"]["home"].update(bare_ids=["home/x"]), "$.providers.home.bare_ids[0]", "never read"),
    (lambda d: d["providers"].update(other={"kind": "llama-swap", "base_url": "http://o", "bare_ids": ["m"]})
     or d["providers"]["home"].update(bare_ids=["m"]), "$.providers.other.bare_ids[0]", "already claimed"),
])
def test_invalid_registries_name_the_json_path(tmp_path: Path, mutate, path: str, fragment: str) -> None:
    data = base()
    mutate(data)
    error = problem(tmp_path, data)
    assert error.json_path == path
    assert fragment in error.problem + error.fix


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    error = problem(tmp_path, '{"default_provider": "home",\n "providers": }')
    assert error.json_path == "$"
    assert "line 2" in error.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="file not found"):
        load_registry(tmp_path / "nope.json", KINDS)


def test_all_problems_are_collected_for_validate(tmp_path: Path) -> None:
    data = base()
    data["providers"]["home"]["sidcar_url"] = "http://x"
    data["providers"]["home"]["labl"] = "x"
    error = problem(tmp_path, data)
    assert {e.json_path for e in [error, *error.others]} == {"$.providers.home.sidcar_url", "$.providers.home.labl"}


def test_legacy_environment_becomes_a_registry() -> None:
    registry = registry_from_env({"LLAMA_SWAP_URL": "http://10.0.0.5:8080/v1/"})
    assert registry.default_provider == "local"
    assert list(registry.providers) == ["local"]
    assert registry.providers["local"].route_base == "http://10.0.0.5:8080/v1"
    with_key = registry_from_env({"LLAMA_SWAP_URL": "http://h:1", "DEEPSEEK_API_KEY": "sk-x"})
    assert list(with_key.providers) == ["local", "deepseek"]
    assert with_key.parse_model_id("deepseek-chat")[0].provider == "deepseek"
    assert with_key.parse_model_id("qwen3")[0].provider == "local"
    assert "sk-x" not in with_key.model_dump_json()


def test_no_registry_and_no_legacy_env_is_a_clear_error() -> None:
    with pytest.raises(RegistryError, match="LLAMA_SWAP_URL"):
        registry_from_env({})
