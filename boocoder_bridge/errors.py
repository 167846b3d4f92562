"""Precise exceptions. Every message is one line that says what is wrong, where, and how to fix it.

Each class carries the CLI's exit code and the HTTP API's status beside it, so the CLI and the server map an
error the same way, in one place::

    Exception
    └── BridgeError ........................ exit 2  HTTP 400  raised on purpose; printed as one line
        ├── RegistryError .................. exit 2  HTTP 422  the registry file: names file, JSON path and fix
        ├── ModelIdError (also ValueError) . exit 2  HTTP 422  a model ID that cannot be parsed or resolved
        ├── ProviderUnavailableError ....... exit 3  HTTP 409  the provider is disabled
        │   └── ProviderOfflineError ....... exit 3  HTTP 503  the provider's host is offline or unusable now
        ├── HostError ...................... exit 3  HTTP 502  a host answered badly (becomes a report)
        ├── StateError ..................... exit 4  HTTP 503  the state dir cannot be read or written
        ├── PluginError .................... exit 5  HTTP 400  a plugin failed where failing stops the operation
        │   └── Refused .................... exit 5  HTTP 400  a plugin stopped arena_match/before_dispatch
        ├── OpencodeNotFoundError .......... exit 6  HTTP 400  no opencode binary
        ├── ServeError ..................... exit 7  HTTP 500  `serve` cannot bind its address (in use, not here)
        ├── HostLostError .................. exit 75 HTTP 502  the host went away while opencode ran; stopped
        └── OpencodeTimeoutError ........... exit 124 HTTP 400 opencode ran past --timeout and was stopped
"""

from __future__ import annotations

from typing import Literal


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose; the CLI prints it as one line and exits non-zero."""

    exit_code = 2
    http_status = 400


class RegistryError(BridgeError):
    """The provider registry is invalid: names the file, the JSON path and the fix."""

    http_status = 422

    def __init__(self, source: str, json_path: str, problem: str, fix: str = "") -> None:
        self.source, self.json_path, self.problem, self.fix = source, json_path, problem, fix
        self.others: list[RegistryError] = []  # further problems in the same file, for `validate`
        super().__init__(f"{source}: {json_path}: {problem}" + (f"; fix: {fix}" if fix else ""))


class ModelIdError(BridgeError, ValueError):
    """A model ID that cannot be parsed or resolved."""

    http_status = 422


class ProviderUnavailableError(BridgeError):
    """The ID is valid but its provider is disabled or offline, so nothing can be sent to it."""

    exit_code = 3
    http_status = 409


class ProviderOfflineError(ProviderUnavailableError):
    """The provider is enabled but its host is offline or answered badly: try again later (HTTP 503)."""

    http_status = 503


class HostError(BridgeError):
    """A host answered badly; ``status`` is ``offline`` (unreachable) or ``error`` (reachable, bad answer).

    Raised by a provider kind's ``list_models``; discovery turns it into that provider's report.
    """

    exit_code = 3
    http_status = 502

    def __init__(self, status: Literal["offline", "error"], reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class StateError(BridgeError):
    """The state dir (cache, favorites database) cannot be read or written; its files are left as they are."""

    exit_code = 4
    http_status = 503


class PluginError(BridgeError):
    """A plugin failed in a hook that is allowed to fail the operation."""

    exit_code = 5


class Refused(PluginError):
    """Raised by a plugin in ``arena_match`` or ``before_dispatch`` to stop that operation on purpose."""


class OpencodeNotFoundError(BridgeError):
    """No opencode binary was found."""

    exit_code = 6


class ServeError(BridgeError):
    """``serve`` cannot listen where it was asked to (the port is in use, the address is not this machine's)."""

    exit_code = 7
    http_status = 500


class OpencodeTimeoutError(BridgeError):
    """opencode did not finish within ``--timeout`` and was stopped (exit 124, like timeout(1))."""

    exit_code = 124


class HostLostError(BridgeError):
    """A provider's host went away (refused, or silent twice in a row) while opencode ran a task on it, so the
    bridge stopped opencode's whole process group instead of letting it retry without end. Exit 75 (sysexits'
    EX_TEMPFAIL: try again once the host is back); 3 stays "refused before opencode started"."""

    exit_code = 75
    http_status = 502
