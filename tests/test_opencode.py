"""Emitted opencode config: deterministic, schema-valid, secret-free, snapshot-tested, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from boocoder_bridge import Bridge
from boocoder_bridge.errors import StateError
from boocoder_bridge.opencode import render, write_config
from tests.fakehost import OPENCODE_SCHEMA, RESPONSES, llama_swap_body
from tests.helpers import deepseek, down


class TextSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "json"


def opencode_schema_errors(config: dict) -> list[str]:
    from jsonschema import Draft202012Validator

    schema = json.loads(OPENCODE_SCHEMA.read_text())
    return [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(config)]


@pytest.fixture
def fleet(hosts, write_registry, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-very-secret-42")
    sam = hosts(models_body=json.loads((RESPONSES / "example-v1-models-aliases-peers.json").read_text()))
    emb = hosts(models_body=llama_swap_body("bge-m3", "qwen3-coder-30b", "unsloth/Qwen3:Q4_K_M",
                                            contexts={"qwen3-coder-30b": 65536}, outputs={"qwen3-coder-30b": 8192}))
    # Fixed ports in the snapshot: rewrite the live URLs before comparing.
    path = write_registry({
        "default_provider": "sam-desktop",
        "providers": {
            "sam-desktop": {"kind": "llama-swap", "base_url": sam.url, "sidecar_url": sam.url + "/sidecar",
                            "label": "Sam's desktop",
                            "models": {"llama-3.1-8b": {"context_window": 131072, "max_output": 4096,
                                                        "name": "Llama 3.1 8B"}}},
            "embedding": {"kind": "llama-swap", "base_url": emb.url,
                          "models": {"bge-m3": {"upstream_id": "bge-m3-f16"}}},
            "deepseek": deepseek(base_url="https://api.deepseek.com", label=None),  # written into config, never asked
            "offline-box": down(),
        },
    })
    return Bridge.load(path), {sam.url: "http://SAM", emb.url: "http://EMB"}


def stable(text: str, urls: dict[str, str]) -> str:
    for live, fixed in urls.items():
        text = text.replace(live, fixed)
    return text


def test_config_snapshot(fleet, snapshot) -> None:
    bridge, urls = fleet
    config, stale = bridge.opencode_config()
    text = stable(render(config), urls)
    assert text == snapshot(extension_class=TextSnapshot)
    assert json.loads(text) == snapshot(extension_class=JSONSnapshotExtension)
    assert stale == ["offline-box"]


def test_config_rules(fleet) -> None:
    bridge, _ = fleet
    config, _ = bridge.opencode_config()
    providers = config["provider"]
    assert list(providers) == sorted(providers)
    sam = providers["sam-desktop"]
    assert sam["npm"] == "@ai-sdk/openai-compatible"
    assert sam["options"]["baseURL"].endswith("/sidecar/v1")  # sidecar where the provider has one
    assert "apiKey" not in sam["options"]
    assert "gpt-oss-20b:high" not in sam["models"]  # aliases stay out of the catalog
    assert "gpu-box/qwen3-32b" in sam["models"] and "coding" in sam["models"]  # peers and selectors stay
    assert sam["models"]["llama-3.1-8b"] == {"name": "Llama 3.1 8B", "limit": {"context": 131072, "output": 4096}}
    emb = providers["embedding"]["models"]
    assert emb["bge-m3"] == {"name": "bge-m3", "id": "bge-m3-f16"}  # id only where the upstream name differs
    assert emb["qwen3-coder-30b"]["limit"] == {"context": 65536, "output": 8192}
    assert "limit" not in emb["unsloth/Qwen3:Q4_K_M"]  # unknown context: no limit, never invented
    assert providers["deepseek"]["options"] == {"baseURL": "https://api.deepseek.com/v1",
                                                "apiKey": "{env:DEEPSEEK_API_KEY}"}
    assert "limit" not in providers["deepseek"]["models"]["deepseek-reasoner"]
    assert providers["offline-box"]["models"] == {}


def test_config_validates_against_opencodes_own_schema(fleet) -> None:
    bridge, _ = fleet
    config, _ = bridge.opencode_config()
    assert opencode_schema_errors(config) == []


def test_schema_check_catches_a_broken_entry() -> None:
    broken = {"provider": {"p": {"models": {"m": {"limit": {"context": "big"}}}}}}
    assert opencode_schema_errors(broken)


def test_no_secret_in_emitted_config(fleet) -> None:
    bridge, _ = fleet
    text = render(bridge.opencode_config()[0])
    assert "sk-very-secret-42" not in text and "{env:DEEPSEEK_API_KEY}" in text


def test_disabled_provider_gets_no_entry(fleet, monkeypatch) -> None:
    bridge, _ = fleet
    monkeypatch.delenv("DEEPSEEK_API_KEY")
    assert "deepseek" not in bridge.opencode_config()[0]["provider"]


def test_output_is_deterministic(fleet) -> None:
    bridge, _ = fleet
    first = render(bridge.opencode_config()[0])
    assert render(Bridge.load(bridge.registry, bridge.state_dir).opencode_config()[0]) == first


def test_write_is_atomic(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "opencode.json"
    write_config(target, {"provider": {"a": {}}})
    before = target.read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StateError, match=f"cannot write {target}: disk full"):
        write_config(target, {"provider": {"b": {}}})
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["opencode.json"]  # no temp file left behind
