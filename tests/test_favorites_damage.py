"""Favorites that survive damage (issue 21): an empty, damaged or missing database, opencode's ``model.json``
beside it, a provider that left the registry. Real files, the CLI as a real process and a real ``serve``;
where a file must not change, it is compared byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from boocoder_bridge.opencode.tui import BASE_FILE
from boocoder_bridge.settings import FAVORITES_FILE
from tests.helpers import Result, run_process
from tests.test_server import start_server

FLEET = {
    "default_provider": "desk",
    "providers": {
        "desk": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False,
                 "models": {"a": {}, "b": {}, "c": {}}},
    },
}


@pytest.fixture
def registry(write_registry) -> Path:
    return write_registry(FLEET)


@pytest.fixture
def model_json(isolated: Path) -> Path:
    """opencode's TUI favorites file (conftest points XDG_STATE_HOME beside the state dir)."""
    return Path(os.environ["XDG_STATE_HOME"]) / "opencode" / "model.json"


@pytest.fixture
def cli(registry: Path) -> Callable[..., Result]:
    return lambda *argv: run_process("--registry", str(registry), *argv)


def tui_stars(path: Path) -> list[str]:
    return [f"{e['providerID']}/{e['modelID']}" for e in json.loads(path.read_bytes())["favorite"]]


def stored(state: Path) -> list[str]:
    with sqlite3.connect(f"file:{state / FAVORITES_FILE}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT model_id FROM favorites ORDER BY position")]


@pytest.fixture
def starred(cli, isolated: Path, model_json: Path) -> Path:
    """desk/a, desk/b, desk/c starred one by one with the CLI: in the database and in model.json."""
    for model in "abc":
        assert cli("favorites", "add", f"desk/{model}").code == 0
    assert stored(isolated) == ["desk/a", "desk/b", "desk/c"]
    assert tui_stars(model_json) == ["desk/c", "desk/b", "desk/a"]  # opencode's order: newest first
    return isolated / FAVORITES_FILE


def one_error(result: Result, code: int) -> str:
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("boocoder-bridge: error: ") and "Traceback" not in result.err
    return lines[0]


