"""The plugin manager: hookspecs, the built-in plugins, then third-party ones from the ``boocoder_bridge``
entry-point group. Calls go through :class:`Hooks`, which calls each implementation through pluggy (so pluggy's
rules hold: fewer arguments than the spec, ``firstresult``, ``wrapper=True``) and isolates a failing one.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, Refused
from .settings import ENTRY_POINT_GROUP, NO_ENTRY_POINTS_ENV, environ

# Loaded by name, like entry points: the built-in plugins import the public API, which imports this module.
DEFAULT_PLUGIN_PACKAGE = "boocoder_bridge.default_plugins"
log = logging.getLogger("boocoder_bridge")

_shared: pluggy.PluginManager | None = None


def make_plugin_manager(entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("boocoder_bridge")
    pm.add_hookspecs(hookspecs)
    for name in importlib.import_module(DEFAULT_PLUGIN_PACKAGE).DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built once (entry points are scanned once per process)."""
    global _shared
    if _shared is None:
        _shared = make_plugin_manager(entry_points=not environ().get(NO_ENTRY_POINTS_ENV))
    return _shared


class Hooks:
    """Calls hooks so one plugin's exception never takes the host down.

    Why one pluggy call per implementation: pluggy stops a hook call at the first exception, but the failure
    policy (see :mod:`boocoder_bridge.hookspecs`) skips the failing plugin and goes on with the others. Each call
    is still pluggy's, on a subset of the plugins, so ``wrapper=True`` implementations wrap each call.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.warnings: list[str] = []
        self._callers: dict[str, tuple[tuple[Any, ...], bool, list[tuple[str, Any]]]] = {}

    def _failed(self, plugin: str, hook: str, exc: Exception) -> None:
        message = f"plugin {plugin} failed in {hook}: {exc.__class__.__name__}: {exc}"
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning(message)

    def _alone(self, hook: str) -> tuple[bool, list[tuple[str, Any]]]:
        """Whether the hook is ``firstresult``, and each implementation's plugin name with a pluggy caller of it
        alone (wrappers kept), in pluggy's call order: last registered first, so third-party plugins run before
        the defaults. Memoised until the plugins change (some hooks run once per model of a big catalog)."""
        caller = getattr(self.pm.hook, hook)
        impls = tuple(caller.get_hookimpls())  # HookImpls compare by identity; holding them keeps the key exact
        memo = self._callers.get(hook)
        if memo is None or memo[0] != impls:
            plain = [i for i in reversed(impls) if not (i.wrapper or i.hookwrapper)]
            callers = [(plugin_name(impl.plugin_name, impl.plugin),
                        self.pm.subset_hook_caller(hook, [i.plugin for i in plain if i.plugin is not impl.plugin]))
                       for impl in plain]
            memo = self._callers[hook] = (impls, bool(caller.spec and caller.spec.opts.get("firstresult")), callers)
        return memo[1], memo[2]

    def _one(self, hook: str, plugin: str, alone: Any, first: bool, kwargs: dict[str, Any]) -> Any:
        """One implementation's result, or None when it raised (reported, skipped; Refused where allowed)."""
        try:
            result = alone(**kwargs)
        except Refused:
            if hook in hookspecs.MAY_REFUSE:
                raise
            self._failed(plugin, hook, PluginError("Refused is not allowed in this hook"))
            return None
        except Exception as exc:
            self._failed(plugin, hook, exc)
            return None
        if first:
            return result
        return result[0] if result else None  # pluggy's list for one implementation, without the Nones

    def call(self, hook: str, **kwargs: Any) -> Any:
        """A ``firstresult`` hook: the first non-None result (later plugins are not called). Any other hook: the
        list of every implementation's non-None result."""
        first, callers = self._alone(hook)
        results = []
        for plugin, alone in callers:
            result = self._one(hook, plugin, alone, first, kwargs)
            if result is not None and first:
                return result
            if result is not None:
                results.append(result)
        return None if first else results

    def chain(self, hook: str, value_name: str, value: Any, **kwargs: Any) -> Any:
        """Pass a value through every implementation in turn; None keeps the value as it is."""
        first, callers = self._alone(hook)
        for plugin, alone in callers:
            result = self._one(hook, plugin, alone, first, {value_name: value, **kwargs})
            value = value if result is None else result
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
