"""The live picker's two figures (issue 13), measured on real processes on 127.0.0.1:

1. **Return to favorites**: a host goes down and comes back at the same address; the time from the moment it
   listens again until its favorites are back, seen (a) by a ``GET /api/events`` client and (b) on the page in
   headless Chromium. For a llama-swap host with ``/api/events`` and for one without (polled).
2. **100 event clients**: ``serve``'s resident memory and CPU time with 100 connected ``/api/events`` clients,
   idle and while versions are pushed, and how long until every client has a new version.

Not part of the test suite; nothing here is asserted. Run: ``python3 benchmarks/live_picker.py [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakehost import llama_swap_body  # noqa: E402
from tests.live_fleet import EventReader, Host, favorite_ids, group, serve_fleet  # noqa: E402

FAVORITES = ["sam/chat", "sam/coder"]
SHOWN = '[data-section="favorites"] [data-model-id="sam/coder"]'  # the last favorite: drawn with the first
DOWN = ((1.0, 5), (20.0, 3))  # (seconds down, rounds): a quick restart, and one long enough for full backoff


def _proc(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident KiB of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss


def return_times(events: bool, browser: Any | None, down_s: float, rounds: int) -> dict[str, list[float]]:
    """Seconds from the host listening again (after ``down_s`` down) to its favorites back, per observer."""
    out: dict[str, list[float]] = {"events": [], "page": []}
    with tempfile.TemporaryDirectory() as folder:
        sam = Host(name="sam", models_body=llama_swap_body("chat", "coder"), events=events)
        providers = {"sam": {"kind": "llama-swap", "base_url": sam.url}}  # default refresh_s
        with serve_fleet(Path(folder), providers, {"sam": sam}) as fleet:
            for model in FAVORITES:
                httpx.put(f"{fleet.url}/api/favorites/{model}")
            page = None
            if browser is not None:
                page = browser.new_page()
                page.goto(fleet.url + "/")
                page.locator(SHOWN).wait_for()
            reader = EventReader(fleet.url)
            reader.until(lambda c: favorite_ids(c) == FAVORITES, timeout=60)
            for _ in range(rounds):
                sam.down()
                reader.until(lambda c: group(c, "sam")["status"] == "offline", timeout=60)
                if page is not None:
                    page.locator('[data-section="sam"] [data-status="offline"]').wait_for(timeout=60_000)
                time.sleep(down_s)  # down for a while, as a restarting host is
                sam.up()
                started = time.monotonic()
                reader.until(lambda c: favorite_ids(c) == FAVORITES, timeout=60)
                out["events"].append(time.monotonic() - started)
                if page is not None:
                    page.locator(SHOWN).wait_for(timeout=60_000)  # polled by playwright, not page script
                    out["page"].append(time.monotonic() - started)
            reader.close()
            if page is not None:
                page.close()
    return out


async def _clients(url: str, count: int) -> tuple[list[asyncio.StreamWriter], list[asyncio.Queue[float]]]:
    host, port = url.removeprefix("http://").split(":")
    writers, queues = [], []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        queue: asyncio.Queue[float] = asyncio.Queue()

        async def pump(reader: asyncio.StreamReader = reader, queue: asyncio.Queue[float] = queue) -> None:
            while line := await reader.readline():
                if line.startswith(b"event: catalog"):
                    queue.put_nowait(time.monotonic())

        asyncio.get_running_loop().create_task(pump())
        writers.append(writer)
        queues.append(queue)
    return writers, queues


async def _fan_out(url: str, pid: int, count: int, pushes: int, idle_s: float) -> dict[str, float]:
    cpu0, rss0 = _proc(pid)
    writers, queues = await _clients(url, count)
    for queue in queues:  # everyone has the first snapshot
        await asyncio.wait_for(queue.get(), 60)
    await asyncio.sleep(1)
    cpu1, rss1 = _proc(pid)
    await asyncio.sleep(idle_s)
    cpu2, _ = _proc(pid)
    delays = []
    async with httpx.AsyncClient(base_url=url) as http:
        for i in range(pushes):
            started = time.monotonic()
            await http.request("PUT" if i % 2 == 0 else "DELETE", "/api/favorites/sam/chat")
            arrivals = [await asyncio.wait_for(queue.get(), 60) for queue in queues]
            delays.append(max(arrivals) - started)
    cpu3, rss3 = _proc(pid)
    for writer in writers:
        writer.close()
    return {"clients": count, "rss_before_mib": rss0 / 1024, "rss_connected_mib": rss1 / 1024,
            "rss_per_client_kib": (rss1 - rss0) / count, "rss_after_pushes_mib": rss3 / 1024,
            "cpu_connect_s": cpu1 - cpu0, "idle_s": idle_s, "cpu_idle_s": cpu2 - cpu1,
            "pushes": pushes, "cpu_per_push_ms": (cpu3 - cpu2) / pushes * 1000,
            "all_clients_have_it_median_ms": statistics.median(delays) * 1000,
            "all_clients_have_it_max_ms": max(delays) * 1000}


def fan_out(count: int = 100, pushes: int = 20, idle_s: float = 20.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        sam = Host(name="sam", models_body=llama_swap_body(*(f"model-{i}" for i in range(20)), "chat"))
        with serve_fleet(Path(folder), {"sam": {"kind": "llama-swap", "base_url": sam.url}}, {"sam": sam}) as fleet:
            return asyncio.run(_fan_out(fleet.url, fleet.process.pid, count, pushes, idle_s))


def summary(values: list[float]) -> str:
    return f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    # Never the user's own state: no opencode TUI list to mirror, and the serve processes inherit this.
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="live-picker-xdg-")
    os.environ["BOOCODER_BRIDGE_OPENCODE_TUI"] = "0"
    results: dict[str, Any] = {}
    browser = driver = None
    if not args.no_browser and shutil.which("chromium"):
        from playwright.sync_api import sync_playwright

        from tests.test_page import FLAGS

        driver = sync_playwright().start()
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS, headless=True)
    try:
        for events in (True, False):
            for down_s, rounds in DOWN:
                key = f"return_{'events' if events else 'polled'}_down_{down_s:g}s"
                results[key] = return_times(events, browser, down_s, rounds)
    finally:
        if browser is not None:
            browser.close()
            driver.stop()
    results["fan_out"] = fan_out()
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for key in (k for k in results if k.startswith("return_")):
        kind = "llama-swap with /api/events" if "_events_" in key else "host without /api/events (polled)"
        down = key.rsplit("_", 1)[1]
        for observer, values in results[key].items():
            if values:
                print(f"host back after {down} down -> favorites shown, {kind}, {observer}: {summary(values)} "
                      f"({len(values)} rounds)")
    for key, value in results["fan_out"].items():
        print(f"100 event clients: {key} = {value:.2f}" if isinstance(value, float) else f"{key} = {value}")


if __name__ == "__main__":
    main()
