"""The plugin manager: hookspecs, the built-in plugins, then third-party ones from the ``boocoder_bridge``
entry-point group. Calls go through :class:`Hooks`, which isolates a failing plugin and names it.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import pluggy

from . import hookspecs
from .default_plugins import DEFAULT_PLUGINS
from .errors import PluginError, Refused
from .settings import ENTRY_POINT_GROUP, NO_ENTRY_POINTS_ENV

log = logging.getLogger("boocoder_bridge")

_shared: pluggy.PluginManager | None = None


def make_plugin_manager(entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("boocoder_bridge")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built once (entry points are scanned once per process)."""
    global _shared
    if _shared is None:
        _shared = make_plugin_manager(entry_points=not os.environ.get(NO_ENTRY_POINTS_ENV))
    return _shared


class Hooks:
    """Calls hooks one implementation at a time so one plugin's exception never takes the host down."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.warnings: list[str] = []

    def _impls(self, hook: str) -> Iterator[tuple[str, Any]]:
        # pluggy's own call order: last registered first, so third-party plugins run before the defaults.
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            yield plugin_name(impl.plugin_name, impl.plugin), impl.function

    def _failed(self, plugin: str, hook: str, exc: Exception) -> None:
        message = f"plugin {plugin} failed in {hook}: {exc.__class__.__name__}: {exc}"
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning(message)

    def each(self, hook: str, may_refuse: bool = False, **kwargs: Any) -> list[Any]:
        """Every implementation's result; a raising one is reported and skipped (Refused propagates if allowed)."""
        results = []
        for plugin, function in self._impls(hook):
            try:
                results.append(function(**kwargs))
            except Refused:
                if may_refuse:
                    raise
                self._failed(plugin, hook, PluginError("Refused is not allowed in this hook"))
            except Exception as exc:
                self._failed(plugin, hook, exc)
        return results

    def first(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None result (for single-answer hooks)."""
        for plugin, function in self._impls(hook):
            try:
                result = function(**kwargs)
            except Exception as exc:
                self._failed(plugin, hook, exc)
                continue
            if result is not None:
                return result
        return None

    def chain(self, hook: str, value_name: str, value: Any, **kwargs: Any) -> Any:
        """Pass a value through every implementation in turn; None keeps the value as it is."""
        for plugin, function in self._impls(hook):
            try:
                result = function(**{value_name: value, **kwargs})
            except Exception as exc:
                self._failed(plugin, hook, exc)
                continue
            if result is not None:
                value = result
        return value

    def plugins(self) -> list[dict[str, Any]]:
        """Each loaded plugin and the hooks it implements (for ``boocoder-bridge plugins``)."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            out.append({"name": plugin_name(name, plugin), "hooks": hooks})
        return sorted(out, key=lambda row: row["name"])


def plugin_name(registered: str, plugin: object) -> str:
    """The entry-point or module name; for an object registered without a name, its class."""
    if not registered.isdigit():
        return registered
    kind = plugin if isinstance(plugin, type) else type(plugin)
    return f"{kind.__module__}.{kind.__qualname__}"
