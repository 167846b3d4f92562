"""The CLI contract scripts rely on: JSON shapes (checked against schemas/), exit codes, one-line errors."""

from __future__ import annotations

import json
import os

import pytest

from boocoder_bridge import jsonschemas
from tests.fakehost import FIXTURES, llama_swap_body
from tests.helpers import deepseek, down, llama_swap, registry_data, run_process


@pytest.fixture
def fleet(hosts, write_registry):
    sam = hosts(models_body=llama_swap_body("qwen3-coder-30b", "shared", contexts={"qwen3-coder-30b": 65536}))
    emb = hosts(models_body=llama_swap_body("shared"))
    return write_registry(registry_data({
        "sam-desktop": llama_swap(sam.url, sidecar_url=sam.url + "/sc", label="Sam's desktop"),
        "embedding": llama_swap(emb.url),
        "down": down(),
        "deepseek": deepseek(),
    }))


def assert_valid(schema: str, data: object) -> None:
    assert [e.message for e in jsonschemas.errors(schema, data)] == []


def test_resolve_json_contract(run_cli, fleet) -> None:
    result = run_cli("--registry", str(fleet), "resolve", "qwen3-coder-30b", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert_valid("resolve.schema.json", data)
    assert list(data) == ["id", "provider", "model", "legacy", "base_url", "via_sidecar", "upstream_model",
                          "api_key_env", "context_window", "max_output", "opencode_model"]
    assert data["id"] == data["opencode_model"] == "sam-desktop/qwen3-coder-30b"
    assert data["legacy"] is True and data["via_sidecar"] is True and data["base_url"].endswith("/sc/v1")
    assert data["context_window"] == 65536 and data["max_output"] is None


def test_resolve_purpose_and_text_view(run_cli, fleet) -> None:
    result = run_cli("--registry", str(fleet), "resolve", "embedding/shared", "--purpose", "compaction")
    assert result.code == 0
    assert "provider: embedding" in result.out and "context_window: unknown" in result.out


def test_models_json_contract(run_cli, fleet) -> None:
    result = run_cli("--registry", str(fleet), "models", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert_valid("models.schema.json", data)
    groups = {g["id"]: g for g in data["providers"]}
    assert [g["id"] for g in data["providers"]] == ["sam-desktop", "embedding", "down", "deepseek"]
    assert [m["id"] for m in groups["sam-desktop"]["models"]] == ["sam-desktop/qwen3-coder-30b",
                                                                   "sam-desktop/shared"]
    assert [m["id"] for m in groups["embedding"]["models"]] == ["embedding/shared"]
    assert groups["down"]["status"] == "offline" and groups["down"]["models"] == [] and groups["down"]["error"]
    assert groups["deepseek"]["status"] == "disabled"


def test_models_text_view_fits_80_columns(run_cli, fleet) -> None:
    result = run_cli("--registry", str(fleet), "models")
    assert result.code == 0
    assert result.out.startswith("Favorites")
    assert "Sam's desktop [sam-desktop, llama-swap]: online" in result.out
    assert max(len(line) for line in result.out.splitlines()) <= 80


def test_providers_json(run_cli, fleet) -> None:
    data = run_cli("--registry", str(fleet), "providers", "--json").json()
    rows = {r["id"]: r for r in data["providers"]}
    assert rows["sam-desktop"]["via_sidecar"] and rows["sam-desktop"]["status"] == "online"
    assert rows["deepseek"]["enabled"] is False and rows["down"]["status"] == "offline"


def test_generate_to_file_and_stdout(run_cli, fleet, tmp_path) -> None:
    out = tmp_path / "gen" / "opencode.json"
    result = run_cli("--registry", str(fleet), "generate", "--out", str(out))
    assert result.code == 0 and "no models known for: down (" in result.err  # never answered: nothing stale
    stdout = run_cli("--registry", str(fleet), "generate")
    assert json.loads(out.read_text()) == stdout.json()


def test_validate(run_cli, fleet) -> None:
    result = run_cli("--registry", str(fleet), "validate")
    assert result.code == 0 and "4 providers" in result.out
    ok = run_cli("--registry", str(FIXTURES / "fleet.example.json"), "validate")
    assert ok.code == 0


def test_validate_lists_every_problem(run_cli, write_registry) -> None:
    bad = write_registry({"default_provider": "x", "providers": {"x": {"kind": "llama-swap",
                                                                      "base_url": "http://h", "a": 1, "b": 2}}})
    result = run_cli("--registry", str(bad), "validate")
    assert result.code == 2
    assert result.err.count("error:") == 2 and "$.providers.x.a" in result.err and "$.providers.x.b" in result.err
    assert result.err.endswith(": 2 problems\n")


def test_validate_reports_every_layer_at_once_each_with_a_fix(run_cli, write_registry) -> None:
    bad = write_registry({"default_provider": "dsk", "providers": {
        "desk": {"kind": "llama-swap", "base_url": "http://127.0.0.1:1/v1", "sidcar_url": "http://x",
                 "timeout_s": -1, "discover": "yes", "bare_ids": ["a"]},
        "box": {"kind": "llama-swop", "base_url": "http://127.0.0.1:2", "bare_ids": ["a"],
                "models": {"m": {"context_window": 0}}}}})
    result = run_cli("--registry", str(bad), "validate")
    assert result.code == 2
    lines = result.err.splitlines()
    expected = {  # schema problems and cross-reference problems, in one run
        "$.providers.desk.sidcar_url": "did you mean 'sidecar_url'?",
        "$.providers.desk.discover": "use true or false",
        "$.providers.desk.timeout_s": "use a number greater than 0 and at most 600",
        "$.providers.box.models.m.context_window": "use a whole number at least 1",
        "$.default_provider": "did you mean 'desk'?",
        "$.providers.desk.base_url": "drop the /v1",
        "$.providers.box.kind": "did you mean 'llama-swap'?",
        "$.providers.box.bare_ids[0]": "keep it in one provider's bare_ids only",
    }
    for where, fix in expected.items():
        assert any(f": {where}: " in line and f"; fix: {fix}" in line for line in lines), (where, result.err)
    assert all("; fix: " in line for line in lines[:-1]) and lines[-1] == f"{bad}: 8 problems"


@pytest.mark.parametrize(("args", "fragments"), [
    (["resolve", "sam-desktop/"], ["no model part"]),
    (["resolve", "bad id"], ["whitespace"]),
    (["resolve", "x", "--purpose", "nope"], ["invalid choice"]),
])
def test_bad_ids_exit_2_without_traceback(fleet, args, fragments) -> None:
    result = run_process("--registry", str(fleet), *args)
    assert result.code == 2
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err


def test_bad_registry_exits_2_with_one_line(write_registry) -> None:
    bad = write_registry({"default_provider": "x", "providers": {"x": {"kind": "llama-swap",
                                                                      "base_url": "http://h", "sidcar_url": "x"}}})
    result = run_process("--registry", str(bad), "models")
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert str(bad) in result.err and "$.providers.x.sidcar_url" in result.err


def test_disabled_provider_exits_3(fleet) -> None:
    result = run_process("--registry", str(fleet), "resolve", "deepseek-chat")
    assert result.code == 3 and "DEEPSEEK_API_KEY" in result.err and "Traceback" not in result.err


def test_registry_from_env_var_and_legacy_env(hosts, fleet) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BOOCODER_BRIDGE_REGISTRY", "LLAMA_SWAP_URL")}
    env["BOOCODER_BRIDGE_REGISTRY"] = str(fleet)
    assert run_process("resolve", "embedding/shared", "--json", env=env).json()["provider"] == "embedding"
    legacy = hosts(models_body=llama_swap_body("old-model"))
    env.pop("BOOCODER_BRIDGE_REGISTRY")
    env["LLAMA_SWAP_URL"] = legacy.url
    data = run_process("resolve", "old-model", "--json", env=env).json()
    assert (data["id"], data["base_url"]) == ("local/old-model", legacy.url + "/v1")
    env.pop("LLAMA_SWAP_URL")
    missing = run_process("models", env=env)
    assert missing.code == 2 and "LLAMA_SWAP_URL" in missing.err
