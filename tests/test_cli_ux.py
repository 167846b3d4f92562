"""The command line as a new user meets it: --version, help, completion, serve's start and failures."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from boocoder_bridge import __version__
from boocoder_bridge.cli import build_parser
from boocoder_bridge.opencode.config import PIECE_BYTES
from tests.conftest import run_process


@pytest.fixture
def fleet(write_registry):
    return write_registry({"default_provider": "desk", "providers": {
        "desk": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False,
                 "models": {"tiny-alpha": {}, "tiny-beta": {}}}}})


def all_parsers(parser: argparse.ArgumentParser, name: str = "boocoder-bridge"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


def test_version() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert run_process("--version").out == f"boocoder-bridge {__version__}\n"


def test_every_option_and_argument_has_help() -> None:
    missing = [f"{name}: {action.dest}" for name, parser in all_parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []
    assert [name for name, parser in all_parsers(build_parser()) if not parser.description] == []


def test_serve_help_shows_the_defaults() -> None:
    text = run_process("serve", "--help").out
    assert "(default: 8765" in text and "(default: 127.0.0.1" in text


def test_favorites_alone_lists(run_cli, fleet) -> None:
    run_cli("--registry", str(fleet), "favorites", "add", "desk/tiny-beta")
    alone = run_cli("--registry", str(fleet), "favorites")
    assert alone.code == 0 and alone.out == run_cli("--registry", str(fleet), "favorites", "list").out != ""


def test_add_twice_says_so(run_cli, fleet) -> None:
    assert run_cli("--registry", str(fleet), "favorites", "add", "desk/tiny-beta").out == "added desk/tiny-beta\n"
    again = run_cli("--registry", str(fleet), "favorites", "add", "desk/tiny-beta")
    assert again.code == 0 and again.out == "desk/tiny-beta was already a favorite\n"


def completion_env(tmp_path: Path, registry: Path) -> dict[str, str]:
    """A ``boocoder-bridge`` command on PATH (as the installed entry point would be) for a shell to complete."""
    entry = tmp_path / "bin" / "boocoder-bridge"
    entry.parent.mkdir()
    entry.write_text(f"#!/bin/sh\nexec {sys.executable} -m boocoder_bridge \"$@\"\n")
    entry.chmod(0o755)
    return {**os.environ, "PATH": f"{entry.parent}{os.pathsep}{os.environ['PATH']}",
            "BOOCODER_BRIDGE_REGISTRY": str(registry)}


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_and_cached_model_ids(fleet, tmp_path) -> None:
    script = run_process("completion", "bash").out
    (tmp_path / "complete.bash").write_text(script)
    env = completion_env(tmp_path, fleet)

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        program = (f"source {tmp_path / 'complete.bash'}; COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; "
                   f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
                   "_python_argcomplete boocoder-bridge; printf '%s\\n' \"${COMPREPLY[@]}\"")
        done = subprocess.run(["bash", "-c", program], env=env, capture_output=True, text=True, timeout=60)
        return [w.strip() for w in done.stdout.splitlines() if w.strip()]

    assert complete("boocoder-bridge fav") == ["favorites"]
    assert complete("boocoder-bridge favorites add desk/tiny-a") == ["desk/tiny-alpha"]
    assert set(complete("boocoder-bridge resolve desk/")) == {"desk/tiny-alpha", "desk/tiny-beta"}


# Run in the real shell, with the real program answering. fish completes a line non-interactively
# (``complete -C``). zsh's completion system needs a terminal, so its two entry points that the script calls are
# stand-ins: ``compdef`` (registering) does nothing, and ``_describe`` prints the candidates it is given.
SHELL_COMPLETE = {
    "fish": ["fish", "--no-config", "-c", 'source {script}; complete -C "{line}"'],
    "zsh": ["zsh", "-f", "-c", 'compdef() {{ : }}; _describe() {{ print -rl -- "${{(@P)2}}" }}; source {script}; '
                               'BUFFER="{line}"; CURSOR=${{#BUFFER}}; words=(${{=BUFFER}}); _python_argcomplete'],
}


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_in_the_real_shell(shell, fleet, tmp_path) -> None:
    result = run_process("completion", shell)
    assert result.code == 0 and "boocoder-bridge" in result.out and "_ARGCOMPLETE" in result.out
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")
    script = tmp_path / f"complete.{shell}"
    script.write_text(result.out)
    env = completion_env(tmp_path, fleet)

    def complete(line: str) -> list[str]:
        argv = [part.format(script=script, line=line) for part in SHELL_COMPLETE[shell]]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        # fish: "candidate<TAB>description"; zsh: "candidate:description", with ":" in a candidate escaped
        candidates = [re.split(r"\t|(?<!\\):", w, maxsplit=1)[0].replace("\\:", ":") for w in done.stdout.splitlines()]
        return [c for c in candidates if c]

    assert complete("boocoder-bridge fav") == ["favorites"]
    assert complete("boocoder-bridge favorites add desk/tiny-a") == ["desk/tiny-alpha"]
    assert set(complete("boocoder-bridge resolve desk/")) == {"desk/tiny-alpha", "desk/tiny-beta"}


def test_serve_prints_its_url_and_stops_on_ctrl_c(fleet) -> None:
    process = subprocess.Popen([sys.executable, "-m", "boocoder_bridge", "--registry", str(fleet), "serve",
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[1]
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        schema = httpx.get(url + "/openapi.json").json()
        ids = [op["operationId"] for methods in schema["paths"].values() for op in methods.values()]
        assert len(ids) == len(set(ids))
        assert httpx.get(url + "/docs").status_code == 404  # its assets would come from a CDN: left out
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        stderr = process.stderr.read()
        assert "Duplicate Operation ID" not in stderr and "Traceback" not in stderr
    finally:
        process.kill()
        process.wait()


def test_serve_on_a_port_in_use_says_so_with_exit_7(fleet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_process("--registry", str(fleet), "serve", "--port", str(port))
    assert result.code == 7 and result.out == ""
    assert result.err == (f"boocoder-bridge: error: port {port} on 127.0.0.1 is in use (another server, or "
                          "boocoder-bridge serve already running?); pick another with --port, or --port 0 for "
                          "a free one\n")


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_on_a_port_out_of_range_is_exit_7_not_another_port(fleet, port: str) -> None:
    """getaddrinfo wraps ports: --port 70000 served on 4464 and ran on, so the command never ended."""
    result = run_process("--registry", str(fleet), "serve", f"--port={port}", timeout=60)
    assert result.code == 7 and result.out == "", (result.code, result.out, result.err)
    assert result.err == (f"boocoder-bridge: error: port {port} is not a TCP port; give --port 1-65535, or 0 for "
                          "a free one\n")


@pytest.mark.parametrize("command", [["run", "desk/tiny-alpha", "hi"], ["arena", "desk/tiny-alpha", "desk/tiny-beta"]])
@pytest.mark.parametrize("value", ["nan", "-5", "0", "inf", "soon"])
def test_a_timeout_that_is_no_positive_number_is_a_usage_error(fleet, run_cli, command, value) -> None:
    """nan ran opencode with no limit at all; -5 and 0 started it and killed it at once ("within -5 s")."""
    result = run_cli("--registry", str(fleet), *command, f"--timeout={value}", "--opencode", sys.executable)
    assert result.code == 2 and result.out == "", (result.code, result.out)
    assert "argument --timeout: " in result.err and "not a positive number of seconds" in result.err


def test_generate_out_says_unchanged_when_it_is(run_cli, fleet, tmp_path) -> None:
    out = tmp_path / "oc.json"
    assert run_cli("--registry", str(fleet), "generate", "--out", str(out)).err.splitlines()[0] == f"wrote {out}"
    mtime = out.stat().st_mtime_ns
    again = run_cli("--registry", str(fleet), "generate", "--out", str(out))
    assert again.code == 0 and again.err.splitlines()[0] == f"{out} unchanged (already up to date)"
    assert out.stat().st_mtime_ns == mtime


def test_generate_offline_tells_stale_from_nothing_known(run_cli, hosts, write_registry) -> None:
    from tests.fakehost import llama_swap_body

    seen = hosts(models_body=llama_swap_body("m1"))
    path = write_registry({"default_provider": "seen", "providers": {
        "seen": {"kind": "llama-swap", "base_url": seen.url},
        "never": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "timeout_s": 0.3}}})
    run_cli("--registry", str(path), "models")  # caches seen's answer; never stays unknown
    result = run_cli("--registry", str(path), "--cache-ttl", "0", "generate", "--offline")
    assert result.code == 0 and '"m1"' in result.out
    assert "warning: last known (stale) models used for: seen\n" in result.err
    assert "warning: no models known for: never (" in result.err
    assert "stale) models used for: seen, never" not in result.err


def test_resolve_text_says_no_key_is_needed(run_cli, fleet) -> None:
    lines = run_cli("--registry", str(fleet), "resolve", "desk/tiny-alpha").out.splitlines()
    assert "api_key_env: none (no key needed)" in lines and "context_window: unknown" in lines


def test_providers_counts_listed_models_not_aliases_and_shows_age(run_cli, hosts, write_registry) -> None:
    from tests.fakehost import llama_swap_body

    body = llama_swap_body("coder", "embed")
    body["data"].append({"id": "coder-alias", "object": "model", "meta": {"llamaswap": {"type": "alias",
                                                                                      "modelID": "coder"}}})
    one = hosts(models_body=llama_swap_body("only"))
    many = hosts(models_body=body)
    path = write_registry({"default_provider": "one", "providers": {
        "one": {"kind": "llama-swap", "base_url": one.url}, "many": {"kind": "llama-swap", "base_url": many.url}}})
    text = run_cli("--registry", str(path), "providers").out
    assert " 1 model  " in text and " 2 models  " in text and "1 models" not in text
    assert text.count("  [checked ") == 2
    rows = run_cli("--registry", str(path), "providers", "--json").json()["providers"]
    assert {r["id"]: r["model_count"] for r in rows} == {"one": 1, "many": 2}
    models = run_cli("--registry", str(path), "models", "--json").json()
    assert sum(len(g["models"]) for g in models["providers"] if g["id"] == "many") == 2  # the same count
    assert all(isinstance(r["checked_at"], float) for r in rows)


def test_a_cached_offline_status_shows_its_age(run_cli, write_registry, isolated) -> None:
    import json
    import time

    path = write_registry({"default_provider": "down", "providers": {
        "down": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "timeout_s": 0.3}}})
    run_cli("--registry", str(path), "providers")
    cache = isolated / "discovery-cache.json"
    data = json.loads(cache.read_text())
    data["providers"]["down"]["latest"]["fetched_at"] = time.time() - 600  # asked ten minutes ago
    cache.write_text(json.dumps(data))
    text = run_cli("--registry", str(path), "--cache-ttl", "3600", "models").out
    assert "down [down, llama-swap]: offline (checked 10 min ago)" in text
    assert "[checked 10 min ago]" in run_cli("--registry", str(path), "--cache-ttl", "3600", "providers").out


@pytest.mark.parametrize(("argv", "message"), [
    (["resolve", "desk/tiny-alpah"], "desk does not list model 'tiny-alpah'; did you mean desk/tiny-alpha?"),
    (["resolve", "desk/nonexistent"], "desk does not list model 'nonexistent'"),
    (["resolve", "DESK/tiny-beta"], "'DESK' is not a provider (desk), and desk does not list 'DESK/tiny-beta'; "
                                    "did you mean desk/tiny-beta?"),
    (["favorites", "add", "dsk/tiny-beta"], "did you mean desk/tiny-beta?"),
    (["run", "desk/tiny-alpah", "hi"], "did you mean desk/tiny-alpha?"),  # before opencode is even looked for
    (["arena", "desk/tiny-alpha", "desk/nope"], "desk does not list model 'nope'"),
])
def test_typos_are_errors_where_nothing_could_work(fleet, run_cli, argv, message) -> None:
    result = run_cli("--registry", str(fleet), *argv)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith("boocoder-bridge: error: ") and message in result.err
    assert len(result.err.splitlines()) == 1
    assert run_cli("--registry", str(fleet), "favorites", "list").out == ""  # nothing stored on the way


def test_a_favorite_of_an_unlisted_model_is_stored_with_a_warning(fleet, run_cli) -> None:
    result = run_cli("--registry", str(fleet), "favorites", "add", "desk/tiny-alpah")
    assert result.code == 0 and result.out == "added desk/tiny-alpah\n"
    assert "warning: desk/tiny-alpah stored, but desk does not list model 'tiny-alpah'; did you mean " \
           "desk/tiny-alpha?" in result.err


def test_listed_ids_and_unknown_lists_pass(run_cli, write_registry) -> None:
    path = write_registry({"default_provider": "desk", "providers": {
        "desk": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False,
                 "models": {"tiny-alpha": {}}, "bare_ids": ["old-name"]},
        "down": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "timeout_s": 0.3}}})
    for model_id in ("desk/tiny-alpha", "tiny-alpha", "llama-swap/tiny-alpha", "old-name", "down/anything"):
        assert run_cli("--registry", str(path), "resolve", model_id).code == 0, model_id  # down: cannot tell


def test_arena_without_prompt_needs_no_opencode(run_cli, fleet, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run_cli("--registry", str(fleet), "arena", "desk/tiny-alpha", "desk/tiny-beta")
    assert result.code == 0, result.err
    assert result.out.startswith("desk/tiny-alpha: http://127.0.0.1:9/v1 model tiny-alpha")
    assert run_cli("--registry", str(fleet), "arena", "desk/tiny-alpha", "desk/tiny-beta", "--prompt", "hi").code == 6


def test_arena_table_has_no_colour_codes_and_shows_other_controls() -> None:
    from boocoder_bridge.cli import _side_by_side
    from boocoder_bridge.opencode.runner import Answer

    table = _side_by_side([Answer("a/x", 0, 1.0, "\x1b[32mgreen\x1b[0m and \x1b]8;;http://x\x07link\x1b]8;;\x07"),
                           Answer("b/y", 0, 2.0, "bell\x07 here")])
    assert "\x1b" not in table and "\x07" not in table
    assert "green and link" in table and "bell\\x07 here" in table


def run_with_terminal_stderr(*argv: str) -> tuple[int, str]:
    """The CLI with stderr on a pseudo-terminal (as in an interactive shell); returns (exit code, stderr)."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "boocoder_bridge", *argv], stdout=subprocess.DEVNULL,
                               stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


