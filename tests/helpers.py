"""Shared builders for tests: fleets (registry data), the DeepSeek provider, and the CLI as a real process.

Why here and not in each test file: a fleet typed nine times drifts nine ways, and a reader should see at a glance
what a test's fleet has that the usual one does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

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


def run_process(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """The CLI as a real process (for exit codes, 'no traceback' checks and end-to-end runs)."""
    done = subprocess.run([sys.executable, "-m", "boocoder_bridge", *argv], capture_output=True, text=True,
                          env=env, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)
