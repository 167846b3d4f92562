"""Benchmarks for the targets in BENCHMARKS.md: each figure beside its baseline, each workload checked.

    python3 benchmarks/run.py               # every benchmark; prints a Markdown report
    python3 benchmarks/run.py --json        # the raw figures
    python3 benchmarks/run.py --only cli    # some of: startup cli resolve server discovery growth
    python3 benchmarks/run.py --smoke       # tiny fleets, one run each: checks the workloads, times nothing useful

Rules this script keeps (timings are never asserted in the test suite; the workload checks are):
- Every benchmark first checks that its workload is what it claims (for example: the catalog holds 10,000
  models and every provider is online, not offline because a host was unreachable) and stops with
  ``WORKLOAD CHECK FAILED`` and exit status 1 when it is not.
- Fleets are real: fake llama-swap hosts on 127.0.0.1 are discovered over HTTP with ``models --refresh``, then
  stopped, so a "warm" command that went to the network would find every host offline and fail its check.
- Whole-process figures are paired: the figure and its baseline run in turn (A B A B ...) in one loop, so a
  machine that slows down mid-run slows both; each is reported as min/median/max, with the per-pair ratio.
  Peak RSS is the kernel's figure for that one child process (``os.wait4``).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
CLI = [PYTHON, "-m", "boocoder_bridge"]
HOST_DELAY_S = 0.3


class WorkloadError(AssertionError):
    """The benchmark did not measure what it claims to measure."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise WorkloadError(message)


# --- whole-process timing -------------------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # user + sys: what the command itself cost, whatever else the machine was running
    peak_rss_mb: float
    stdout: bytes


