"""The bridge's favorites mirrored into opencode's TUI ``model.json``, and TUI toggles brought back (files only;
the real TUI under tmux is in test_opencode_tui_e2e.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from boocoder_bridge import Bridge
from boocoder_bridge.opencode.tui import BASE_FILE, LOCK_FILE, OPT_OUT_ENV, merge, model_json_path


@pytest.fixture
def registry(write_registry):
    return write_registry({
        "default_provider": "desk",
        "providers": {
            "desk": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False,
                     "models": {"a": {}, "b": {}, "c": {}}},
            "box": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False,
                    "models": {"a": {}}},
        },
    })


@pytest.fixture
def model_json(tmp_path: Path) -> Path:
    return tmp_path / "xdg-state" / "opencode" / "model.json"


def fav(provider: str, model: str) -> dict[str, str]:
    return {"providerID": provider, "modelID": model}


def tui_write(path: Path, data: object) -> None:
    """What opencode does on a toggle: the whole file, compact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


def tui_favorites(path: Path) -> list[dict[str, str]]:
    return json.loads(path.read_text())["favorite"]


@pytest.mark.parametrize(("base", "ours", "theirs", "merged"), [
    (None, ["x", "y"], ["y", "z"], ["x", "y", "z"]),  # first sync: union, nothing lost
    (["x"], ["x", "y"], ["x"], ["x", "y"]),  # added in the bridge
    (["x"], ["x"], ["x", "z"], ["x", "z"]),  # added in the TUI
    (["x", "y"], ["x"], ["x", "y"], ["x"]),  # removed in the bridge
    (["x", "y"], ["x", "y"], ["y"], ["y"]),  # removed in the TUI
    (["x", "y"], ["y", "p"], ["x", "q"], ["p", "q"]),  # both changed: every change kept
    (["x"], [], [], []),  # removed on both sides
    (None, [], ["c", "b", "a"], ["a", "b", "c"]),  # restored from the TUI (newest first): oldest first again
])
def test_three_way_merge(base, ours, theirs, merged) -> None:
    assert merge(base, ours, theirs) == merged


def test_path_follows_xdg_state_home_else_home() -> None:
    assert model_json_path({"XDG_STATE_HOME": "/s"}) == Path("/s/opencode/model.json")
    assert model_json_path({"HOME": "/h"}) == Path("/h/.local/state/opencode/model.json")


def test_add_mirrors_fleet_favorites_and_keeps_everything_else(registry, model_json) -> None:
    original = {"recent": [fav("desk", "a"), fav("opencode", "big-pickle")],
                "favorite": [fav("opencode", "big-pickle"), "odd entry", fav("anthropic", "claude")],
                "variant": {"opencode/big-pickle": "high"}, "future_key": {"n": 1.5, "s": "é"}}
    tui_write(model_json, original)
    os.chmod(model_json, 0o640)
    bridge = Bridge.load(registry)
    assert bridge.add_favorite("desk/b") == ("desk/b", True)
    data = json.loads(model_json.read_text())
    assert data["favorite"] == [fav("desk", "b"), *original["favorite"]]  # new star first, the rest untouched
    assert {k: v for k, v in data.items() if k != "favorite"} == {k: v for k, v in original.items() if k != "favorite"}
    assert list(data) == list(original)  # key order kept too
    assert model_json.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in model_json.parent.iterdir()] == ["model.json"]  # no temp file left
    bridge.remove_favorite("desk/b")
    assert json.loads(model_json.read_text()) == original


def test_no_model_json_is_created_with_the_shape_opencode_reads(registry, model_json) -> None:
    Bridge.load(registry).add_favorite("box/a")
    assert json.loads(model_json.read_text()) == {"recent": [], "favorite": [fav("box", "a")], "variant": {}}


def test_tui_toggles_come_back(registry, model_json) -> None:
    bridge = Bridge.load(registry)
    bridge.add_favorite("desk/a")
    bridge.add_favorite("desk/b")
    tui = json.loads(model_json.read_text())
    tui["favorite"] = [fav("desk", "c"), fav("desk", "a")]  # the TUI starred c and unstarred b
    tui_write(model_json, tui)
    assert Bridge.load(registry).sync_favorites() == ["desk/a", "desk/c"]


