"""Which model is hot (issue 24): the time from a host's load or swap to what a client sees, on real processes.

A real llama.cpp router (``llama-server --models-dir`` over two tiny models, ``--models-max 1``; built by
``python3 -m tests.llama_router``) loads one model at a time; each round a chat asks for the other, so the router
unloads one and loads the other (a swap; the first round is a plain load). Measured from the moment the router
itself says the model is ``loaded`` (its own ``/models/sse``, read directly by this script) until:

- ``events``: a ``GET /api/events`` client of ``serve`` has a catalog with that model ``loaded`` and the other
  ``unloaded``;
- ``page``: the picker in headless Chromium shows the model "hot" and the other "cold" (a MutationObserver in the
  page stamps the time, so playwright's own polling is not in the figure).

Two hosts, in one run, each with ``serve``'s default ``refresh_s`` (15 s): the router itself (**push**: serve
follows its ``/models/sse``), and the same router behind a forwarder that answers 404 at ``/models/sse``, like a
host without a push channel (**polled**: serve only sees the change at its next discovery round). Each round starts
at a random moment within a polling period. ``swap`` (chat sent -> the router says loaded) is reported too, for
scale. Nothing here is asserted.

Run: ``python3 benchmarks/model_state.py [--rounds-push 12] [--rounds-polled 8] [--json]`` (about 4 minutes).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boocoder_bridge.demo.loopback import LoopbackServer  # noqa: E402
from boocoder_bridge.demo.model import write_tiny_llama  # noqa: E402
from boocoder_bridge.demo.router import LlamaRouter  # noqa: E402
from tests.live_fleet import serve_fleet  # noqa: E402
from tests.llama_router import llama_server_binary  # noqa: E402

MODELS = ("alpha", "beta")
REFRESH_S = 15.0  # serve's default refresh_s, which both hosts keep
PAGE_WATCH = """([provider, models]) => {
  window.seen = [];
  const check = () => {
    const state = (m) => {
      const node = document.querySelector(`[data-model-id="${provider}/${m}"] .state`);
      return node ? node.textContent : null;
    };
    const hot = models.filter((m) => state(m) === "hot");
    const key = hot.join(",") + "|" + models.filter((m) => state(m) === "cold").join(",");
    if (!window.seen.length || window.seen[window.seen.length - 1][1] !== key) window.seen.push([Date.now(), key]);
  };
  new MutationObserver(check).observe(document.getElementById("picker"), {subtree: true, childList: true,
                                                                          characterData: true});
  check();
}"""


class NoPush(LoopbackServer):
    """Forwards GETs to the router, except ``/models/sse`` (404): a host without a push channel."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                status, body = 404, b'{"error": "not found"}'
                if not self.path.startswith("/models/sse"):
                    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    try:
                        connection.request("GET", self.path)
                        answer = connection.getresponse()
                        status, body = answer.status, answer.read()
                    finally:
                        connection.close()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


def follow(url: str, path: str, parse: Any, log: list[tuple[float, Any]], stop: threading.Event) -> None:
    """Append ``(time.time(), parse(data))`` for each SSE data line of ``url + path`` until ``stop``."""
    with httpx.Client(timeout=httpx.Timeout(10, read=None)) as client, client.stream("GET", url + path) as response:
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("data: "):
                item = parse(line[6:])
                if item is not None:
                    log.append((time.time(), item))


def router_loaded(data: str) -> str | None:
    """The model a ``/models/sse`` message says is now loaded."""
    message = json.loads(data)
    body = message.get("data") if isinstance(message.get("data"), dict) else {}
    return message.get("model") if body.get("status") == "loaded" else None


def catalog_states(data: str) -> dict[str, Any]:
    catalog = json.loads(data)["catalog"]
    group = next(g for g in catalog["providers"] if g["id"] == "box")
    return {m["model"]: m["state"] for m in group["models"]}


