"""The registry's fast shape gate never accepts what the JSON Schema refuses (so skipping jsonschema for a file
the gate accepts changes no verdict), and an invalid file is still explained by the schema."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boocoder_bridge import jsonschemas
from boocoder_bridge.errors import RegistryError
from boocoder_bridge.registry import SCHEMA, _fits_schema, registry_from_data
from tests.test_fuzz import KINDS, json_values, mutate, valid_registries

tricky = st.sampled_from([
    None, True, False, 0, -1, 0.5, 2.0, 601, "", " ", "x" * 513, "http://h:1/\x1c", "http://h\u00a0:1", "ftp://h",
    "http://h/" + "a" * 2100, "Home", "a/b", "NAME", "1NAME", ["a", "a"], ["a", 1], [], {}, {"": {}},
    {"m": {"name": ""}}, {"m": {"context_window": 0}}, {"m": {"context_window": 1.0}}, {"m": {"extra": 1}},
    float("inf"), float("nan"), "\u212a", "h\ufeff"])
spots = st.sampled_from([
    ("default_provider",), ("$schema",), ("extra",), ("providers",), ("providers", 0, "kind"),
    ("providers", 0, "base_url"), ("providers", 0, "sidecar_url"), ("providers", 0, "label"),
    ("providers", 0, "api_key_env"), ("providers", 0, "enabled_if_env"), ("providers", 0, "discover"),
    ("providers", 0, "timeout_s"), ("providers", 0, "refresh_s"), ("providers", 0, "request_timeout_s"),
    ("providers", 0, "probe_timeout_s"), ("providers", 0, "bare_ids"), ("providers", 0, "models"),
    ("providers", 0, "token")])


def _set(data: dict, path: tuple, value: object) -> dict:
    target = data
    for key in path[:-1]:
        target = target[sorted(target)[0]] if key == 0 else target[key]
    target[path[-1]] = value
    return data


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(valid_registries, spots, tricky | json_values)
def test_the_gate_accepts_only_what_the_schema_accepts(data, spot, junk) -> None:
    assert _fits_schema(data) and not jsonschemas.errors(SCHEMA, data)  # valid ones take the fast path
    broken = _set(json.loads(json.dumps(data)), spot, junk)
    if _fits_schema(broken):
        assert jsonschemas.errors(SCHEMA, broken) == []


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(valid_registries, st.integers(0, 100), json_values)
def test_mutated_registries_agree_too(data, where, junk) -> None:
    broken = mutate(json.loads(json.dumps(data)), where, junk)
    if _fits_schema(broken):
        assert jsonschemas.errors(SCHEMA, broken) == []


def test_a_refused_file_is_explained_by_the_schema() -> None:
    data = {"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1",
                                                                "timeout_s": 0}}}
    with pytest.raises(RegistryError, match=r"\$\.providers\.home\.timeout_s"):
        registry_from_data(data, "<test>", KINDS)


def test_a_warm_command_never_imports_jsonschema(tmp_path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"default_provider": "home", "providers": {
        "home": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9", "discover": False,
                 "models": {"m": {"context_window": 4096}}}}}))
    probe = ("import sys; from boocoder_bridge.cli import main; "
             f"main(['--registry', {str(path)!r}, '--state-dir', {str(tmp_path / 's')!r}, 'resolve', 'home/m']); "
             "print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False"


def test_the_gate_knows_every_key_the_schema_allows() -> None:
    """A key the schema allows but the gate does not know sends every registry using it down the slow path
    (jsonschema imported and compiled on each command), silently; ``refresh_s`` did."""
    from boocoder_bridge.registry import _ModelShape, _ProviderShape, _RegistryShape

    schema = jsonschemas.load_schema(SCHEMA)
    gate_keys = {name: {f.alias or key for key, f in shape.model_fields.items()}
                 for name, shape in (("registry", _RegistryShape), ("provider", _ProviderShape),
                                     ("model", _ModelShape))}
    assert set(schema["properties"]) == gate_keys["registry"]
    assert set(schema["$defs"]["provider"]["properties"]) == gate_keys["provider"]
    assert set(schema["$defs"]["model"]["properties"]) == gate_keys["model"]
    data = {"default_provider": "home", "providers": {"home": {"kind": "llama-swap", "base_url": "http://h:1",
                                                                "refresh_s": 5}}}
    assert _fits_schema(data)


def test_the_example_fleet_with_every_field_takes_the_fast_path() -> None:
    """A key added to the schema but not to the gate would send every registry using it through jsonschema."""
    from tests.fakehost import FIXTURES

    data = json.loads((FIXTURES / "fleet.example.json").read_text())
    assert not jsonschemas.errors(SCHEMA, data)
    assert _fits_schema(data)


def test_the_committed_schema_is_the_one_the_models_generate() -> None:
    """The registry's shape has one owner, its pydantic models: the schema file is generated from them."""
    from boocoder_bridge.registry import json_schema

    fix = "run: python -c 'from boocoder_bridge.registry import write_json_schema; write_json_schema()'"
    assert jsonschemas.load_schema(SCHEMA) == json_schema(), fix
