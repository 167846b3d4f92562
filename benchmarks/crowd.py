"""Issue 22's `serve` figures: a crowd on ``GET /api/events``, clients that never read, and event latency.

    python3 benchmarks/crowd.py                       # 200 clients, 3 hosts x 3,000 models; then slow clients, latency
    python3 benchmarks/crowd.py --before DIR          # also the same workload on the code in DIR (e.g. main), paired
    python3 benchmarks/crowd.py --smoke               # a small crowd: checks the workload, times nothing useful

The server is the real program (``boocoder-bridge serve --port 0``) over fake llama-swap hosts on 127.0.0.1. The
crowd (raw sockets on one asyncio loop) and a ``/healthz`` prober run in this process, on the same 2 cores as
the server: the figures include the load generator's share of the machine. Every check that the workload is
what it claims stops the script with ``WORKLOAD CHECK FAILED`` and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run import WorkloadError, check, host_body, process_cpu, spread  # noqa: E402

PYTHON = sys.executable


@contextlib.contextmanager
def serve(registry: Path, state: Path, src: Path | None = None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A real ``serve`` process (of the code in ``src``, else this checkout) and its port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOCODER_BRIDGE_", "LLAMA_SWAP"))}
    env["PYTHONPATH"] = str(src or ROOT)
    proc = subprocess.Popen([PYTHON, "-m", "boocoder_bridge", "--registry", str(registry), "--state-dir", str(state),
                             "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(src or ROOT))
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready and proc.stdout else ""
        check(line.startswith("serving http://127.0.0.1:"), f"serve did not start: {line!r}")
        yield proc, int(line.split()[1].rsplit(":", 1)[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fleet(folder: Path, hosts: int, models: int, events: bool = False) -> tuple[Path, list[Any]]:
    from tests.fakehost import FakeHost

    body = host_body(models)
    started = [FakeHost(name=f"h{i}", models_body=json.loads(json.dumps(body)), events=events).start()
               for i in range(hosts)]
    registry = folder / f"crowd-{hosts}x{models}.json"
    registry.write_text(json.dumps({"default_provider": "h0", "providers": {
        f"h{i}": {"kind": "llama-swap", "base_url": h.url, "timeout_s": 60, "refresh_s": 86400}
        for i, h in enumerate(started)}}))
    return registry, started


async def http_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data


def body_of(response: bytes) -> bytes:
    """The body of an HTTP/1.1 answer (chunked or not)."""
    head, _, body = response.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out, at = bytearray(), 0
    while at < len(body):
        end = body.index(b"\r\n", at)
        size = int(body[at:end], 16)
        if size == 0:
            break
        out += body[end + 2:end + 2 + size]
        at = end + 2 + size + 2
    return bytes(out)


def first_event(raw: bytes) -> dict[str, Any]:
    """The ``catalog`` event's data from the start of an ``/api/events`` answer."""
    text = body_of(raw).decode()
    block = next(b for b in text.split("\n\n") if "event: catalog" in b)
    return json.loads("\n".join(line[6:] for line in block.split("\n") if line.startswith("data: ")))


