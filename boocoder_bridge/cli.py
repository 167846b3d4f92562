"""``boocoder-bridge``: a thin command line over :class:`boocoder_bridge.Bridge`.

Exit codes: 0 ok; 2 bad input (registry, model ID, arguments); 3 provider disabled or offline, or its host did
not answer just before opencode would start; 4 state dir unreadable or unwritable; 5 a plugin refused; 6 opencode
not found; 75 the host went away while opencode ran (opencode stopped); 124 past --timeout; 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import BridgeError, ModelIdError, RegistryError
from .settings import DEFAULT_HOST, DEFAULT_PORT, PURPOSES, cache_ttl

if TYPE_CHECKING:  # loaded inside the commands: TAB completion imports this module and needs none of them
    from .bridge import Bridge

PROG = "boocoder-bridge"
Command = Callable[[argparse.Namespace], int]


def _print_json(data: Any) -> None:
    """Indented JSON, byte for byte what ``json.dumps(data, indent=2, ensure_ascii=False)`` writes, from
    pydantic's encoder: 20x faster on a 10,000-model catalog. A model is written without a dict copy, and the
    UTF-8 bytes go out as they are (no str copy of a 14 MB catalog, no second encoding)."""
    from pydantic_core import to_json

    sys.stdout.flush()
    sys.stdout.buffer.write(to_json(data, indent=2) + b"\n")
    sys.stdout.buffer.flush()


def _warn(bridge: Bridge) -> None:
    for message in bridge.warnings:
        print(f"{PROG}: warning: {message}", file=sys.stderr)


def _bridge(args: argparse.Namespace) -> Bridge:
    from .bridge import Bridge

    ttl = None if args.cache_ttl is None else cache_ttl(args.cache_ttl, "--cache-ttl")
    bridge = Bridge.load(args.registry, args.state_dir, ttl_s=ttl)
    if sys.stderr.isatty():  # progress while hosts are asked; nothing extra when stderr is a pipe or a file
        progress = _progress()
        bridge.fleet.on_asking = lambda pids: progress(f"asking {_plural(len(pids), 'host')}: {', '.join(pids)}")
        bridge.fleet.on_report = lambda r: progress(
            f"  {r.provider}: {r.status}" + (f", {_plural(len(r.models), 'model')}" if r.available else "")
            + (f" ({r.error})" if r.error else ""))
    return bridge


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        bridge = _bridge(args)
    except RegistryError as exc:
        problems = [exc, *exc.others]
        for problem in problems:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        count = len(problems)
        print(f"{exc.source}: {count} problem{'' if count == 1 else 's'}", file=sys.stderr)
        return 2
    registry = bridge.registry
    print(f"ok: {registry.source}: {len(registry.providers)} providers ({', '.join(registry.providers)}), "
          f"default {registry.default_provider}")
    return 0


def _age(checked_at: float | None, now: float) -> str | None:
    """``checked 40 s ago``: how old a host's answer is, so a cached 'offline' is not taken for a current one."""
    if not checked_at:
        return None
    seconds = max(0.0, now - checked_at)
    if seconds < 1:
        return "checked just now"
    if seconds < 120:
        return f"checked {seconds:.0f} s ago"
    if seconds < 7200:
        return f"checked {seconds / 60:.0f} min ago"
    return f"checked {seconds / 3600:.0f} h ago"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def cmd_providers(args: argparse.Namespace) -> int:
    import time

    bridge = _bridge(args)
    rows = bridge.providers(refresh=args.refresh)
    if args.json:
        _print_json({"providers": [row.model_dump() for row in rows]})
    else:
        now = time.time()
        for row in rows:
            mark = "*" if row.default else " "
            age = _age(row.checked_at, now)
            line = (f"{mark} {row.id:<16} {row.kind:<18} {row.status:<8} {_plural(row.model_count, 'model'):>10}  "
                    f"{row.base_url}")
            print(line + (f"  (via sidecar {row.route_base_url})" if row.via_sidecar else "")
                  + (f"  [{age}]" if age else ""))
            if row.error:
                print(f"    ! {row.error}")
    _warn(bridge)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import time

    bridge = _bridge(args)
    if args.json:
        catalog = bridge.catalog(refresh=args.refresh)
        _print_json(catalog)
    else:
        reports = bridge.reports(refresh=args.refresh)  # the catalog below is then served from this answer
        catalog = bridge.catalog()
        now = time.time()
        notes = {pid: age for pid, r in reports.items()
                 if bridge.registry.providers[pid].asks_host() and (age := _age(r.fetched_at, now))}
        sys.stdout.write(catalog.render_text(notes=notes))
    _warn(bridge)
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    bridge = _bridge(args)
    route = bridge.resolve(args.id, args.purpose)
    verdict = bridge.check_model(args.id)
    if verdict is not None:  # a route to a model nobody lists would only fail later, inside opencode
        raise ModelIdError(verdict.message())
    if args.json:
        _print_json(route.as_json())
    else:
        for key, value in route.as_json().items():
            if value is None:
                value = "none (no key needed)" if key == "api_key_env" else "unknown"
            print(f"{key}: {value}")
    _warn(bridge)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .opencode.config import render_pieces, window_notes, write_config

    bridge = _bridge(args)
    bridge.sync_opencode_tui()  # opencode is about to be started with this config: its TUI shows the fleet's stars
    config, stale = bridge.opencode_config(offline=args.offline)
    if args.out:
        out = Path(args.out)
        written = write_config(out, config)  # left as it is when its content did not change
        print(f"wrote {out}" if written else f"{out} unchanged (already up to date)", file=sys.stderr)
    else:
        sys.stdout.flush()
        for piece in render_pieces(config):
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()
    # A stale provider either has its last known models in the config, or none at all (never seen).
    listed = config.get("provider", {})
    none = [pid for pid in stale if not listed.get(pid, {}).get("models")]
    old = [pid for pid in stale if pid not in none]
    if old:
        print(f"{PROG}: warning: last known (stale) models used for: {', '.join(old)}", file=sys.stderr)
    if none:
        print(f"{PROG}: warning: no models known for: {', '.join(none)} (no answer from the host and nothing "
              "cached; opencode will not list them)", file=sys.stderr)
    for note in window_notes(config):
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    _warn(bridge)
    return 0


