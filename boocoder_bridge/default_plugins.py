"""Built-in behaviour, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from .hookspecs import hookimpl
from .kinds import LLAMA_SWAP, OPENAI_COMPATIBLE, ProviderKind
from .routing import Route


@hookimpl
def register_provider_kinds(register: Callable[[ProviderKind], None]) -> None:
    register(LLAMA_SWAP)
    register(OPENAI_COMPATIBLE)


@hookimpl
def choose_task_model(kind: str, session: Route, configured: str | None) -> str:
    """A configured task model wins; otherwise the session's own model does the task (never another host's)."""
    return configured or session.id


@hookimpl
def choose_compaction_model(session: Route, configured: str | None) -> str:
    return configured or session.id