async def events_client(port: int, started: float) -> tuple[float, bytes]:
    """Opens ``GET /api/events``; returns the seconds until its first whole event, and the bytes up to it.

    The first ``catalog`` event ends with a blank line, and that is where the server's last piece of it ends
    (followed by the chunk's CRLF): its data is one line of JSON, which holds no raw line break."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = bytearray()
    event_at = -1
    while True:
        chunk = await reader.read(1 << 17)
        check(chunk, "the event stream ended before its first event")
        from_ = max(0, len(data) - 16)
        data += chunk
        if event_at < 0:
            event_at = data.find(b"event: catalog", from_)
        if event_at >= 0 and data.find(b"\n\n\r\n", max(event_at, from_)) >= 0:
            break
    elapsed = time.perf_counter() - started
    writer.close()
    return elapsed, bytes(data)


async def crowd(port: int, clients: int) -> dict[str, Any]:
    """``clients`` open ``/api/events`` at once; ``/healthz`` is asked every 20 ms meanwhile."""
    health: list[float] = []
    done = asyncio.Event()

    async def prober() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            answer = await http_get(port, "/healthz")
            health.append(time.perf_counter() - asked)
            check(b'"ok"' in answer, f"/healthz answered {answer[:80]!r}")
            await asyncio.sleep(0.02)

    probe = asyncio.create_task(prober())
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    results = await asyncio.gather(*(events_client(port, started) for _ in range(clients)))
    done.set()
    await probe
    firsts = [r[0] for r in results]
    digests = {hashlib.sha256(body_of(r[1])).hexdigest() for r in results}  # retry line + the first event
    return {"clients": clients, "first_event_s": spread(firsts), "healthz_s": spread(health),
            "healthz_asked": len(health), "event": first_event(results[0][1]), "distinct_events": len(digests),
            "event_bytes": len(body_of(results[0][1]))}


def check_crowd(out: dict[str, Any], hosts: int, models: int, catalog: dict[str, Any]) -> None:
    """Every client got the same first event: the whole catalog, every host online, as ``/api/models`` says."""
    event = out["event"]
    groups = event["catalog"]["providers"]
    check(len(groups) == hosts and all(g["status"] == "online" for g in groups),
          f"first event: {[(g['id'], g['status']) for g in groups]}")
    total = sum(len(g["models"]) for g in groups)
    check(total == hosts * models, f"first event holds {total} models, expected {hosts * models}")
    check(event["catalog"] == catalog, "first event differs from GET /api/models")
    check(out["distinct_events"] == 1, f"clients got {out['distinct_events']} different first events")
    check(out["healthz_asked"] >= 1, "/healthz was never asked during the crowd")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tcp_mem_mb() -> float:
    """The kernel's memory for TCP buffers, all sockets (/proc/net/sockstat, in pages)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return 0.0