def cmd_favorites(args: argparse.Namespace) -> int:
    bridge = _bridge(args)
    action = args.action or "list"
    if action == "add":
        composite, added = bridge.add_favorite(args.id)
        print(f"added {composite}" if added else f"{composite} was already a favorite")
    elif action == "remove":
        composite, removed = bridge.remove_favorite(args.id)
        print(f"removed {composite}" if removed else f"{composite} was not a favorite")
    elif action == "sync":
        _sync_favorites(bridge)
    else:
        stored = bridge.list_favorites(note_pending=True)
        hidden = bridge.hidden_favorites() if stored else {}
        if getattr(args, "json", False):
            _print_json({"favorites": stored, "hidden": hidden})
        else:
            for model_id in stored:
                print(model_id + (f"  (hidden: {hidden[model_id]})" if model_id in hidden else ""))
    _warn(bridge)
    return 0


def _stop_on_hangup() -> None:
    """SIGTERM and SIGHUP (the terminal closed) end the bridge as Ctrl-C does, through Python: opencode runs in a
    session of its own, which no terminal signal reaches, so the bridge must stop its group before leaving."""
    import signal

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)


def _sync_favorites(bridge: Bridge) -> None:
    """``favorites sync``: the explicit TUI sync step; says what came in and went out."""
    before = bridge.list_favorites()
    after = bridge.sync_favorites()
    if not bridge.tui_sync_enabled:
        print("opencode's TUI sync is turned off (BOOCODER_BRIDGE_OPENCODE_TUI); nothing to do")
        return
    added = [f for f in after if f not in before]
    removed = [f for f in before if f not in after]
    for model_id in added:
        print(f"took in {model_id} (starred in opencode's TUI)")
    for model_id in removed:
        print(f"removed {model_id} (unstarred in opencode's TUI)")
    print(f"in sync: {_plural(len(after), 'favorite')}")