def test_changes_on_both_sides_are_all_kept(registry, model_json) -> None:
    bridge = Bridge.load(registry)
    for model_id in ("desk/a", "desk/b"):
        bridge.add_favorite(model_id)
    # A TUI that started earlier rewrites the file: drops a, adds c, knows nothing of later bridge changes.
    tui_write(model_json, {"recent": [], "favorite": [fav("desk", "c"), fav("desk", "b")], "variant": {}})
    bridge.favorites.add("box/a")  # meanwhile another bridge writer that does not sync (e.g. an older version)
    bridge.favorites.remove("desk/b")
    assert bridge.sync_favorites() == ["box/a", "desk/c"]
    assert tui_favorites(model_json) == [fav("box", "a"), fav("desk", "c")]


def test_another_registry_on_the_same_state_dir_does_not_undo_a_tui_unstar(registry, write_registry,
                                                                          model_json) -> None:
    """The mirror of last synced stars was kept per model.json only: a sync with another registry emptied it,
    and an unstar made in the TUI afterwards came back at the next sync with the first registry."""
    other = write_registry({"default_provider": "far", "providers": {"far": {
        "kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False, "models": {"z": {}}}}},
        "other.json")
    Bridge.load(registry).add_favorite("desk/a")
    assert Bridge.load(other).add_favorite("far/z") == ("far/z", True)  # a sync with the other fleet
    assert tui_favorites(model_json) == [fav("far", "z"), fav("desk", "a")]
    tui = json.loads(model_json.read_text())
    tui["favorite"] = [fav("far", "z")]  # unstarred in the TUI
    tui_write(model_json, tui)
    assert "desk/a" not in Bridge.load(registry).sync_favorites()  # the unstar came through, and stays
    assert tui_favorites(model_json) == [fav("far", "z")]
    assert "far/z" in Bridge.load(other).sync_favorites()
    assert tui_favorites(model_json) == [fav("far", "z")]


@pytest.mark.parametrize("kind", ["held", "fifo"])
def test_a_stuck_or_odd_lock_skips_the_sync_with_a_warning(registry, model_json, isolated, monkeypatch,
                                                           kind) -> None:
    """The sync lock was waited on forever (and a fifo in its place hung every favorites command)."""
    import fcntl

    from boocoder_bridge.opencode import tui as opencode_tui

    monkeypatch.setattr(opencode_tui, "LOCK_WAIT_S", 0.2)
    lock = isolated / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    if kind == "held":  # another process in the middle of a sync that never ends
        holder = os.open(lock, os.O_WRONLY | os.O_CREAT)
        fcntl.flock(holder, fcntl.LOCK_EX)
    else:
        os.mkfifo(lock)
    try:
        bridge = Bridge.load(registry)
        assert bridge.add_favorite("desk/a") == ("desk/a", True)
        assert any("TUI favorites not synced" in w and str(lock) in w for w in bridge.warnings), bridge.warnings
        assert bridge.favorites.list() == ["desk/a"] and not model_json.exists()
    finally:
        if kind == "held":
            os.close(holder)
    if kind == "held":  # once the lock is free, the next sync mirrors it
        assert Bridge.load(registry).sync_favorites() == ["desk/a"]
        assert tui_favorites(model_json) == [fav("desk", "a")]


def test_first_sync_loses_nothing(registry, model_json) -> None:
    tui_write(model_json, {"favorite": [fav("desk", "c"), fav("opencode", "x")]})
    bridge = Bridge.load(registry)
    bridge.favorites.add("desk/a")
    assert bridge.sync_favorites() == ["desk/a", "desk/c"]
    assert tui_favorites(model_json) == [fav("desk", "a"), fav("desk", "c"), fav("opencode", "x")]


def test_generate_and_dispatch_mirror(registry, model_json, tmp_path, run_cli) -> None:
    Bridge.load(registry).favorites.add("desk/a")  # stored without a sync
    assert run_cli("--registry", str(registry), "generate", "--out", str(tmp_path / "oc.json")).code == 0
    assert tui_favorites(model_json) == [fav("desk", "a")]
    bridge = Bridge.load(registry)
    bridge.favorites.add("desk/c")
    bridge.dispatch("desk/a", ["hi"], opencode=sys.executable)  # not started: any executable will do
    assert tui_favorites(model_json) == [fav("desk", "c"), fav("desk", "a")]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"favorite": {"a": 1}}', b"\xff\xfe",
                                     b'{"favorite": [], "n": NaN}',
                                     b'{"recent": [{"providerID": "x", "modelID": "\\ud800"}], "favorite": []}'])
