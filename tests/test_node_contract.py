"""The HTTP contract in the host's own language: tests/node/contract.test.mjs run with ``node --test`` (no npm
package) against a real ``serve`` on hosts on 127.0.0.1, starting the real opencode from a dispatch plan. Then the
hosts are asked what they received: the prompt reached the dispatched host and no other."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.fakehost import llama_swap_body
from tests.helpers import deepseek, down, llama_swap, registry_data
from tests.opencode_bin import opencode_binary, opencode_env
from tests.test_server import start_server

pytestmark = pytest.mark.opencode
CONTRACT = Path(__file__).parent / "node" / "contract.test.mjs"


def test_a_node_host_does_all_a_python_host_can(hosts, tmp_path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the contract test is plain node --test)")
    opencode = opencode_binary()
    sam = hosts(name="sam", models_body=llama_swap_body("coder", "unsloth/Qwen3:Q4_K_M", contexts={"coder": 65536}))
    emb = hosts(name="emb", models_body=llama_swap_body("coder", "tiny-llama"))
    registry = tmp_path / "fleet.json"
    registry.write_text(json.dumps(registry_data({
        "sam": llama_swap(sam.url), "emb": llama_swap(emb.url), "down": down(timeout_s=0.3),
        "deepseek": deepseek(enabled_if_env="NOT_SET_ANYWHERE_X")})))
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "BOOCODER_BRIDGE_TOKEN"}
    process, url = start_server(registry, state, env={**env, "BOOCODER_BRIDGE_OPENCODE": str(opencode)})
    marker = f"marker-{uuid.uuid4().hex[:12]}"
    try:
        # opencode gets a home of its own; the TUI favorites file is the one serve and the CLI share.
        host_env = opencode_env(tmp_path / "home", tmp_path / "unused.json", {
            "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"], "BRIDGE_URL": url, "MARKER": marker,
            "BRIDGE_CLI": json.dumps([sys.executable, "-m", "boocoder_bridge", "--registry", str(registry),
                                      "--state-dir", str(state)])})
        del host_env["OPENCODE_CONFIG"]  # the plan's env sets it
        done = subprocess.run([node, "--test", str(CONTRACT)], env=host_env, capture_output=True, text=True,
                              timeout=600)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 9" in done.stdout, done.stdout[-3000:]
    received = {name: [r for r in host.chat_requests() if marker in json.dumps(r.body)]
                for name, host in (("sam", sam), ("emb", emb))}
    assert received["sam"] == [], "the prompt leaked to another host"
    assert received["emb"] and {r.body["model"] for r in received["emb"]} == {"coder"}