def cmd_run(args: argparse.Namespace) -> int:
    from .opencode.runner import run_attached

    _stop_on_hangup()
    bridge = _bridge(args)
    dispatch = bridge.dispatch(args.id, args.prompt, opencode=args.opencode, options=args.options)
    _warn(bridge)
    return run_attached(dispatch, timeout=args.timeout)


def cmd_arena(args: argparse.Namespace) -> int:
    from .opencode.runner import run_match

    bridge = _bridge(args)
    match = bridge.arena_match(args.ids, opencode=args.opencode, locate_opencode=args.prompt is not None)
    _warn(bridge)
    if args.prompt is None:
        if args.json:
            _print_json(match.as_json())
        else:
            for contestant in match.contestants:
                route = contestant.route
                print(f"{route.id}: {route.base_url} model {route.upstream_model}, context "
                      f"{route.context_window or 'unknown'}")
            print(f"config: {match.config_path}")
            for key, value in match.notes.items():
                print(f"note {key}: {value}")
        return 0
    _stop_on_hangup()
    progress = _progress()
    progress(f"running {len(match.contestants)} contestants at once (up to {args.timeout:g} s each)")
    answers = run_match(match, [args.prompt], timeout=args.timeout, on_answer=lambda a: progress(
        f"{a.model}: {'answered' if a.returncode == 0 else f'exit {a.returncode}'} in {a.seconds:.1f} s"))
    if args.json:
        _print_json({**match.as_json(), "answers": [{**vars(a), "output": _plain_lines(a.output)} for a in answers]})
    else:
        print(_side_by_side(answers))
    return 0 if all(a.returncode == 0 for a in answers) else 1


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


def _plain(text: str) -> str:
    """An answer as table text: opencode's colour codes dropped, any other control character made visible."""
    from .reports import safe_text

    return safe_text(_ANSI.sub("", text), limit=10 * len(text) + 1)  # room for every escape: never cut


def _plain_lines(text: str) -> str:
    """An answer as JSON text: :func:`_plain` on each line, keeping its line breaks and tabs (a host reading
    ``arena --json`` gets the words, never a terminal's colour codes)."""
    return "\n".join("\t".join(_plain(part) for part in line.removesuffix("\r").split("\t"))
                     for line in text.split("\n"))


