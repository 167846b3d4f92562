"""Every hook a plugin can implement. Built-in behaviour lives in :mod:`boocoder_bridge.default_plugins` and
uses these same hooks.

Failure policy: a plugin that raises is reported (``bridge.warnings`` and the log, with the plugin's name)
and skipped; the operation goes on without it. Only two hooks may stop an operation, and only on purpose, by
raising :class:`boocoder_bridge.Refused`: ``arena_match`` (veto a match) and ``before_dispatch`` (refuse a run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .kinds import ProviderKind
    from .opencode.runner import ArenaMatch
    from .registry import Provider
    from .routing import Route

hookspec = pluggy.HookspecMarker("boocoder_bridge")
hookimpl = pluggy.HookimplMarker("boocoder_bridge")
MAY_REFUSE = frozenset({"arena_match", "before_dispatch"})  # the only hooks whose Refused stops the operation


@hookspec
def register_provider_kinds(register: Callable[[ProviderKind], None]) -> None:
    """Called once when the bridge loads. Call ``register(kind)`` for each :class:`ProviderKind` you add.

    The registry's ``kind`` values are checked against what was registered here.
    """


@hookspec
def opencode_provider_entry(provider: Provider, entry: dict[str, Any]) -> dict[str, Any] | None:
    """Called for each provider entry of the emitted opencode config, after the built-in one is made.

    Return a new entry to replace it (plugins run in turn, each seeing the last one's result), or None.
    """


@hookspec(firstresult=True)
def context_window(provider: Provider, model: str) -> int | None:
    """Called when neither the registry nor the host says how large a model's context window is.

    Return a positive int, or None if you do not know either. Never guess: opencode compacts by this number.
    """


@hookspec(firstresult=True)
def choose_task_model(kind: str, session: Route, configured: str | None) -> str | None:
    """Called to pick the model for a side task (``title``, ``summary``, ...) of a session on ``session``.

    Return a model ID (composite or legacy), or None to let the next plugin decide. The built-in rule:
    ``configured`` if given, else the session's own model.
    """


@hookspec(firstresult=True)
def choose_compaction_model(session: Route, configured: str | None) -> str | None:
    """Called to pick the model that compacts a session on ``session``. Same contract as choose_task_model."""


@hookspec
def arena_match(match: ArenaMatch) -> None:
    """Called once a match is set up. Annotate with ``match.notes[key] = value``; veto by raising Refused."""


@hookspec
def before_dispatch(route: Route, argv: list[str], env: dict[str, str]) -> None:
    """Called before opencode is started for ``route``, once its host answered. ``argv`` is opencode's command
    line *without* the prompt (``opencode run -m P/M [caller's options]``, or ``opencode acp``): append opencode
    options to it (``--agent``, ``--print-logs``); the bridge adds ``--`` and the prompt after every plugin ran,
    so no option can become prompt text and no prompt text an option. Set ``env`` to add environment variables;
    refuse by raising Refused. ``env`` holds only what the bridge adds to the host's environment; never put a
    secret's value in it when opencode can read ``{env:NAME}`` instead.
    """
