"""The real opencode CLI, installed (pinned) from npm into a cache folder the first time a test needs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.downloads import notice

OPENCODE_VERSION = "1.18.33"
OPENCODE_SIZE = "about 354 MB"  # the installed npm package (its prebuilt binary), measured 2026-11-25
CACHE_ENV = "BOOCODER_BRIDGE_TEST_CACHE"


def download_cache() -> Path:
    """Where downloads for the tests are kept: $BOOCODER_BRIDGE_TEST_CACHE, else ~/.cache/boocoder-bridge-tests."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "boocoder-bridge-tests")


def opencode_binary() -> Path:
    cache = download_cache()
    prefix = cache / f"opencode-ai-{OPENCODE_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "opencode"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install opencode-ai for the end-to-end tests (install Node.js 20+)")
    prefix.mkdir(parents=True, exist_ok=True)
    notice(f"installing opencode-ai@{OPENCODE_VERSION} with npm ({OPENCODE_SIZE}) into {prefix}, once")
    started = time.monotonic()
    subprocess.run([npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
                    "--loglevel=error", f"opencode-ai@{OPENCODE_VERSION}"], check=True, timeout=600)
    notice(f"opencode-ai@{OPENCODE_VERSION} installed in {time.monotonic() - started:.0f} s")
    return binary


def opencode_env(home: Path, config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: opencode neither reads nor writes the user's own config and data."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "OPENCODE_CONFIG": str(config),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".local" / "state"),
           "OPENCODE_DISABLE_AUTOUPDATE": "1"}
    env.update(extra or {})
    return env
