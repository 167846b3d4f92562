"""``boocoder-bridge``: a thin command line over :class:`boocoder_bridge.Bridge`.

Exit codes: 0 ok; 2 bad input (registry, model ID, arguments); 3 provider disabled or offline;
4 state dir unreadable or unwritable; 5 a plugin refused; 6 opencode not found; 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_core import to_json

from .bridge import Bridge
from .errors import BridgeError, ModelIdError, RegistryError
from .routing import PURPOSES
from .settings import DEFAULT_HOST, DEFAULT_PORT, cache_ttl

PROG = "boocoder-bridge"
Command = Callable[[argparse.Namespace], int]


def _print_json(data: Any) -> None:
    """Indented JSON, byte for byte what ``json.dumps(data, indent=2, ensure_ascii=False)`` writes, from
    pydantic's encoder: 20x faster on a 10,000-model catalog. A model is written without a dict copy, and the
    UTF-8 bytes go out as they are (no str copy of a 14 MB catalog, no second encoding)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(to_json(data, indent=2) + b"\n")
    sys.stdout.buffer.flush()


def _warn(bridge: Bridge) -> None:
    for message in bridge.warnings:
        print(f"{PROG}: warning: {message}", file=sys.stderr)


def _bridge(args: argparse.Namespace) -> Bridge:
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

    from .opencode import render_pieces, window_notes, write_config

    bridge = _bridge(args)
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
    else:
        stored = bridge.list_favorites()
        hidden = bridge.hidden_favorites() if stored else {}
        if getattr(args, "json", False):
            _print_json({"favorites": stored, "hidden": hidden})
        else:
            for model_id in stored:
                print(model_id + (f"  (hidden: {hidden[model_id]})" if model_id in hidden else ""))
    _warn(bridge)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .dispatch import run_attached

    bridge = _bridge(args)
    dispatch = bridge.dispatch(args.id, args.prompt, opencode=args.opencode)
    _warn(bridge)
    return run_attached(dispatch, timeout=args.timeout)


def cmd_arena(args: argparse.Namespace) -> int:
    from .dispatch import run_match

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
    progress = _progress()
    progress(f"running {len(match.contestants)} contestants at once (up to {args.timeout:g} s each)")
    answers = run_match(match, [args.prompt], timeout=args.timeout, on_answer=lambda a: progress(
        f"{a.model}: {'answered' if a.returncode == 0 else f'exit {a.returncode}'} in {a.seconds:.1f} s"))
    if args.json:
        _print_json({**match.as_json(), "answers": [vars(a) for a in answers]})
    else:
        print(_side_by_side(answers))
    return 0 if all(a.returncode == 0 for a in answers) else 1


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


def _plain(text: str) -> str:
    """An answer as table text: opencode's colour codes dropped, any other control character made visible."""
    from .hostdata import safe_text

    return safe_text(_ANSI.sub("", text), limit=10 * len(text) + 1)  # room for every escape: never cut


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
        from .server import serve
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
    try:
        bridge = Bridge.load(getattr(parsed_args, "registry", None), getattr(parsed_args, "state_dir", None))
        ids = [f"{pid}/{m.id}" for pid, report in bridge.fleet.cached_reports().items() for m in report.models]
        ids += bridge.favorites.list()
    except Exception:  # a completer must never print a traceback into the user's shell
        return []
    return sorted({i for i in ids if i.startswith(prefix)})


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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    actions = favorites.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="all stored favorites, and why any is hidden now",
                                 description="all stored favorites, and why any is hidden now")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    model_id(actions.add_parser("add", help="store a favorite (its composite form)",
                                description="store a favorite (its composite form)"))
    model_id(actions.add_parser("remove", help="forget a favorite", description="forget a favorite"))
    serve = add("serve", cmd_serve, "HTTP API and model picker for the web front ends (needs the [server] extra)")
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s; any other "
                                                            "address needs $BOOCODER_BRIDGE_TOKEN)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind (default: %(default)s; "
                                                                      "0 picks a free one)")
    serve.add_argument("--allow-host", metavar="NAME", action="append", default=[],
                       help="another name clients use for this server (Host header); repeatable. "
                            "Default: only localhost and the bound address")
    run = add("run", cmd_run, "run opencode on a model, streaming its output")
    model_id(run)
    run.add_argument("prompt", metavar="PROMPT", nargs="+", help="the prompt (several words are joined by opencode)")
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
    completion = add("completion", cmd_completion, "print a shell completion script: "
                                                   "eval \"$(boocoder-bridge completion bash)\"")
    completion.add_argument("shell", choices=SHELLS, help="the shell: " + ", ".join(SHELLS))
    return parser


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
    args = parser.parse_args(argv)
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