def test_progress_on_a_terminal_and_nothing_extra_on_a_pipe(hosts, write_registry) -> None:
    from tests.fakehost import llama_swap_body

    up = hosts(models_body=llama_swap_body("m1", "m2"))
    path = write_registry({"default_provider": "up", "providers": {
        "up": {"kind": "llama-swap", "base_url": up.url},
        "down": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "timeout_s": 0.3}}})
    code, err = run_with_terminal_stderr("--registry", str(path), "models", "--refresh")
    assert code == 0
    assert "boocoder-bridge: asking 2 hosts: up, down\n" in err
    assert "boocoder-bridge:   up: online, 2 models\n" in err and "boocoder-bridge:   down: offline (" in err
    piped = run_process("--registry", str(path), "models", "--refresh")
    assert piped.code == 0 and piped.err == ""


def test_favorites_list_says_which_are_hidden_and_why(run_cli, hosts, write_registry) -> None:
    from tests.fakehost import llama_swap_body

    up = hosts(models_body=llama_swap_body("m1"))
    path = write_registry({"default_provider": "up", "providers": {
        "up": {"kind": "llama-swap", "base_url": up.url},
        "down": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "timeout_s": 0.3},
        "cloud": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9", "discover": False,
                  "enabled_if_env": "NOT_SET_ANYWHERE_X", "models": {"c": {}}}}})
    for model_id in ("up/m1", "up/gone", "down/x", "cloud/c"):
        assert run_cli("--registry", str(path), "favorites", "add", model_id).code == 0
    listed = run_cli("--registry", str(path), "favorites", "list").out.splitlines()
    assert listed[0] == "up/m1"
    assert listed[1] == "up/gone  (hidden: up does not list gone now)"
    assert listed[2].startswith("down/x  (hidden: provider down is offline: ")
    assert listed[3] == "cloud/c  (hidden: provider cloud is disabled: set NOT_SET_ANYWHERE_X to enable it)"
    data = run_cli("--registry", str(path), "favorites", "list", "--json").json()
    assert data["favorites"] == ["up/m1", "up/gone", "down/x", "cloud/c"] and set(data["hidden"]) == {
        "up/gone", "down/x", "cloud/c"}
    shown = run_cli("--registry", str(path), "models", "--json").json()["favorites"]
    assert [m["id"] for m in shown] == ["up/m1"]  # the same rule as the catalog's


