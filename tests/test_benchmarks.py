"""The benchmark's workload checks (never its timings): a benchmark that measures the wrong thing must stop.

The old script timed an empty catalog (its cache was stamped in the future, so every provider went to the
network and came back offline). These tests build a small real fleet and prove the checks catch exactly that.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_run", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


bench = _load_script()


@pytest.fixture
def fleet(tmp_path: Path):
    return bench.Fleet(tmp_path, 2, 12).build()


def _models_json(fleet) -> bytes:
    return bench.run_process([*bench.CLI, "models", "--json"], fleet.env).stdout


def test_a_real_warm_fleet_passes_every_check(fleet) -> None:
    fleet.check_catalog(_models_json(fleet))
    fleet.check_config(bench.run_process([*bench.CLI, "generate"], fleet.env).stdout)
    for index in (1, 5):
        out = bench.run_process([*bench.CLI, "resolve", fleet.route_id(index)[0], "--json"], fleet.env).stdout
        fleet.check_route(json.loads(out), index)


def test_a_cache_from_the_future_is_caught(fleet) -> None:
    """The old bug: entries stamped an hour ahead are not fresh, the hosts are gone, the catalog is empty."""
    path = fleet.state / "discovery-cache.json"
    text = path.read_text()
    data = json.loads(text)
    stamps = {report["fetched_at"] for entry in data["providers"].values() for report in (entry["latest"],)}
    later = time.time() + 3600
    for stamp in stamps:
        text = text.replace(json.dumps(stamp), json.dumps(later))
    path.write_text(text)
    with pytest.raises(bench.WorkloadError, match="not online"):
        fleet.check_catalog(_models_json(fleet))


def test_missing_models_and_wrong_routes_are_caught(fleet) -> None:
    catalog = json.loads(_models_json(fleet))
    catalog["providers"][1]["models"].pop()
    with pytest.raises(bench.WorkloadError, match="holds 23 models, expected 24"):
        fleet.check_catalog(json.dumps(catalog).encode())
    route = json.loads(bench.run_process([*bench.CLI, "resolve", fleet.route_id(3)[0], "--json"], fleet.env).stdout)
    with pytest.raises(bench.WorkloadError, match="resolved"):
        fleet.check_route(route, 4)


def test_a_failing_command_stops_the_benchmark(fleet) -> None:
    with pytest.raises(bench.WorkloadError, match="exited 2"):
        bench.run_process([*bench.CLI, "resolve", "bad id", "--json"], fleet.env)


def test_smoke_run_checks_the_cli_workloads() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--only", "cli", "resolve", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["cli_fleet"] == "2x20"
    assert figures["resolve"]["cycled_keys"] == 5 * 40


def test_discovery_workload_is_hosts_in_another_process_all_online() -> None:
    # The hosts are one asyncio process of their own (the bridge's process measures only the bridge); every host
    # must be online with its 10 models, or the benchmark stops (bench_growth_hosts' checks).
    with bench.child([bench.PYTHON, str(SCRIPT), "--serve-hosts", "8", "10", "0.01"]) as urls:
        import httpx

        assert len(set(urls)) == 8
        for url in urls:
            assert len(httpx.get(url + "/v1/models", timeout=10).json()["data"]) == 10
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--only", "discovery", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [row["hosts"] for row in json.loads(result.stdout)["growth_hosts"]] == [1, 8]