def test_unreadable_model_json_is_left_alone_with_a_warning(registry, model_json, run_cli, content) -> None:
    model_json.parent.mkdir(parents=True)
    model_json.write_bytes(content)
    result = run_cli("--registry", str(registry), "favorites", "add", "desk/a")
    assert result.code == 0 and result.out == "added desk/a\n"
    assert f"warning: {model_json}: " in result.err and "left it as it is" in result.err
    assert len(result.err.splitlines()) == 1
    assert model_json.read_bytes() == content
    assert Bridge.load(registry).favorites.list() == ["desk/a"]


@pytest.mark.parametrize("value", ["0", "off"])
def test_opt_out(registry, model_json, monkeypatch, isolated, value) -> None:
    monkeypatch.setenv(OPT_OUT_ENV, value)
    tui_write(model_json, {"favorite": [fav("desk", "c")]})
    bridge = Bridge.load(registry)
    bridge.add_favorite("desk/a")
    assert bridge.sync_favorites() == ["desk/a"]
    assert tui_favorites(model_json) == [fav("desk", "c")]
    assert not (isolated / BASE_FILE).exists()


def test_symlinked_model_json_is_written_through(registry, model_json, tmp_path) -> None:
    real = tmp_path / "dotfiles" / "model.json"
    tui_write(real, {"favorite": []})
    model_json.parent.mkdir(parents=True)
    model_json.symlink_to(real)
    Bridge.load(registry).add_favorite("desk/a")
    assert model_json.is_symlink()
    assert tui_favorites(real) == [fav("desk", "a")]


@pytest.mark.parametrize("kind", ["nested", "fifo"])
def test_a_broken_base_file_is_forgotten_not_a_crash(registry, model_json, isolated, kind) -> None:
    """The base of the three-way merge is derived data: nested JSON was a RecursionError traceback on every
    favorites command, and a fifo hung them. Without a base the merge is the union, so nothing is lost."""
    from tests.helpers import run_process

    isolated.mkdir(parents=True, exist_ok=True)
    base = isolated / BASE_FILE
    if kind == "fifo":
        os.mkfifo(base)
    else:
        base.write_text("[" * 100_000 + "]" * 100_000)
    tui_write(model_json, {"favorite": [fav("desk", "c")]})
    env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(isolated),
           "XDG_STATE_HOME": str(model_json.parent.parent)}
    result = run_process("--registry", str(registry), "favorites", "add", "desk/a", env=env, timeout=60)
    assert result.code == 0 and result.out == "added desk/a\n", (result.code, result.err[-500:])
    assert "Traceback" not in result.err
    assert tui_favorites(model_json) == [fav("desk", "a"), fav("desk", "c")]


@pytest.mark.parametrize("kind", ["fifo", "big"])
def test_a_model_json_that_is_a_fifo_or_too_big_is_left_alone(registry, model_json, isolated, kind) -> None:
    """opencode's file is read with files.read_capped: a fifo hung every favorites command (and serve's watch)."""
    from tests.helpers import run_process

    model_json.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(model_json)
    else:
        model_json.write_text('{"favorite": []}' + " " * (4 << 20))
    env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(isolated),
           "XDG_STATE_HOME": str(model_json.parent.parent)}
    result = run_process("--registry", str(registry), "favorites", "add", "desk/a", env=env, timeout=60)
    assert result.code == 0 and result.out == "added desk/a\n", (result.code, result.err[-500:])
    assert f"warning: {model_json}: " in result.err and "left it as it is" in result.err, result.err
