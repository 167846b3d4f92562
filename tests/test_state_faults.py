"""The smaller state failures of issue 21, each on real files, a real host or a real ``serve``: a full disk says
so, ``serve`` logs a failed cache write (once), and ``LLAMA_SWAP_URL`` with an API path in it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakehost import llama_swap_body
from tests.helpers import llama_swap, registry_data, run_process
from tests.test_server import start_server

ROOT = os.geteuid() == 0


@contextmanager
def full_disk(folder: Path, before_filling: list[list[str]] | None = None,
              env: dict[str, str] | None = None) -> Iterator[Path]:
    """A real full file system: a tiny tmpfs at ``folder`` (root only), filled up after running the CLI
    commands in ``before_filling``."""
    if not ROOT:
        pytest.skip("a real full disk needs root (a tmpfs); CI runs as root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + mounted.stderr.decode()[:100])
    try:
        for argv in before_filling or ():
            assert run_process(*argv, env=env).code == 0, argv
        with (folder / "filler").open("wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"x" * 512)
            except OSError:
                pass
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def registry(hosts, write_registry) -> Path:
    host = hosts(models_body=llama_swap_body("m1", "m2"))
    return write_registry(registry_data({"h": llama_swap(host.url, refresh_s=1)}))


def one_error(argv: list[str], env: dict[str, str], code: int = 4) -> str:
    result = run_process(*argv, env=env)
    assert result.code == code, (result.code, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("boocoder-bridge: error: ") and "Traceback" not in result.err
    return lines[0]


@pytest.mark.parametrize("database", ["existing", "new"])
def test_a_full_disk_says_so_for_favorites(registry, tmp_path, database) -> None:
    """It said "check that the state dir is writable", sending the user after permissions."""
    state = tmp_path / "state"
    env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(state)}
    add = ["--registry", str(registry), "favorites", "add"]
    with full_disk(state, [[*add, "h/m1"]] if database == "existing" else [], env):
        before = (state / "favorites.sqlite3").read_bytes() if database == "existing" else None
        line = one_error([*add, "h/m2"], env)
        assert f"{state / 'favorites.sqlite3'}: the disk is full" in line and "writable" not in line, line
        if before is not None:
            assert (state / "favorites.sqlite3").read_bytes() == before
        else:
            made = [p.name for p in state.iterdir() if "favorites.sqlite3" in p.name]
            assert made == []  # no half-made database, no temp file


def test_a_full_disk_says_so_for_written_files(registry, tmp_path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state")}
    with full_disk(out):
        line = one_error(["--registry", str(registry), "generate", "--out", str(out / "opencode.json")], env)
        assert f"cannot write {out / 'opencode.json'}: the disk is full" in line, line


def test_serve_logs_a_failed_cache_write_once(registry, tmp_path) -> None:
    """A cache write that failed in serve was kept as a note nobody read: the log said nothing."""
    state = tmp_path / "state"
    with full_disk(state):
        process, _ = start_server(registry, state)
        try:
            time.sleep(4)  # refresh_s 1: three or four rounds, each one a failed cache write
        finally:
            process.terminate()
            _, err = process.communicate(timeout=10)
    lines = [line for line in err.splitlines() if "discovery-cache.json" in line]
    assert len(lines) == 1, err
    assert "the disk is full" in lines[0] and "the answers are not kept" in lines[0], lines[0]


def test_llama_swap_url_with_the_models_endpoint_asks_the_right_path(hosts, tmp_path) -> None:
    """``LLAMA_SWAP_URL=http://h/v1/models`` was accepted and the bridge asked /v1/models/v1/models."""
    host = hosts(models_body=llama_swap_body("m1"))
    env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state"),
           "LLAMA_SWAP_URL": f"{host.url}/v1/models"}
    result = run_process("models", "--json", env=env)
    assert result.code == 0, result.err
    assert [m["id"] for g in result.json()["providers"] for m in g["models"]] == ["local/m1"]
    assert "/v1/models" in host.paths() and not any(p.startswith("/v1/models/v1") for p in host.paths())


def test_llama_swap_url_with_another_api_path_is_refused_with_the_fix(tmp_path) -> None:
    env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(tmp_path / "state"),
           "LLAMA_SWAP_URL": "http://127.0.0.1:9/v1/embeddings"}
    line = one_error(["providers"], env, code=2)
    assert "LLAMA_SWAP_URL" in line and "/v1/embeddings" in line and "server's address" in line, line
