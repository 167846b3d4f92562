"""Favorites: SQLite in the state dir, shared by processes, never silently reset."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing

import pytest

from boocoder_bridge import Bridge, ModelIdError, StateError
from boocoder_bridge import favorites as favorites_module
from boocoder_bridge.favorites import SCHEMA_VERSION
from boocoder_bridge.settings import FAVORITES_FILE as FILE_NAME
from tests.helpers import deepseek, down, registry_data, run_process


@pytest.fixture
def registry(write_registry):
    return write_registry(registry_data({"sam": down(), "emb": down(), "deepseek": deepseek(enabled_if_env=None)}))


def test_add_list_remove_in_order(registry, isolated) -> None:
    favorites = Bridge.load(registry).favorites
    assert favorites.list() == []
    assert favorites.add("emb/bge-m3") == "emb/bge-m3"
    assert favorites.add("qwen3") == "sam/qwen3"  # a bare legacy ID is stored in composite form
    assert favorites.add("deepseek-chat") == "deepseek/deepseek-chat"
    assert favorites.add("llama-swap/unsloth/Q:4") == "sam/unsloth/Q:4"
    favorites.add("sam/qwen3")  # twice: no-op
    assert favorites.list() == ["emb/bge-m3", "sam/qwen3", "deepseek/deepseek-chat", "sam/unsloth/Q:4"]
    assert favorites.remove("qwen3") is True and favorites.remove("qwen3") is False
    assert favorites.list() == ["emb/bge-m3", "deepseek/deepseek-chat", "sam/unsloth/Q:4"]
    assert (isolated / FILE_NAME).exists()


def test_bad_ids_are_not_stored(registry) -> None:
    favorites = Bridge.load(registry).favorites
    with pytest.raises(ModelIdError, match="no model part"):
        favorites.add("sam/")
    assert favorites.list() == []


def test_cli_favorites(registry) -> None:
    assert run_process("--registry", str(registry), "favorites", "add", "emb/x").code == 0
    assert run_process("--registry", str(registry), "favorites", "add", "y").out.strip() == "added sam/y"
    data = run_process("--registry", str(registry), "favorites", "list", "--json").json()
    assert data["favorites"] == ["emb/x", "sam/y"] and set(data["hidden"]) == {"emb/x", "sam/y"}  # hosts down
    assert "removed sam/y" in run_process("--registry", str(registry), "favorites", "remove", "y").out


WORKER = """
import sys
from boocoder_bridge import Bridge
from tests.helpers import deepseek, down, registry_data
bridge = Bridge.load(sys.argv[1])
tag = sys.argv[2]
for i in range(40):
    bridge.favorites.add(f"sam/{tag}-{i}")
for i in range(0, 40, 2):
    bridge.favorites.remove(f"sam/{tag}-{i}")