def _progress() -> Callable[[str], None]:
    """Progress lines on stderr when it is a terminal; nothing at all when it is not (pipes, logs, CI)."""
    if not sys.stderr.isatty():
        return lambda message: None
    return lambda message: print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _side_by_side(answers: list[Any], width: int = 100) -> str:
    import textwrap

    column = max(20, width // len(answers) - 3)
    blocks = []
    for answer in answers:
        head = [answer.model, f"{answer.seconds:.1f} s" + ("" if answer.returncode == 0 else
                                                          f", exit {answer.returncode}"), "-" * column]
        body = [line for paragraph in answer.output.splitlines()
                for line in textwrap.wrap(_plain(paragraph), column) or [""]]
        blocks.append([h[:column] for h in head] + body)
    rows = max(len(b) for b in blocks)
    return "\n".join(" | ".join(f"{(b[i] if i < len(b) else ''):<{column}}" for b in blocks).rstrip()
                     for i in range(rows))


def cmd_plugins(args: argparse.Namespace) -> int:
    bridge = _bridge(args)
    plugins = bridge.hooks.plugins()
    if args.json:
        _print_json({"plugins": plugins, "kinds": sorted(bridge.kinds)})
    else:
        for plugin in plugins:
            print(f"{plugin['name']}: {', '.join(plugin['hooks'])}")
        print(f"provider kinds: {', '.join(sorted(bridge.kinds))}")
    _warn(bridge)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .web.app import serve
    except ImportError:
        raise BridgeError("serve needs the server extra: pip install 'boocoder-bridge[server]'") from None
    bridge = _bridge(args)
    _warn(bridge)

    def ready(url: str) -> None:
        print(f"serving {url}  (model picker at /, API under /api, Ctrl-C stops)", flush=True)

    serve(bridge, args.host, args.port, args.allow_host, ready=ready)
    return 130  # serve returns only once a signal (Ctrl-C, SIGTERM) stopped it


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import gguf  # noqa: F401
        import xllamacpp  # noqa: F401
    except ImportError as exc:
        raise BridgeError(f"demo needs the demo extra ({exc.name} is missing): "
                          "python3 -m pip install 'boocoder-bridge[demo]'") from None
    from .demo.fleet import run_demo

    return run_demo(args.port)


def cmd_opencode_plugin(args: argparse.Namespace) -> int:
    from .opencode import plugin as opencode_plugin
    from .settings import environ

    if args.action == "install":
        change = opencode_plugin.install(environ(), args.registry, args.state_dir, dry_run=args.dry_run)
    else:
        change = opencode_plugin.uninstall(environ(), dry_run=args.dry_run)
    if args.dry_run and change.action == "write":
        print(change.text, end="")
    print(change.message(args.dry_run), file=sys.stderr)
    return 0


SHELLS = ("bash", "zsh", "fish")
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT}  # writing stdout: a full disk, a dead terminal
JSON_HELP = "print JSON instead of text"
REFRESH_HELP = "ask the hosts now, even if the cache is fresh"
OPENCODE_HELP = "the opencode binary (default: $BOOCODER_BRIDGE_OPENCODE, else opencode on PATH)"
ID_HELP = "a model ID: provider/model, or a legacy bare ID"


def cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

    sys.stdout.write(argcomplete.shellcode([PROG], shell=args.shell))
    return 0


