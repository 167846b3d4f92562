"""Issue 22's whole-process figures, timed by ``farm-bench`` (each paired with its yardstick in one call):

- TAB completion of a model ID and of a provider on a warm 20 x 500 fleet, against ``python -c pass``;
- the same TAB on the full path (no candidates file: what every TAB cost before), against ``python -c pass``;
- ``resolve ID --json`` against ``python -c "import pydantic"``;
- ``import boocoder_bridge`` (and its first use, ``boocoder_bridge.Bridge``) against ``import pydantic, pluggy``.

    python3 benchmarks/instant.py [--runs 11] [--smoke]

The fleet is real (benchmarks/run.py's ``Fleet``: fake hosts discovered over HTTP, then stopped). Every workload
is checked first: the TAB lists exactly the 500 IDs of one host (the 10 providers ``host-01`` starts) and imports no
pydantic, httpx, fastapi or pluggy; the resolved route is the right one. Bytecode is compiled first and
``PYTHONDONTWRITEBYTECODE`` is dropped, as for an installed package.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run import CLI, PYTHON, Fleet, WorkloadError, check, model_ids  # noqa: E402

ENTRY = str(Path(PYTHON).with_name("boocoder-bridge"))  # the installed console script, as a shell runs it
HEAVY = ("pydantic", "pydantic_core", "httpx", "fastapi", "pluggy")


def farm_bench(command: list[str], baseline: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    """``farm-bench -n RUNS --vs BASELINE -- COMMAND``; its min/median/max rows as numbers, and its text."""
    done = subprocess.run(["farm-bench", "-n", str(runs), "--timeout", "600", "--vs", shlex.join(baseline), "--",
                           *command], capture_output=True, text=True, env=env, timeout=900)
    rows = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^(A/B|A|B) (\w+)(?: \w+)?\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if match:
            key = f"{match.group(1)} {line.split()[1]}"
            rows[key] = {"min": float(match.group(3)), "median": float(match.group(4)), "max": float(match.group(5))}
    check("A/B cpu" in rows, f"farm-bench gave no figures: {done.stdout[-400:]} {done.stderr[-400:]}")
    return {"rows": rows, "text": done.stdout, "load": os.getloadavg()[0]}


def completion_env(fleet: Fleet, line: str, out: Path) -> dict[str, str]:
    env = {k: v for k, v in fleet.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_IFS": "\n", "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}


def check_completion(fleet: Fleet, env: dict[str, str], expected: set[str], fast: bool) -> None:
    """One TAB as the shell runs it: exactly ``expected`` offered; the imports are listed (``-X importtime``)."""
    out = Path(env["_ARGCOMPLETE_STDOUT_FILENAME"])
    done = subprocess.run([PYTHON, "-X", "importtime", ENTRY], env=env, capture_output=True, text=True, timeout=60)
    offered = set(out.read_text().split("\n")) - {""}
    check(offered == expected, f"TAB offered {len(offered)} IDs, expected {len(expected)}")
    imported = {row.split("|")[-1].strip() for row in done.stderr.splitlines() if row.startswith("import time:")}
    check("boocoder_bridge.completion" in imported, "the import list is not the completer's")
    heavy = sorted(imported & set(HEAVY))
    check(not heavy if fast else "pydantic" in heavy, f"{'fast' if fast else 'full'} path imported {heavy}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--smoke", action="store_true", help="a 3 x 20 fleet, 2 runs: checks the workloads")
    parser.add_argument("--only", nargs="+", default=["completion", "resolve", "import"])
    args = parser.parse_args(argv)
    runs = 2 if args.smoke else args.runs
    compileall.compile_dir(str(ROOT / "boocoder_bridge"), quiet=1)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs}
    pass_ = [PYTHON, "-c", "pass"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            fleet = Fleet(folder, 3, 20).build() if args.smoke else Fleet(folder, 20, 500).build()
            ids = model_ids(fleet.models)
            if "completion" in args.only:
                one = fleet.provider(min(7, fleet.hosts - 1))
                prefix = fleet.provider(10)[:-1] if fleet.hosts > 10 else fleet.provider(0)[:-1]
                cases = {"model ID": (f"boocoder-bridge resolve {one}/", {f"{one}/{m}" for m in ids}),
                         "provider": (f"boocoder-bridge resolve {prefix}", {
                             f"{fleet.provider(i)}/" for i in range(fleet.hosts)
                             if fleet.provider(i).startswith(prefix)})}
                slow_state = folder / "state-full-path"
                shutil.copytree(fleet.state, slow_state)
                (slow_state / "completion-ids.txt").unlink()
                for name, (line, expected) in cases.items():
                    env = completion_env(fleet, line, folder / "tab.txt")
                    check_completion(fleet, env, expected, fast=True)
                    results[f"tab {name}"] = {"ids": len(expected),
                                              **farm_bench([ENTRY], pass_, runs, env)}
                env = {**completion_env(fleet, cases["model ID"][0], folder / "tab.txt"),
                       "BOOCODER_BRIDGE_STATE_DIR": str(slow_state)}
                check_completion(fleet, env, cases["model ID"][1], fast=False)
                results["tab model ID, full path"] = farm_bench([ENTRY], pass_, max(3, runs // 2), env)
            env = {k: v for k, v in fleet.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
            if "resolve" in args.only:
                composite = fleet.route_id(3)[0]
                out = subprocess.run([*CLI, "resolve", composite, "--json"], env=env, capture_output=True,
                                     timeout=60)
                fleet.check_route(json.loads(out.stdout), 3)
                results["resolve --json"] = farm_bench([*CLI, "resolve", composite, "--json"],
                                                       [PYTHON, "-c", "import pydantic"], runs, env)
            if "import" in args.only:
                probe = f"import sys, boocoder_bridge; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
                loaded = subprocess.run([PYTHON, "-c", probe], env=env, capture_output=True, text=True).stdout
                check(loaded.strip() == "[]", f"import boocoder_bridge loads {loaded}")
                base = [PYTHON, "-c", "import pydantic, pluggy"]
                results["import"] = farm_bench([PYTHON, "-c", "import boocoder_bridge"], base, runs, env)
                results["import, first use"] = farm_bench(
                    [PYTHON, "-c", "import boocoder_bridge; boocoder_bridge.Bridge"], base, runs, env)
    except WorkloadError as exc:
        print(f"WORKLOAD CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    for name, figure in results.items():
        if isinstance(figure, dict) and "rows" in figure:
            rows = figure["rows"]
            print(f"{name}: A/B cpu {rows['A/B cpu']['median']:.2f} ({rows['A/B cpu']['min']:.2f}-"
                  f"{rows['A/B cpu']['max']:.2f}), wall {rows['A/B wall']['median']:.2f} "
                  f"({rows['A/B wall']['min']:.2f}-{rows['A/B wall']['max']:.2f}); "
                  f"A cpu {rows['A cpu']['median']:.3f} s, B cpu {rows['B cpu']['median']:.3f} s; "
                  f"load {figure['load']:.1f}")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
