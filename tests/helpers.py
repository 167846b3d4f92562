"""Shared builders for tests: fleets (registry data), the DeepSeek provider, the CLI and ``serve`` as real
processes, and opencode's config schema check. Test modules import from here, never from each other.

Why here and not in each test file: a fleet typed nine times drifts nine ways, and a reader should see at a glance
what a test's fleet has that the usual one does not.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from boocoder_bridge.registry import DEEPSEEK_PROVIDER

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens, so a connection is refused at once


def registry_data(providers: dict[str, dict[str, Any]], default: str | None = None) -> dict[str, Any]:
    """Registry data; the default provider is the first one unless named."""
    return {"default_provider": default or next(iter(providers)), "providers": providers}


def llama_swap(url: str, **settings: Any) -> dict[str, Any]:
    return {"kind": "llama-swap", "base_url": url, **settings}


def down(timeout_s: float = 0.5) -> dict[str, Any]:
    """A llama-swap provider whose host is down."""
    return llama_swap(NOWHERE, timeout_s=timeout_s)


def deepseek(**changes: Any) -> dict[str, Any]:
    """The DeepSeek provider the legacy environment implies (static, enabled by ``DEEPSEEK_API_KEY``), pointed
    at 127.0.0.1 so no test can reach the real service. A change of None drops that key."""
    data = {**DEEPSEEK_PROVIDER, "base_url": "https://127.0.0.1:9", **changes}
    return {key: value for key, value in data.items() if value is not None}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Fleet:
    """A registry file and the fake llama-swap hosts behind it (by provider id)."""

    registry: Path
    hosts: dict[str, Any]

    def __iter__(self) -> Any:  # ``path, sam, emb = fleet``: the registry, then each host in order
        return iter([self.registry, *self.hosts.values()])


def build_fleet(start_host: Any, write_registry: Any, hosts: dict[str, dict[str, Any]],
                others: dict[str, dict[str, Any]] | None = None, default: str | None = None) -> Fleet:
    """The one fleet builder: a fake llama-swap per entry of ``hosts`` (provider id -> the FakeHost's arguments,
    plus ``provider``: that provider's registry settings), then ``others`` (providers without a fake host, such
    as :func:`deepseek` or :func:`down`). ``start_host`` and ``write_registry`` are the conftest fixtures."""
    started, providers = {}, {}
    for pid, spec in hosts.items():
        settings = dict(spec.get("provider", {}))
        host = start_host(**{"name": pid, **{k: v for k, v in spec.items() if k != "provider"}})
        started[pid] = host
        providers[pid] = llama_swap(host.url, **settings)
    providers.update(others or {})
    return Fleet(write_registry(registry_data(providers, default)), started)


def run_process(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """The CLI as a real process (for exit codes, 'no traceback' checks and end-to-end runs)."""
    done = subprocess.run([sys.executable, "-m", "boocoder_bridge", *argv], capture_output=True, text=True,
                          env=env, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def start_server(registry: Path, state: Path, *extra: str, env: dict[str, str] | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """A ``serve`` process and its URL, once it answers. ``--port 0``: the OS picks the port when serve binds
    it (a port looked up free beforehand could be taken by anyone before serve binds it), and serve prints it."""
    process = subprocess.Popen([sys.executable, "-m", "boocoder_bridge", "--registry", str(registry),
                                "--state-dir", str(state), "serve", "--port", "0", *extra],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    printed, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if printed else ""
    if not line.startswith("serving http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"server did not start: {line!r} {process.stderr.read()}")
    url = line.split()[1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read())
        try:
            httpx.get(url + "/healthz", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start")


def opencode_schema_errors(config: dict) -> list[str]:
    """What opencode's own config schema (fixtures/opencode, see SOURCE.md) says is wrong with ``config``."""
    from jsonschema import Draft202012Validator

    from tests.fakehost import OPENCODE_SCHEMA

    schema = json.loads(OPENCODE_SCHEMA.read_text())
    return [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(config)]