def _complete_ids(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Model IDs from the cache and the favorites, without any network (completion must be instant)."""
    from .completion import complete_ids

    return complete_ids(prefix, getattr(parsed_args, "registry", None), getattr(parsed_args, "state_dir", None),
                        slow=slow_ids)


def slow_ids(registry: str | None, state_dir: str | None) -> list[str]:
    """TAB's full path, when the candidates file cannot answer: the registry and the cache loaded as models."""
    from .bridge import Bridge

    bridge = Bridge.load(registry, state_dir)
    ids = [f"{pid}/{m.id}" for pid, report in bridge.fleet.cached_reports().items() for m in report.models]
    return ids + bridge.favorites.list()


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog=PROG, description="Use a fleet of model servers from BooCoder/BooChat.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--registry", metavar="FILE", help="provider registry (default: $BOOCODER_BRIDGE_REGISTRY, "
                                                           "else the legacy LLAMA_SWAP_URL environment)")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="where cache, favorites and generated config live "
                             "(default: $BOOCODER_BRIDGE_STATE_DIR, else the user data dir)")
    parser.add_argument("--cache-ttl", metavar="SECONDS",
                        help="how long discovery answers are served from the cache (default 30, "
                             "or $BOOCODER_BRIDGE_CACHE_TTL)")
    # prog given: argparse would otherwise format a usage text to work it out (3 ms of every TAB)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", prog=PROG)

    def add(name: str, handler: Command, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    def model_id(command: argparse.ArgumentParser, dest: str = "id", **kwargs: Any) -> None:
        action = command.add_argument(dest, metavar="ID", help=kwargs.pop("help", ID_HELP), **kwargs)
        action.completer = _complete_ids  # type: ignore[attr-defined]

    add("validate", cmd_validate, "check the registry; exit 0, or 2 with every problem and its fix")
    providers = add("providers", cmd_providers, "each provider: kind, base_url, enabled, live status")
    providers.add_argument("--json", action="store_true", help=JSON_HELP)
    providers.add_argument("--refresh", action="store_true", help=REFRESH_HELP)
    models = add("models", cmd_models, "the catalog: Favorites, then each provider's models")
    models.add_argument("--json", action="store_true", help=JSON_HELP)
    models.add_argument("--refresh", action="store_true", help=REFRESH_HELP)
    resolve = add("resolve", cmd_resolve, "where a model ID goes, and its context window")
    model_id(resolve)
    resolve.add_argument("--purpose", default="dispatch", choices=PURPOSES,
                         help="what the route is for (default: %(default)s); every purpose routes the same")
    resolve.add_argument("--json", action="store_true", help=JSON_HELP)
    generate = add("generate", cmd_generate, "opencode config JSON (stdout without --out)")
    generate.add_argument("--out", metavar="FILE", help="write atomically to FILE (left as it is when unchanged)")
    generate.add_argument("--offline", action="store_true", help="no network: the last known models of each provider")
    favorites = add("favorites", cmd_favorites, "the stored favorites (shared by BooChat, BooCoder and opencode's "
                                                "TUI); alone: list them")
    actions = favorites.add_subparsers(dest="action", metavar="ACTION", prog=f"{PROG} favorites")
    listing = actions.add_parser("list", help="all stored favorites, and why any is hidden now",
                                 description="all stored favorites, and why any is hidden now")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    model_id(actions.add_parser("add", help="store a favorite (its composite form)",
                                description="store a favorite (its composite form)"))
    model_id(actions.add_parser("remove", help="forget a favorite", description="forget a favorite"))
    sync_help = "merge the favorites with opencode's TUI list (model.json) now; reads never do it"
    actions.add_parser("sync", help=sync_help, description=sync_help)
    serve = add("serve", cmd_serve, "HTTP API and model picker for the web front ends (needs the [server] extra)")
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s; any other "
                                                            "address needs $BOOCODER_BRIDGE_TOKEN)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind (default: %(default)s; "
                                                                      "0 picks a free one)")
    serve.add_argument("--allow-host", metavar="NAME", action="append", default=[],
                       help="another name clients use for this server (Host header); repeatable. "
                            "Default: only localhost and the bound address")
    run = add("run", cmd_run, "run opencode on a model, streaming its output; opencode's own options go "
                              "between ID and '--': run ID --format json --session ID -- PROMPT")
    run.usage = f"{PROG} run [--opencode PATH] [--timeout SECONDS] ID [OPENCODE-OPTION ...] [--] PROMPT ..."
    model_id(run)
    run.add_argument("words", metavar="PROMPT", nargs=argparse.REMAINDER,
                     help="the prompt (several words are joined by opencode); with '--', the words before it are "
                          "opencode's own options and only those after it are the prompt")
    run.add_argument("--opencode", metavar="PATH", help=OPENCODE_HELP)
    run.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                     help="stop opencode after SECONDS (exit 124; default: no limit)")
    arena = add("arena", cmd_arena, "set up (and with --prompt, run) an arena match")
    model_id(arena, "ids", nargs="+", help="two or more contestants (model IDs)")
    arena.add_argument("--json", action="store_true", help=JSON_HELP)
    arena.add_argument("--prompt", metavar="TEXT", help="run every contestant on TEXT at once, answers side by side")
    arena.add_argument("--timeout", type=_seconds, default=600, metavar="SECONDS",
                       help="per contestant (default: %(default)s)")
    arena.add_argument("--opencode", metavar="PATH", help=OPENCODE_HELP)
    plugins = add("plugins", cmd_plugins, "the loaded plugins and the hooks each implements")
    plugins.add_argument("--json", action="store_true", help=JSON_HELP)
    demo = add("demo", cmd_demo, "start a real two-host fleet on this machine (tiny llama.cpp models) and serve "
                                 "the picker on it; Ctrl-C cleans up (needs the [demo] extra; ignores --registry "
                                 "and --state-dir)")
    demo.add_argument("--port", type=int, default=0, help="port for the picker and API (default: %(default)s, "
                                                          "a free one)")
    plugin = add("opencode-plugin", cmd_opencode_plugin, "your own opencode on the fleet: a plugin file that adds "
                                                         "the fleet's providers and a default model at each start")
    plugin.add_argument("action", choices=("install", "uninstall"), help="write the plugin (with this --registry "
                        "and --state-dir, or their variables), or remove it; your opencode config is never rewritten")
    plugin.add_argument("--dry-run", action="store_true", help="change nothing: print what would be written")
    completion = add("completion", cmd_completion, "print a shell completion script: "
                                                   "eval \"$(boocoder-bridge completion bash)\"")
    completion.add_argument("shell", choices=SHELLS, help="the shell: " + ", ".join(SHELLS))
    return parser


