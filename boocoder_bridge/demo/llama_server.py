"""A real llama.cpp HTTP server (xllamacpp's prebuilt build) on a loopback port the OS picks.

It runs in a child process: xllamacpp's server lives as long as its Python object and logs from C to the
process's stderr, so a child is the clean way to stop it, restart it with another context size, and keep its
log out of the caller's output. The child prints one JSON line ``{"url": ...}`` once the model is loaded and
the port is listening, and exits when its stdin closes (so it never outlives its parent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType


class LlamaServerError(RuntimeError):
    """The llama.cpp server did not start (its log says why)."""


class LlamaServer:
    """``llama-server`` serving one GGUF file as ``alias`` with ``n_ctx`` tokens of context (one slot)."""

    def __init__(self, model: Path, *, n_ctx: int = 512, alias: str = "tiny-llama", threads: int = 1,
                 log: Path | None = None) -> None:
        self.model, self.n_ctx, self.alias, self.threads, self.log = Path(model), n_ctx, alias, threads, log
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None
        self.started_in_s: float | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise LlamaServerError("the llama.cpp server is not running")
        return self._url

    def start(self, timeout_s: float = 60) -> LlamaServer:
        argv = [sys.executable, "-m", "boocoder_bridge.demo.llama_server", "--model", str(self.model),
                "--ctx", str(self.n_ctx), "--alias", self.alias, "--threads", str(self.threads)]
        started = time.monotonic()
        log = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
        try:
            self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                             text=True)
        finally:
            if self.log:
                log.close()  # type: ignore[union-attr]
        line = self._read_line(time.monotonic() + timeout_s)
        try:
            self._url = json.loads(line)["url"]
        except (ValueError, KeyError, TypeError):
            self.stop()
            where = f" (log: {self.log})" if self.log else ""
            raise LlamaServerError(f"llama.cpp server did not start: {line.strip() or 'no answer'}{where}") from None
        self.started_in_s = time.monotonic() - started
        return self

    def _read_line(self, deadline: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._process.stdout], [], [], min(left, 0.5))
            if ready:
                return self._process.stdout.readline()
            if self._process.poll() is not None:
                return ""
        return ""

    def stop(self) -> None:
        process, self._process, self._url = self._process, None, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()  # the child's signal to stop
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        finally:
            if process.stdout:
                process.stdout.close()

    def restart(self, *, n_ctx: int | None = None) -> LlamaServer:
        """Stop, then start again (optionally with another context size). The port changes."""
        self.stop()
        if n_ctx is not None:
            self.n_ctx = n_ctx
        return self.start()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _serve(model: str, n_ctx: int, alias: str, threads: int) -> int:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.n_ctx = n_ctx
    params.n_parallel = 1  # one slot: the whole n_ctx is that slot's context, as /props reports it
    params.model_alias = [alias]  # a set of names in this xllamacpp; a plain str would be split into letters
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port
    params.warmup = False
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)
    print(json.dumps({"url": server.listening_address.rstrip("/")}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until the parent closes stdin or dies
    del server
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boocoder_bridge.demo.llama_server", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--alias", default="tiny-llama")
    parser.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    args = parser.parse_args(argv)
    return _serve(args.model, args.ctx, args.alias, args.threads)


if __name__ == "__main__":
    raise SystemExit(main())
