"""Precise exceptions. Every message is one line that says what is wrong, where, and how to fix it."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose; the CLI prints it as one line and exits non-zero."""

    exit_code = 2


class RegistryError(BridgeError):
    """The provider registry is invalid: names the file, the JSON path and the fix."""

    def __init__(self, source: str, json_path: str, problem: str, fix: str = "") -> None:
        self.source, self.json_path, self.problem, self.fix = source, json_path, problem, fix
        self.others: list[RegistryError] = []  # further problems in the same file, for `validate`
        super().__init__(f"{source}: {json_path}: {problem}" + (f"; fix: {fix}" if fix else ""))


class ModelIdError(BridgeError, ValueError):
    """A model ID that cannot be parsed or resolved."""


class ProviderUnavailableError(BridgeError):
    """The ID is valid but its provider is disabled or offline, so nothing can be sent to it."""

    exit_code = 3


class StateError(BridgeError):
    """The state dir (cache, favorites database) cannot be read or written; its files are left as they are."""

    exit_code = 4


class PluginError(BridgeError):
    """A plugin failed in a hook that is allowed to fail the operation."""

    exit_code = 5


class Refused(PluginError):
    """Raised by a plugin in ``arena_match`` or ``before_dispatch`` to stop that operation on purpose."""


class OpencodeNotFoundError(BridgeError):
    """No opencode binary was found."""

    exit_code = 6