def test_a_reader_that_stops_early_is_no_error(tmp_path) -> None:
    """``generate | head``: the config is written in pieces, and the reader may close the pipe after the first."""
    models = {f"m{i:05d}": {} for i in range(1000)}
    registry = tmp_path / "big.json"
    registry.write_text(json.dumps({"default_provider": "p", "providers": {"p": {
        "kind": "openai-compatible", "base_url": "http://127.0.0.1:9", "discover": False, "models": models}}}))
    env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state")}
    whole = subprocess.run([sys.executable, "-m", "boocoder_bridge", "--registry", str(registry), "generate"],
                           capture_output=True, timeout=120, env=env)
    assert whole.returncode == 0 and len(whole.stdout) > 2 * PIECE_BYTES  # several pieces
    command = f"{shlex.quote(sys.executable)} -m boocoder_bridge --registry {shlex.quote(str(registry))} generate"
    head = subprocess.run(command + " | head -c 100",
                          shell=True, capture_output=True, text=True, timeout=120, env=env)
    assert head.stdout.startswith("{") and len(head.stdout) == 100
    assert "Traceback" not in head.stderr and "BrokenPipe" not in head.stderr, head.stderr[-500:]


@pytest.mark.parametrize("argv", [["validate"], ["models", "--json"], ["models"], ["generate"]])
@pytest.mark.parametrize(("redirect", "expected"), [(">/dev/full", "cannot write the output (No space left on device)"),
                                                    (">&-", "standard output is closed")])
def test_output_that_cannot_be_written_is_one_line_exit_1(fleet, tmp_path, argv, redirect, expected) -> None:
    """A full disk behind stdout, or stdout closed, once gave a traceback (or lost the output with exit 0)."""
    if redirect == ">/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "boocoder_bridge", "--registry", str(fleet),
                                                 *argv])
    done = subprocess.run(f"{command} {redirect}", shell=True, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state")})
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"boocoder-bridge: error: {expected}") and done.stderr.count("\n") == 1, done.stderr
