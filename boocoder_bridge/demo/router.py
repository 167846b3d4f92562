"""llama.cpp's own swapping server: ``llama-server`` in router mode over a folder of models, for the tests and
the demo.

Started with ``--models-dir`` (every ``*.gguf`` there is a model named by its file stem) and ``--models-max N``:
it loads a model on its first request, in a child ``llama-server`` of its own, and unloads the least recently
used one to stay within N. No Python package ships a build with router mode (xllamacpp disables it), so the
binary comes from ``$BOOCODER_BRIDGE_LLAMA_SERVER``, or from the tests' download cache, where
``python3 -m tests.llama_router`` builds it from the llama.cpp source in PyPI's ``llama-cpp-python`` sdist.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from ..settings import LLAMA_SERVER_ENV, TEST_CACHE_ENV

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # its sdist's vendor/llama.cpp has router mode (tools/server/server-models.cpp)
HOW_TO_BUILD = (f"set {LLAMA_SERVER_ENV} to a llama-server with router mode (llama.cpp since December 2025), or "
                "build one from a checkout of boocoder-bridge: python3 -m tests.llama_router (about 10-15 minutes)")


def test_cache(env: Mapping[str, str] | None = None) -> Path:
    """The tests' download cache: ``$BOOCODER_BRIDGE_TEST_CACHE``, else ``~/.cache/boocoder-bridge-tests``."""
    env = os.environ if env is None else env
    return Path(env.get(TEST_CACHE_ENV) or Path.home() / ".cache" / "boocoder-bridge-tests")


def built_binary(env: Mapping[str, str] | None = None) -> Path:
    """Where ``tests/llama_router.py`` puts the binary it builds (it may not be there yet)."""
    return test_cache(env) / f"llama-server-llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}" / "llama-server"


def find_binary(env: Mapping[str, str] | None = None) -> Path | None:
    """``$BOOCODER_BRIDGE_LLAMA_SERVER`` if set, else the tests' build if it exists; None otherwise."""
    env = os.environ if env is None else env
    if env.get(LLAMA_SERVER_ENV):
        return Path(env[LLAMA_SERVER_ENV])
    built = built_binary(env)
    return built if built.is_file() else None


class RouterError(RuntimeError):
    """The router did not start (its log says why)."""


class LlamaRouter:
    """``llama-server --models-dir DIR --models-max N -c CTX`` on a free loopback port, in its own process group
    (stopping it ends its model children too)."""

    def __init__(self, binary: Path, models_dir: Path, *, models_max: int = 1, n_ctx: int = 1024, threads: int = 1,
                 log: Path | None = None) -> None:
        self.binary, self.models_dir, self.models_max = Path(binary), Path(models_dir), models_max
        self.n_ctx, self.threads, self.log = n_ctx, threads, log
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 60) -> LlamaRouter:
        port = _free_port()
        argv = [str(self.binary), "--host", "127.0.0.1", "--port", str(port), "--models-dir", str(self.models_dir),
                "--models-max", str(self.models_max), "-c", str(self.n_ctx), "-t", str(self.threads),
                "-np", "1", "--no-webui"]
        log = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
        try:
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True)
        finally:
            if self.log:
                log.close()  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _answers(port, "/health"):
                return self
            time.sleep(0.05)
        self.stop()
        raise RouterError(f"llama-server (router) did not start{f' (log: {self.log})' if self.log else ''}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the router and the model servers it started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> LlamaRouter:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int, path: str) -> bool:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