_RUN_OWN = {"--timeout": "timeout", "--opencode": "opencode"}  # run's own options, also taken after the ID


def _split_run(parser: argparse.ArgumentParser, raw: list[str], args: argparse.Namespace) -> None:
    """``run ID [OPENCODE-OPTION ...] -- PROMPT``: before the first ``--`` opencode's options (and the bridge's
    own --timeout/--opencode), after it only the prompt, word for word. Without ``--`` the words are the prompt,
    less the bridge's own options (as before ``--`` existed), and a word that looks like any other option is
    refused: it may be meant for opencode. The split is made on the raw words: argparse drops a ``--`` that
    follows ID."""
    if "--" in raw:
        cut = raw.index("--")
        head = parser.parse_args(raw[:cut])
        args.id, args.options, args.prompt = head.id, _take_own(head.words, args), raw[cut + 1:]
        for name in _RUN_OWN.values():
            setattr(args, name, getattr(head, name) if getattr(args, name) is None else getattr(args, name))
    else:
        args.options, args.prompt = [], _take_own(args.words, args)
        flagged = [word for word in args.prompt if re.match(r"-[A-Za-z-]", word)]
        if flagged:
            parser.error(f"run: {flagged[0][:40]!r} looks like an option: put opencode's options before '--' "
                         f"and the prompt after it: {PROG} run ID {flagged[0][:40]} ... -- PROMPT")
    if not args.prompt:
        parser.error("run: no PROMPT given (the words after ID, or after '--')")


def _take_own(words: list[str], args: argparse.Namespace) -> list[str]:
    """``words`` without run's own --timeout/--opencode, which are set on ``args``."""
    rest: list[str] = []
    i = 0
    while i < len(words):
        name, equals, value = words[i].partition("=")
        if name not in _RUN_OWN:
            rest.append(words[i])
            i += 1
            continue
        if not equals:
            if i + 1 >= len(words):
                raise SystemExit(_usage_error(f"run: {name} needs a value"))
            i, value = i + 1, words[i + 1]
        try:
            setattr(args, _RUN_OWN[name], _seconds(value) if name == "--timeout" else value)
        except argparse.ArgumentTypeError as exc:
            raise SystemExit(_usage_error(f"argument {name}: {exc}")) from None
        i += 1
    return rest


def _usage_error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _seconds(text: str) -> float:
    """``--timeout``: a positive, finite number of seconds (``nan`` meant no limit, ``-5`` a kill at once)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:  # also false for NaN
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a positive number of seconds, e.g. 600")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stdout is None:  # started with standard output closed (`>&-`): every answer would be lost
        if sys.stderr is not None:
            print(f"{PROG}: error: standard output is closed; redirect it (to /dev/null to drop it)", file=sys.stderr)
        return 1
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (argcomplete is imported only then)
        import argcomplete

        argcomplete.autocomplete(parser)
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.command == "run":
        _split_run(parser, raw, args)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # here, so that a full disk is this one-line error, not a message at exit
        return code
    except BridgeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader stopped early (`generate | head`): what it read was whole, so no error
        _drop_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        _drop_stdout()
        print(f"{PROG}: error: cannot write the output ({exc.strerror})", file=sys.stderr)
        return 1


def _drop_stdout() -> None:
    """What is still buffered goes nowhere: no second error when Python flushes stdout at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
