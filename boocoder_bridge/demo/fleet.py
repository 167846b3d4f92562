"""``boocoder-bridge demo``: a real two-host fleet on this machine, for a newcomer to look at.

Two real llama.cpp servers (xllamacpp) serve one tiny model generated on the spot, under the same model name:
one behind the llama-swap-shaped proxy (provider ``swap-box``, kind ``llama-swap``), one plain llama-server
(provider ``plain-box``, kind ``llama-cpp``). The hosts are rows of :data:`HOSTS`: a new kind of host is one
more row (and, if it needs one, a front in :func:`_front`). A third host, llama.cpp's own swapping server
(provider ``router-box``, kind ``llama-cpp``: ``llama-server --models-dir`` over two tiny models, one loaded at a
time), joins when a llama-server with router mode is at hand (:func:`boocoder_bridge.demo.router.find_binary`);
else the demo says how to build one.

Everything lives in one temp dir: the model, the registry, the bridge's state dir, and the ``XDG_*`` dirs the
printed commands give opencode. So ``run``, ``arena`` and ``favorites add`` in another terminal write nothing
of the user's: not their state dir, not opencode's config, data, cache or TUI favorites. Everything is on
127.0.0.1, on ports the OS picks; Ctrl-C stops the servers and removes the temp dir.

Why opencode answers fast on a tiny CPU model: opencode's system prompt and tools are about 40 KB of text. The
demo model's ``words`` vocabulary packs it into about 4,000 tokens (12,500 with a byte vocabulary), and the
registry caps each answer at :data:`MAX_OUTPUT` tokens (a random model never stops on its own). While a server
reads a prompt, :class:`Progress` prints how far it got, from llama.cpp's ``GET /slots``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "tiny-llama"  # the shared model name: one on each host
SWAP, PLAIN = "swap-box", "plain-box"
ROUTER = "router-box"  # llama.cpp's own swapping server, when a llama-server with router mode is at hand
ROUTER_MODELS = ("tiny-alpha", "tiny-beta")  # it holds one at a time: asking for the other swaps
MAX_OUTPUT = 48  # tokens per answer (the registry's max_output): noise either way, and each costs time
THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))  # two servers share the machine; one works at a time
Say = Callable[[str], None]


@dataclass(frozen=True)
class HostSpec:
    """One demo host: its provider ID, the registry kind, its context window and a label. Windows differ, so
    ``resolve`` shows each host's own live value; both hold opencode's prompt (about 4,000 tokens)."""

    provider: str
    kind: str
    n_ctx: int
    label: str


HOSTS = (
    HostSpec(SWAP, "llama-swap", 32768, "Demo llama-swap (proxy + llama.cpp)"),
    HostSpec(PLAIN, "llama-cpp", 16384, "Demo llama-server (plain llama.cpp)"),
)
CONTEXTS = {h.provider: h.n_ctx for h in HOSTS}


@dataclass(frozen=True)
class DemoFleet:
    folder: Path
    registry: Path
    state_dir: Path
    urls: dict[str, str]  # provider -> the URL the registry names (a proxy's, for llama-swap)
    upstreams: dict[str, str]  # provider -> its llama.cpp server
    router_url: str | None = None  # the third host, llama.cpp's router, when its binary is at hand

    @property
    def proxy_url(self) -> str:
        return self.urls[SWAP]

    @property
    def swap_upstream_url(self) -> str:
        return self.upstreams[SWAP]

    @property
    def plain_url(self) -> str:
        return self.urls[PLAIN]

    def env(self) -> dict[str, str]:
        """What the printed commands export: the demo's registry and state dir, the TUI opt-out, and opencode's
        XDG dirs and npm cache inside the temp dir (opencode writes sessions, caches and plugin installs there;
        tests/test_demo.py finds any file it would add to the user's HOME)."""
        xdg = self.folder / "opencode"
        return {"BOOCODER_BRIDGE_REGISTRY": str(self.registry), "BOOCODER_BRIDGE_STATE_DIR": str(self.state_dir),
                "BOOCODER_BRIDGE_OPENCODE_TUI": "0",
                **{f"XDG_{part.upper()}_HOME": str(xdg / part) for part in ("config", "data", "state", "cache")},
                "npm_config_cache": str(xdg / "npm")}  # opencode installs its plugin package with npm: ~/.npm

    def registry_data(self) -> dict[str, Any]:
        return json.loads(self.registry.read_text(encoding="utf-8"))


def _registry(hosts: dict[HostSpec, str], router_url: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"default_provider": HOSTS[0].provider, "providers": {
        h.provider: {"kind": h.kind, "base_url": url, "label": h.label,
                     "models": {MODEL: {"max_output": MAX_OUTPUT}}}
        for h, url in hosts.items()}}
    if router_url:
        data["providers"][ROUTER] = {"kind": "llama-cpp", "base_url": router_url,
                                     "label": "Demo llama.cpp router (swaps its models)",
                                     "models": {m: {"max_output": MAX_OUTPUT} for m in ROUTER_MODELS}}
    return data


def _start_router(root: Path, stack: ExitStack, say: Say) -> str | None:
    """The third host, llama.cpp's router over two tiny models (``--models-max 1``), if its binary is at hand."""
    from .model import write_tiny_llama
    from .router import HOW_TO_BUILD, LlamaRouter, find_binary

    binary = find_binary()
    if binary is None:
        say(f"no third host (llama.cpp's own swapping server): {HOW_TO_BUILD}")
        return None
    folder = root / "router-models"
    folder.mkdir()
    for seed, name in enumerate(ROUTER_MODELS, start=1):
        write_tiny_llama(folder / f"{name}.gguf", seed=seed, name=name)
    say(f"starting llama.cpp's router ({binary}) over {', '.join(ROUTER_MODELS)}, one loaded at a time")
    router = LlamaRouter(binary, folder, models_max=1, n_ctx=1024, log=root / f"{ROUTER}.log")
    return stack.enter_context(router).url


def _front(stack: ExitStack, host: HostSpec, upstream: str) -> str:
    """The URL the registry names for ``host``: its llama.cpp server, or a proxy of its kind in front."""
    if host.kind == "llama-swap":
        from .proxy import SwapModel, SwapProxy

        return stack.enter_context(SwapProxy([SwapModel(MODEL, upstream, name="Tiny llama")])).url
    return upstream


@contextmanager
def demo_fleet(say: Say = lambda _: None, folder: Path | None = None) -> Iterator[DemoFleet]:
    """Start the fleet; on exit stop every server and remove the temp dir (it is the caller's when given)."""
    from .llama_server import LlamaServer
    from .model import write_tiny_llama

    owned = folder is None
    root = Path(tempfile.mkdtemp(prefix="boocoder-bridge-demo-")) if folder is None else folder
    try:
        with ExitStack() as stack:
            say(f"writing a tiny llama model (random weights, a word vocabulary, about 5 MB) in {root}")
            model = write_tiny_llama(root / f"{MODEL}.gguf", name=MODEL, vocabulary="words")
            upstreams, urls = {}, {}
            for host in HOSTS:
                say(f"starting a llama.cpp server for {host.provider} (context {host.n_ctx})")
                server = LlamaServer(model, n_ctx=host.n_ctx, alias=MODEL, threads=THREADS,
                                     log=root / f"{host.provider}.log")
                upstreams[host.provider] = stack.enter_context(server).url
                urls[host.provider] = _front(stack, host, upstreams[host.provider])
            router_url = _start_router(root, stack, say)
            registry = root / "fleet.json"
            data = _registry({h: urls[h.provider] for h in HOSTS}, router_url)
            registry.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            yield DemoFleet(root, registry, root / "state", urls, upstreams, router_url)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


class Progress:
    """Prints what each llama.cpp server is doing, from its ``GET /slots``: how much of a prompt it has read
    (opencode's first request is long; the server answers /slots between batches of 2,048 tokens), and how
    long the answer took. A daemon thread, for as long as the ``with`` block."""

    def __init__(self, upstreams: dict[str, str], say: Say, interval_s: float = 0.25) -> None:
        self.upstreams, self.say, self.interval_s = upstreams, say, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import httpx

        busy: dict[str, tuple[float, int]] = {}  # provider -> (started, tokens read shown last)
        with httpx.Client(timeout=5, trust_env=False) as client:
            while not self._stop.wait(self.interval_s):
                for provider, url in self.upstreams.items():
                    try:
                        slot = client.get(url + "/slots").json()[0]
                    except (httpx.HTTPError, ValueError, LookupError, TypeError, AttributeError):
                        continue
                    read = slot.get("n_prompt_tokens_processed") or 0
                    if slot.get("is_processing"):
                        started, shown = busy.setdefault(provider, (time.monotonic(), -1))
                        if read != shown:
                            busy[provider] = (started, read)
                            what = f"{read:,} tokens of the prompt read" if read else "reading a prompt"
                            self.say(f"{provider}: {what} ({time.monotonic() - started:.0f} s)")
                    elif provider in busy:
                        started, _ = busy.pop(provider)
                        self.say(f"{provider}: answered ({time.monotonic() - started:.0f} s)")


def instructions(fleet: DemoFleet, url: str, opencode: str | None) -> str:
    """What the demo prints once it serves: where to look and what to try."""
    env = "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in fleet.env().items())
    run = (f'boocoder-bridge run {PLAIN}/{MODEL} "say hi"   # through opencode ({opencode}): a few seconds; '
           "the answer is noise (random weights)" if opencode else
           "# boocoder-bridge run ... needs opencode (npm install -g opencode-ai), which is not on PATH")
    hosts = [f"  {SWAP:<10} llama-swap proxy  {fleet.urls[SWAP]}  ->  llama.cpp {fleet.upstreams[SWAP]}"]
    hosts += [f"  {h.provider:<10} {h.kind:<17} {fleet.urls[h.provider]}" for h in HOSTS if h.provider != SWAP]
    if fleet.router_url:
        hosts.append(f"  {ROUTER:<10} llama.cpp router  {fleet.router_url}  ({' and '.join(ROUTER_MODELS)}, "
                     "one loaded at a time)")
    return "\n".join([
        "",
        f"Demo fleet on 127.0.0.1 ({len(hosts)} real llama.cpp hosts; {MODEL} on the first {len(HOSTS)})",
        *hosts,
        "",
        f"Model picker:  {url}/",
        f"HTTP API:      {url}/api/models",
        "",
        "Try, in another terminal (the export keeps the bridge and opencode inside the demo's temp dir):",
        f"  {env}",
        "  boocoder-bridge providers",
        "  boocoder-bridge models",
        f"  boocoder-bridge resolve {SWAP}/{MODEL}",
        f"  boocoder-bridge resolve {PLAIN}/{MODEL}       # same name, other host, other context window",
        f"  boocoder-bridge resolve {MODEL}                 # a legacy bare ID goes to the default provider",
        f"  boocoder-bridge favorites add {PLAIN}/{MODEL}",
        f"  {run}",
        *([f"  boocoder-bridge resolve {ROUTER}/{ROUTER_MODELS[0]}   # the router's window, read without loading it",
           f"  curl -s {fleet.router_url}/v1/chat/completions -H 'Content-Type: application/json' -d "
           f"""'{{"model": "{ROUTER_MODELS[1]}", "max_tokens": 2, "messages": """
           """[{"role": "user", "content": "hi"}]}'"""
           f"   # the picker shows {ROUTER_MODELS[1]} hot"] if fleet.router_url else []),
        "",
        "This terminal shows each server's progress through a prompt.",
        f"Ctrl-C stops the servers and removes {fleet.folder}",
        "",
    ])


def run_demo(port: int = 0, out: Any = None, err: Any = None) -> int:
    """Start the fleet and ``serve`` on it until Ctrl-C (or SIGTERM); always clean up."""
    from ..bridge import Bridge
    from ..errors import OpencodeNotFoundError
    from ..opencode.runner import find_opencode
    from ..settings import environ
    from ..web.app import serve

    out, err = out or sys.stdout, err or sys.stderr

    def say(message: str) -> None:
        print(f"demo: {message}", file=err, flush=True)

    def stop_on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so SIGTERM cleans up like Ctrl-C

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    try:
        with ExitStack() as stack:
            fleet = stack.enter_context(demo_fleet(say))
            env = {**environ(), **fleet.env()}  # the demo's favorites stay out of the user's opencode
            bridge = Bridge.load(fleet.registry, fleet.state_dir, env=env)
            stack.enter_context(Progress(fleet.upstreams, say))
            try:
                opencode: str | None = find_opencode(None, env)
            except OpencodeNotFoundError:
                opencode = None

            def ready(url: str) -> None:
                print(instructions(fleet, url, opencode), file=out, flush=True)

            serve(bridge, "127.0.0.1", port, ready=ready)  # returns (or raises) only on a signal
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    say("stopped; the servers ended and the temp dir is removed")
    return 130

