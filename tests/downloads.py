"""One-line notices for what the tests download on first use, shown even while pytest captures output."""

from __future__ import annotations

import sys
from typing import Any

_config: Any = None  # the running pytest config, set by conftest's pytest_configure


def notice(message: str) -> None:
    """Print ``message`` on the terminal now: through pytest's reporter with capture paused, else on stderr."""
    line = f"boocoder-bridge tests: {message}"
    if _config is not None:
        capture = _config.pluginmanager.getplugin("capturemanager")
        reporter = _config.pluginmanager.getplugin("terminalreporter")
        if capture is not None and reporter is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
            return
    print(line, file=sys.stderr, flush=True)
