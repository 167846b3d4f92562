"""The six opencode traps (issue 9), each proven with the real opencode binary and judged by what the hosts on
127.0.0.1 receive. opencode runs are slow (~5-10 s): each test combines its cases into as few runs as is honest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from boocoder_bridge import Bridge
from tests.conftest import unused_port
from tests.fakehost import FakeHost, llama_swap_body
from tests.helpers import opencode_schema_errors
from tests.opencode_bin import opencode_binary, opencode_env

pytestmark = pytest.mark.opencode

USER_KEYS = {"OPENAI_API_KEY": "sk-user-openai", "LLAMA_API_KEY": "sk-user-llama", "LMSTUDIO_API_KEY": "sk-user-lm",
             "DEEPSEEK_API_KEY": "sk-fleet-deepseek", "SECRET_X": "s3cr3t-x"}


@pytest.fixture(scope="module")
def opencode() -> Path:
    return opencode_binary()


def _home(tmp_path: Path, name: str) -> Path:
    """A user home whose opencode data holds stored logins for catalog ids (``opencode auth login``)."""
    home = tmp_path / name
    data = home / ".local" / "share" / "opencode"
    data.mkdir(parents=True)
    (data / "auth.json").write_text(json.dumps({"lmstudio": {"type": "api", "key": "sk-stored-lm"},
                                                "llama": {"type": "api", "key": "sk-stored-llama"}}))
    return home


def _verbose_models(text: str) -> dict[str, dict]:
    """``opencode models --verbose``: a ``provider/model`` line, then that model's JSON."""
    import re

    models: dict[str, dict] = {}
    for block in re.split(r"^(?=[a-z0-9][a-z0-9._-]*/\S+$)", text, flags=re.M):
        head, _, body = block.partition("\n")
        if body.strip():
            models[head.strip()] = json.loads(body)
    return models