def first_after(log: list[tuple[float, Any]], since: float, wanted: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stamp, item in list(log):
            if stamp >= since and item == wanted:
                return stamp
        time.sleep(0.005)
    raise TimeoutError(f"not seen within {timeout} s: {wanted}")


def measure(push: bool, rounds: int, browser: Any, models_dir: Path) -> dict[str, list[float]]:
    """Per round: ``swap`` (the chat sent -> the router says loaded), then that -> ``events`` and -> ``page``."""
    out: dict[str, list[float]] = {"swap": [], "events": [], "page": []}
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as folder, LlamaRouter(llama_server_binary(), models_dir, models_max=1,
                                                               n_ctx=1024) as router:
        forwarder = None if push else NoPush(router.url).start()
        host = router.url if push else forwarder.url  # type: ignore[union-attr]
        providers = {"box": {"kind": "llama-cpp", "base_url": host, "label": "Router"}}  # default refresh_s
        host_log: list[tuple[float, Any]] = []
        seen_log: list[tuple[float, Any]] = []
        with serve_fleet(Path(folder), providers, {}) as fleet:
            threads = [threading.Thread(target=follow, args=(router.url, "/models/sse", router_loaded, host_log,
                                                             stop), daemon=True),
                       threading.Thread(target=follow, args=(fleet.url, "/api/events", catalog_states, seen_log,
                                                             stop), daemon=True)]
            for thread in threads:
                thread.start()
            page = browser.new_page()
            page.goto(fleet.url + "/")
            page.locator('[data-model-id="box/beta"] .state').wait_for(timeout=60_000)
            page.evaluate(PAGE_WATCH, ["box", list(MODELS)])
            for index in range(rounds):
                model, other = MODELS[index % 2], MODELS[(index + 1) % 2]
                # A random start within a polling period: the polled figure is then what a user meets, not the
                # phase this loop would otherwise lock into (each round starting just after a discovery).
                time.sleep(random.uniform(0, REFRESH_S))
                since = time.time()
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
                httpx.post(router.url + "/v1/chat/completions", json=body, timeout=120).raise_for_status()
                loaded_at = first_after(host_log, since, model, 30)
                out["swap"].append(loaded_at - since)
                seen_at = first_after(seen_log, since, {model: "loaded", other: "unloaded"}, 60)
                out["events"].append(seen_at - loaded_at)
                key = f"{model}|{other}"
                page.wait_for_function("key => window.seen.some(([, k]) => k === key)", arg=key, timeout=60_000)
                shown_ms = page.evaluate("([key, since]) => window.seen.find(([t, k]) => k === key && t >= since)[0]",
                                         [key, since * 1000])
                out["page"].append(shown_ms / 1000 - loaded_at)
            stop.set()
            page.close()
        if forwarder is not None:
            forwarder.stop()
    return out


def summary(values: list[float]) -> str:
    return (f"min {min(values) * 1000:.0f} ms, median {statistics.median(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms ({len(values)} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-push", type=int, default=12)
    parser.add_argument("--rounds-polled", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="model-state-xdg-")  # never the user's own state
    os.environ["BOOCODER_BRIDGE_OPENCODE_TUI"] = "0"
    from playwright.sync_api import sync_playwright

    from tests.test_page import FLAGS

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as models, sync_playwright() as driver:
        for seed, name in enumerate(MODELS):
            write_tiny_llama(Path(models) / f"{name}.gguf", seed=seed, name=name)
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS, headless=True)
        try:
            results["push"] = measure(True, args.rounds_push, browser, Path(models))
            results["polled"] = measure(False, args.rounds_polled, browser, Path(models))
        finally:
            browser.close()
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for host, label in (("push", "router with /models/sse (push)"), ("polled", "same router, no push (polled)")):
        for observer, values in results[host].items():
            what = "chat -> router says loaded" if observer == "swap" else f"loaded -> {observer}"
            print(f"{what:<28} {label}: {summary(values)}")


if __name__ == "__main__":
    main()