"""


def test_concurrent_processes_lose_nothing(registry) -> None:
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(registry), f"w{n}"]) for n in range(4)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    stored = Bridge.load(registry).favorites.list()
    expected = {f"sam/w{n}-{i}" for n in range(4) for i in range(1, 40, 2)}
    assert set(stored) == expected and len(stored) == len(expected)
    for n in range(4):  # each writer's own order is kept
        mine = [s for s in stored if s.startswith(f"sam/w{n}-")]
        assert mine == [f"sam/w{n}-{i}" for i in range(1, 40, 2)]


def test_a_file_created_while_another_process_checks_it_is_not_foreign(registry, isolated, monkeypatch) -> None:
    """Regression (seen in CI): a second process read the header of a new file just before the first one
    committed its schema and the table list just after, and refused the file as "not ours"."""
    other = Bridge.load(registry).favorites
    connect = sqlite3.connect
    done = threading.Event()

    def create_meanwhile(statement: str) -> None:
        if "sqlite_master" in statement and not done.is_set():  # between the header reads and the table list
            threading.Thread(target=lambda: (other.add("sam/first"), done.set())).start()
            done.wait(1)  # the other process commits here, unless this check holds a consistent read

    def traced_connect(*args, **kwargs):
        db = connect(*args, **kwargs)
        if threading.current_thread() is threading.main_thread():  # only this process's own check
            db.set_trace_callback(create_meanwhile)
        return db

    favorites = Bridge.load(registry).favorites
    monkeypatch.setattr(favorites_module.sqlite3, "connect", traced_connect)
    assert favorites.add("sam/second") == "sam/second"
    monkeypatch.setattr(favorites_module.sqlite3, "connect", connect)
    assert done.wait(30)
    assert sorted(favorites.list()) == ["sam/first", "sam/second"]


def test_a_database_locked_by_another_process_says_busy_not_unreadable(registry, isolated, monkeypatch) -> None:
    """A lock held too long once read "not a readable favorites database ... move it away": following that
    advice would have lost every favorite."""
    favorites = Bridge.load(registry).favorites
    favorites.add("sam/keep-me")
    monkeypatch.setattr(favorites_module, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(isolated / FILE_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        for call in (favorites.list, lambda: favorites.add("sam/new"), lambda: favorites.remove("sam/keep-me")):
            with pytest.raises(StateError) as caught:
                call()
            assert "busy" in str(caught.value) and "move it away" not in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert favorites.list() == ["sam/keep-me"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "newer", "foreign", "no-table"])
def test_unreadable_database_is_an_error_and_kept(registry, isolated, damage: str) -> None:
    favorites = Bridge.load(registry).favorites
    favorites.add("sam/keep-me")
    db_path = isolated / FILE_NAME
    if damage == "garbage":
        db_path.write_bytes(b"this is not sqlite at all" * 100)
    elif damage == "truncated":
        data = db_path.read_bytes()
        db_path.write_bytes(data[: len(data) // 3])
    elif damage == "newer":
        with sqlite3.connect(db_path) as db:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    elif damage == "foreign":
        with sqlite3.connect(db_path) as db:
            db.execute("PRAGMA application_id = 7")
    elif damage == "no-table":
        with sqlite3.connect(db_path) as db:
            db.execute("DROP TABLE favorites")
    before = db_path.read_bytes()
    with pytest.raises(StateError) as caught:
        favorites.list()
    assert str(db_path) in str(caught.value)
    with pytest.raises(StateError):
        favorites.add("sam/new")
    assert db_path.read_bytes() == before  # never replaced, never emptied
    result = run_process("--registry", str(registry), "favorites", "list")
    assert result.code == 4 and "Traceback" not in result.err and str(db_path) in result.err
    assert run_process("--registry", str(registry), "models").code == 4


def test_a_valid_sqlite_file_with_nothing_in_it_is_adopted(registry, isolated) -> None:
    """Not to be confused with an empty (0-byte) file, which is damage (test_favorites_damage.py): this one is a
    whole SQLite database, made by hand, with no table and no row, so taking it over loses nothing."""
    isolated.mkdir(parents=True)
    with closing(sqlite3.connect(isolated / FILE_NAME, isolation_level=None)) as db:
        db.execute("VACUUM")  # writes the header: a database of one page, no tables
    assert (isolated / FILE_NAME).stat().st_size > 0
    favorites = Bridge.load(registry).favorites
    favorites.add("sam/a")
    with sqlite3.connect(isolated / FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.fixture
def read_only_dir(isolated):
    """A state dir nobody may write to, root included (immutable attribute, else plain permissions)."""
    isolated.mkdir(parents=True, exist_ok=True)
    chattr = shutil.which("chattr")
    import os

    if os.geteuid() == 0:
        if chattr is None or subprocess.run([chattr, "+i", str(isolated)], capture_output=True).returncode:
            pytest.skip("running as root without chattr: cannot make a read-only dir")
    else:
        isolated.chmod(0o555)
    yield isolated
    if os.geteuid() == 0:
        subprocess.run([chattr, "-i", str(isolated)], check=True)
    else:
        isolated.chmod(0o755)


def test_read_only_state_dir_is_a_clear_error(registry, isolated, read_only_dir) -> None:
    favorites = Bridge.load(registry).favorites
    assert favorites.list() == []  # reading an absent database is fine
    with pytest.raises(StateError, match=r"cannot .*(state dir|writable)"):
        favorites.add("sam/x")
    result = run_process("--registry", str(registry), "favorites", "add", "sam/x")
    assert result.code == 4 and "Traceback" not in result.err
