"""``boocoder-bridge demo``: a real two-host fleet on this machine, for a newcomer to look at.

Two real llama.cpp servers (xllamacpp) serve one tiny model generated on the spot, under the same model name:
one behind the llama-swap-shaped proxy (provider ``swap-box``, kind ``llama-swap``), one plain llama-server
(provider ``plain-box``, kind ``llama-cpp``). A third host, llama.cpp's own swapping server (provider
``router-box``, kind ``llama-cpp``: ``llama-server --models-dir`` over two tiny models, one loaded at a time), joins
when a llama-server with router mode is at hand (:func:`boocoder_bridge.demo.router.find_binary`); else the demo
says how to build one. A registry for them is written in a temp dir with the state dir
beside it, and ``serve`` runs on top. Everything is on 127.0.0.1, on ports the OS picks; Ctrl-C stops the
servers and removes the temp dir. The demo never touches the user's own state or opencode's TUI favorites.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "tiny-llama"  # the shared model name: one on each host
SWAP, PLAIN = "swap-box", "plain-box"
ROUTER = "router-box"  # llama.cpp's own swapping server, when a llama-server with router mode is at hand
ROUTER_MODELS = ("tiny-alpha", "tiny-beta")  # it holds one at a time: asking for the other swaps
CONTEXTS = {SWAP: 2048, PLAIN: 1024}  # different, so `resolve` shows each host's own live context window
Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoFleet:
    folder: Path
    registry: Path
    state_dir: Path
    proxy_url: str
    swap_upstream_url: str
    plain_url: str
    router_url: str | None = None

    def registry_data(self) -> dict[str, Any]:
        return json.loads(self.registry.read_text(encoding="utf-8"))


def _registry(proxy_url: str, plain_url: str, router_url: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"default_provider": SWAP, "providers": {
        SWAP: {"kind": "llama-swap", "base_url": proxy_url, "label": "Demo llama-swap (proxy + llama.cpp)"},
        PLAIN: {"kind": "llama-cpp", "base_url": plain_url, "label": "Demo llama-server (plain llama.cpp)"},
    }}
    if router_url:
        data["providers"][ROUTER] = {"kind": "llama-cpp", "base_url": router_url,
                                     "label": "Demo llama.cpp router (swaps its models)"}
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


@contextmanager
def demo_fleet(say: Say = lambda _: None, folder: Path | None = None) -> Iterator[DemoFleet]:
    """Start the fleet; on exit stop every server and remove the temp dir (it is the caller's when given)."""
    from .llama_server import LlamaServer
    from .model import write_tiny_llama
    from .proxy import SwapModel, SwapProxy

    owned = folder is None
    root = Path(tempfile.mkdtemp(prefix="boocoder-bridge-demo-")) if folder is None else folder
    try:
        with ExitStack() as stack:
            say(f"writing a tiny llama model (random weights, about 470 KB) in {root}")
            model = write_tiny_llama(root / f"{MODEL}.gguf", name=MODEL)
            servers = {}
            for provider, n_ctx in CONTEXTS.items():
                say(f"starting a llama.cpp server for {provider} (context {n_ctx})")
                server = LlamaServer(model, n_ctx=n_ctx, alias=MODEL, threads=1, log=root / f"{provider}.log")
                servers[provider] = stack.enter_context(server)
            proxy = stack.enter_context(SwapProxy([SwapModel(MODEL, servers[SWAP].url, name="Tiny llama")]))
            router_url = _start_router(root, stack, say)
            registry = root / "fleet.json"
            registry.write_text(json.dumps(_registry(proxy.url, servers[PLAIN].url, router_url), indent=2) + "\n",
                                encoding="utf-8")
            yield DemoFleet(root, registry, root / "state", proxy.url, servers[SWAP].url, servers[PLAIN].url,
                            router_url)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def instructions(fleet: DemoFleet, url: str, opencode: str | None) -> str:
    """What the demo prints once it serves: where to look and what to try."""
    env = (f"export BOOCODER_BRIDGE_REGISTRY={shlex.quote(str(fleet.registry))} "
           f"BOOCODER_BRIDGE_STATE_DIR={shlex.quote(str(fleet.state_dir))}")
    run = (f'boocoder-bridge run {PLAIN}/{MODEL} "say hi"        # through opencode ({opencode}); '
           "the answer is noise: random weights" if opencode else
           "# boocoder-bridge run ... needs opencode (npm install -g opencode-ai), which is not on PATH")
    return "\n".join([
        "",
        f"Demo fleet on 127.0.0.1 (two real llama.cpp servers, one model name: {MODEL})",
        f"  {SWAP:<10} llama-swap proxy  {fleet.proxy_url}  ->  llama.cpp {fleet.swap_upstream_url}",
        f"  {PLAIN:<10} llama-server      {fleet.plain_url}",
        *([f"  {ROUTER:<10} llama.cpp router  {fleet.router_url}  ({' and '.join(ROUTER_MODELS)}, one at a time)"]
          if fleet.router_url else []),
        "",
        f"Model picker:  {url}/",
        f"HTTP API:      {url}/api/models",
        "",
        "Try, in another terminal:",
        f"  {env}",
        "  boocoder-bridge providers",
        "  boocoder-bridge models",
        f"  boocoder-bridge resolve {SWAP}/{MODEL}",
        f"  boocoder-bridge resolve {PLAIN}/{MODEL}       # same name, other host, other context window",
        f"  boocoder-bridge resolve {MODEL}                 # a legacy bare ID goes to the default provider",
        f"  boocoder-bridge favorites add {PLAIN}/{MODEL}",
        f"  {run}",
        *([f"  curl -s {fleet.router_url}/v1/chat/completions -H 'Content-Type: application/json' -d "
           f"""'{{"model": "{name}", "max_tokens": 2, "messages": [{{"role": "user", "content": "hi"}}]}}'"""
           f"    # the picker shows {name} hot" + (", the other cold" if n else "")
           for n, name in enumerate(ROUTER_MODELS)] if fleet.router_url else []),
        "",
        f"Ctrl-C stops the servers and removes {fleet.folder}",
        "",
    ])


def run_demo(port: int = 0, out: Any = None, err: Any = None) -> int:
    """Start the fleet and ``serve`` on it until Ctrl-C (or SIGTERM); always clean up."""
    from ..bridge import Bridge
    from ..dispatch import find_opencode
    from ..errors import OpencodeNotFoundError
    from ..server import serve
    from ..settings import OPENCODE_TUI_ENV, environ

    out, err = out or sys.stdout, err or sys.stderr

    def say(message: str) -> None:
        print(f"demo: {message}", file=err, flush=True)

    def stop_on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so SIGTERM cleans up like Ctrl-C

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    try:
        with demo_fleet(say) as fleet:
            env = {**environ(), OPENCODE_TUI_ENV: "0"}  # the demo's favorites stay out of the user's opencode
            bridge = Bridge.load(fleet.registry, fleet.state_dir, env=env)
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