def _run(opencode: Path, args: list[str], env: dict[str, str], cwd: Path | None = None,
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(opencode), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _bridge_cli(*argv: str, env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "boocoder_bridge", *argv], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _cli_env(opencode: Path, tmp_path: Path, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = opencode_env(home, tmp_path / "unused.json", {
        "BOOCODER_BRIDGE_OPENCODE": str(opencode), "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": os.pathsep.join(sys.path), **(extra or {})})
    del env["OPENCODE_CONFIG"]  # the bridge sets it
    return env


def test_catalog_ids_hostile_text_and_limits(opencode, hosts, write_registry, tmp_path) -> None:
    """Traps 1-3: catalog ids list exactly what was emitted and get no user key; hostile ids and names neither
    leak nor break loading; max_tokens is the planned output budget, not the catalog's or opencode's 32000."""
    openai = hosts(name="openai", models_body={"data": [{"id": "gpt-4o", "object": "model"},
                                                       {"id": "m1", "object": "model"}]})
    llama = hosts(name="llama", models_body={"data": [
        {"id": "inj-{env:SECRET_X}", "name": "{file:/nonexistent}", "object": "model"},
        {"id": "m1", "name": "{env:SECRET_X}", "object": "model", "context_length": 16384}]})
    lmstudio = hosts(name="lmstudio", models_body=llama_swap_body("m1", contexts={"m1": 32768}))
    deepseek = hosts(name="deepseek")
    registry = write_registry({"default_provider": "llama", "providers": {
        "openai": {"kind": "openai-compatible", "base_url": openai.url},
        "llama": {"kind": "openai-compatible", "base_url": llama.url},
        "lmstudio": {"kind": "llama-swap", "base_url": lmstudio.url},
        "deepseek": {"kind": "openai-compatible", "base_url": deepseek.url, "discover": False,
                     "api_key_env": "DEEPSEEK_API_KEY", "models": {"deepseek-chat": {"context_window": 65536}}},
    }})
    bridge = Bridge.load(registry, tmp_path / "state", env={"HOME": str(tmp_path / "home")})  # no keys; no real HOME
    config_path, _ = bridge.write_opencode_config()
    config = json.loads(config_path.read_text())
    assert opencode_schema_errors(config) == []

    home = _home(tmp_path, "home")
    env = opencode_env(home, config_path, USER_KEYS)
    listed = _run(opencode, ["models", "--verbose"], env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    seen = _verbose_models(listed.stdout)
    for pid in ("openai", "llama", "lmstudio", "deepseek"):
        got = {key for key in seen if key.startswith(pid + "/")}
        assert got == {f"{pid}/{m}" for m in config["provider"][pid]["models"]}, (pid, got)
    assert "s3cr3t-x" not in listed.stdout + listed.stderr
    gpt = seen["openai/gpt-4o"]  # the catalog's gpt-4o: 128000/16384, image input, priced; none of it is left
    assert gpt["limit"] == {"context": 0, "output": 0} and gpt["cost"]["input"] == 0
    assert gpt["capabilities"]["attachment"] is False and gpt["capabilities"]["input"]["image"] is False
    assert seen["llama/inj-{env:SECRET_X}"]["name"] == "{file:/nonexistent}"  # shown as text, never read
    assert seen["lmstudio/m1"]["limit"] == {"context": 32768, "input": 28672, "output": 8192}

    # Unknown window: opencode's own default (32000), never the catalog's gpt-4o 16384; opencode's code for the
    # ``openai`` id sends no max_tokens at all (a code path keyed on the id, not config: docs/opencode.md).
    cases = [("openai/gpt-4o", openai, "gpt-4o", None),
             ("llama/inj-{env:SECRET_X}", llama, "inj-{env:SECRET_X}", 32000),
             ("llama/m1", llama, "m1", 4096),
             ("lmstudio/m1", lmstudio, "m1", 8192),
             ("deepseek/deepseek-chat", deepseek, "deepseek-chat", 16384)]

    def run(case: tuple[str, FakeHost, str, int]) -> subprocess.CompletedProcess[str]:
        home = _home(tmp_path, "home-" + case[0].replace("/", "-").replace("{", "").replace("}", ""))
        return _run(opencode, ["run", "-m", case[0], "say hi"], opencode_env(home, config_path, USER_KEYS))

    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = list(pool.map(run, cases))
    for (model_id, host, upstream, _), done in zip(cases, runs, strict=True):
        assert done.returncode == 0, (model_id, done.stderr[-2000:])
        assert f"reply from {host.name} model {upstream}" in done.stdout, (model_id, done.stdout)
    sent_max = {model_id: {r.body.get("max_tokens") for r in host.chat_requests() if r.body["model"] == upstream}
                for model_id, host, upstream, _ in cases}
    assert sent_max == {model_id: {max_tokens} for model_id, _, _, max_tokens in cases}
    everything = [r for h in (openai, llama, lmstudio, deepseek) for r in h.requests]
    assert all(r.path in ("/v1/models", "/v1/chat/completions", "/running") or r.path.startswith("/upstream/")
               for r in everything), {r.path for r in everything}  # never the catalog's /v1/responses
    for host in (openai, llama, lmstudio, deepseek):
        auth = {r.headers.get("Authorization") for r in host.chat_requests()}
        assert auth == ({"Bearer sk-fleet-deepseek"} if host is deepseek else {None}), (host.name, auth)
    sent = json.dumps([r.body for r in everything])
    assert not any(value in sent for value in ("s3cr3t-x", "sk-user", "sk-stored"))


def test_fleet_wins_over_project_global_and_caller_config(opencode, hosts, write_registry, tmp_path) -> None:
    """Trap 4: a project opencode.json, the global config and OPENCODE_CONFIG_CONTENT all try to redirect the
    fleet's ``local`` provider; ``boocoder-bridge run`` still reaches the fleet host, and the user's own provider
    and agent still load."""
    fleet = hosts(name="fleet", models_body=llama_swap_body("coder", contexts={"coder": 32768}))
    rogue = hosts(name="rogue", models_body=llama_swap_body("coder"))
    mine = hosts(name="mine")
    registry = write_registry({"default_provider": "local", "providers": {
        "local": {"kind": "llama-swap", "base_url": fleet.url}}})
    # Every key that names a host: the provider's baseURL and api, and a model's own provider.api.
    redirect = {"npm": "@ai-sdk/openai-compatible", "api": rogue.url + "/v1",
                "options": {"baseURL": rogue.url + "/v1", "apiKey": "sk-rogue"},
                "models": {"coder": {"id": "rogue-coder", "limit": {"context": 999999, "output": 99999},
                                     "provider": {"npm": "@ai-sdk/openai-compatible", "api": rogue.url + "/v1"}},
                           "extra": {"name": "extra"}}}
    project = tmp_path / "project"
    project.mkdir()
    (project / "opencode.json").write_text(json.dumps({"provider": {"local": redirect}}))
    home = _home(tmp_path, "home")
    (home / ".config" / "opencode").mkdir(parents=True)
    (home / ".config" / "opencode" / "opencode.json").write_text(json.dumps({
        "provider": {"local": redirect, "mine": {"npm": "@ai-sdk/openai-compatible", "options": {
            "baseURL": mine.url + "/v1"}, "models": {"own-model": {"name": "own"}}}},
        "agent": {"reviewer": {"description": "the user's own agent", "prompt": "review"}}}))
    caller = json.dumps({"provider": {"local": redirect}, "username": "caller"})
    env = _cli_env(opencode, tmp_path, home, {"OPENCODE_CONFIG_CONTENT": caller})

    run = _bridge_cli("--registry", str(registry), "run", "local/coder", "say", "hi", env=env, cwd=project)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "reply from fleet model coder" in run.stdout
    assert rogue.chat_requests() == [] and mine.chat_requests() == []
    assert {r.body["max_tokens"] for r in fleet.chat_requests()} == {8192}
    assert {r.headers.get("Authorization") for r in fleet.chat_requests()} == {None}

    dispatch = Bridge.load(registry, tmp_path / "state", env=env).dispatch("local/coder", opencode=str(opencode))
    merged = _run(opencode, ["debug", "config"], {**env, **dispatch.env}, cwd=project)
    seen = json.loads(merged.stdout)
    assert seen["provider"]["local"]["options"]["baseURL"] == fleet.url + "/v1"
    assert seen["provider"]["local"]["whitelist"] == ["coder"]  # the project's "extra" model is not offered
    assert "mine" in seen["provider"] and "reviewer" in seen["agent"] and seen["username"] == "caller"


def test_a_fleet_too_big_for_one_environment_variable_still_wins(opencode, hosts, write_registry,
                                                                 tmp_path) -> None:
    """Trap 4 at scale: ``OPENCODE_CONFIG_CONTENT`` holds at most 128 KiB, and 600 models were a traceback (E2BIG).
    The bridge then pins every provider's host and key and the dispatched model: a project file that redirects
    the provider and renames the model still loses, and the user is told what was not pinned."""
    ids = [f"org/model-{i:04d}-with-a-rather-long-name-GGUF:Q4_K_M" for i in range(600)]
    fleet = hosts(name="fleet", models_body=llama_swap_body(*ids, "coder", contexts={"coder": 32768}))
    rogue = hosts(name="rogue", models_body=llama_swap_body("coder"))
    registry = write_registry({"default_provider": "local", "providers": {
        "local": {"kind": "llama-swap", "base_url": fleet.url}}})
    project = tmp_path / "project"
    project.mkdir()
    (project / "opencode.json").write_text(json.dumps({"provider": {"local": {
        "options": {"baseURL": rogue.url + "/v1", "apiKey": "sk-rogue"},
        "models": {"coder": {"id": "rogue-coder", "limit": {"context": 999999, "output": 99999}}}}}}))
    env = _cli_env(opencode, tmp_path, _home(tmp_path, "home"))

    run = _bridge_cli("--registry", str(registry), "run", "local/coder", "say", "hi", env=env, cwd=project)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "too many to pin" in run.stderr and "Traceback" not in run.stderr
    assert "reply from fleet model coder" in run.stdout
    assert rogue.chat_requests() == []
    assert {(r.body["model"], r.body["max_tokens"]) for r in fleet.chat_requests()} == {("coder", 8192)}
    assert {r.headers.get("Authorization") for r in fleet.chat_requests()} == {None}


def test_dead_silent_and_slow_hosts_fail_fast(opencode, hosts, write_registry, tmp_path) -> None:
    """Trap 5: a dead host is refused before opencode starts (exit 3, one line); a host that accepts and never
    answers is cut off by the emitted request timeout; ``run --timeout`` stops opencode (exit 124, one line)."""
    silent = hosts(name="silent", chat_fault="silent")
    registry = write_registry({"default_provider": "silent", "providers": {
        "silent": {"kind": "llama-swap", "base_url": silent.url, "request_timeout_s": 2},
        "dead": {"kind": "llama-swap", "base_url": f"http://127.0.0.1:{unused_port()}", "timeout_s": 0.5},
        "off": {"kind": "llama-swap", "base_url": silent.url, "enabled_if_env": "NOT_SET_ANYWHERE"}}})
    env = _cli_env(opencode, tmp_path, tmp_path / "home")
    for model_id in ("dead/llama-3.2-3b", "off/llama-3.2-3b"):
        refused = _bridge_cli("--registry", str(registry), "run", model_id, "hi", env=env, cwd=tmp_path)
        assert refused.returncode == 3 and refused.stdout == "", refused
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert "offline" in refused.stderr or "disabled" in refused.stderr

    cut = _bridge_cli("--registry", str(registry), "run", "silent/llama-3.2-3b", "hi", env=env, cwd=tmp_path)
    assert cut.returncode != 0 and "timed out" in cut.stdout + cut.stderr, (cut.stdout[-500:], cut.stderr[-500:])
    assert silent.chat_requests(), "the request did reach the silent host"
    stopped = _bridge_cli("--registry", str(registry), "run", "--timeout", "1", "silent/llama-3.2-3b", "hi",
                          env=env, cwd=tmp_path)
    assert stopped.returncode == 124
    assert stopped.stderr.strip().splitlines()[-1].startswith("boocoder-bridge: error: silent/llama-3.2-3b: opencode")


def test_small_window_does_not_loop(opencode, hosts, write_registry, tmp_path) -> None:
    """Trap 2: a window too small for opencode's own prompt (a server that refuses like llama.cpp) ends the run
    after a few requests instead of compacting in a loop (measured without the rule: 104 requests in 60 s)."""
    tiny = hosts(name="tiny", n_ctx=8192, models_body=llama_swap_body("small", contexts={"small": 8192}))
    registry = write_registry({"default_provider": "t", "providers": {
        "t": {"kind": "llama-swap", "base_url": tiny.url}}})
    env = _cli_env(opencode, tmp_path, tmp_path / "home")
    done = _bridge_cli("--registry", str(registry), "run", "--timeout", "90", "t/small", "hi", env=env, cwd=tmp_path)
    assert done.returncode not in (0, 124), done.stderr[-1000:]  # ended by the server's error, not by --timeout
    assert "exceeds the available context size" in done.stdout + done.stderr
    requests = tiny.chat_requests()
    assert 1 <= len(requests) <= 4, len(requests)
    assert all(r.body["max_tokens"] <= 8192 // 2 for r in requests)


class Acp:
    """A JSON-RPC client for ``opencode acp`` over stdio (Agent Client Protocol, newline-delimited JSON)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        import queue
        import threading

        self.process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout or ()],
                         daemon=True).start()
        self.next_id = 0
        self.updates: list[dict] = []

    def call(self, method: str, params: dict, timeout: float = 120) -> dict:
        import queue

        assert self.process.stdin is not None
        self.next_id += 1
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                                             "params": params}) + "\n")
        self.process.stdin.flush()
        while True:
            try:
                message = json.loads(self.lines.get(timeout=timeout))
            except queue.Empty:
                raise AssertionError(f"no answer to {method} within {timeout} s") from None
            if message.get("id") == self.next_id and "method" not in message:
                assert "error" not in message, (method, message["error"])
                return message["result"]
            if message.get("method") == "session/update":
                self.updates.append(message["params"]["update"])

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def test_acp_reaches_the_right_host_with_the_right_upstream_name(opencode, hosts, write_registry, tmp_path) -> None:
    """Trap 6: BooCoder's path. The real ``opencode acp`` with the bridge's dispatch env; the model (with ``/``
    and ``:`` in its model part) is chosen with session/set_config_option; the prompt reaches that host only."""
    sam = hosts(name="sam", models_body=llama_swap_body("unsloth/Qwen3:Q4_K_M", contexts={"unsloth/Qwen3:Q4_K_M":
                                                                                          32768}))
    emb = hosts(name="emb", models_body=llama_swap_body("unsloth/Qwen3:Q4_K_M"))
    registry = write_registry({"default_provider": "sam", "providers": {
        "sam": {"kind": "llama-swap", "base_url": sam.url,
                "models": {"unsloth/Qwen3:Q4_K_M": {"upstream_id": "qwen3-30b-q4"}}},
        "emb": {"kind": "llama-swap", "base_url": emb.url}}})
    home = _home(tmp_path, "home")
    env = _cli_env(opencode, tmp_path, home)
    dispatch = Bridge.load(registry, tmp_path / "state", env=env).dispatch("sam/unsloth/Qwen3:Q4_K_M", mode="acp",
                                                                           opencode=str(opencode))
    assert dispatch.argv == [str(opencode), "acp"]
    acp = Acp(dispatch.argv, {**env, **dispatch.env}, tmp_path)
    try:
        acp.call("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
        session = acp.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
        model = next(o for o in session["configOptions"] if o["id"] == "model")
        offered = {o["value"] for o in model["options"]}
        assert {"sam/unsloth/Qwen3:Q4_K_M", "emb/unsloth/Qwen3:Q4_K_M"} <= offered
        assert model["currentValue"] == dispatch.opencode_model  # the dispatch env starts on the route's model
        acp.call("session/set_config_option", {"sessionId": session["sessionId"], "configId": "model",
                                               "value": dispatch.opencode_model})
        done = acp.call("session/prompt", {"sessionId": session["sessionId"],
                                           "prompt": [{"type": "text", "text": "say hi"}]})
    finally:
        acp.close()
    assert done["stopReason"] == "end_turn"
    said = "".join(u.get("content", {}).get("text", "") for u in acp.updates
                   if u.get("sessionUpdate") == "agent_message_chunk")
    assert "reply from sam model qwen3-30b-q4" in said
    assert {r.body["model"] for r in sam.chat_requests()} == {"qwen3-30b-q4"}
    assert emb.chat_requests() == []
    assert {r.body["max_tokens"] for r in sam.chat_requests()} == {8192}


@pytest.mark.realserver
def test_a_real_llama_cpp_server_too_small_for_opencode_does_not_loop(opencode, tiny_model, write_registry,
                                                                      tmp_path) -> None:
    """Trap 2 against the real thing: llama.cpp with an 8192-token window (known live from its /props) behind the
    llama-swap-shaped proxy. opencode's step (its own prompt, ~12.6k tokens of this byte vocabulary) is refused,
    its compaction request fits: with OPENCODE_CONFIG alone that compacted in a loop (23 requests and still
    running after 60 s). The dispatch turns auto-compaction off, so the run ends after a few requests."""
    from boocoder_bridge.demo.llama_server import LlamaServer
    from boocoder_bridge.demo.proxy import SwapModel, SwapProxy

    with LlamaServer(tiny_model, n_ctx=8192, alias="tiny-llama", log=tmp_path / "server.log") as server, \
            SwapProxy([SwapModel("tiny-llama", server.url)]) as proxy:
        registry = write_registry({"default_provider": "sam", "providers": {
            "sam": {"kind": "llama-swap", "base_url": proxy.url}}})
        assert Bridge.load(registry, tmp_path / "state").context_window("sam/tiny-llama") == 8192
        env = _cli_env(opencode, tmp_path, tmp_path / "home")
        done = _bridge_cli("--registry", str(registry), "run", "--timeout", "90", "sam/tiny-llama", "hi", env=env,
                           cwd=tmp_path)
        chats = [r.body for r in proxy.requests if r.method == "POST" and r.path == "/v1/chat/completions"]
        statuses = {status for _, status in proxy.forwarded}
    assert done.returncode not in (0, 124), done.stderr[-1000:]  # ended by llama.cpp's error, not by --timeout
    assert "exceeds the available context size" in done.stdout + done.stderr and 400 in statuses
    assert 1 <= len(chats) <= 4, len(chats)
    assert all(c["max_tokens"] <= 8192 // 2 for c in chats)
