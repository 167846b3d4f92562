from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from boocoder_bridge import cli
from tests.fakehost import FakeHost
from tests.helpers import Result, run_process  # noqa: F401 (run_process: imported from here by older tests)

ISOLATED_ENV = ("BOOCODER_BRIDGE_REGISTRY", "LLAMA_SWAP_URL", "DEEPSEEK_API_KEY", "BOOCODER_BRIDGE_CACHE_TTL",
                "BOOCODER_BRIDGE_TOKEN", "BOOCODER_BRIDGE_OPENCODE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


REAL_N_CTX = 512  # the real llama.cpp server's context (llama.cpp serves at least 256)
REAL_MODEL = "tiny-llama"  # its alias: the model id in /v1/models and what the proxy lists
REAL_N_CTX_OPENCODE = 16384  # enough for opencode's own prompt (about 12.6k tokens of the byte vocabulary)
REAL_SERVER_FIXTURES = {"llama_server", "swap_proxy", "llama_server_16k", "llama_router"}
ROUTER_MODELS = ("alpha", "beta")  # the router's models (file stems in its --models-dir)
ROUTER_N_CTX = 1024  # the router's -c, handed to each model it starts


def pytest_configure(config: pytest.Config) -> None:
    from tests import downloads

    downloads._config = config  # download notices reach the terminal even while output is captured


@pytest.fixture(scope="session", autouse=True)
def no_user_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Before any fixture (module-scoped servers too): opencode's TUI state is never the user's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the real llama.cpp server is marked ``realserver`` (select with ``-m realserver``)."""
    for item in items:
        if REAL_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realserver)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight llama GGUF of about 470 KB (boocoder_bridge.demo.model), written once per session."""
    from boocoder_bridge.demo.model import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("model") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def llama_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real llama.cpp server (xllamacpp) for the whole session: model alias ``REAL_MODEL``, one slot of
    ``REAL_N_CTX`` tokens, on a loopback port. Its log is in the session's temp dir. Do not restart it in a
    test (others share it); start a ``LlamaServer`` of your own for that."""
    from boocoder_bridge.demo.llama_server import LlamaServer

    server = LlamaServer(tiny_model, n_ctx=REAL_N_CTX, alias=REAL_MODEL,
                         log=tmp_path_factory.mktemp("llama-server") / "llama-server.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server_16k(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Like ``llama_server`` with ``REAL_N_CTX_OPENCODE`` tokens: opencode's requests fit (started on first use)."""
    from boocoder_bridge.demo.llama_server import LlamaServer

    server = LlamaServer(tiny_model, n_ctx=REAL_N_CTX_OPENCODE, alias=REAL_MODEL,
                         log=tmp_path_factory.mktemp("llama-server-16k") / "llama-server.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def router_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --models-dir with ``ROUTER_MODELS``, each a tiny generated llama (different seeds)."""
    from boocoder_bridge.demo.model import write_tiny_llama

    folder = tmp_path_factory.mktemp("router-models")
    for seed, name in enumerate(ROUTER_MODELS):
        write_tiny_llama(folder / f"{name}.gguf", seed=seed, name=name)
    return folder


@pytest.fixture
def llama_router(router_models: Path, tmp_path: Path) -> Iterator[Any]:
    """A fresh real llama.cpp router (``llama-server --models-dir``, ``--models-max 1``, ``-c ROUTER_N_CTX``):
    nothing loaded; a chat request loads its model and unloads the other. Built on first use (tests/llama_router.py,
    about 10-15 minutes once)."""
    from boocoder_bridge.demo.router import LlamaRouter
    from tests.llama_router import llama_server_binary

    with LlamaRouter(llama_server_binary(), router_models, models_max=1, n_ctx=ROUTER_N_CTX,
                     log=tmp_path / "llama-router.log") as router:
        yield router


@pytest.fixture
def swap_proxy(llama_server: Any) -> Iterator[Any]:
    """A fresh llama-swap-shaped proxy (v250) in front of the session's llama.cpp server, listing
    ``REAL_MODEL`` as loaded (state ``ready``) with no configured context. Change it freely: ``set_state``,
    ``set_models`` (each pushes a ``modelStatus`` event to ``/api/events``); ``requests`` and ``swaps`` record
    what it was asked."""
    from boocoder_bridge.demo.proxy import SwapModel, SwapProxy

    with SwapProxy([SwapModel(REAL_MODEL, llama_server.url)]) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state dir and none of the user's registry or keys."""
    state = tmp_path / "state"
    monkeypatch.setenv("BOOCODER_BRIDGE_STATE_DIR", str(state))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))  # opencode's TUI model.json, never the user's
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    return state


@pytest.fixture
def hosts() -> Iterator[Callable[..., FakeHost]]:
    started: list[FakeHost] = []

    def start(**kwargs: Any) -> FakeHost:
        host = FakeHost(**kwargs).start()
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def write_registry(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(data: dict[str, Any], name: str = "fleet.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data, indent=2))
        return path

    return write


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """The CLI in-process, as ``main(argv)`` with its exit code and output."""

    def run(*argv: str) -> Result:
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
