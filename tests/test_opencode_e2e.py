"""The real opencode binary reads our generated config and reaches the right host with the right model and key."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from boocoder_bridge import Bridge
from tests.fakehost import llama_swap_body
from tests.helpers import llama_swap, opencode_schema_errors, run_process
from tests.opencode_bin import opencode_binary, opencode_env

pytestmark = pytest.mark.opencode


@pytest.fixture(scope="module")
def opencode():
    return opencode_binary()


def test_composite_ids_reach_the_right_host(opencode, hosts, write_registry, tmp_path) -> None:
    sam = hosts(name="sam", models_body=llama_swap_body("shared-model", "unsloth/Qwen3:Q4_K_M"))
    emb = hosts(name="emb", models_body=llama_swap_body("shared-model"))
    cloud = hosts(name="cloud", models_body={"data": [{"id": "cloud-chat", "object": "model"}]})
    registry = write_registry({
        "default_provider": "sam-desktop",
        "providers": {
            "sam-desktop": {"kind": "llama-swap", "base_url": sam.url,
                            "models": {"shared-model": {"upstream_id": "shared-model-q8", "context_window": 32768,
                                                        "max_output": 1024}}},
            "embedding": llama_swap(emb.url),
            "cloud": {"kind": "openai-compatible", "base_url": cloud.url, "api_key_env": "CLOUD_TEST_KEY"},
        },
    })
    # os.environ carries the session's XDG_STATE_HOME: the bridge never reads the user's opencode model.json
    bridge = Bridge.load(registry, tmp_path / "state", env={**os.environ, "CLOUD_TEST_KEY": "sk-e2e-777"})
    config_path, stale = bridge.write_opencode_config()
    config = json.loads(config_path.read_text())
    assert stale == [] and opencode_schema_errors(config) == []
    assert "sk-e2e-777" not in config_path.read_text()

    listed = subprocess.run([str(opencode), "models"], env=opencode_env(tmp_path / "home", config_path),
                            capture_output=True, text=True, timeout=120)
    assert "sam-desktop/unsloth/Qwen3:Q4_K_M" in listed.stdout, listed.stderr
    assert "embedding/shared-model" in listed.stdout

    cases = [("sam-desktop/shared-model", sam, "shared-model-q8"), ("embedding/shared-model", emb, "shared-model"),
             ("sam-desktop/unsloth/Qwen3:Q4_K_M", sam, "unsloth/Qwen3:Q4_K_M"), ("cloud/cloud-chat", cloud,
                                                                                   "cloud-chat")]
    for model_id, host, upstream in cases:
        before = {h.name: len(h.chat_requests()) for h in (sam, emb, cloud)}
        run = subprocess.run([str(opencode), "run", "-m", bridge.resolve(model_id).opencode_model, "say hi"],
                             env=opencode_env(tmp_path / "home", config_path, {"CLOUD_TEST_KEY": "sk-e2e-777"}),
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr[-2000:]
        assert f"reply from {host.name} model {upstream}" in run.stdout, (model_id, run.stdout, run.stderr[-2000:])
        new = host.chat_requests()[before[host.name]:]
        assert new and {r.body["model"] for r in new} == {upstream}
        for other in {sam, emb, cloud} - {host}:
            assert len(other.chat_requests()) == before[other.name], f"{model_id} leaked to {other.name}"
        auth = {r.headers.get("Authorization") for r in new}
        if host is cloud:
            assert auth == {"Bearer sk-e2e-777"}
        else:
            assert not any(a and "sk-e2e-777" in a for a in auth), "a local host must never get the cloud key"
    assert {r.body.get("max_tokens") for r in sam.chat_requests() if r.body["model"] == "shared-model-q8"} >= {1024}


def test_cli_run_and_arena_reach_the_right_hosts(opencode, hosts, write_registry, tmp_path) -> None:
    import os
    import sys

    sam = hosts(name="sam", models_body=llama_swap_body("same-model", "coder"))
    emb = hosts(name="emb", models_body=llama_swap_body("same-model"))
    registry = write_registry({"default_provider": "sam-desktop", "providers": {
        "sam-desktop": llama_swap(sam.url, sidecar_url=sam.url + "/sidecar"),
        "embedding": llama_swap(emb.url)}})
    env = opencode_env(tmp_path / "home", tmp_path / "unused.json", {
        "BOOCODER_BRIDGE_OPENCODE": str(opencode), "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": os.pathsep.join(sys.path)})
    del env["OPENCODE_CONFIG"]  # the bridge sets it

    run = run_process("--registry", str(registry), "run", "coder", "say", "hi", env=env, timeout=180)
    assert run.code == 0, run.err[-2000:]
    assert "reply from sam model coder" in run.out
    assert all(r.path.startswith("/sidecar/v1/") for r in sam.chat_requests())  # the provider's sidecar
    assert emb.chat_requests() == []

    # A prompt that looks like opencode's options is still the message: "--attach" once sent the run elsewhere.
    before = len(sam.chat_requests())
    flagged = run_process("--registry", str(registry), "run", "coder", "--", "--attach=http://127.0.0.1:9",
                          "--help", env=env, timeout=180)
    assert flagged.code == 0, flagged.err[-2000:]
    assert "reply from sam model coder" in flagged.out
    sent = json.dumps([r.body["messages"] for r in sam.chat_requests()[before:]])
    assert "--attach=http://127.0.0.1:9 --help" in sent

    arena = run_process("--registry", str(registry), "arena", "sam-desktop/same-model", "embedding/same-model",
                        "--prompt", "say hi", "--json", env=env, timeout=300)
    assert arena.code == 0, arena.err[-2000:]
    answers = {a["model"]: a for a in arena.json()["answers"]}
    assert "reply from sam model same-model" in answers["sam-desktop/same-model"]["output"]
    assert "reply from emb model same-model" in answers["embedding/same-model"]["output"]
    assert all(a["returncode"] == 0 and a["seconds"] > 0 for a in answers.values())
    side = run_process("--registry", str(registry), "arena", "sam-desktop/same-model", "embedding/same-model",
                       "--prompt", "say hi", env=env, timeout=300)
    assert side.code == 0, side.err[-2000:]
    first = side.out.splitlines()[0]
    assert "sam-desktop/same-model" in first and "| embedding/same-model" in first
    assert "\x1b" not in side.out  # opencode's colour codes never reach the table
