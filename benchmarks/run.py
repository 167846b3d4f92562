"""Benchmarks against the targets in BENCHMARKS.md, each beside its baseline in one run.

    python3 benchmarks/run.py            # prints a Markdown report
    python3 benchmarks/run.py --json     # the raw figures

Not part of the test suite: timings are measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boocoder_bridge import Bridge, ProviderReport  # noqa: E402
from boocoder_bridge.cache import DiscoveryCache  # noqa: E402
from boocoder_bridge.default_plugins.llama_swap import parse_models  # noqa: E402
from boocoder_bridge.opencode import render  # noqa: E402
from boocoder_bridge.plugins import make_plugin_manager  # noqa: E402
from boocoder_bridge.registry import registry_from_data  # noqa: E402
from tests.fakehost import FakeHost, llama_swap_body  # noqa: E402

PYTHON = sys.executable


def median_time(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def process_time(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    return median_time(lambda: subprocess.run(argv, check=True, capture_output=True, env=env), runs)


def fleet(folder: Path, providers: int, models: int) -> tuple[Path, Path]:
    """A registry of N llama-swap providers and a fresh cache holding M models each (no hosts needed)."""
    registry = folder / f"fleet-{providers}x{models}.json"
    state = folder / f"state-{providers}x{models}"
    data = {"default_provider": "p0", "providers": {
        f"p{i}": {"kind": "llama-swap", "base_url": f"http://127.0.0.1:9/p{i}"} for i in range(providers)}}
    registry.write_text(json.dumps(data))
    reg = registry_from_data(data)
    body = llama_swap_body(*(f"org/model-{j}:Q4_K_M" for j in range(models)),
                           contexts={f"org/model-{j}:Q4_K_M": 32768 for j in range(0, models, 2)},
                           outputs={f"org/model-{j}:Q4_K_M": 4096 for j in range(0, models, 4)})

    parsed, _ = parse_models(body)
    now = time.time() + 3600  # stays fresh for the whole run
    reports = {pid: ProviderReport(provider=pid, status="online", models=parsed, fetched_at=now) for pid in data[
        "providers"]}
    DiscoveryCache(state).store(reg.providers, reports)
    return registry, state


def bench_discovery(results: dict) -> None:
    hosts = [FakeHost(name=f"h{i}", delay_s=0.5).start() for i in range(8)]
    try:
        def timed(count: int) -> float:
            data = {"default_provider": "h0", "providers": {
                f"h{i}": {"kind": "llama-swap", "base_url": hosts[i].url} for i in range(count)}}
            path = Path(tempfile.mkdtemp()) / "r.json"
            path.write_text(json.dumps(data))

            def once() -> None:
                bridge = Bridge.load(path, Path(tempfile.mkdtemp()))
                reports = bridge.reports(refresh=True)
                assert all(r.status == "online" for r in reports.values())

            return median_time(once, 3)

        one, eight = timed(1), timed(8)
    finally:
        for host in hosts:
            host.stop()
    results["discovery"] = {"one_host_s": one, "eight_hosts_s": eight, "ratio": eight / one, "target": "<= 1.2"}


def bench_warm_catalog(results: dict, folder: Path) -> None:
    good = FakeHost(models_body=llama_swap_body("coder", "other")).start()
    hang = FakeHost(fault="hang").start()
    try:
        data = {"default_provider": "good", "providers": {
            "good": {"kind": "llama-swap", "base_url": good.url},
            "hang": {"kind": "llama-swap", "base_url": hang.url, "timeout_s": 2}}}
        registry = folder / "warm.json"
        registry.write_text(json.dumps(data))
        env = {**os.environ, "BOOCODER_BRIDGE_STATE_DIR": str(folder / "warm-state"),
               "BOOCODER_BRIDGE_CACHE_TTL": "3600"}
        argv = [PYTHON, "-m", "boocoder_bridge", "--registry", str(registry), "models", "--json"]
        cold = process_time([*argv, "--refresh"], 1, env)  # asks both hosts: waits out the hanging one
        warm = process_time(argv, 7, env)
        bare = process_time([PYTHON, "-c", "pass"], 7)
    finally:
        good.stop()
        hang.stop()
    results["warm_catalog"] = {"warm_process_s": warm, "cold_refresh_with_hanging_host_s": cold,
                               "python_startup_s": bare, "target": "< 0.3 s"}


def bench_startup(results: dict, folder: Path) -> None:
    ours = process_time([PYTHON, "-c", "import boocoder_bridge"], 15)
    deps = process_time([PYTHON, "-c", "import httpx, pydantic, pluggy"], 15)
    registry = folder / "three.json"
    registry.write_text((ROOT / "fixtures" / "fleet.example.json").read_text())
    pm = make_plugin_manager(entry_points=True)
    started = time.perf_counter()
    Bridge.load(registry, folder / "s3", plugin_manager=pm)  # first: imports jsonschema, compiles the schema
    first = time.perf_counter() - started
    again = median_time(lambda: Bridge.load(registry, folder / "s3", plugin_manager=pm), 200)
    fresh_pm = median_time(lambda: Bridge.load(registry, folder / "s3",
                                               plugin_manager=make_plugin_manager(entry_points=True)), 20)
    results["startup"] = {"import_bridge_s": ours, "import_deps_s": deps, "ratio": ours / deps,
                          "target_ratio": "<= 1.2", "bridge_load_first_s": first, "bridge_load_s": again,
                          "bridge_load_with_new_plugin_manager_s": fresh_pm, "target_load": "< 5 ms"}


def bench_resolve(results: dict, folder: Path) -> None:
    registry, state = fleet(folder, 4, 100)
    bridge = Bridge.load(registry, state)
    ids = [f"p{i % 4}/org/model-{i}:Q4_K_M" for i in range(100)] + [f"org/model-{i}:Q4_K_M" for i in range(50)]
    for model_id in ids:
        bridge.resolve(model_id)
    calls = 300_000
    started = time.perf_counter()
    for i in range(calls):
        bridge.resolve(ids[i % len(ids)])
    elapsed = time.perf_counter() - started
    cold = Bridge.load(registry, state)
    started = time.perf_counter()
    for model_id in ids:
        cold.resolve(model_id, "task")
    cold_each = (time.perf_counter() - started) / len(ids)
    results["resolve"] = {"calls_per_s": calls / elapsed, "first_resolve_of_an_id_us": cold_each * 1e6,
                          "target": ">= 200000/s"}


def generate_and_catalog(registry: Path, state: Path) -> tuple[float, float, int]:
    def generate() -> int:
        return len(render(Bridge.load(registry, state).opencode_config(offline=True)[0]))

    def catalog() -> int:
        return len(Bridge.load(registry, state).catalog().providers)

    size = generate()
    return median_time(generate, 5), median_time(catalog, 5), size


def bench_generation_and_memory(results: dict, folder: Path) -> None:
    registry, state = fleet(folder, 20, 500)
    gen, cat, size = generate_and_catalog(registry, state)
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "BOOCODER_BRIDGE_CACHE_TTL": "36000"}
    rss_kb = int(subprocess.run([PYTHON, "-c", probe, PYTHON, "-m", "boocoder_bridge", "--registry", str(registry),
                                 "--state-dir", str(state), "models", "--json"], check=True, capture_output=True,
                                text=True, env=env).stdout)
    bare_kb = int(subprocess.run([PYTHON, "-c", probe, PYTHON, "-c", "pass"], check=True, capture_output=True,
                                 text=True).stdout)
    results["generation_20x500"] = {"generate_s": gen, "catalog_s": cat, "config_bytes": size, "target": "< 0.2 s"}
    results["memory_20x500"] = {"models_json_peak_rss_mb": rss_kb / 1024, "python_alone_mb": bare_kb / 1024,
                                "target": "< 100 MB"}


def bench_scaling(results: dict, folder: Path) -> None:
    rows = []
    for providers in (1, 4, 16):
        for models in (10, 100, 1000):
            registry, state = fleet(folder, providers, models)
            gen, cat, size = generate_and_catalog(registry, state)
            rows.append({"providers": providers, "models": models, "generate_ms": gen * 1000,
                         "catalog_ms": cat * 1000, "config_kb": size / 1024})
    results["scaling"] = rows


def report(results: dict) -> str:
    r = results
    lines = [
        f"Machine: {r['machine']}; Python {r['python']}; {r['date']}", "",
        "| target | measured | baseline in the same run | met |", "|---|---|---|---|",
        f"| discovery, 8 hosts x 0.5 s <= 1.2x one host | {r['discovery']['eight_hosts_s']:.3f} s "
        f"({r['discovery']['ratio']:.2f}x) | one host {r['discovery']['one_host_s']:.3f} s | "
        f"{'yes' if r['discovery']['ratio'] <= 1.2 else 'NO'} |",
        f"| warm `models --json` with a hanging host < 0.3 s (whole process) | "
        f"{r['warm_catalog']['warm_process_s']:.3f} s | `python -c pass` {r['warm_catalog']['python_startup_s']:.3f} s;"
        f" cold `--refresh` {r['warm_catalog']['cold_refresh_with_hanging_host_s']:.2f} s | "
        f"{'yes' if r['warm_catalog']['warm_process_s'] < 0.3 else 'NO'} |",
        f"| `import boocoder_bridge` <= 1.2x its deps | {r['startup']['import_bridge_s']:.3f} s "
        f"({r['startup']['ratio']:.2f}x) | httpx+pydantic+pluggy {r['startup']['import_deps_s']:.3f} s | "
        f"{'yes' if r['startup']['ratio'] <= 1.2 else 'NO'} |",
        f"| `Bridge.load()` of 3 providers < 5 ms | {r['startup']['bridge_load_s'] * 1000:.2f} ms | first load "
        f"(imports jsonschema, compiles schema) {r['startup']['bridge_load_first_s'] * 1000:.1f} ms; with a new "
        f"plugin manager (entry-point scan) {r['startup']['bridge_load_with_new_plugin_manager_s'] * 1000:.1f} ms | "
        f"{'yes' if r['startup']['bridge_load_s'] < 0.005 else 'NO'} |",
        f"| `resolve()` >= 200,000/s | {r['resolve']['calls_per_s']:,.0f}/s | first resolve of an ID "
        f"{r['resolve']['first_resolve_of_an_id_us']:.1f} us | "
        f"{'yes' if r['resolve']['calls_per_s'] >= 2e5 else 'NO'} |",
        f"| generate 20 x 500 < 200 ms | {r['generation_20x500']['generate_s'] * 1000:.1f} ms "
        f"({r['generation_20x500']['config_bytes'] / 1024:.0f} KiB) | catalog of the same fleet "
        f"{r['generation_20x500']['catalog_s'] * 1000:.1f} ms | "
        f"{'yes' if r['generation_20x500']['generate_s'] < 0.2 else 'NO'} |",
        f"| peak RSS `models --json`, 20 x 500 < 100 MB | {r['memory_20x500']['models_json_peak_rss_mb']:.1f} MB | "
        f"`python -c pass` {r['memory_20x500']['python_alone_mb']:.1f} MB | "
        f"{'yes' if r['memory_20x500']['models_json_peak_rss_mb'] < 100 else 'NO'} |",
        "", "Growth (in-process, from a fresh cache; each figure includes `Bridge.load`):", "",
        "| providers | models each | generate (ms) | catalog (ms) | config (KiB) |", "|---|---|---|---|---|",
    ]
    lines += [f"| {row['providers']} | {row['models']} | {row['generate_ms']:.1f} | {row['catalog_ms']:.1f} | "
              f"{row['config_kb']:.0f} |" for row in r["scaling"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
                     "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_startup(results, folder)
        bench_resolve(results, folder)
        bench_generation_and_memory(results, folder)
        bench_scaling(results, folder)
        bench_warm_catalog(results, folder)
        bench_discovery(results)
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    main()
