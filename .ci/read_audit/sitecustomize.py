"""CI's file-read audit: every Python process of the test run logs each file it opens outside the allowed roots.

`.ci/run` puts this folder on PYTHONPATH, so the audit hook is installed in pytest AND in every Python process
the tests start (CLI runs, servers, nested venvs) that inherits the environment. It uses CPython's audit events
(PEP 578): ``open`` (builtins.open, io.open_code for imports, os.open) and ``os.listdir``/``os.scandir``. The
event fires before the open is tried, so even a read of a path that does not exist (a facts folder beside the
checkout, absent in a fresh clone) is caught. Programs that are not Python (opencode, llama.cpp's C code,
Chromium) are not covered.

Environment: BOOCODER_BRIDGE_READ_AUDIT_LOG (the log file), BOOCODER_BRIDGE_READ_AUDIT_ALLOW (os.pathsep-separated
allowed roots). Without both, nothing is installed.
"""

from __future__ import annotations

import os
import sys
import threading


def _install() -> None:
    log = os.environ.get("BOOCODER_BRIDGE_READ_AUDIT_LOG")
    allow = os.environ.get("BOOCODER_BRIDGE_READ_AUDIT_ALLOW")
    if not log or not allow:
        return
    roots = tuple(os.path.join(os.path.realpath(r), "") for r in allow.split(os.pathsep) if r)
    exact = {os.path.realpath(log)} | {r.rstrip(os.sep) for r in roots}
    seen: set[str] = set()
    busy = threading.local()  # the hook's own open of the log must not recurse

    def allowed(path: str) -> bool:
        return path in exact or path.startswith(roots)

    def hook(event: str, args: tuple) -> None:
        if getattr(busy, "on", False) or event not in ("open", "os.listdir", "os.scandir"):
            return
        target = args[0] if args else None
        if isinstance(target, bytes):
            target = os.fsdecode(target)
        if not isinstance(target, str) or not target:  # file descriptors, scandir(None) of the cwd
            return
        busy.on = True
        try:
            path = os.path.abspath(target)
            if allowed(path) or allowed(os.path.realpath(path)) or path in seen:
                return
            seen.add(path)
            test = os.environ.get("PYTEST_CURRENT_TEST", "")  # pytest sets it; subprocesses inherit it
            line = f"{os.getpid()} {event} {path} ({test or ' '.join(sys.argv)[:200]})\n"
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8", "backslashreplace"))
            finally:
                os.close(fd)
        finally:
            busy.on = False

    sys.addaudithook(hook)


_install()