# Linux folds the RSS of the process that forks into the child's ru_maxrss (the pre-exec image counts), so a
# large benchmark process would inflate every figure. Children are therefore started by this small launcher.
LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    argv, env, out = json.loads(line)
    with open(out, "wb") as stdout, open(out + ".err", "wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps([wall, cpu, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([PYTHON, "-S", "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.folder = tempfile.mkdtemp(prefix="bench-out-")
        atexit.register(shutil.rmtree, self.folder, True)  # the last child's output can be 40 MB

    def run(self, argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
        """One child process: wall time, its own peak RSS (wait4), its stdout; a failing command stops the run."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        out = os.path.join(self.folder, "out")
        self.proc.stdin.write(json.dumps([list(argv), dict(os.environ if env is None else env), out]) + "\n")
        self.proc.stdin.flush()
        wall, cpu, maxrss_kb, code = json.loads(self.proc.stdout.readline())
        stdout = Path(out).read_bytes()
        check(code == 0, f"{' '.join(argv[-4:])} exited {code}: {Path(out + '.err').read_text()[-500:]}")
        return Run(wall, cpu, maxrss_kb / 1024, stdout)


_launcher: Launcher | None = None


def run_process(argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
    global _launcher
    if _launcher is None:
        _launcher = Launcher()
    return _launcher.run(argv, env)


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


Argv = Sequence[str] | Callable[[int], Sequence[str]]


def paired(figure: Argv, baseline: Argv, runs: int, env: dict[str, str] | None = None,
           check_output: Callable[[int, bytes], None] | None = None) -> dict[str, Any]:
    """Run figure and baseline in turn ``runs`` times (after one warm-up each); min/median/max and ratios.

    ``figure`` may be a function of the run index (a different model ID per run, for example).
    ``check_output`` checks every run's stdout, outside the timing.
    """
    def argv(spec: Argv, index: int) -> Sequence[str]:
        return spec(index) if callable(spec) else spec

    run_process(argv(figure, -1), env)
    run_process(argv(baseline, -1), env)
    a: list[Run] = []
    b: list[Run] = []
    for index in range(runs):
        first, second = (figure, baseline) if index % 2 == 0 else (baseline, figure)  # A B, B A, ...
        one, two = run_process(argv(first, index), env), run_process(argv(second, index), env)
        fig, base = (one, two) if index % 2 == 0 else (two, one)
        if check_output is not None:
            check_output(index, fig.stdout)
        a.append(fig)
        b.append(base)
    return {
        "runs": runs,
        "wall_s": spread([r.wall_s for r in a]), "baseline_wall_s": spread([r.wall_s for r in b]),
        "ratio": spread([x.wall_s / y.wall_s for x, y in zip(a, b, strict=True)]),
        "cpu_s": spread([r.cpu_s for r in a]), "baseline_cpu_s": spread([r.cpu_s for r in b]),
        "cpu_ratio": spread([x.cpu_s / y.cpu_s for x, y in zip(a, b, strict=True)]),
        "peak_rss_mb": spread([r.peak_rss_mb for r in a]),
        "baseline_peak_rss_mb": spread([r.peak_rss_mb for r in b]),
    }


def solo(argv: Sequence[str], runs: int, env: dict[str, str],
         check_output: Callable[[int, bytes], None] | None = None) -> dict[str, Any]:
    """One command, ``runs`` times: wall and peak RSS min/median/max (the first run is checked and counted)."""
    results = []
    for index in range(runs):
        result = run_process(argv, env)
        if check_output is not None:
            check_output(index, result.stdout)
        results.append(result)
    return {"runs": runs, "wall_s": spread([r.wall_s for r in results]),
            "cpu_s": spread([r.cpu_s for r in results]), "peak_rss_mb": spread([r.peak_rss_mb for r in results])}


# --- fleets ------------------------------------------------------------------------------------------------


def model_ids(count: int) -> list[str]:
    return [f"org{j % 7}/Model-{j}-Instruct-GGUF:Q4_K_M" for j in range(count)]


def expected_context(index: int) -> int | None:
    return 32768 + 1024 * (index % 4) if index % 2 == 0 else None


def host_body(count: int) -> dict[str, Any]:
    from tests.fakehost import llama_swap_body

    ids = model_ids(count)
    return llama_swap_body(*ids, contexts={m: expected_context(j) for j, m in enumerate(ids) if j % 2 == 0},
                           outputs={m: 4096 for j, m in enumerate(ids) if j % 4 == 0})


@dataclass
class Fleet:
    """``hosts`` providers with ``models`` each, discovered for real into ``state``; the hosts are then gone."""

    folder: Path
    hosts: int
    models: int
    refresh: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.hosts}x{self.models}"

    @property
    def registry(self) -> Path:
        return self.folder / f"registry-{self.name}.json"

    @property
    def state(self) -> Path:
        return self.folder / f"state-{self.name}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOCODER_BRIDGE_", "LLAMA_SWAP"))}
        return {**env, "BOOCODER_BRIDGE_REGISTRY": str(self.registry), "BOOCODER_BRIDGE_STATE_DIR": str(self.state),
                "BOOCODER_BRIDGE_CACHE_TTL": "86400"}

    def provider(self, index: int) -> str:
        return f"host-{index:03d}"

    def build(self, refresh_runs: int = 1) -> Fleet:
        """Start the hosts, run ``models --refresh --json`` (timed) until the cache is real, stop the hosts."""
        from tests.fakehost import FakeHost

        body = host_body(self.models)
        started = [FakeHost(name=self.provider(i), models_body=body).start() for i in range(self.hosts)]
        try:
            self.registry.write_text(json.dumps({"default_provider": self.provider(0), "providers": {
                self.provider(i): {"kind": "llama-swap", "base_url": host.url, "timeout_s": 60}
                for i, host in enumerate(started)}}))
            self.refresh = solo([*CLI, "models", "--json", "--refresh"], refresh_runs, self.env,
                                lambda _, out: self.check_catalog(out))
            for host in started:  # each host was really asked, over HTTP, and only for its list (all have status)
                check(set(host.paths()) == {"/v1/models"}, f"{host.name} received {sorted(set(host.paths()))}")
        finally:
            for host in started:
                host.stop()
        return self

    def check_catalog(self, out: bytes) -> None:
        """``models --json``: every provider online with all its models (not an empty or offline catalog)."""
        catalog = json.loads(out)
        groups = catalog["providers"]
        check(len(groups) == self.hosts, f"catalog has {len(groups)} providers, expected {self.hosts}")
        offline = [g["id"] for g in groups if g["status"] != "online"]
        check(not offline, f"providers not online (the workload went to the network?): {offline[:5]}")
        total = sum(len(g["models"]) for g in groups)
        check(total == self.hosts * self.models, f"catalog holds {total} models, expected {self.hosts * self.models}")
        first = groups[0]["models"][0]
        check(first["context_window"] == expected_context(model_ids(self.models).index(first["model"])),
              f"context window of {first['id']} is {first['context_window']}")

    def check_config(self, out: bytes) -> None:
        """``generate``: one opencode provider entry per host, every model in it."""
        config = json.loads(out)
        entries = config["provider"]
        check(len(entries) == self.hosts, f"config has {len(entries)} providers, expected {self.hosts}")
        total = sum(len(e["models"]) for e in entries.values())
        check(total == self.hosts * self.models, f"config holds {total} models, expected {self.hosts * self.models}")
        # a limit wherever the window is known (opencode.plan_limit): every other model
        limited = sum(1 for e in entries.values() for m in e["models"].values() if m.get("limit", {}).get("context"))
        check(limited == self.hosts * len(range(0, self.models, 2)), f"{limited} models have a limit")

    def route_id(self, index: int) -> tuple[str, int, int]:
        """A composite ID spread over the whole fleet, with its expected provider index and model index."""
        provider, model = index % self.hosts, (index // self.hosts * 7919) % self.models
        return f"{self.provider(provider)}/{model_ids(self.models)[model]}", provider, model

    def check_route(self, route: dict[str, Any], index: int) -> None:
        composite, provider, model = self.route_id(index)
        check(route["id"] == composite, f"resolved {route['id']}, expected {composite}")
        check(route["provider"] == self.provider(provider), f"routed to {route['provider']}")
        check(route["context_window"] == expected_context(model),
              f"{composite}: context {route['context_window']}, expected {expected_context(model)}")


# --- the benchmarks ------------------------------------------------------------------------------------


def bench_startup(results: dict[str, Any], runs: int) -> None:
    """``import boocoder_bridge`` against what it imports (pydantic + pluggy); httpx must not load."""
    probe = ("import json, sys, boocoder_bridge; "
             "print(json.dumps(sorted(m for m in ('httpx', 'jsonschema', 'asyncio') if m in sys.modules)))")
    loaded = json.loads(run_process([PYTHON, "-c", probe]).stdout)
    check(loaded == [], f"import boocoder_bridge loads {loaded}")
    results["import"] = paired([PYTHON, "-c", "import boocoder_bridge"], [PYTHON, "-c", "import pydantic, pluggy"],
                               runs)
    # what any process that uses a pydantic model pays beyond `import pydantic`
    results["import_floor"] = paired([PYTHON, "-c", "from pydantic import BaseModel"],
                                     [PYTHON, "-c", "import pydantic"], runs)


def bench_cli(results: dict[str, Any], fleet: Fleet, runs: int) -> None:
    """What a host meets per call over a warm fleet: resolve --json, models --json, generate."""
    pydantic = [PYTHON, "-c", "import pydantic"]

    def resolve(index: int) -> list[str]:  # a different ID each run: every process resolves its ID cold
        return [*CLI, "resolve", fleet.route_id(index + 1)[0], "--json"]

    def check_route(index: int, out: bytes) -> None:
        fleet.check_route(json.loads(out), index + 1)

    results["cli_resolve"] = paired(resolve, pydantic, runs, fleet.env, check_route)
    results["cli_models"] = paired([*CLI, "models", "--json"], pydantic, runs, fleet.env,
                                   lambda _, out: fleet.check_catalog(out))
    results["cli_generate"] = paired([*CLI, "generate"], pydantic, runs, fleet.env,
                                     lambda _, out: fleet.check_config(out))
    results["cli_fleet"] = fleet.name


def bench_resolve(results: dict[str, Any], fleet: Fleet, calls: int, overflow_memo: bool = True) -> None:
    """``Bridge.resolve`` in-process: warm IDs, IDs seen for the first time, and more IDs than any memo holds.

    Rates are per second of this process's CPU time, so other work on a shared machine does not count."""
    from boocoder_bridge import Bridge

    purposes = ("dispatch", "arena", "compaction", "task", "context")
    distinct = fleet.hosts * fleet.models
    ids = [fleet.route_id(i) for i in range(distinct)]
    check(len({c for c, _, _ in ids}) == distinct, "route IDs are not distinct")

    bridge = Bridge.load(fleet.registry, fleet.state, env=fleet.env)
    started = time.process_time()
    bridge.resolver  # noqa: B018  parses the cache and builds the resolver
    build_s = time.process_time() - started
    for i in (0, distinct // 2, distinct - 1):
        fleet.check_route(bridge.resolve(ids[i][0]).model_dump(), i)

    # first seen: every ID once, on a new resolver
    started = time.process_time()
    for composite, _, _ in ids:
        bridge.resolve(composite)
    first_s = time.process_time() - started

    warm_ids = [c for c, _, _ in ids[:1000]]
    for composite in warm_ids:
        bridge.resolve(composite)
    started = time.process_time()
    for i in range(calls):
        bridge.resolve(warm_ids[i % len(warm_ids)])
    warm_s = time.process_time() - started

    # cycling: every ID under every purpose, in turn, three times (5 x the fleet's IDs)
    keys = [(c, p) for p in purposes for c, _, _ in ids]
    memo = memo_capacity(bridge)
    check(not overflow_memo or memo is None or len(keys) > memo,
          f"{len(keys)} keys fit in the memo ({memo}); cycle through more")
    started = time.process_time()
    for _ in range(3):
        for composite, purpose in keys:
            bridge.resolve(composite, purpose)
    cycle_s = time.process_time() - started
    fleet.check_route(bridge.resolve(ids[-1][0], "context").model_dump(), distinct - 1)
    results["resolve"] = {
        "fleet": fleet.name, "build_resolver_s": build_s,
        "first_seen_per_s": distinct / first_s, "warm_per_s": calls / warm_s,
        "cycling_per_s": 3 * len(keys) / cycle_s, "cycled_keys": len(keys), "memo_capacity": memo,
    }


def memo_capacity(bridge: Any) -> int | None:
    """How many routes the resolver memo holds (None: unbounded, or not said)."""
    from boocoder_bridge import routing

    limit = getattr(routing, "MEMO_LIMIT", None)
    return limit if isinstance(limit, int) else None


def bench_phases(fleet: Fleet) -> dict[str, float]:
    """In-process CPU cost of each step over a warm cache (a new Bridge each time, as a CLI process has)."""
    from boocoder_bridge import Bridge
    from boocoder_bridge.opencode.config import render

    def timed(action: Callable[[], object]) -> float:
        started = time.process_time()
        action()
        return time.process_time() - started

    out: dict[str, list[float]] = {"load_s": [], "read_cache_s": [], "build_resolver_s": [], "catalog_s": [],
                                   "generate_s": []}
    for _ in range(3):
        bridge: Any = None

        def load() -> None:
            nonlocal bridge
            bridge = Bridge.load(fleet.registry, fleet.state, env=fleet.env)

        out["load_s"].append(timed(load))
        out["read_cache_s"].append(timed(bridge.fleet.cached_reports))
        out["build_resolver_s"].append(timed(lambda b=bridge: b.resolver))
        catalog: Any = None

        def build_catalog(b: Any = bridge) -> None:
            nonlocal catalog
            catalog = b.catalog()

        out["catalog_s"].append(timed(build_catalog))
        fleet.check_catalog(catalog.model_dump_json().encode())
        out["generate_s"].append(timed(lambda b=bridge: render(b.opencode_config(offline=True)[0])))
    return {k: statistics.median(v) for k, v in out.items()}


def bench_growth_models(results: dict[str, Any], folder: Path, sizes: Sequence[int], runs: int) -> None:
    """One host with 1k / 10k / 50k models: --refresh, warm models --json, generate; phases in-process."""
    rows = []
    fixed = solo([PYTHON, "-c", "import boocoder_bridge.cli"], 5, dict(os.environ))
    results["fixed_cpu_s"] = fixed["cpu_s"]["median"]  # every CLI process pays this, whatever the fleet
    for size in sizes:
        fleet = Fleet(folder, 1, size).build(refresh_runs=runs)
        models = solo([*CLI, "models", "--json"], runs, fleet.env, lambda _, out, f=fleet: f.check_catalog(out))
        generate = solo([*CLI, "generate"], runs, fleet.env, lambda _, out, f=fleet: f.check_config(out))
        assert fleet.refresh is not None
        rows.append({"models": size, "refresh": fleet.refresh, "models_json": models, "generate": generate,
                     "phases": bench_phases(fleet)})
    results["growth_models"] = rows


def serve_hosts(count: int, models: int, delay: float) -> None:
    """(Child process) ``count`` llama-swap-like hosts, each answering ``/v1/models`` after ``delay`` seconds.

    One asyncio loop serves every port: 256 thread-per-request test servers in one process would measure their
    own GIL contention, not the client. Prints the URLs as one JSON line; serves until stdin closes.
    """
    body = json.dumps(host_body(models)).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                path = request.split(b" ", 2)[1]
                await asyncio.sleep(delay)
                writer.write(head + body if path == b"/v1/models" else missing)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(answer, "127.0.0.1", 0) for _ in range(count)]
        urls = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in servers]
        print(json.dumps(urls), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


@contextlib.contextmanager
def child(argv: Sequence[str]) -> Iterator[Any]:
    """A helper child process that prints one JSON line when ready; ended when the block ends."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        check(line, f"helper {argv[2:]} did not start")
        yield json.loads(line)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def bench_growth_hosts(results: dict[str, Any], folder: Path, counts: Sequence[int], runs: int) -> None:
    """N hosts answering in 0.3 s each, discovered in-process, paired against one host; hosts in another process."""
    from boocoder_bridge import Bridge

    rows = []
    with child([PYTHON, __file__, "--serve-hosts", str(max(counts)), "10", str(HOST_DELAY_S)]) as urls:
        def registry(count: int) -> Path:
            path = folder / f"hosts-{count}.json"
            path.write_text(json.dumps({"default_provider": "h0", "providers": {
                f"h{i}": {"kind": "llama-swap", "base_url": urls[i]} for i in range(count)}}))  # default deadline
            return path

        def discover(path: Path, count: int) -> float:
            bridge = Bridge.load(path, Path(tempfile.mkdtemp(dir=folder)))
            started = time.perf_counter()
            reports = bridge.reports(refresh=True)
            elapsed = time.perf_counter() - started
            down = {p: r.error for p, r in reports.items() if r.status != "online"}
            check(not down, f"{len(down)} of {count} hosts not online: {list(down.items())[:3]}")
            check(sum(len(r.models) for r in reports.values()) == 10 * count, "hosts did not list their models")
            return elapsed

        one = registry(1)
        discover(one, 1)
        for count in counts:
            path = registry(count)
            discover(path, count)  # warm-up
            pairs = []
            for index in range(runs):
                if index % 2 == 0:
                    many, single = discover(path, count), discover(one, 1)
                else:
                    single, many = discover(one, 1), discover(path, count)
                pairs.append((many, single))
            rows.append({"hosts": count, "wall_s": spread([m for m, _ in pairs]),
                         "one_host_s": spread([s for _, s in pairs]),
                         "ratio": spread([m / s for m, s in pairs])})
    results["growth_hosts"] = rows


def process_cpu(pid: int) -> float:
    """CPU seconds (user + sys) a running process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SERVER_SCRIPT = """
import json, socket, sys
import uvicorn
from boocoder_bridge import Bridge
from boocoder_bridge.web.app import create_app
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
# as on the sockets `serve` makes itself: without it, small answers wait out the peer's delayed ACK (~40 ms)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.listen(1024)
app = create_app(Bridge.load())
print(json.dumps(sock.getsockname()[1]), flush=True)
server = uvicorn.Server(uvicorn.Config(app, log_level="warning", backlog=1024))
server.run(sockets=[sock])
"""


def bench_server(results: dict[str, Any], fleet: Fleet, clients: int, requests: dict[str, int]) -> None:
    """``GET /api/resolve`` and ``GET /api/models`` under ``clients`` concurrent clients (the load in this process)."""
    import httpx

    out: dict[str, Any] = {"fleet": fleet.name, "clients": clients}
    proc = subprocess.Popen([PYTHON, "-c", SERVER_SCRIPT], stdout=subprocess.PIPE, text=True, env=fleet.env)
    try:
        port = json.loads(proc.stdout.readline() if proc.stdout else "null")
        check(isinstance(port, int), "the server did not start")
        base = f"http://127.0.0.1:{port}"

        def url(kind: str, index: int) -> tuple[str, dict[str, str]]:
            if kind == "resolve":
                return "/api/resolve", {"model": fleet.route_id(index)[0]}
            return "/api/models", {}

        async def load(kind: str, total: int) -> dict[str, Any]:
            latencies: list[float] = []
            bodies: dict[int, bytes] = {}
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as http:
                for i in range(min(clients, total)):  # warm-up: connections open, first build done
                    await http.get(*url(kind, i)[:1], params=url(kind, i)[1])
                counter = iter(range(total))

                async def worker() -> None:
                    for index in counter:
                        path, params = url(kind, index)
                        started = time.perf_counter()
                        response = await http.get(path, params=params)
                        latencies.append(time.perf_counter() - started)
                        check(response.status_code == 200, f"{path} answered {response.status_code}")
                        if index % 97 == 0 or index == total - 1:
                            bodies[index] = response.content

                started, client_cpu, server_cpu = time.perf_counter(), time.process_time(), process_cpu(proc.pid)
                await asyncio.gather(*(worker() for _ in range(clients)))
                elapsed = time.perf_counter() - started
                client_cpu = time.process_time() - client_cpu
                server_cpu = process_cpu(proc.pid) - server_cpu
            for index, body in bodies.items():
                if kind == "resolve":
                    fleet.check_route(json.loads(body), index)
                else:
                    fleet.check_catalog(body)
            latencies.sort()
            return {"requests": total, "req_per_s": total / elapsed,
                    "server_cpu_ms_per_request": 1000 * server_cpu / total,
                    "client_cpu_ms_per_request": 1000 * client_cpu / total,
                    "p50_ms": 1000 * latencies[len(latencies) // 2],
                    "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}

        for kind, total in requests.items():
            out[kind] = asyncio.run(load(kind, total))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    results["server"] = out


# --- report ----------------------------------------------------------------------------------------------


def fmt(spec: dict[str, float], scale: float = 1.0, digits: int = 3) -> str:
    return f"{spec['median'] * scale:.{digits}f} ({spec['min'] * scale:.{digits}f}-{spec['max'] * scale:.{digits}f})"


def verdict(value: float, limit: float, higher_is_better: bool = False) -> str:
    ok = value >= limit if higher_is_better else value <= limit
    if ok:
        return "met"
    return f"missed by {limit / value if higher_is_better else value / limit:.2f}x"


def process_row(name: str, x: dict[str, Any], baseline: str, limit: float | None) -> str:
    """One whole-process figure: wall and CPU medians (min-max), each beside its baseline, ratios, verdicts."""
    judged = "" if limit is None else (f"wall {verdict(x['ratio']['median'], limit)}; "
                                       f"CPU {verdict(x['cpu_ratio']['median'], limit)}")
    return (f"| {name} | {fmt(x['wall_s'])} s wall, {x['cpu_s']['median']:.3f} s CPU, "
            f"{x['peak_rss_mb']['median']:.1f} MB | {baseline}: {fmt(x['baseline_wall_s'])} s wall, "
            f"{x['baseline_cpu_s']['median']:.3f} s CPU | {fmt(x['ratio'], digits=2)} wall, "
            f"{fmt(x['cpu_ratio'], digits=2)} CPU | {judged or '-'} |")


def report(r: dict[str, Any]) -> str:
    lines = [f"Machine: {r['machine']}; Python {r['python']}; {r['date']}; {r['mode']}.",
             "Whole-process figures: median (min-max); each run paired with its baseline in one loop (A B, B A, ...).",
             "", "| figure | measured | baseline (same loop) | ratio | verdict |", "|---|---|---|---|---|"]
    rows = []
    if "import" in r:
        rows.append(process_row("`import boocoder_bridge` <= 1.2x pydantic+pluggy", r["import"],
                                "`import pydantic, pluggy`", 1.2))
        rows.append(process_row("floor: `from pydantic import BaseModel`", r["import_floor"], "`import pydantic`",
                                None))
    if "cli_resolve" in r:
        fleet = r["cli_fleet"]
        rows.append(process_row(f"`resolve ID --json`, {fleet}, <= 1.5x `import pydantic`", r["cli_resolve"],
                                "`import pydantic`", 1.5))
        x = r["cli_models"]
        row = process_row(f"warm `models --json`, {fleet}, < 0.25 s and < 60 MB", x, "`import pydantic`", None)
        rows.append(row[:-4] + f" wall {verdict(x['wall_s']['median'], 0.25)}; CPU "
                    f"{verdict(x['cpu_s']['median'], 0.25)}; RSS {verdict(x['peak_rss_mb']['median'], 60)} |")
        rows.append(process_row(f"`generate`, {fleet} (no target)", r["cli_generate"], "`import pydantic`", None))
    if "resolve" in r:
        x = r["resolve"]
        rows.append(f"| `resolve()` warm, >= 1M/s | {x['warm_per_s']:,.0f}/s (CPU time) | | | "
                    f"{verdict(x['warm_per_s'], 1e6, True)} |")
        rows.append(f"| `resolve()` first seen, {x['fleet']}, >= 200k/s | {x['first_seen_per_s']:,.0f}/s | resolver "
                    f"built in {x['build_resolver_s'] * 1000:.1f} ms | | {verdict(x['first_seen_per_s'], 2e5, True)} |")
        rows.append(f"| `resolve()` cycling {x['cycled_keys']:,} keys (memo holds {x['memo_capacity']}), >= 200k/s | "
                    f"{x['cycling_per_s']:,.0f}/s | | | {verdict(x['cycling_per_s'], 2e5, True)} |")
    for row in r.get("growth_hosts", []):
        if row["hosts"] == 256:
            rows.append(f"| discovery, 256 hosts x 0.3 s, all online, <= 1.3x one host | {fmt(row['wall_s'])} s | "
                        f"one host {fmt(row['one_host_s'])} s | {fmt(row['ratio'], digits=2)} | "
                        f"{verdict(row['ratio']['median'], 1.3)} |")
    by = {row["models"]: row for row in r.get("growth_models", [])}
    if 50000 in by and 10000 in by:
        big, small = by[50000], by[10000]
        for key, label in (("refresh", "`models --json --refresh`"), ("models_json", "warm `models --json`"),
                           ("generate", "`generate`")):
            peak = big[key]["peak_rss_mb"]["median"]
            growth = (big[key]["cpu_s"]["median"] - r["fixed_cpu_s"]) / (small[key]["cpu_s"]["median"]
                                                                          - r["fixed_cpu_s"])
            rows.append(f"| one host, 50,000 models, {label}: < 150 MB, linear from 10k | {peak:.1f} MB; CPU "
                        f"beyond the CLI's imports x{growth:.1f} for 5x the models | 10k: "
                        f"{small[key]['peak_rss_mb']['median']:.1f} MB | | RSS {verdict(peak, 150)} |")
    if "server" in r:
        x = r["server"]
        for kind in ("resolve", "models"):
            if kind in x:
                y = x[kind]
                rows.append(f"| server `GET /api/{kind}`, {x['fleet']}, {x['clients']} clients | p50 "
                            f"{y['p50_ms']:.1f} ms, p99 {y['p99_ms']:.1f} ms, {y['req_per_s']:,.0f} req/s; server CPU "
                            f"{y['server_cpu_ms_per_request']:.2f} ms per request | {y['requests']} requests; load "
                            f"generator CPU {y['client_cpu_ms_per_request']:.2f} ms per request | | (reported) |")
    lines += rows
    if "growth_hosts" in r:
        lines += ["", "Discovery growth: in-process `reports(refresh=True)`; every host answers in 0.3 s (all on one "
                  "asyncio loop in another process); paired with one host:", "",
                  "| hosts | wall s | one host s | ratio |", "|---|---|---|---|"]
        lines += [f"| {row['hosts']} | {fmt(row['wall_s'])} | {fmt(row['one_host_s'])} | "
                  f"{fmt(row['ratio'], digits=2)} |" for row in r["growth_hosts"]]
    if "growth_models" in r:
        lines += ["", "Model growth, one host. Whole process: median wall s / CPU s / peak MB. In-process CPU ms "
                  "(median of 3, a new Bridge each):", "",
                  "| models | `models --json --refresh` | warm `models --json` | `generate` | read cache | "
                  "build resolver | catalog | config |", "|---|---|---|---|---|---|---|---|"]
        for row in r["growth_models"]:
            p = row["phases"]
            lines.append(
                f"| {row['models']:,} | " + " | ".join(
                    f"{row[k]['wall_s']['median']:.2f} / {row[k]['cpu_s']['median']:.2f} / "
                    f"{row[k]['peak_rss_mb']['median']:.0f}" for k in ("refresh", "models_json", "generate")) + " | " +
                " | ".join(f"{p[k] * 1000:.1f}" for k in ("read_cache_s", "build_resolver_s", "catalog_s",
                                                          "generate_s")) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the raw figures")
    parser.add_argument("--smoke", action="store_true", help="tiny workloads, one run: checks only")
    parser.add_argument("--only", nargs="+", default=["startup", "cli", "resolve", "server", "discovery", "growth"])
    parser.add_argument("--runs", type=int, default=11, help="paired runs per whole-process figure")
    parser.add_argument("--serve-hosts", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_hosts:
        serve_hosts(int(args.serve_hosts[0]), int(args.serve_hosts[1]), float(args.serve_hosts[2]))
        return 0
    smoke = args.smoke
    runs = 1 if smoke else args.runs
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
                               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                         time.gmtime()),
                               "mode": "smoke (checks only)" if smoke else f"{runs} paired runs"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if "startup" in args.only:
                bench_startup(results, runs)
            if {"cli", "resolve", "server"} & set(args.only):
                fleet = Fleet(folder, 2, 20).build() if smoke else Fleet(folder, 20, 500).build()
                if "cli" in args.only:
                    bench_cli(results, fleet, runs)
                if "resolve" in args.only:
                    bench_resolve(results, fleet, 10_000 if smoke else 2_000_000, overflow_memo=not smoke)
                if "server" in args.only:
                    bench_server(results, fleet, 4 if smoke else 50,
                                 {"resolve": 20, "models": 8} if smoke else {"resolve": 5000, "models": 200})
            if "discovery" in args.only:
                bench_growth_hosts(results, folder, (1, 8) if smoke else (1, 8, 64, 256), 1 if smoke else 5)
            if "growth" in args.only:
                bench_growth_models(results, folder, (100, 500) if smoke else (1000, 10000, 50000),
                                    1 if smoke else 3)
    except WorkloadError as exc:
        print(f"WORKLOAD CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    gc.collect()
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
