"""The write policy on real files (docs/reliability.md, "Files the bridge writes"), read-only and full file
systems, and bad flags: every failure is one line with the right exit code, and nothing is half-written or left behind.

Read-only and full file systems are real: a tmpfs mounted read-only or tiny when the tests run as root (root
ignores permission bits), else a chmod 0555 folder and an RLIMIT_FSIZE write limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from boocoder_bridge.errors import StateError
from tests.conftest import Result, run_process
from tests.fakehost import llama_swap_body

ROOT = os.geteuid() == 0


def run(*argv: str, env: dict[str, str] | None = None, umask: int | None = None,
        max_file_bytes: int | None = None) -> Result:
    """The CLI as a real process, optionally with a umask or a file-size limit (EFBIG, like a full disk)."""

    def limits() -> None:
        if umask is not None:
            os.umask(umask)
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    done = subprocess.run([sys.executable, "-m", "boocoder_bridge", *argv], capture_output=True, text=True,
                          env=env, timeout=60, preexec_fn=limits)
    return Result(done.returncode, done.stdout, done.stderr)


def one_line(result: Result, code: int) -> str:
    assert result.code == code, (result.code, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("boocoder-bridge: error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("running as root without the right to mount a tmpfs: " + mounted.stderr.decode()[:100])
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """An existing, empty folder nobody can write in."""
    folder = tmp_path / "readonly"
    if ROOT:
        with tmpfs(folder, "ro,size=64k") as mounted:
            yield mounted
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.fixture
def fleet(hosts, write_registry) -> Callable[..., Path]:
    def make(models: int = 3) -> Path:
        host = hosts(models_body=llama_swap_body(*[f"model-{i:04d}-with-a-longer-name" for i in range(models)]))
        return write_registry({"default_provider": "h", "providers": {"h": {"kind": "llama-swap",
                                                                            "base_url": host.url}}})
    return make


def cli_env(state: Path) -> dict[str, str]:
    return {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(state)}


def test_generate_out_to_a_read_only_folder_is_exit_4_naming_the_file(fleet, readonly_dir, tmp_path) -> None:
    target = readonly_dir / "opencode.json"
    line = one_line(run("--registry", str(fleet()), "generate", "--out", str(target),
                        env=cli_env(tmp_path / "state")), 4)
    assert f"cannot write {target}" in line


def test_generate_out_to_a_directory_is_exit_4_naming_it(fleet, tmp_path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    line = one_line(run("--registry", str(fleet()), "generate", "--out", str(folder),
                        env=cli_env(tmp_path / "state")), 4)
    assert f"cannot write {folder}" in line and "directory" in line
    assert list(folder.iterdir()) == []


@contextmanager
def full_folder(tmp_path: Path, keep: dict[str, str]) -> Iterator[tuple[Path, int | None]]:
    """A folder holding ``keep`` whose file system is then full (root: a tiny tmpfs filled up with a file
    named ``filler``), else a 4 KiB file-size limit for the process under test."""
    if not ROOT:
        folder = tmp_path / "full"
        folder.mkdir()
        for name, text in keep.items():
            (folder / name).write_text(text)
        yield folder, 4096
        return
    with tmpfs(tmp_path / "full", "size=64k") as folder:
        for name, text in keep.items():
            (folder / name).write_text(text)
        with (folder / "filler").open("wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"x" * 512)
            except OSError:
                pass
        yield folder, None


def test_generate_out_on_a_full_disk_is_exit_4_and_keeps_the_old_file(fleet, tmp_path) -> None:
    with full_folder(tmp_path, {"opencode.json": '{"old": true}\n'}) as (folder, limit):
        target = folder / "opencode.json"
        line = one_line(run("--registry", str(fleet(200)), "generate", "--out", str(target),
                            env=cli_env(tmp_path / "state"), max_file_bytes=limit), 4)
        assert f"cannot write {target}" in line
        assert target.read_text() == '{"old": true}\n'
        assert sorted(p.name for p in folder.iterdir()) == sorted(["opencode.json", *(["filler"] if ROOT else [])])


def test_a_read_only_state_dir_serves_everything_but_favorites(fleet, readonly_dir) -> None:
    """The cache is derived data: without a writable state dir the commands still work, with a warning."""
    registry = str(fleet())
    env = cli_env(readonly_dir)
    for command in (["models", "--json"], ["resolve", "h/model-0001-with-a-longer-name"], ["generate"],
                    ["providers", "--json"]):
        result = run("--registry", registry, *command, env=env)
        assert result.code == 0, (command, result.err)
        assert "warning: cannot write" in result.err and "discovery-cache.json" in result.err, result.err
        assert "Traceback" not in result.err
    assert json.loads(run("--registry", registry, "generate", env=env).out)["provider"]["h"]["models"]
    line = one_line(run("--registry", registry, "favorites", "add", "h/model-0001-with-a-longer-name", env=env), 4)
    assert "favorites.sqlite3" in line
    assert list(readonly_dir.iterdir()) == []


def test_generate_out_through_a_symlink_writes_the_target_and_keeps_its_mode(fleet, tmp_path) -> None:
    real = tmp_path / "dotfiles" / "opencode.json"
    real.parent.mkdir()
    real.write_text("{}\n")
    real.chmod(0o640)
    link = tmp_path / "opencode.json"
    link.symlink_to(real)
    result = run("--registry", str(fleet()), "generate", "--out", str(link), env=cli_env(tmp_path / "state"))
    assert result.code == 0, result.err
    assert link.is_symlink() and link.resolve() == real
    assert "model-0000-with-a-longer-name" in json.loads(real.read_text())["provider"]["h"]["models"]
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["opencode.json"]


def test_new_files_follow_the_umask_and_the_state_dir_is_private(fleet, tmp_path) -> None:
    state = tmp_path / "new" / "state"
    registry = str(fleet())
    env = cli_env(state)
    out = tmp_path / "out.json"
    assert run("--registry", registry, "generate", "--out", str(out), env=env, umask=0o027).code == 0
    assert run("--registry", registry, "favorites", "add", "h/model-0000-with-a-longer-name", env=env,
               umask=0o027).code == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *state.iterdir()]}
    assert {"out.json", "discovery-cache.json", "favorites.sqlite3"} <= set(modes)
    assert set(modes.values()) == {0o640}, modes  # every file the bridge made
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftover_temp_files_of_a_killed_write_are_removed_by_the_next_write(fleet, tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    killed = dead_pid()
    leftovers = [state / f".opencode.json.{killed}.a1b2c3d4.tmp", state / f".discovery-cache.json.{killed}.9f.tmp"]
    for leftover in leftovers:
        leftover.write_text('{"half": ')
    busy = state / f".opencode.json.{os.getpid()}.77aa.tmp"  # a live writer's file: not ours to remove
    busy.write_text("{")
    registry = str(fleet())
    assert run("--registry", registry, "models", env=cli_env(state)).code == 0
    assert run("--registry", registry, "generate", "--out", str(state / "opencode.json"),
               env=cli_env(state)).code == 0
    left = {p.name for p in state.iterdir()}
    assert {"discovery-cache.json", "opencode.json", busy.name} <= left
    assert not left & {p.name for p in leftovers}


@pytest.mark.parametrize(("argv", "env", "fragment"), [
    (["--cache-ttl", "-5", "models"], {}, "--cache-ttl '-5'"),
    (["--cache-ttl", "abc", "models"], {}, "--cache-ttl 'abc'"),
    (["--cache-ttl", "nan", "models"], {}, "--cache-ttl 'nan'"),
    (["models"], {"BOOCODER_BRIDGE_CACHE_TTL": "abc"}, "BOOCODER_BRIDGE_CACHE_TTL 'abc'"),
    (["models"], {"BOOCODER_BRIDGE_CACHE_TTL": "-1"}, "BOOCODER_BRIDGE_CACHE_TTL '-1'"),
    (["models"], {"BOOCODER_BRIDGE_CACHE_TTL": "inf"}, "BOOCODER_BRIDGE_CACHE_TTL 'inf'"),
])
def test_a_bad_cache_ttl_is_one_line_exit_2(fleet, tmp_path, argv, env, fragment) -> None:
    line = one_line(run_process("--registry", str(fleet()), *argv, env={**cli_env(tmp_path / "s"), **env}), 2)
    assert fragment in line and "seconds" in line


def test_a_good_flag_wins_over_a_bad_environment_ttl(fleet, tmp_path) -> None:
    env = {**cli_env(tmp_path / "s"), "BOOCODER_BRIDGE_CACHE_TTL": "abc"}
    assert run_process("--registry", str(fleet()), "--cache-ttl", "0", "models", env=env).code == 0


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_cache_that_is_a_fifo_or_a_device_is_ignored_not_read(write_registry, tmp_path, kind: str) -> None:
    """The cache is read like the registry (files.read_capped): a fifo hung every command, /dev/zero never ends."""
    if kind == "device" and not Path("/dev/zero").exists():
        pytest.skip("/dev/zero does not exist here")
    state = tmp_path / "state"
    state.mkdir()
    cache = state / "discovery-cache.json"
    os.mkfifo(cache) if kind == "fifo" else cache.symlink_to("/dev/zero")
    registry = write_registry({"default_provider": "h", "providers": {
        "h": {"kind": "llama-swap", "base_url": "http://127.0.0.1:9"}}})
    result = run("--registry", str(registry), "generate", "--offline", env=cli_env(state))  # 60 s timeout
    assert result.code == 0, result.err
    assert f"ignored unreadable cache {cache} (not a regular file" in result.err, result.err
    assert "Traceback" not in result.err


def test_read_capped_reads_a_whole_file_in_one_read_and_never_past_the_cap(tmp_path, monkeypatch) -> None:
    """The discovery cache is read on every command: one read of the size fstat gave (plus one byte to see the
    end), not a 64 KiB loop; a file over the cap is refused before any read."""
    from boocoder_bridge import files

    reads: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        reads.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(files.os, "read", counting_read)
    path = tmp_path / "cache.json"
    path.write_bytes(b"x" * (3 << 20))
    assert files.read_capped(path, 4 << 20) == b"x" * (3 << 20)
    assert len(reads) <= 2 and max(reads) <= (4 << 20) + 1, reads
    reads.clear()
    with pytest.raises(files.ReadRefused, match="the limit is"):
        files.read_capped(path, 1 << 20)
    assert reads == []


def test_an_unchanged_config_is_left_alone_even_in_a_read_only_folder(tmp_path) -> None:
    """``write_config`` compares piece by piece before it writes: an unchanged file keeps its mtime and needs
    no temp file (so a read-only folder is no error); a difference in the last piece is still written."""
    from boocoder_bridge.opencode.config import render, write_config

    config = {"provider": {"p": {"models": {f"m{i}": {"name": "x" * i} for i in range(300)}}}}
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tmpfs(tmp_path / "cfg", "size=1m")) if ROOT else tmp_path / "cfg"
        folder.mkdir(exist_ok=True)
        target = folder / "opencode.json"
        assert write_config(target, config) is True
        assert target.read_text() == render(config) and len(target.read_bytes()) > 2 * 4096
        stamp = target.stat().st_mtime_ns
        if ROOT:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        else:
            folder.chmod(0o555)
            stack.callback(folder.chmod, 0o755)
        assert write_config(target, config) is False  # nothing to write: no temp file, no error
        assert target.stat().st_mtime_ns == stamp
        config["provider"]["p"]["models"]["m299"]["name"] = "changed"  # a difference in the last piece
        with pytest.raises(StateError, match="cannot write"):
            write_config(target, config)
        assert json.loads(target.read_text())["provider"]["p"]["models"]["m299"]["name"] == "x" * 299


def test_a_fifo_at_the_config_path_is_refused_not_waited_on(fleet, tmp_path) -> None:
    """Comparing before writing must not open a fifo for reading: that waits for a writer, forever."""
    fifo = tmp_path / "opencode.json"
    os.mkfifo(fifo)
    line = one_line(run("--registry", str(fleet()), "generate", "--out", str(fifo),
                        env=cli_env(tmp_path / "state")), 4)
    assert f"cannot write {fifo}" in line and "not a regular file" in line
    assert stat.S_ISFIFO(fifo.stat().st_mode)
