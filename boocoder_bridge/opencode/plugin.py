"""The user's own opencode on the fleet: a plugin file that fills opencode's config from the bridge at each start.

Why a plugin, not a written config: opencode never reads ``/v1/models`` for a config provider, so a written
``opencode.json`` is only as current as the last ``generate``. opencode 1.18.33 loads every ``*.js`` in
``$XDG_CONFIG_HOME/opencode/plugins/`` (default ``~/.config/opencode/plugins/``) and calls each plugin's
``config`` hook with the merged config before the TUI or ``opencode run`` use it. The plugin runs
``boocoder-bridge generate`` there, so new hosts and models appear at the next start, and the user's own config
files are never rewritten: installing writes one file of ours, uninstalling removes it.

What the hook does, in memory only:

- adds the fleet's providers (the fleet wins over a same-named provider, as when the bridge dispatches);
- fills each ``apiKey`` that is exactly ``{env:NAME}`` from opencode's environment (opencode substitutes
  ``{env:}`` in config text, not in what a plugin sets), so no secret is ever in a file;
- names a fleet model as ``model`` when the user's config names none: the first bridge favorite that the fleet
  lists, else the first model of the first provider;
- and, since ``generate`` mirrors the bridge's favorites into the TUI's ``model.json``, the picker's Favorites
  are the bridge's (``favorites add`` mirrors at once too).

If the bridge cannot answer (not installed, a broken registry), opencode starts as if the plugin were absent,
with one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import BridgeError
from ..files import atomic_write, read_capped
from ..settings import REGISTRY_ENV, STATE_DIR_ENV

FILE_NAME = "boocoder-bridge.js"
MARKER = "// boocoder-bridge opencode plugin"  # the first line: a file without it is not ours to replace or remove
MAX_PLUGIN_BYTES = 1 << 20
TIMEOUT_MS = 60_000  # generate asks every host (each bounded by its timeout_s); a hung bridge must not hang opencode

_TEMPLATE = """{marker}: written by `boocoder-bridge opencode-plugin install`; remove it with
// `boocoder-bridge opencode-plugin uninstall`. At each start of opencode it adds the fleet's providers (from
// `boocoder-bridge generate`) and, when your config names no model, a fleet model as the default.
import {{ execFileSync }} from "node:child_process";

const COMMAND = {command};
const ENV = {env};
const TIMEOUT_MS = {timeout};
const OWN_KEY = /^\\{{env:([A-Za-z_][A-Za-z0-9_]*)\\}}$/;

function bridge(...args) {{
  const out = execFileSync(COMMAND[0], [...COMMAND.slice(1), ...args], {{
    env: {{ ...process.env, ...ENV }}, timeout: TIMEOUT_MS, maxBuffer: 512 * 1024 * 1024,
    stdio: ["ignore", "pipe", "pipe"],
  }});
  return JSON.parse(out.toString("utf8"));
}}

function listed(providers, id) {{
  const slash = id.indexOf("/");
  return slash > 0 && Boolean(providers[id.slice(0, slash)]?.models?.[id.slice(slash + 1)]);
}}

export const BoocoderBridge = async () => ({{
  config: async (config) => {{
    let providers, favorites;
    try {{
      providers = bridge("generate").provider ?? {{}};
      favorites = bridge("favorites", "list", "--json").favorites ?? [];
    }} catch (error) {{
      const why = String(error?.stderr || error?.message || error).trim().split("\\n").pop();
      console.error(`boocoder-bridge opencode plugin: fleet not loaded: ${{why}}`);
      return;
    }}
    for (const entry of Object.values(providers)) {{
      const key = entry?.options?.apiKey;
      const name = typeof key === "string" ? OWN_KEY.exec(key)?.[1] : undefined;
      if (name !== undefined) entry.options.apiKey = process.env[name] ?? "";
    }}
    config.provider = {{ ...(config.provider ?? {{}}), ...providers }};
    if (!config.model) {{
      const first = Object.entries(providers)
        .flatMap(([p, e]) => Object.keys(e?.models ?? {{}}).map((m) => `${{p}}/${{m}}`));
      const model = favorites.find((id) => listed(providers, id)) ?? first[0];
      if (model) config.model = model;
    }}
  }},
}});
"""


@dataclass(frozen=True)
class Change:
    """What ``install`` or ``uninstall`` did (or, with ``dry_run``, would do)."""

    path: Path
    action: str  # "write", "unchanged", "remove", "absent"
    text: str | None = None  # the plugin's text, for a write

    def message(self, dry_run: bool) -> str:
        verb = {"write": ("would write", "wrote"), "remove": ("would remove", "removed")}.get(self.action)
        if verb is None:
            return f"{self.path} {'is already current' if self.action == 'unchanged' else 'is not there'}"
        return f"{verb[0] if dry_run else verb[1]} {self.path}"


def plugin_path(env: Mapping[str, str]) -> Path:
    """Where opencode looks for global plugins: ``$XDG_CONFIG_HOME/opencode/plugins/``, else under ``~/.config``."""
    home = Path(env.get("HOME") or Path.home())
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "opencode" / "plugins" / FILE_NAME


def render(command: list[str], env: Mapping[str, str]) -> str:
    """The plugin's text: ``command`` runs the bridge; ``env`` holds only paths (registry, state dir), never a
    secret. JSON is valid JavaScript, so both are written as JSON."""
    return _TEMPLATE.format(marker=MARKER, command=json.dumps(command), env=json.dumps(dict(env), indent=2),
                            timeout=TIMEOUT_MS)


def bridge_command() -> list[str]:
    """This Python and this package: what opencode runs, whatever its PATH holds."""
    return [sys.executable, "-m", "boocoder_bridge"]


def fixed_env(registry: str | None, state_dir: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """The registry and state dir in force now, as absolute paths, so opencode uses the same fleet from any
    terminal. Left out when unset: then the plugin uses opencode's environment (and the legacy variables)."""
    fixed = {}
    for name, given in ((REGISTRY_ENV, registry), (STATE_DIR_ENV, state_dir)):
        value = given or env.get(name)
        if value:
            fixed[name] = str(Path(value).absolute())
    return fixed


def _ours(path: Path) -> str | None:
    """The file's text when it exists; refuses a file that is not ours."""
    try:
        text = read_capped(path, MAX_PLUGIN_BYTES).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BridgeError(f"{path}: cannot read it ({exc}); fix: move it away, then run this again") from None
    if not text.startswith(MARKER):
        raise BridgeError(f"{path}: not written by boocoder-bridge, left as it is; fix: move it away, then run "
                          "this again")
    return text


def install(env: Mapping[str, str], registry: str | None = None, state_dir: str | None = None,
            dry_run: bool = False) -> Change:
    path = plugin_path(env)
    text = render(bridge_command(), fixed_env(registry, state_dir, env))
    if _ours(path) == text:
        return Change(path, "unchanged", text)
    if not dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
    return Change(path, "write", text)


def uninstall(env: Mapping[str, str], dry_run: bool = False) -> Change:
    path = plugin_path(env)
    if _ours(path) is None:
        return Change(path, "absent")
    if not dry_run:
        os.unlink(path)
    return Change(path, "remove")
