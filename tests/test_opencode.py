"""Emitted opencode config: deterministic, schema-valid, secret-free, snapshot-tested, written atomically."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from boocoder_bridge import Bridge
from boocoder_bridge.errors import StateError
from boocoder_bridge.opencode.config import NEUTRAL_MODEL, plan_limit, render, write_config
from tests.fakehost import RESPONSES, llama_swap_body
from tests.helpers import deepseek, down, opencode_schema_errors


class TextSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "json"


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
    assert sam["options"]["apiKey"] == ""  # never left for a stored login or a catalog env var to fill
    assert sam["options"]["timeout"] == 300_000  # a silent host cannot hold a request forever
    assert sam["env"] == [] and sam["whitelist"] == list(sam["models"])  # exactly these models, no env key
    assert "gpt-oss-20b:high" not in sam["models"]  # aliases stay out of the catalog
    assert "gpu-box/qwen3-32b" in sam["models"] and "coding" in sam["models"]  # peers and selectors stay
    llama = sam["models"]["llama-3.1-8b"]
    assert llama["name"] == "Llama 3.1 8B" and llama["id"] == "llama-3.1-8b"
    assert llama["limit"] == {"context": 131072, "input": 122880, "output": 4096}
    assert {k: llama[k] for k in NEUTRAL_MODEL} == NEUTRAL_MODEL  # nothing left for a catalog model to fill
    emb = providers["embedding"]["models"]
    assert emb["bge-m3"]["id"] == "bge-m3-f16"
    assert emb["qwen3-coder-30b"]["limit"] == {"context": 65536, "input": 57344, "output": 8192}
    assert emb["unsloth/Qwen3:Q4_K_M"]["limit"] == {"context": 0, "output": 0}  # unknown: opencode's own 0
    assert providers["deepseek"]["options"]["apiKey"] == "{env:DEEPSEEK_API_KEY}"
    assert providers["deepseek"]["models"]["deepseek-chat"]["interleaved"] == {"field": "reasoning_content"}
    assert providers["deepseek"]["models"]["deepseek-reasoner"]["limit"] == {"context": 0, "output": 0}
    assert providers["offline-box"]["models"] == {} and providers["offline-box"]["whitelist"] == []


@pytest.mark.parametrize(("context", "max_output", "headroom", "expected", "works"), [
    (4096, None, None, (4096, 3584, 1024), False),
    (8192, 8192, None, (8192, 7168, 4096), False),  # a configured max_output is clamped to half the window
    (16384, None, None, (16384, 14336, 4096), True),
    (32768, None, None, (32768, 28672, 8192), True),
    (131072, None, None, (131072, 122880, 32000), True),  # opencode caps output at 32000
    (131072, 8192, 0, (131072, 131072, 8192), True),
    (65536, None, 100000, (65536, 32768, 16384), True),  # headroom at most half the window
])
def test_limit_policy(context, max_output, headroom, expected, works) -> None:
    limit = plan_limit(context, max_output, headroom)
    assert (limit.context, limit.input, limit.output) == expected
    assert limit.output <= limit.context // 2 and limit.input <= limit.context
    assert limit.compaction_works is works
    assert plan_limit(None, 4096, 100) is None  # an unknown window is never invented


def test_generate_warns_about_unknown_and_small_windows(hosts, write_registry, run_cli) -> None:
    host = hosts(models_body=llama_swap_body("big", "small", "mystery", contexts={"big": 65536, "small": 8192}))
    path = write_registry({"default_provider": "box", "providers": {"box": {"kind": "llama-swap",
                                                                            "base_url": host.url}}})
    result = run_cli("--registry", str(path), "generate")
    assert result.code == 0 and json.loads(result.out)["provider"]["box"]["models"]["big"]["limit"]["context"] == 65536
    warnings = [line for line in result.err.splitlines() if "warning" in line]
    assert len(warnings) == 2, result.err
    assert "box/mystery" in warnings[0] and "context_window" in warnings[0] and "box/big" not in warnings[0]
    assert "box/small (8192)" in warnings[1] and "auto-compaction off" in warnings[1]


def test_a_warning_names_a_few_models_and_counts_the_rest() -> None:
    """A host with 50,000 models of unknown window once made a 1.2 MB warning line."""
    from boocoder_bridge.opencode.config import NOTE_NAMES_SHOWN, window_notes

    many = {f"m{i:05d}": {"limit": {"context": 0, "output": 0}} for i in range(50_000)}
    (note,) = window_notes({"provider": {"big": {"models": many}, "few": {"models": {"x": {}}}}})
    assert note.startswith("no known context window for big/m00000, big/m00001, ") and len(note) < 400
    assert f"and {50_001 - NOTE_NAMES_SHOWN:,} more:" in note and "set context_window" in note
    (note,) = window_notes({"provider": {"few": {"models": {"x": {}, "y": {}}}}})
    assert "few/x, few/y:" in note and "more" not in note


def test_host_text_cannot_be_substituted(hosts, write_registry) -> None:
    """Every string from a host is written so that opencode's {env:}/{file:} substitution never matches it."""
    hostile = ["inj-{env:SECRET_X}", "{file:/etc/hostname}", "a{env:X}b{file:y}"]
    body = {"data": [{"id": i, "name": "{env:SECRET_X} {file:/nonexistent}", "object": "model"} for i in hostile]}
    host = hosts(models_body=body)
    path = write_registry({"default_provider": "h", "providers": {
        "h": {"kind": "openai-compatible", "base_url": host.url, "api_key_env": "H_KEY", "label": "{env:LABEL}"}}})
    config, _ = Bridge.load(path).opencode_config()
    text = render(config)
    strings = [s for s in _strings(json.loads(text)) if "{" in s]
    assert set(strings) >= {*hostile, "{env:SECRET_X} {file:/nonexistent}", "{env:LABEL}", "{env:H_KEY}"}
    assert "{env:" not in text.replace('"{env:H_KEY}"', "") and "{file:" not in text  # only the bridge's own key
    assert json.loads(text) == config  # ids stay exact


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.text(alphabet='{}"\\/:\n ae$\x01', max_size=12),
                    lambda inner: st.dictionaries(st.text(alphabet='{}"\\:\n a', max_size=8), inner, max_size=4)
                    | st.lists(inner, max_size=3), max_leaves=20))
