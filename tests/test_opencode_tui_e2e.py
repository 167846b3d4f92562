"""opencode's real TUI under tmux shows the bridge's favorites, and its ctrl+f toggles reach the bridge."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import run_process
from tests.opencode_bin import opencode_binary, opencode_env
from tests.tmux import Tmux

pytestmark = pytest.mark.opencode


@pytest.fixture
def fleet(write_registry, tmp_path) -> dict[str, str]:
    """A static fleet (the TUI lists it without asking a host) and the env the CLI and opencode share."""
    registry = write_registry({
        "default_provider": "desk",
        "providers": {"desk": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False,
                               "models": {"tiny-alpha": {"name": "Tiny Alpha"}, "tiny-beta": {"name": "Tiny Beta"}}}},
    })
    home = tmp_path / "home"
    env = {**os.environ, "BOOCODER_BRIDGE_REGISTRY": str(registry), "HOME": str(home),
           "XDG_STATE_HOME": str(home / ".local" / "state")}
    return env


def cli(env: dict[str, str], *argv: str) -> str:
    result = run_process(*argv, env=env)
    assert result.code == 0, result.err
    return result.out


@pytest.fixture
def tui(fleet, tmp_path) -> Iterator[Tmux]:
    """opencode's TUI on the bridge's generated config, its model picker open."""
    config = tmp_path / "opencode.json"
    cli(fleet, "generate", "--out", str(config))
    project = tmp_path / "project"
    project.mkdir()
    env = {**opencode_env(Path(fleet["HOME"]), config), "TERM": "xterm-256color"}
    assert env["XDG_STATE_HOME"] == fleet["XDG_STATE_HOME"]
    term = Tmux(tmp_path / "tmux.sock", [str(opencode_binary())], env, project)
    try:
        term.wait_for(lambda s: "Ask anything" in s, "opencode's prompt", timeout=120)
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
        term.wait_for(lambda s: "Select model" in s, "the model picker")
        yield term
    finally:
        term.close()


def favorites_section(screen: str) -> list[str]:
    """The picker's lines under its 'Favorites' heading, up to the next heading (a line with one word)."""
    lines = [line.strip() for line in screen.splitlines()]
    start = lines.index("Favorites") + 1
    section = []
    for line in lines[start:]:
        if not line or line in ("Recent", "OpenCode Zen", "desk"):
            break
        section.append(line)
    return section


@pytest.fixture
def with_favorite(fleet) -> None:
    assert cli(fleet, "favorites", "add", "desk/tiny-beta") == "added desk/tiny-beta\n"


def test_bridge_favorite_is_at_the_top_of_the_tui_picker(with_favorite, tui) -> None:
    screen = tui.wait_for(lambda s: "Favorites" in s, "the Favorites group")
    lines = [line.strip() for line in screen.splitlines() if line.strip()]
    top = next(i for i, line in enumerate(lines) if line.startswith("Select model"))
    assert lines[top + 1:top + 3] == ["Search", "Favorites"], screen  # the first group, under the search box
    assert [line.split()[:3] for line in favorites_section(screen)] == [["Tiny", "Beta", "desk"]], screen


def test_ctrl_f_in_the_tui_reaches_the_bridge_on_sync(fleet, tui) -> None:
    model_json = Path(fleet["XDG_STATE_HOME"]) / "opencode" / "model.json"
    assert cli(fleet, "favorites", "list") == ""
    tui.send("Tiny Alpha", literal=True)
    tui.wait_for(lambda s: any(line.split()[:3] == ["Tiny", "Alpha", "desk"] for line in s.splitlines()),
                 "the search to find Tiny Alpha")
    tui.send("C-f")
    tui.wait_for(lambda s: "Tiny Alpha (Favorite)" in s, "the star")
    # The TUI writes the file after it redraws: wait for the write, then ask the bridge.
    wait_until(lambda: tui_favorites(model_json) == [{"providerID": "desk", "modelID": "tiny-alpha"}],
               "opencode to write model.json")
    assert cli(fleet, "favorites", "list") == ""  # a read never syncs (issue 19): the sync is its own step
    assert cli(fleet, "favorites", "sync").splitlines() == ["took in desk/tiny-alpha (starred in opencode's TUI)",
                                                            "in sync: 1 favorite"]
    assert cli(fleet, "favorites", "list") == "desk/tiny-alpha\n"
    tui.send("C-f")  # and unstarred again in the TUI: gone from the bridge too
    tui.wait_for(lambda s: "Tiny Alpha (Favorite)" not in s and "Tiny Alpha" in s, "the star to go")
    wait_until(lambda: tui_favorites(model_json) == [], "opencode to write model.json")
    assert cli(fleet, "favorites", "sync").splitlines() == ["removed desk/tiny-alpha (unstarred in opencode's TUI)",
                                                            "in sync: 0 favorites"]
    assert cli(fleet, "favorites", "list") == ""


def tui_favorites(path: Path) -> object:
    try:
        return json.loads(path.read_text())["favorite"]
    except (OSError, ValueError, KeyError):
        return None


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
