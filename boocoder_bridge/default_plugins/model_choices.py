"""The built-in choice of side-task and compaction models: what the configured setting or the session says.

A plugin that wants another policy (a cheap title model, say) answers these hooks first and wins.
"""

from __future__ import annotations

from boocoder_bridge import Route, hookimpl


@hookimpl
def choose_task_model(kind: str, session: Route, configured: str | None) -> str:
    """A configured task model wins; otherwise the session's own model does the task (never another host's)."""
    return configured or session.id


@hookimpl
def choose_compaction_model(session: Route, configured: str | None) -> str:
    return configured or session.id
