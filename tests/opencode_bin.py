"""The real opencode CLI, installed (pinned) from npm into a cache folder the first time a test needs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

OPENCODE_VERSION = "1.18.33"
CACHE_ENV = "BOOCODER_BRIDGE_TEST_CACHE"


def opencode_binary() -> Path:
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "boocoder-bridge-tests")
    prefix = cache / f"opencode-ai-{OPENCODE_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "opencode"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install opencode-ai for the end-to-end tests (install Node.js 20+)")
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
                    "--loglevel=error", f"opencode-ai@{OPENCODE_VERSION}"], check=True, timeout=600)
    return binary


def opencode_env(home: Path, config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: opencode neither reads nor writes the user's own config and data."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "OPENCODE_CONFIG": str(config),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".local" / "state"),
           "OPENCODE_DISABLE_AUTOUPDATE": "1"}
    env.update(extra or {})
    return env