def test_render_keeps_every_value_and_leaves_no_brace_in_a_string(value) -> None:
    config = {"provider": {"p": {"options": {"apiKey": "{env:OWN_KEY}"}, "models": {"m": {"name": value}}}}}
    text = render(config)
    assert json.loads(text) == config  # exact values, including every "{"
    assert '"{env:OWN_KEY}"' in text
    strings = re.findall(r'"(?:[^"\\]|\\.)*"', text.replace('"{env:OWN_KEY}"', '""'))
    assert not any("{" in s for s in strings)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.text(alphabet='{}"\\/:\n ae$\x01\u00e9', max_size=12) | st.integers() | st.none(),
                    lambda inner: st.dictionaries(st.text(alphabet='{}"\\:\n a', max_size=8), inner, max_size=4)
                    | st.lists(inner, max_size=3), max_leaves=30),
       st.integers(min_value=1, max_value=200))
def test_pieces_are_the_whole_encoding_byte_for_byte(value, piece_bytes) -> None:
    """``render_pieces`` (a 50,000-model config is written piece by piece) gives exactly the text of encoding the
    whole config at once and escaping it, whatever the nesting and wherever the pieces are cut."""
    from pydantic_core import to_json

    from boocoder_bridge.opencode import config as opencode

    config = {"$schema": "s", "provider": {"p": {"options": {"apiKey": "{env:OWN_KEY}"}, "whitelist": ["m"],
                                                 "models": {"m": {"name": value}, "n": value, "o": {}}},
                                           "q": value}, "extra": value}
    whole = to_json(config, indent=2).decode()
    if opencode._foreign_braces(config):
        whole = opencode._OWN_KEY.sub(r'"apiKey": "{env:\1}"', opencode._BRACED_STRING.sub(
            opencode._escape_braces, whole))
    saved = opencode.PIECE_BYTES
    opencode.PIECE_BYTES = piece_bytes
    try:
        pieces = list(opencode.render_pieces(config))
    finally:
        opencode.PIECE_BYTES = saved
    assert b"".join(pieces).decode() == whole + "\n"
    assert all(piece.endswith(b"\n") for piece in pieces)


