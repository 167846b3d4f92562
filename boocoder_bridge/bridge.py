"""``Bridge``: the library API the host (and the CLI, and the HTTP server) calls. Each operation reads one
fleet snapshot (fleetstate.py) once: its resolver, its reports and its favorites agree with each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from .bulk import bulk
from .cache import DiscoveryCache
from .catalog import Catalog, listed_models
from .errors import BridgeError, ModelIdError, ProviderOfflineError, RegistryError
from .favorites import Favorites
from .fleetstate import FleetSource, FleetState, ProviderRow
from .kinds import ProviderKind
from .opencode.config import build_config, compaction_works, dispatch_content, provider_entry, write_config
from .plugins import Hooks, get_plugin_manager
from .registry import Provider, Registry, find_registry
from .reports import ProviderReport, positive_int
from .routing import Resolver, Route
from .settings import (
    CACHE_TTL_ENV,
    DEFAULT_TTL_S,
    FAVORITES_FILE,
    OPENCODE_CONFIG_FILE,
    OPENCODE_CONTENT_ENV,
    OPENCODE_ENV,
    REGISTRY_ENV,
    cache_ttl,
    default_state_dir,
    environ,
)

if TYPE_CHECKING:  # loaded on use: subprocess, threads and opencode's files cost a warm resolve nothing
    from . import idcheck
    from .opencode import tui as opencode_tui
    from .opencode.runner import ArenaMatch, Dispatch, Mode
    from .probe import Watch


@dataclass(frozen=True)
class Compaction:
    """``model`` compacts the session; compact when the session nears ``context_window`` (the session model's).

    ``context_window`` is None when nobody knows it: the host must then not compact by a token threshold it
    made up, but only when the server reports a context overflow (or by a limit the user configured).
    """

    model: Route
    session: Route
    context_window: int | None


class Bridge:
    """The fleet as the host sees it. Build with :meth:`load`; no network until something needs host data."""

    def __init__(self, registry: Registry, state_dir: Path, hooks: Hooks, kinds: dict[str, ProviderKind],
                 env: Mapping[str, str], ttl_s: float = DEFAULT_TTL_S) -> None:
        self.state_dir, self.hooks, self.kinds, self.env = state_dir, hooks, kinds, env
        self.cache = DiscoveryCache(state_dir)
        # No plugin implements context_window: the resolver skips the hook machinery for unknown contexts.
        self._asks = self._context_hook if hooks.pm.hook.context_window.get_hookimpls() else None
        # whether each provider is enabled is decided here, once (bind)
        self.fleet = FleetSource(registry.bind(env), self.cache, self._lister, env, ttl_s, self._asks)
        self.favorites = Favorites(state_dir / FAVORITES_FILE, self.canonical_id)
        self.registry_file: Path | None = None  # the file the registry was read from (None: given, or legacy env)
        self._notes: list[str] = []

    @property
    def registry(self) -> Registry:
        """The registry (bound to the environment). Held by the fleet source alone, so a :meth:`reload` swaps
        both in one assignment: no reader can see the new registry with the old fleet."""
        return self.fleet.registry

    def reload(self, registry: Registry, prepare: Callable[[FleetSource], None] | None = None) -> FleetSource:
        """Replace the registry (``serve``'s watch of its file): a new :class:`FleetSource` over the same cache,
        favorites and plugins. ``prepare`` gets it before it is swapped in (``serve`` publishes its first snapshot
        there), so a request never reads a fleet nobody has published. Operations under way finish on their own
        snapshot of the old one."""
        old = self.fleet
        fleet = FleetSource(registry.bind(self.env), self.cache, self._lister, self.env, old.ttl_s, self._asks,
                            generation=old.generation)
        fleet.on_asking, fleet.on_report = old.on_asking, old.on_report
        if prepare is not None:
            prepare(fleet)
        self.fleet = fleet
        return fleet

    @classmethod
    def load(cls, registry: str | os.PathLike[str] | Registry | None = None,
             state_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None,
             plugin_manager: pluggy.PluginManager | None = None, ttl_s: float | None = None) -> Bridge:
        """Read the registry (``registry`` path, else ``$BOOCODER_BRIDGE_REGISTRY``, else the legacy env) and
        load plugins. No network. ``ttl_s`` (else ``$BOOCODER_BRIDGE_CACHE_TTL``, else 30) is the cache TTL."""
        env = environ(env)
        hooks = Hooks(plugin_manager or get_plugin_manager())
        kinds: dict[str, ProviderKind] = {}
        # Plugins run before the defaults, so a plugin may replace a built-in kind of the same name.
        hooks.call("register_provider_kinds", register=lambda kind: kinds.setdefault(kind.name, kind))
        file: str | os.PathLike[str] | None = None  # a Registry given as such is nobody's file
        if isinstance(registry, Registry):
            unknown = sorted({p.kind for p in registry.providers.values()} - set(kinds))
            if unknown:
                raise RegistryError(registry.source, "$.providers", f"unknown provider kind {unknown[0]!r}",
                                    "use one of: " + ", ".join(sorted(kinds)))
        else:
            file = registry or env.get(REGISTRY_ENV)
            registry = find_registry(registry, env, known_kinds=kinds)
        if ttl_s is None:
            ttl_s = cache_ttl(env[CACHE_TTL_ENV], CACHE_TTL_ENV) if env.get(CACHE_TTL_ENV) else DEFAULT_TTL_S
        folder = Path(state_dir) if state_dir else default_state_dir(env)
        bridge = cls(registry, folder, hooks, kinds, env, ttl_s)
        bridge.registry_file = Path(file) if file else None  # the legacy env has no file to watch
        return bridge

    @property
    def warnings(self) -> list[str]:
        """Plugin failures and ignored files, for the host to log or show."""
        return self.hooks.warnings + ([self.cache.problem] if self.cache.problem else []) + self._notes

    # --- host data (the rules are in fleetstate.py) -------------------------------------------------

    @property
    def ttl_s(self) -> float:
        """How long a discovery answer is served from the cache."""
        return self.fleet.ttl_s

    @ttl_s.setter
    def ttl_s(self, value: float) -> None:
        self.fleet.ttl_s = value

    def state(self, refresh: bool = False) -> FleetState:
        """A fresh snapshot: answers within the TTL (none with ``refresh``), the rest asked concurrently."""
        return self.fleet.fresh(refresh)

    def reports(self, refresh: bool = False) -> Mapping[str, ProviderReport]:
        """Each provider's status and models, from :meth:`state`."""
        return self.state(refresh).reports

    def providers(self, refresh: bool = False) -> list[ProviderRow]:
        """Each provider's settings and live status (``providers`` command, ``GET /api/providers``)."""
        return self.state(refresh).rows()

    def _lister(self, provider: Provider) -> Any:
        return self.kinds[provider.kind].list_models

    # --- the resolver -----------------------------------------------------------------------------

    @property
    def resolver(self) -> Resolver:
        """The current snapshot's resolver (last known answers, no TTL): memoised routes until the fleet changes."""
        return self.fleet.current().resolver

    def canonical_id(self, model_id: str) -> str:
        """Any accepted ID (legacy too) in its composite form, checked against the registry."""
        return str(self.registry.parse_model_id(model_id)[0])

    def _context_hook(self, provider: Provider, model: str) -> int | None:
        return positive_int(self.hooks.call("context_window", provider=provider, model=model))

    def resolve(self, model_id: str, purpose: str = "dispatch") -> Route:
        return self.resolver.resolve(model_id, purpose)

    def check_model(self, model_id: str, ask_hosts: bool = True) -> idcheck.Verdict | None:
        """Whether ``model_id`` names a model its host lists (the rule is in idcheck.py); None: listed, or
        nobody can tell because the provider never answered. ``ask_hosts=False`` judges by the cache alone."""
        return (self.fleet.current() if ask_hosts else self.fleet.offline()).check(model_id)

    def context_window(self, model_id: str) -> int | None:
        """The context window the host should budget for, or None when nobody knows (never a guess)."""
        return self.resolve(model_id, "context").context_window

    # --- favorites (shared with opencode's TUI) ---------------------------------------------------

    def sync_opencode_tui(self) -> opencode_tui.SyncResult | None:
        """Merge the favorites with opencode's TUI picker (``model.json``), unless opted out. Never raises: a
        problem becomes a warning, because the TUI's list is a mirror, not the bridge's own data. A damaged
        favorites database stops it before anything is written (see opencode/tui.py)."""
        from .opencode import tui as opencode_tui

        if not opencode_tui.enabled(self.env):
            return None
        try:
            result = opencode_tui.sync(self.favorites, self.registry.providers, self.state_dir, self.env)
        except (BridgeError, OSError) as exc:
            result = opencode_tui.SyncResult(warning=f"opencode TUI favorites not synced: {exc}")
        if result.warning and result.warning not in self._notes:
            self._notes.append(result.warning)
        return result

    @property
    def tui_sync_enabled(self) -> bool:
        """Whether the favorites are mirrored into opencode's TUI (``BOOCODER_BRIDGE_OPENCODE_TUI`` opts out)."""
        from .opencode import tui as opencode_tui

        return opencode_tui.enabled(self.env)

    def sync_favorites(self) -> list[str]:
        """The explicit sync step (``favorites sync``, ``serve``'s favorites watch): take in the TUI's toggles,
        mirror the bridge's stars, return the stored favorites. Raises :class:`StateError` for a damaged
        database (the bridge's own data); a TUI-side problem is a warning."""
        self.favorites.read()  # a damaged database is an error here, not a warning of the sync
        self.sync_opencode_tui()
        return self.favorites.list()

    def list_favorites(self, note_pending: bool = False) -> list[str]:
        """Every stored favorite (visible or not). A read: it never syncs with opencode's TUI, never writes.
        ``note_pending`` adds a warning when the TUI's list changed since the last sync (``favorites list``)."""
        stored = self.favorites.list()
        if note_pending and self.tui_sync_enabled:
            from .opencode import tui as opencode_tui

            if opencode_tui.pending(stored, self.registry.providers, self.state_dir, self.env):
                self._notes.append("opencode's TUI favorites changed since the last sync; run `boocoder-bridge "
                                   "favorites sync` to take them in")
        return stored

    def hidden_favorites(self, refresh: bool = False) -> dict[str, str]:
        """The stored favorites not shown now, each with the reason (provider down, model not listed, ...)."""
        return self.state(refresh).with_favorites(self.list_favorites()).hidden()

    def add_favorite(self, model_id: str) -> tuple[str, bool]:
        """Store a favorite (as its host spells the model, see ids.Spellings) and mirror it; returns its stored
        form and whether it was new."""
        from . import idcheck

        self.sync_opencode_tui()  # first take in the TUI's toggles, so this change is judged against them
        state = self.fleet.offline()  # storing a favorite never waits on a host
        verdict = state.check(model_id)
        if verdict is not None and verdict.provider_typo:  # storing `default/typo/x` would help nobody
            raise ModelIdError(verdict.message())
        composite, added = self.favorites.store(idcheck.spelled(state.registry, state.known, model_id))
        if verdict is not None:
            self._notes.append(f"{composite} stored, but {verdict.message()} (it stays hidden until listed)")
        self.sync_opencode_tui()
        return composite, added

    def remove_favorite(self, model_id: str) -> tuple[str, bool]:
        """Forget a favorite on both sides, as it was stored (see Favorites.forget); returns the ID forgotten
        and whether it was stored."""
        self.sync_opencode_tui()
        forgotten, removed = self.favorites.forget(model_id)
        if removed:
            self.sync_opencode_tui()
        return forgotten, removed

    # --- catalog and opencode config --------------------------------------------------------------

    def catalog(self, refresh: bool = False) -> Catalog:
        """Favorites first (visible ones only), then each provider's group."""
        return self.state(refresh).with_favorites(self.list_favorites()).catalog()

    def opencode_config(self, offline: bool = False) -> tuple[dict[str, Any], list[str]]:
        """The opencode config and the providers whose models are stale (last known, not live). A read: the
        steps that start opencode (``generate``, dispatch) sync its TUI's favorites themselves."""
        return self._config(self.fleet.offline() if offline else self.state())

    def _config(self, state: FleetState) -> tuple[dict[str, Any], list[str]]:
        reports, stale = state.config_reports()
        entries = []
        with bulk():
            for pid, report in reports.items():
                provider = state.registry.providers[pid]
                models = [(m.id, state.resolver.facts(provider, m.id)) for m in listed_models(report)]
                entries.append((provider, provider_entry(provider, self.kinds[provider.kind].npm, models)))
        return build_config(entries, self._adjust_entry), stale

    def _adjust_entry(self, provider: Provider, entry: dict[str, Any]) -> dict[str, Any]:
        return self.hooks.chain("opencode_provider_entry", "entry", entry, provider=provider)

    # --- the host's four call sites ----------------------------------------------------------------

    def ensure_opencode_config(self) -> Path:
        """The generated config in the state dir, rewritten only when its content changes."""
        return self.write_opencode_config()[0]

    def dispatch(self, model_id: str, prompt: Sequence[str] = (), *, mode: Mode = "run",
                 opencode: str | None = None, purpose: str = "dispatch", options: Sequence[str] = (),
                 caller_content: str | None = None) -> Dispatch:
        """How to run a coder task on ``model_id`` through opencode (``before_dispatch`` plugins may add to it).
        ``options`` are opencode's own (``--format json``, ``--session ID``), placed before ``--`` and the prompt.

        ``caller_content`` is the ``OPENCODE_CONFIG_CONTENT`` of the process that will start opencode (None: this
        bridge's environment's; ``serve`` passes its client's, never its own).

        Refuses at once an ID no host lists (:class:`ModelIdError`, with a "did you mean"; opencode would fail on
        it), a disabled provider (:class:`ProviderUnavailableError`), an offline one, or one whose host does not
        answer its probe now (:class:`ProviderOfflineError`)."""
        for option in options:
            if option == "--" or option.partition("=")[0] in ("-m", "--model"):
                raise BridgeError(f"opencode option {option!r} is not passed on: " + (
                    "the options after it would become prompt text" if option == "--" else
                    "the model is the ID, which the bridge routes and checks; drop it"))
        state = self.state()  # one snapshot for the route, the checks and the config
        route = state.resolve(model_id, purpose)  # the one parse of the ID
        self._refuse_unlisted(state, [model_id], [route])
        state.refuse_unavailable([route])
        self._refuse_unreachable(state, [route])
        config, path = self._fleet_config(state)
        return self._dispatch(route, prompt, mode, opencode, config, path, options=options,
                              caller_content=caller_content)

    @staticmethod
    def _refuse_unlisted(state: FleetState, model_ids: Sequence[str], routes: Sequence[Route]) -> None:
        for model_id, route in zip(model_ids, routes, strict=True):
            if (verdict := state.check(model_id, route)) is not None:
                raise ModelIdError(verdict.message())

    def _fleet_config(self, state: FleetState) -> tuple[dict[str, Any], Path]:
        self.sync_opencode_tui()  # opencode is about to start: its TUI shows the fleet's current stars
        config, _ = self._config(state)
        path = self.state_dir / OPENCODE_CONFIG_FILE
        write_config(path, config)
        return config, path

    def _dispatch(self, route: Route, prompt: Sequence[str], mode: Mode, opencode: str | None,
                  config: dict[str, Any], path: Path, locate_opencode: bool = True,
                  options: Sequence[str] = (), caller_content: str | None = None) -> Dispatch:
        import functools

        from .opencode.runner import Dispatch, find_opencode

        binary = find_opencode(opencode, self.env) if locate_opencode else (
            opencode or self.env.get(OPENCODE_ENV) or "opencode")  # shown, not run: need not exist here
        argv = [binary, "run", "-m", route.opencode_model, *options] if mode == "run" else [binary, "acp", *options]
        # OPENCODE_CONFIG alone loses to a project opencode.json, the global config and the caller's
        # OPENCODE_CONFIG_CONTENT; the fleet's entries in OPENCODE_CONFIG_CONTENT win over all three.
        if caller_content is None:
            caller_content = self.env.get(OPENCODE_CONTENT_ENV)
        content = dispatch_content(config, caller_content, (route.provider, route.model),
                                   compaction=compaction_works(config, route.provider, route.model),
                                   session_model=route.opencode_model if mode == "acp" else None)
        if content.warning and content.warning not in self._notes:
            self._notes.append(content.warning)
        env = {"OPENCODE_CONFIG": str(path), OPENCODE_CONTENT_ENV: content.text}
        self.hooks.call("before_dispatch", route=route, argv=argv, env=env)  # options a plugin appends: before "--"
        if mode == "run":  # "--": the prompt is the message, never an option ("--attach=URL" would send it away)
            argv += ["--", *prompt]
        return Dispatch(route=route, config_path=path, argv=argv, env=env, watch=functools.partial(self.watch, route),
                        notes=[content.warning] if content.warning else [])

    def _refuse_unreachable(self, state: FleetState, routes: Sequence[Route]) -> None:
        """Probe each host now, even one discovery saw a moment ago (a cached answer may be 30 s old, and opencode
        would retry a refused host for a minute, saying nothing): refused or silent means no opencode started."""
        from .probe import check, probed

        providers = {r.provider: state.registry.providers[r.provider] for r in routes}
        asked = [(p, self.kinds[p.kind]) for p in providers.values() if probed(p, self.env)]
        gone = {probe.provider: probe for probe in check(asked, self.env) if not probe.answered}
        for route in routes:
            if route.provider in gone:
                raise ProviderOfflineError(f"{route.id}: {gone[route.provider].reason}; opencode not started")

    def watch(self, model: str | Route, on_gone: Callable[[str], None] | None = None) -> Watch:
        """Watch the host of ``model`` (an ID or a :class:`Route`) while a task runs on it, for hosts that run
        opencode themselves (ACP): ``with bridge.watch(route, on_gone=cancel) as watch: ...``. ``on_gone(reason)``
        is called once, from the watch's thread, when the host refuses or stays silent twice in a row; cancel
        the session then. A provider that is never probed gives a watch that never fires."""
        from .probe import Watch

        route = model if isinstance(model, Route) else self.resolve(model)
        provider = self.registry.providers[route.provider]
        return Watch(provider, self.kinds[provider.kind], self.env, on_gone)

    def arena_match(self, model_ids: Sequence[str], *, opencode: str | None = None,
                    locate_opencode: bool = True, caller_content: str | None = None) -> ArenaMatch:
        """One match setup. Refuses fewer than two contestants, the same provider+model twice, contestants no
        host lists, and contestants whose provider is disabled or offline. ``arena_match`` plugins may annotate
        or veto. ``locate_opencode=False`` sets a match up to show, not run: no opencode binary is needed."""
        state = self.state()  # one snapshot for every contestant
        routes = [state.resolve(model_id, "arena") for model_id in model_ids]
        self._refuse_unlisted(state, model_ids, routes)
        if len(routes) < 2:
            raise ModelIdError("an arena match needs at least two contestants")
        seen: dict[str, str] = {}
        for model_id, route in zip(model_ids, routes, strict=True):
            if route.id in seen:
                raise ModelIdError(f"{seen[route.id]!r} and {model_id!r} are the same model on the same provider "
                                   f"({route.id}); pick different contestants")
            seen[route.id] = model_id
        state.refuse_unavailable(routes)
        if locate_opencode:  # a match set up only to be shown starts nothing: its hosts need not be up now
            self._refuse_unreachable(state, routes)
        config, path = self._fleet_config(state)
        contestants = [self._dispatch(r, (), "run", opencode, config, path, locate_opencode,
                                      caller_content=caller_content)
                       for r in routes]
        from .opencode.runner import ArenaMatch

        match = ArenaMatch(contestants=contestants, config_path=path)
        self.hooks.call("arena_match", match=match)
        return match

    def compaction_model(self, session_model: str, configured: str | None = None) -> Compaction:
        """The model that compacts a session on ``session_model``, and the context window that sets the threshold."""
        resolver = self.resolver  # one snapshot for both routes
        session = resolver.resolve(session_model, "compaction")
        chosen = self.hooks.call("choose_compaction_model", session=session, configured=configured)
        return Compaction(model=resolver.resolve(chosen or session.id, "compaction"), session=session,
                          context_window=session.context_window)

    def task_model(self, kind: str, session_model: str, configured: str | None = None) -> Route:
        """The model for a side task (``title``, ``summary``, ...) of a session on ``session_model``."""
        resolver = self.resolver  # one snapshot for both routes
        session = resolver.resolve(session_model, "task")
        chosen = self.hooks.call("choose_task_model", kind=kind, session=session, configured=configured)
        return resolver.resolve(chosen or session.id, "task")

    def write_opencode_config(self, path: str | os.PathLike[str] | None = None,
                              offline: bool = False) -> tuple[Path, list[str]]:
        """Write the config atomically (default: ``opencode.json`` in the state dir)."""
        target = Path(path) if path else self.state_dir / OPENCODE_CONFIG_FILE
        config, stale = self.opencode_config(offline)
        write_config(target, config)
        return target, stale
