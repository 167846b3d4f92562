"""`boocoder-bridge demo`: two real llama.cpp servers, both online through the CLI and the API; Ctrl-C cleans up.
And as a newcomer meets it: the printed `run` answers through the real opencode, and nothing of theirs changes."""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_process
from tests.opencode_bin import opencode_binary

pytestmark = pytest.mark.realserver


def read_until(process: subprocess.Popen, marker: str, timeout: float = 180) -> str:
    """stdout up to the line holding ``marker`` (the demo prints its instructions once it serves)."""
    text, deadline = "", time.monotonic() + timeout
    while marker not in text:
        assert process.poll() is None, f"demo exited {process.returncode}: {text}{process.stderr.read()}"
        if time.monotonic() > deadline:
            process.send_signal(signal.SIGABRT)  # faulthandler prints where it is stuck
            process.wait(timeout=30)
            raise AssertionError(f"no {marker!r} from the demo: {text}; its stderr: {process.stderr.read()}")
        ready, _, _ = select.select([process.stdout], [], [], 1)
        if ready:  # the raw pipe: a buffered readline() would keep the rest of a multi-line write out of select's view
            text += os.read(process.stdout.fileno(), 65536).decode()
    return text


def test_demo_serves_a_real_three_host_fleet_and_cleans_up_on_ctrl_c(tmp_path) -> None:
    from tests.llama_router import llama_server_binary

    # Its temp dir lands in tmp_path, so the test can see it go; faulthandler shows where it hangs, if it does.
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONFAULTHANDLER": "1",
           "BOOCODER_BRIDGE_LLAMA_SERVER": str(llama_server_binary())}
    process = subprocess.Popen([sys.executable, "-m", "boocoder_bridge", "demo"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        shown = read_until(process, "Ctrl-C stops")
        url = re.search(r"Model picker:\s+(http://127\.0\.0\.1:\d+)/", shown)[1]
        exports = dict(re.findall(r"(BOOCODER_BRIDGE_\w+)=(\S+)", shown))
        folder = Path(exports["BOOCODER_BRIDGE_REGISTRY"]).parent
        assert folder.parent == tmp_path and folder.is_dir()
        hosts = re.findall(r"http://127\.0\.0\.1:\d+", shown.split("Model picker")[0])
        assert len(set(hosts)) == 4  # the proxy, its llama.cpp server, the plain llama-server, the router

        # The printed commands work: both providers online, one model name on each, each host's own context.
        cli_env = {**os.environ, **exports}
        rows = run_process("providers", "--json", env=cli_env).json()["providers"]
        assert {(r["id"], r["kind"], r["status"]) for r in rows} == {
            ("swap-box", "llama-swap", "online"), ("plain-box", "llama-cpp", "online"),
            ("router-box", "llama-cpp", "online")}
        routes = {p: run_process("resolve", f"{p}/tiny-llama", "--json", env=cli_env).json()
                  for p in ("swap-box", "plain-box")}
        assert {p: r["context_window"] for p, r in routes.items()} == {"swap-box": 32768, "plain-box": 16384}
        assert routes["swap-box"]["base_url"] != routes["plain-box"]["base_url"]
        catalog = httpx.get(url + "/api/models", timeout=30).json()
        assert {(g["id"], g["status"], tuple((m["model"], m["state"]) for m in g["models"]))
                for g in catalog["providers"]} == {
            ("swap-box", "online", (("tiny-llama", "loaded"),)), ("plain-box", "online", (("tiny-llama", "loaded"),)),
            ("router-box", "online", (("tiny-alpha", "unloaded"), ("tiny-beta", "unloaded")))}
        # A real llama.cpp answer at the route's base URL.
        answer = httpx.post(routes["plain-box"]["base_url"] + "/chat/completions", timeout=60, json={
            "model": "tiny-llama", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200 and answer.json()["choices"]

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
        assert "stopped" in process.stderr.read()
        assert not folder.exists()
        for host in set(hosts) | {url}:
            with pytest.raises(httpx.TransportError):
                httpx.get(host + "/health", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder): equal snapshots mean nothing was touched."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def printed_command(shown: str, prefix: str) -> list[str]:
    """The printed command line that starts with ``prefix``, its comment dropped, run as this Python's CLI."""
    line = next(line.strip() for line in shown.splitlines() if line.strip().startswith(prefix))
    argv = shlex.split(line, comments=True)
    assert argv[0] == "boocoder-bridge", line
    return [sys.executable, "-m", "boocoder_bridge", *argv[1:]]


@pytest.mark.opencode
def test_a_newcomer_runs_the_printed_commands_through_opencode_and_keeps_their_files(tmp_path) -> None:
    """The demo started as a newcomer does, with opencode on PATH and a HOME that already holds opencode's and
    the bridge's files: the printed `favorites add` and `run` succeed (an answer from the tiny model through the
    real opencode), and after Ctrl-C every file of that HOME is byte for byte as before, with none added, and
    the temp dir is gone."""
    home = tmp_path / "home"
    files = {
        ".config/opencode/opencode.json": '{"$schema": "https://opencode.ai/config.json", "theme": "system"}\n',
        ".local/state/opencode/model.json": '{"recent":[],"favorite":[{"providerID":"opencode","modelID":"x"}],'
                                            '"variant":{}}',
        ".local/share/opencode/auth.json": "{}\n",
        ".local/share/boocoder-bridge/favorites.sqlite3": "not touched\n",
    }
    for name, text in files.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(text)
    before = snapshot(home)
    temp = tmp_path / "tmp"
    temp.mkdir()
    path = f"{opencode_binary().parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BOOCODER_BRIDGE_", "OPENCODE"))}
    env.update(HOME=str(home), PATH=path, TMPDIR=str(temp), PYTHONFAULTHANDLER="1")
    process = subprocess.Popen([sys.executable, "-m", "boocoder_bridge", "demo"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        shown = read_until(process, "Ctrl-C stops")
        export = next(line.strip() for line in shown.splitlines() if line.strip().startswith("export "))
        exports = dict(word.split("=", 1) for word in shlex.split(export)[1:])
        assert exports["BOOCODER_BRIDGE_OPENCODE_TUI"] == "0"
        folder = Path(exports["BOOCODER_BRIDGE_REGISTRY"]).parent
        assert folder.parent == temp
        for name in ("BOOCODER_BRIDGE_STATE_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
                     "XDG_CACHE_HOME"):
            assert Path(exports[name]).is_relative_to(folder), name
        cli_env = {**env, **exports}

        added = subprocess.run(printed_command(shown, "boocoder-bridge favorites add"), env=cli_env,
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0 and added.stdout == "added plain-box/tiny-llama\n", added.stderr
        run = subprocess.run(printed_command(shown, "boocoder-bridge run"), env=cli_env, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
        answer = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout).split("tiny-llama", 1)[-1]
        assert answer.strip(), run.stdout  # the model's words after opencode's header line

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
        log = process.stderr.read()
        assert "plain-box: answered" in log or "of the prompt read" in log, log  # progress while it read
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not folder.exists()
    after = snapshot(home)
    assert sorted({"/".join(Path(p).parts[:3]) for p in set(after) - set(before)}) == [] and after == before


def test_without_a_router_build_the_demo_says_how_to_get_one(tmp_path, monkeypatch) -> None:
    from contextlib import ExitStack

    from boocoder_bridge.demo.fleet import _start_router

    monkeypatch.setenv("BOOCODER_BRIDGE_TEST_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("BOOCODER_BRIDGE_LLAMA_SERVER", raising=False)
    said: list[str] = []
    with ExitStack() as stack:
        assert _start_router(tmp_path, stack, said.append) is None
    assert len(said) == 1 and "BOOCODER_BRIDGE_LLAMA_SERVER" in said[0] and "python3 -m tests.llama_router" in said[0]