def test_dispatch_content_fits_one_environment_variable_whatever_the_fleet() -> None:
    """Linux passes at most 128 KiB per environment string: 3,000 models made ``run`` a traceback (E2BIG)."""
    from boocoder_bridge.errors import BridgeError
    from boocoder_bridge.opencode.config import CONTENT_LIMIT_BYTES, PINNED_KEYS, dispatch_content

    def entry(models: dict) -> dict:
        return {"npm": "@ai-sdk/openai-compatible", "name": "P", "env": [], "whitelist": list(models),
                "options": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "{env:P_KEY}", "timeout": 5000},
                "models": models}

    many = {f"m{i:04d}-{'x' * 60}": {"name": f"n{i}", "id": f"up-{i}", "limit": {"context": 0, "output": 0}}
            for i in range(3000)}
    small = {"b": entry({"x": {"name": "x", "id": "x"}})}
    content = dispatch_content({"provider": small}, '{"username": "me"}', ("b", "x"))
    assert content.warning is None and json.loads(content.text) == {"username": "me", "provider": small}

    chosen = "m2999-" + "x" * 60
    config = {"provider": {"a": entry(many), **small}}
    content = dispatch_content(config, '{"username": "me"}', ("a", chosen), compaction=False)
    assert len(content.text.encode()) <= CONTENT_LIMIT_BYTES and "3,001 models are too many" in content.warning
    data = json.loads(content.text)
    assert data["username"] == "me" and data["compaction"] == {"auto": False}
    assert data["provider"]["a"] == {**{k: entry(many)[k] for k in PINNED_KEYS}, "models": {chosen: many[chosen]}}
    assert data["provider"]["b"] == {k: small["b"][k] for k in PINNED_KEYS}  # host and key of every provider
    with pytest.raises(BridgeError, match="make the caller's"):
        dispatch_content(config, json.dumps({"x": "y" * CONTENT_LIMIT_BYTES}), ("a", chosen))

    wordy = {f"w{i}": {"name": "n" * 600, "id": f"up-{i}"} for i in range(300)}  # big entries, short keys
    content = dispatch_content({"provider": {"a": entry(wordy)}}, None, ("a", "w7"))
    assert content.warning and json.loads(content.text)["provider"]["a"]["whitelist"] == list(wordy)  # it fits


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


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
    """Whether a provider is enabled is read from the environment the bridge is loaded with."""
    bridge, _ = fleet
    assert "deepseek" in bridge.opencode_config()[0]["provider"]
    monkeypatch.delenv("DEEPSEEK_API_KEY")
    assert "deepseek" in bridge.opencode_config()[0]["provider"]  # bound at load: a later change is not seen
    assert "deepseek" not in Bridge.load(bridge.registry.source, bridge.state_dir).opencode_config()[0]["provider"]


def test_a_tiny_request_timeout_is_still_one_opencode_accepts(write_registry) -> None:
    """``request_timeout_s: 0.0001`` passes the registry check but rounded to ``timeout: 0``, which made opencode
    refuse the whole config (every provider's runs failed)."""
    path = write_registry({"default_provider": "p", "providers": {"p": {
        "kind": "openai-compatible", "base_url": "http://127.0.0.1:9", "discover": False, "request_timeout_s": 0.0001,
        "models": {"m": {}}}}})
    config, _ = Bridge.load(path).opencode_config()
    assert config["provider"]["p"]["options"]["timeout"] == 1
    assert opencode_schema_errors(config) == []


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