DAMAGE = {
    "empty": b"",  # a crashed copy, a sync tool, `> file`
    "garbage": b"this is not sqlite at all\n" * 200,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_an_empty_or_damaged_database_is_refused_and_neither_file_changes(cli, starred, model_json, damage) -> None:
    """A 0-byte file was taken for a new database: exit 0, an empty list, the file rewritten, and the next sync
    removed the fleet's stars from model.json too."""
    starred.write_bytes(DAMAGE[damage])
    tui_before = model_json.read_bytes()
    for argv in (["favorites", "list"], ["favorites", "add", "desk/c"], ["favorites", "remove", "desk/a"],
                 ["favorites", "sync"], ["models"]):
        line = one_error(cli(*argv), 4)
        assert str(starred) in line and "favorites sync" in line, (argv, line)
        assert starred.read_bytes() == DAMAGE[damage], argv  # never rewritten
        assert model_json.read_bytes() == tui_before, argv  # the TUI keeps the fleet's stars
    # The advice in the error keeps the stars: move the file away, sync, and they are back, in their order.
    starred.rename(starred.with_name("favorites.damaged"))
    synced = cli("favorites", "sync")
    assert synced.code == 0, synced.err
    assert stored(starred.parent) == ["desk/a", "desk/b", "desk/c"]
    assert model_json.read_bytes() == tui_before


def test_a_damaged_database_in_serve_is_503_and_model_json_keeps_its_stars(registry, starred, model_json,
                                                                          isolated) -> None:
    starred.write_bytes(b"")
    tui_before = model_json.read_bytes()
    process, url = start_server(registry, isolated)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            for method, path in (("GET", "/api/favorites"), ("PUT", "/api/favorites/desk/a"),
                                 ("DELETE", "/api/favorites/desk/b")):
                answer = client.request(method, path)
                assert answer.status_code == 503, (method, answer.text)
                assert str(starred) in answer.json()["error"]
            time.sleep(6)  # serve's favorites watch rereads (and syncs) every 5 s
            assert client.get("/api/favorites").status_code == 503
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert starred.read_bytes() == b"" and model_json.read_bytes() == tui_before


def test_a_deleted_database_is_no_favorites_to_a_read_and_the_stars_come_back_on_sync(cli, starred,
                                                                                     model_json) -> None:
    """Deleting the file (the old advice: "move it away") made the next favorites command remove every fleet
    star from model.json. A missing database is unknown, not empty; it is created only when a favorite is
    written, and the sync writes the TUI's stars back, in the order they were added."""
    tui_before = model_json.read_bytes()
    starred.unlink()
    listed = cli("favorites", "list")
    assert (listed.code, listed.out) == (0, "")
    assert not starred.exists()  # a read creates nothing
    assert model_json.read_bytes() == tui_before
    assert cli("favorites", "sync").code == 0
    assert stored(starred.parent) == ["desk/a", "desk/b", "desk/c"]
    assert model_json.read_bytes() == tui_before


def test_a_deleted_model_json_gets_the_stars_back_instead_of_the_database_losing_them(cli, starred,
                                                                                     model_json) -> None:
    db_before = starred.read_bytes()
    model_json.unlink()
    assert cli("generate").code == 0  # a sync step (opencode is about to start with this config)
    assert stored(starred.parent) == ["desk/a", "desk/b", "desk/c"] and starred.read_bytes() == db_before
    assert tui_stars(model_json) == ["desk/c", "desk/b", "desk/a"]


def test_reads_never_sync_or_write(cli, registry, starred, model_json, isolated) -> None:
    """`favorites list` and GET /api/favorites ran the TUI sync and could rewrite model.json (issue 19)."""
    data = json.loads(model_json.read_bytes())
    data["favorite"] = [{"providerID": "desk", "modelID": "c"}, {"providerID": "desk", "modelID": "a"}]
    model_json.write_text(json.dumps(data))  # unstarred b in the TUI
    files = {p: p.read_bytes() for p in (starred, model_json, isolated / BASE_FILE)}
    assert cli("favorites", "list").out.split() == ["desk/a", "desk/b", "desk/c"]
    assert cli("models", "--json").code == 0
    process, url = start_server(registry, isolated)
    try:  # serve syncs at start (an explicit step), so compare what a read does after that
        with httpx.Client(base_url=url, timeout=10) as client:
            after_start = {p: p.read_bytes() for p in files}
            assert client.get("/api/favorites").json() == {"favorites": ["desk/a", "desk/c"]}
            assert {p: p.read_bytes() for p in files} == after_start
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert after_start[starred] != files[starred]  # the start did sync: b is gone from the database too
    for path in (starred, isolated / BASE_FILE):
        path.write_bytes(files[path])  # as before serve ran
    for argv in (["favorites", "list"], ["favorites", "list", "--json"], ["models"], ["models", "--json"]):
        assert cli(*argv).code == 0
        assert {p: p.read_bytes() for p in files} == files, argv
    listed = cli("favorites", "list")  # the read says a sync is due, and does not do it
    assert "changed since the last sync; run `boocoder-bridge favorites sync`" in listed.err, listed.err
    synced = cli("favorites", "sync")
    assert synced.out == "removed desk/b (unstarred in opencode's TUI)\nin sync: 2 favorites\n", synced.out
    assert stored(isolated) == ["desk/a", "desk/c"]
    assert "since the last sync" not in cli("favorites", "list").err


@pytest.fixture
def serving(registry: Path, isolated: Path) -> Iterator[str]:
    process, url = start_server(registry, isolated)
    yield url
    process.terminate()
    process.wait(timeout=10)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_state_dir_removed_while_serving_restores_the_favorites_in_their_order(serving, isolated,
                                                                             model_json) -> None:
    """They came back from model.json in reverse order (opencode's list runs newest first)."""
    with httpx.Client(base_url=serving, timeout=10) as client:
        for model in "abc":
            assert client.put(f"/api/favorites/desk/{model}").status_code == 200
        assert tui_stars(model_json) == ["desk/c", "desk/b", "desk/a"]
        shutil.rmtree(isolated)

        def restored() -> bool:
            return client.get("/api/favorites").json()["favorites"] != []

        wait_for(lambda: (isolated / FAVORITES_FILE).exists() and restored(), "the favorites to come back")
        assert client.get("/api/favorites").json() == {"favorites": ["desk/a", "desk/b", "desk/c"]}
        catalog = client.get("/api/models").json()
        assert [m["id"] for m in catalog["favorites"]] == ["desk/a", "desk/b", "desk/c"]
    assert tui_stars(model_json) == ["desk/c", "desk/b", "desk/a"]


def test_a_favorite_whose_provider_left_the_registry_is_removable_as_stored(write_registry, isolated) -> None:
    """`favorites remove pb/b1` read pb/b1 as a legacy ID of the default provider ("pa/pb/b1 was not a
    favorite", exit 0) and the API's DELETE answered 200 and changed nothing: hidden forever."""
    both = {"default_provider": "pa", "providers": {
        "pa": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False, "models": {"a1": {}}},
        "pb": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9", "discover": False, "models": {"b1": {}}}}}
    registry = write_registry(both)
    for model_id in ("pb/b1", "pb/b2", "pa/a1"):
        assert run_process("--registry", str(registry), "favorites", "add", model_id).code == 0
    del both["providers"]["pb"]
    registry.write_text(json.dumps(both))  # pb leaves the registry
    listed = run_process("--registry", str(registry), "favorites", "list")
    assert "pb/b1  (hidden: provider pb is not in the registry)" in listed.out
    removed = run_process("--registry", str(registry), "favorites", "remove", "pb/b1")
    assert (removed.code, removed.out) == (0, "removed pb/b1\n"), removed
    assert stored(isolated) == ["pb/b2", "pa/a1"]
    process, url = start_server(registry, isolated)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            answer = client.delete("/api/favorites/pb/b2")
            assert answer.status_code == 200 and answer.json() == {"favorites": ["pa/a1"]}
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert stored(isolated) == ["pa/a1"]
