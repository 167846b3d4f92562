"""The user's own opencode on the fleet: `opencode-plugin install` writes one plugin file, and the real opencode
(its TUI under tmux, and `opencode debug config`, which `opencode run` reads) then has the fleet's providers, the
bridge's favorites and a fleet model as its default, read from the bridge at each start."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_process
from tests.opencode_bin import opencode_binary
from tests.tmux import Tmux


@pytest.fixture
def user(write_registry, tmp_path) -> dict[str, str]:
    """A user's HOME holding their own opencode config (no `model`), and the env their shell has."""
    registry = write_registry({
        "default_provider": "desk",
        "providers": {"desk": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False,
                               "models": {"tiny-alpha": {"name": "Tiny Alpha"}, "tiny-beta": {"name": "Tiny Beta"}}}},
    })
    home = tmp_path / "home"
    (home / ".config" / "opencode").mkdir(parents=True)
    (home / ".config" / "opencode" / "opencode.json").write_text(
        '{"$schema": "https://opencode.ai/config.json", "username": "newcomer"}\n')
    base = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BOOCODER_BRIDGE_", "OPENCODE"))}
    return {**base, "HOME": str(home), "BOOCODER_BRIDGE_REGISTRY": str(registry),
            "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state")}


def plugin_file(env: dict[str, str]) -> Path:
    return Path(env["HOME"]) / ".config" / "opencode" / "plugins" / "boocoder-bridge.js"


def cli(env: dict[str, str], *argv: str) -> tuple[str, str]:
    result = run_process(*argv, env=env)
    assert result.code == 0, result.err
    return result.out, result.err


def test_install_dry_run_and_uninstall(user) -> None:
    path, config = plugin_file(user), Path(user["HOME"]) / ".config" / "opencode" / "opencode.json"
    own = config.read_bytes()
    out, err = cli(user, "opencode-plugin", "install", "--dry-run")
    assert not path.exists() and err == f"would write {path}\n"
    assert out.startswith("// boocoder-bridge opencode plugin") and user["BOOCODER_BRIDGE_REGISTRY"] in out

    assert cli(user, "opencode-plugin", "install") == ("", f"wrote {path}\n")
    assert path.read_text() == out  # what the dry run showed is what was written
    assert cli(user, "opencode-plugin", "install")[1] == f"{path} is already current\n"
    assert config.read_bytes() == own  # the user's own config is never rewritten

    assert cli(user, "opencode-plugin", "uninstall", "--dry-run")[1] == f"would remove {path}\n" and path.exists()
    assert cli(user, "opencode-plugin", "uninstall")[1] == f"removed {path}\n" and not path.exists()
    assert cli(user, "opencode-plugin", "uninstall")[1] == f"{path} is not there\n"
    assert config.read_bytes() == own


def test_a_plugin_file_that_is_not_ours_is_left_alone(user) -> None:
    path = plugin_file(user)
    path.parent.mkdir(parents=True)
    path.write_text("export const Mine = async () => ({});\n")
    for action in ("install", "uninstall"):
        result = run_process("opencode-plugin", action, env=user)
        assert result.code == 2 and "not written by boocoder-bridge, left as it is" in result.err, result.err
        assert "Traceback" not in result.err
    assert path.read_text() == "export const Mine = async () => ({});\n"


def opencode_env(user: dict[str, str]) -> dict[str, str]:
    """What the user's opencode sees: their HOME, no bridge variables (the plugin carries the registry)."""
    return {"PATH": user["PATH"], "HOME": user["HOME"], "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "TERM": "xterm-256color"}


@pytest.mark.opencode
def test_opencode_run_sees_the_fleet_and_a_fleet_model_as_default(user, tmp_path) -> None:
    """`opencode debug config` prints the merged config that `opencode run` uses: with the plugin, the fleet's
    provider is in it and `model` is the bridge's favorite; the user's own keys stay."""
    cli(user, "favorites", "add", "desk/tiny-beta")
    cli(user, "opencode-plugin", "install")
    project = tmp_path / "project"
    project.mkdir()
    done = subprocess.run([str(opencode_binary()), "debug", "config"], env=opencode_env(user), cwd=project,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["model"] == "desk/tiny-beta"
    assert sorted(config["provider"]["desk"]["models"]) == ["tiny-alpha", "tiny-beta"]
    assert config["username"] == "newcomer"
    # A new model in the registry is there at the next start, with nothing re-run.
    registry = Path(user["BOOCODER_BRIDGE_REGISTRY"])
    data = json.loads(registry.read_text())
    data["providers"]["desk"]["models"]["tiny-gamma"] = {"name": "Tiny Gamma"}
    registry.write_text(json.dumps(data))
    done = subprocess.run([str(opencode_binary()), "models", "desk"], env=opencode_env(user), cwd=project,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["desk/tiny-alpha", "desk/tiny-beta", "desk/tiny-gamma"]


@pytest.mark.opencode
def test_the_tui_starts_on_a_fleet_model_with_the_fleet_and_favorites_in_its_picker(user, tmp_path) -> None:
    cli(user, "favorites", "add", "desk/tiny-beta")
    cli(user, "opencode-plugin", "install")
    project = tmp_path / "project"
    project.mkdir()
    term = Tmux(tmp_path / "tmux.sock", [str(opencode_binary())], opencode_env(user), project)
    try:
        screen = term.wait_for(lambda s: "Ask anything" in s, "opencode's prompt", timeout=180)
        term.wait_for(lambda s: "Tiny Beta" in s, "the fleet model as the TUI's model")
        for attempt in range(5):  # the prompt is drawn a moment before it takes keys: type again if lost
            term.send("/models", literal=True)
            try:
                term.wait_for(lambda s: "/models" in s, "the typed command", timeout=10)
                break
            except AssertionError:
                if attempt == 4:
                    raise
                term.send("C-u")
        term.send("Enter")
        screen = term.wait_for(lambda s: "Select model" in s and "Favorites" in s, "the picker with Favorites")
        words = [line.split() for line in screen.splitlines()]
        favorites = words.index(["Favorites"])
        assert words[favorites + 1] == ["●", "Tiny", "Beta", "desk"], screen  # the favorite, and the current model
        group = next(i for i, w in enumerate(words) if i > favorites + 1 and "desk" in w)  # the fleet's own group
        assert words[group + 1][:2] == ["Tiny", "Alpha"], screen  # its other model (a favorite is listed once)
    finally:
        term.close()
