"""TAB completion's fast path (completion.py): the same IDs as the full path, without pydantic, httpx or pluggy.

The shell tests in test_cli_ux.py complete a static registry; these complete a fleet discovered over real HTTP.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from boocoder_bridge import completion
from boocoder_bridge.cli import slow_ids
from boocoder_bridge.settings import CACHE_FILE, COMPLETION_FILE
from tests.fakehost import llama_swap_body
from tests.helpers import deepseek, llama_swap, registry_data

HEAVY = ("pydantic", "pydantic_core", "httpx", "fastapi", "pluggy", "jsonschema")
PREFIXES = ("", "a", "a/", "a/m-1", "b/", "deepseek/", "static/", "fav", "nope/")


def _ids(count: int, tag: str) -> list[str]:
    return [f"{tag}-org/m-{i}:Q4" for i in range(count)]


@pytest.fixture
def fleet(hosts, write_registry, run_cli, isolated):
    """Two hosts discovered for real (500 and 3 models), one static provider, one disabled one, a favorite."""
    a = hosts(name="a", models_body=llama_swap_body(*_ids(500, "a")))
    b = hosts(name="b", models_body=llama_swap_body(*_ids(3, "b")))
    registry = write_registry(registry_data({
        "a": llama_swap(a.url + "/"), "b": llama_swap(b.url),
        "static": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9", "discover": False,
                   "models": {"tiny": {}, "bad id": {}}, "bare_ids": ["bare"]},
        "deepseek": deepseek()}, default="a"))
    assert run_cli("--registry", str(registry), "models", "--refresh").code == 0
    assert run_cli("--registry", str(registry), "favorites", "add", "b/b-org/m-1:Q4").code == 0
    a.stop()
    b.stop()
    return registry


def _both(prefix: str, registry: Path, state: Path) -> tuple[list, list]:
    fast = sorted(completion.fast_ids(prefix, str(registry), str(state), os.environ))
    slow = sorted(i for i in slow_ids(str(registry), str(state)) if i.startswith(prefix))
    return fast, slow


def test_the_fast_path_offers_exactly_what_the_full_path_offers(fleet, isolated) -> None:
    assert (isolated / COMPLETION_FILE).is_file()
    for prefix in PREFIXES:
        fast, slow = _both(prefix, fleet, isolated)
        assert fast == slow, prefix
    fast, _ = _both("a/", fleet, isolated)
    assert fast == sorted(f"a/{m}" for m in _ids(500, "a"))
    assert _both("static/", fleet, isolated)[0] == ["static/bare", "static/tiny"]
    assert _both("b/b-org/m-1", fleet, isolated)[0] == ["b/b-org/m-1:Q4", "b/b-org/m-1:Q4"]  # host, favorite


def test_an_enabled_provider_and_a_moved_host_follow_the_registry(fleet, isolated, write_registry,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k")
    fast, slow = _both("deepseek/", fleet, isolated)
    assert fast == slow and "deepseek/deepseek-chat" in fast
    moved = write_registry(registry_data({"a": llama_swap("http://127.0.0.1:9"), "b": llama_swap("http://127.0.0.1:8")},
                                         default="a"), name="moved.json")
    assert _both("", moved, isolated) == (["b/b-org/m-1:Q4"], ["b/b-org/m-1:Q4"])  # the favorite only


def test_candidates_that_do_not_match_the_cache_are_not_used(fleet, isolated) -> None:
    """Another program (an older version) rewrote the cache: the stamp differs, the full path answers."""
    cache = isolated / CACHE_FILE
    cache.write_text(cache.read_text().replace("a-org/m-7:Q4", "a-org/m-7:Q5"))
    with pytest.raises(completion.Stale):
        completion.fast_ids("a/", str(fleet), str(isolated), os.environ)
    ids = completion.complete_ids("a/a-org/m-7:", str(fleet), str(isolated), slow=slow_ids)
    assert ids == ["a/a-org/m-7:Q5"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no fifos here")
def test_a_fifo_in_place_of_the_candidates_does_not_hang(fleet, isolated) -> None:
    (isolated / COMPLETION_FILE).unlink()
    os.mkfifo(isolated / COMPLETION_FILE)
    with pytest.raises(completion.Stale):
        completion.fast_ids("a/", str(fleet), str(isolated), os.environ)
    assert len(completion.complete_ids("a/", str(fleet), str(isolated), slow=slow_ids)) == 500


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_tab_in_bash_lists_the_500_ids_without_importing_pydantic(fleet, isolated, tmp_path) -> None:
    """The whole path a user's TAB takes: bash, argcomplete's script, the entry point. Python lists every module
    it imports on stderr (``-X importtime``, kept in a file: the script sends stderr nowhere)."""
    script = tmp_path / "complete.bash"
    script.write_text(subprocess.run([sys.executable, "-m", "boocoder_bridge", "completion", "bash"],
                                     capture_output=True, text=True, check=True).stdout)
    entry = tmp_path / "bin" / "boocoder-bridge"
    entry.parent.mkdir()
    imports = tmp_path / "imports.txt"
    entry.write_text(f"#!/bin/sh\nexec {sys.executable} -X importtime -m boocoder_bridge \"$@\" 2>{imports}\n")
    entry.chmod(0o755)
    env = {**os.environ, "PATH": f"{entry.parent}{os.pathsep}{os.environ['PATH']}",
           "BOOCODER_BRIDGE_REGISTRY": str(fleet)}
    line = "boocoder-bridge resolve a/"
    program = (f"source {script}; COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; "
               f"COMP_WORDS=(boocoder-bridge resolve a/); COMP_CWORD=2; "
               "_python_argcomplete boocoder-bridge; printf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "-c", program], env=env, capture_output=True, text=True, timeout=60)
    offered = [w.strip() for w in done.stdout.splitlines() if w.strip()]
    assert sorted(offered) == sorted(f"a/{m}" for m in _ids(500, "a"))
    rows = imports.read_text().splitlines()
    imported = {row.split("|")[-1].strip() for row in rows if row.startswith("import time:")}
    assert "boocoder_bridge.completion" in imported  # the import list is really the completer's
    assert sorted(imported & set(HEAVY)) == []


def test_the_tab_benchmark_checks_its_workload(tmp_path) -> None:
    """benchmarks/instant.py times the TAB only after checking it: exactly the host's IDs offered, and no
    pydantic imported; the same check refuses a TAB that took the full path (what every TAB cost before)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_instant", Path(__file__).parents[1] / "benchmarks" /
                                                  "instant.py")
    assert spec and spec.loader
    instant = importlib.util.module_from_spec(spec)
    sys.modules["bench_instant"] = instant
    spec.loader.exec_module(instant)
    fleet = instant.Fleet(tmp_path, 2, 12).build()
    expected = {f"{fleet.provider(1)}/{m}" for m in instant.model_ids(12)}
    env = instant.completion_env(fleet, f"boocoder-bridge resolve {fleet.provider(1)}/", tmp_path / "tab.txt")
    instant.check_completion(fleet, env, expected, fast=True)
    with pytest.raises(instant.WorkloadError, match="offered"):
        instant.check_completion(fleet, env, expected | {"x/y"}, fast=True)
    (fleet.state / COMPLETION_FILE).unlink()
    with pytest.raises(instant.WorkloadError, match="fast path imported"):
        instant.check_completion(fleet, env, expected, fast=True)
    instant.check_completion(fleet, env, expected, fast=False)


def test_before_the_slash_the_provider_is_completed(fleet, isolated) -> None:
    """Both paths: ``a`` offers ``a/`` (not 500 model IDs); ``""`` offers every provider that has an ID."""
    assert completion.complete_ids("a", str(fleet), str(isolated), slow=slow_ids) == ["a/"]
    assert completion.complete_ids("", str(fleet), str(isolated), slow=slow_ids) == ["a/", "b/", "static/"]
    (isolated / COMPLETION_FILE).unlink()  # the full path
    (isolated / CACHE_FILE).write_text((isolated / CACHE_FILE).read_text())
    assert completion.complete_ids("", str(fleet), str(isolated), slow=slow_ids) == ["a/", "b/", "static/"]
    assert len(completion.complete_ids("a/", str(fleet), str(isolated), slow=slow_ids)) == 500