def server_connections(port: int) -> int:
    """Established TCP connections whose local port is ``port``: the server's side of its clients (Linux).
    A connection the server dropped for a stall is gone from here at once; its client learns it (a reset) only
    when it reads again."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


def stalled_clients(proc: subprocess.Popen[str], port: int, count: int, wait_s: float) -> dict[str, Any]:
    """``count`` clients open the stream and never read. Server RSS and kernel TCP memory before, while they
    stall, and after ``wait_s``; how many the server dropped by then; whether a reconnect gets a snapshot."""
    import httpx

    before = {"rss_mb": proc_rss_mb(proc.pid), "tcp_mem_mb": tcp_mem_mb()}
    socks = []
    check(server_connections(port) == 0, "the server has other clients")
    for _ in range(count):
        # A small receive buffer: what fills up and stays is then the server's side (a client's own 6 MB
        # autotuned buffer is the client's memory, though on this machine it counts in the same kernel total)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks.append(sock)
    url = f"http://127.0.0.1:{port}"
    models = httpx.get(url + "/api/models", timeout=30).json()
    some = [m["id"] for m in models["providers"][0]["models"][:4]]
    for model in some:  # new versions while they stall: more than their buffers can take (2 MB each)
        httpx.put(f"{url}/api/favorites/{model}", timeout=30)
    time.sleep(2)
    during = {"rss_mb": proc_rss_mb(proc.pid), "tcp_mem_mb": tcp_mem_mb(), "connections": server_connections(port),
              "healthz_s": timed(lambda: httpx.get(url + "/healthz", timeout=30))}
    time.sleep(wait_s)
    dropped = count - server_connections(port)
    after = {"rss_mb": proc_rss_mb(proc.pid), "tcp_mem_mb": tcp_mem_mb()}
    for sock in socks:
        sock.close()
    again = first_event(asyncio.run(events_client(port, time.perf_counter()))[1])
    for model in some:
        httpx.delete(f"{url}/api/favorites/{model}", timeout=30)
    return {"clients": count, "before": before, "during": during, "after": after, "dropped": dropped,
            "waited_s": wait_s + 2, "reconnect_snapshot": again["changed"][:1] == ["favorites"]
            and len(again["changed"]) == 1 + len(models["providers"])}


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def event_latency(folder: Path, samples: int, models: int) -> dict[str, Any]:
    """A host with a push channel (llama-swap's ``/api/events``) adds a model; the time until a client of
    ``serve`` sees it in a ``catalog`` event. Changes 1.3 s apart (a provider is asked at most once a second)."""
    import httpx

    registry, hosts = fleet(folder, 1, models, events=True)
    host = hosts[0]
    latencies = []
    try:
        with serve(registry, folder / "state-latency") as (_, port):
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(timeout=httpx.Timeout(30, read=None)) as client, \
                    client.stream("GET", url + "/api/events") as answer:
                lines = answer.iter_lines()

                def next_event() -> dict[str, Any]:
                    data = []
                    for line in lines:
                        if line.startswith("data: "):
                            data.append(line[6:])
                        elif not line and data:
                            return json.loads("\n".join(data))
                    raise WorkloadError("the event stream ended")

                first = next_event()
                check(first["catalog"]["providers"][0]["status"] == "online", "the host is not online")
                for index in range(samples):
                    time.sleep(1.3)
                    new = f"pushed/model-{index}"
                    body = json.loads(json.dumps(host.models_body))
                    body["data"].append({**body["data"][0], "id": new})
                    changed = time.perf_counter()
                    check(host.set_models_body(body) == 1, "the bridge is not listening to the host's events")
                    while True:
                        event = next_event()
                        ids = {m["model"] for m in event["catalog"]["providers"][0]["models"]}
                        if new in ids:
                            latencies.append(time.perf_counter() - changed)
                            break
    finally:
        for h in hosts:
            h.stop()
    ordered = sorted(latencies)
    return {"samples": len(latencies), "p50_s": statistics.median(ordered),
            "p99_s": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], "max_s": ordered[-1],
            "min_s": ordered[0]}


def bench(folder: Path, hosts: int, models: int, clients: int, rounds: int, before: Path | None) -> dict[str, Any]:
    import httpx

    registry, started = fleet(folder, hosts, models)
    out: dict[str, Any] = {"hosts": hosts, "models": models, "clients": clients}
    try:
        sources = {"after": None, **({"before": before} if before else {})}
        servers = {}
        with contextlib.ExitStack() as stack:
            for name, src in sources.items():
                servers[name] = stack.enter_context(serve(registry, folder / f"state-{name}", src))
                catalog = httpx.get(f"http://127.0.0.1:{servers[name][1]}/api/models", timeout=60).json()
                out[f"{name}_catalog_bytes"] = len(json.dumps(catalog))
            rows: dict[str, list[dict[str, Any]]] = {f"{n}_{k}": [] for n in sources for k in ("one", "crowd")}
            for index in range(rounds):  # after / before in turn, each a crowd of one then the crowd
                order = list(sources) if index % 2 == 0 else list(reversed(sources))
                for name in order:
                    port = servers[name][1]
                    catalog = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=60).json()
                    for kind, count in (("one", 1), ("crowd", clients)):
                        cpu = process_cpu(servers[name][0].pid)
                        result = asyncio.run(crowd(port, count))
                        result["server_cpu_s"] = process_cpu(servers[name][0].pid) - cpu  # /healthz probes too
                        check_crowd(result, hosts, models, catalog)
                        result.pop("event")
                        result["load"] = os.getloadavg()[0]
                        rows[f"{name}_{kind}"].append(result)
            out["rounds"] = rows
            for name, (proc, _port) in servers.items():
                out[f"{name}_server_rss_mb"] = proc_rss_mb(proc.pid)
            out["stalled"] = stalled_clients(servers["after"][0], servers["after"][1], clients, 12.0)
    finally:
        for host in started:
            host.stop()
    return out


def summary(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Across rounds: min of the mins, median of the medians, max of the maxes."""
    return {"min": min(r[key]["min"] for r in rows), "median": statistics.median(r[key]["median"] for r in rows),
            "max": max(r[key]["max"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--before", type=Path, help="a source tree (e.g. `git archive main`) to pair with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument("--only", nargs="+", default=["crowd", "latency"])
    args = parser.parse_args(argv)
    hosts, models, clients = (3, 200, 10) if args.smoke else (3, 3000, 200)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "load_at_start": os.getloadavg()}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "crowd" in args.only:
                results["crowd"] = bench(Path(tmp), hosts, models, clients, 1 if args.smoke else args.rounds,
                                         args.before)
                rounds = results["crowd"]["rounds"]
                results["crowd"]["summary"] = {name: {"first_event_s": summary(rows, "first_event_s"),
                                                      "healthz_s": summary(rows, "healthz_s")}
                                               for name, rows in rounds.items()}
            if "latency" in args.only:
                results["latency"] = event_latency(Path(tmp), 3 if args.smoke else args.latency_samples,
                                                   50 if args.smoke else 500)
    except WorkloadError as exc:
        print(f"WORKLOAD CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    results["load_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
