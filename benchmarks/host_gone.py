"""What a host that goes away costs the user (issue 18), and what watching a healthy host costs.

    python3 benchmarks/host_gone.py                 # probe cost (40 pairs) and 5 deaths of each kind
    python3 benchmarks/host_gone.py --runs 0          # the probe's cost only (no opencode needed)
    python3 benchmarks/host_gone.py --json

(a) The probe on a healthy host: ``Bridge.dispatch`` with the provider probed (``probe_timeout_s`` 1) against the
    same dispatch with probing off (``probe_timeout_s`` 0), run in turn (A B A B ...) in one loop, and the probe
    alone. The host is a fake llama-swap in a process of its own on 127.0.0.1.
(b) A host's death to the user's error line: ``boocoder-bridge run`` with the real opencode binary against a host
    whose chat answer never comes; once the request is in flight the host is killed (SIGKILL: refused) or frozen
    (SIGSTOP: silent). Timed from the signal to the moment the bridge's error line arrives on stderr. The
    reference, opencode alone (issue 18, measured): 62-68 s after a crash, 300 s after a freeze.

Workload checks: the probed dispatch must have sent one ``GET /health`` per dispatch and the unprobed one none;
each death must end with exit 75 and a line naming the provider. Otherwise: WORKLOAD CHECK FAILED, exit 1.
Needs the test extra and the opencode binary the tests install (tests/opencode_bin.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boocoder_bridge import Bridge, HostLostError  # noqa: E402
from boocoder_bridge.probe import check  # noqa: E402
from boocoder_bridge.registry import registry_from_data  # noqa: E402
from tests.hostproc import HostProcess  # noqa: E402
from tests.opencode_bin import opencode_binary, opencode_env  # noqa: E402


class WorkloadError(AssertionError):
    pass


def spread(values: list[float], unit: str = "ms", scale: float = 1000) -> dict[str, Any]:
    return {"min": round(min(values) * scale, 3), "median": round(statistics.median(values) * scale, 3),
            "max": round(max(values) * scale, 3), "n": len(values), "unit": unit}


def probe_cost(pairs: int, workdir: Path) -> dict[str, Any]:
    host = HostProcess("sam", ["coder"])
    try:
        def bridge(probe_timeout_s: float) -> Bridge:
            data = {"default_provider": "sam", "providers": {"sam": {
                "kind": "llama-swap", "base_url": host.url, "probe_timeout_s": probe_timeout_s}}}
            made = Bridge.load(registry_from_data(data), workdir / f"state-{probe_timeout_s:g}",
                               env={"BOOCODER_BRIDGE_OPENCODE": sys.executable})
            made.reports(refresh=True)
            made.dispatch("sam/coder", ["hi"])  # warm: config written, imports done
            return made

        probed, unprobed = bridge(1.0), bridge(0.0)
        before = sum("GET /health" in line for line in host.lines)
        with_probe, without, alone = [], [], []
        provider = probed.registry.providers["sam"]
        for _ in range(pairs):
            for target, times in ((probed, with_probe), (unprobed, without)):
                started = time.perf_counter()
                target.dispatch("sam/coder", ["hi"])
                times.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = check([(provider, probed.kinds["llama-swap"])], probed.env)
            alone.append(time.perf_counter() - started)
            if not result[0].answered:
                raise WorkloadError(f"the healthy host did not answer its probe: {result[0].reason}")
        time.sleep(0.2)  # the host process's request lines arrive through a pipe
        sent = sum("GET /health" in line for line in host.lines) - before
        if sent != 2 * pairs:  # one per probed dispatch, one per probe alone; none for the unprobed dispatch
            raise WorkloadError(f"expected {2 * pairs} GET /health, the host saw {sent}")
        ratios = [a / b for a, b in zip(with_probe, without, strict=True)]
        return {"dispatch_probed": spread(with_probe), "dispatch_unprobed": spread(without),
                "probe_alone": spread(alone), "ratio": spread(ratios, "x", 1)}
    finally:
        host.close()


def death(how: str, runs: int, workdir: Path) -> dict[str, Any]:
    opencode = opencode_binary()
    waits: list[float] = []
    lines: list[str] = []
    for i in range(runs):
        host = HostProcess("sam", ["coder"], chat_fault="silent")
        folder = workdir / f"{how}-{i}"
        registry = folder / "fleet.json"
        folder.mkdir()
        registry.write_text(json.dumps({"default_provider": "sam", "providers": {"sam": {
            "kind": "llama-swap", "base_url": host.url}}}))
        env = opencode_env(folder / "home", folder / "unused.json", {
            "BOOCODER_BRIDGE_OPENCODE": str(opencode), "BOOCODER_BRIDGE_STATE_DIR": str(folder / "state"),
            "PYTHONPATH": str(ROOT)})
        del env["OPENCODE_CONFIG"]
        try:
            cli = subprocess.Popen([sys.executable, "-m", "boocoder_bridge", "--registry", str(registry), "run",
                                    "coder", "hi"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
            host.wait_for("POST /v1/chat/completions", 120)
            gone_at = host.kill() if how == "refused" else host.freeze()
            line = ""
            for line in cli.stderr or ():
                if "boocoder-bridge: error:" in line:
                    waits.append(time.monotonic() - gone_at)
                    break
            code = cli.wait(60)
        finally:
            host.close()
        if code != HostLostError.exit_code or "provider sam" not in line:
            raise WorkloadError(f"{how}: exit {code}, line {line!r}")
        lines.append(line.strip())
    return {"death_to_error_line": spread(waits, "s", 1), "example_line": lines[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            os.environ["XDG_STATE_HOME"] = str(work / "xdg-state")  # never the user's opencode TUI state
            report = {"probe_cost": probe_cost(args.pairs, work)}
            if args.runs:
                report |= {"refused": death("refused", args.runs, work), "frozen": death("frozen", args.runs, work)}
    except WorkloadError as exc:
        print(f"WORKLOAD CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    cost = report["probe_cost"]
    print("| figure | min | median | max | n |\n|---|---|---|---|---|")
    for name, row in (("Bridge.dispatch, host probed (ms)", cost["dispatch_probed"]),
                      ("Bridge.dispatch, probing off: baseline (ms)", cost["dispatch_unprobed"]),
                      ("probed / baseline, per pair", cost["ratio"]),
                      ("the probe alone (ms)", cost["probe_alone"]),
                      *((f"host {how} to error line (s)", report[key]["death_to_error_line"])
                        for key, how in (("refused", "killed (refused)"), ("frozen", "frozen (SIGSTOP)"))
                        if key in report)):
        print(f"| {name} | {row['min']} | {row['median']} | {row['max']} | {row['n']} |")
    for key in ("refused", "frozen"):
        if key in report:
            print(f"{key}: {report[key]['example_line']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
