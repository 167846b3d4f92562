"""A plugin whose hook raises: it must be reported by name and must not take the host down."""

from boocoder_bridge import hookimpl


@hookimpl
def choose_task_model(kind, session, configured):
    raise RuntimeError("boom from the broken plugin")
