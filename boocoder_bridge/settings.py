"""Every environment variable, default and state-dir file name the bridge knows, in one place.

Why one module: a reader (or a packager) can see at a glance what the bridge reads from the environment and
which files it keeps, and no two modules can disagree about a name. Like httpx's ``_config.py``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pathlib loads when a path is built: TAB completion does without it
    from pathlib import Path

# --- environment variables ------------------------------------------------------------------------------
REGISTRY_ENV = "BOOCODER_BRIDGE_REGISTRY"  # the registry file, when --registry is not given
STATE_DIR_ENV = "BOOCODER_BRIDGE_STATE_DIR"  # cache, favorites, generated config
CACHE_TTL_ENV = "BOOCODER_BRIDGE_CACHE_TTL"  # seconds a discovery answer is served from the cache
OPENCODE_ENV = "BOOCODER_BRIDGE_OPENCODE"  # the opencode binary, when --opencode is not given
OPENCODE_CONTENT_ENV = "OPENCODE_CONFIG_CONTENT"  # opencode's own: config text loaded over every config file
TOKEN_ENV = "BOOCODER_BRIDGE_TOKEN"  # bearer token `serve` requires off loopback
NO_ENTRY_POINTS_ENV = "BOOCODER_BRIDGE_NO_ENTRY_POINTS"  # set: load no third-party plugins
OPENCODE_TUI_ENV = "BOOCODER_BRIDGE_OPENCODE_TUI"  # "0"/"off"/"false"/"no": leave opencode's TUI model.json alone
LLAMA_SERVER_ENV = "BOOCODER_BRIDGE_LLAMA_SERVER"  # demo: a llama-server with router mode, for its swapping host
TEST_CACHE_ENV = "BOOCODER_BRIDGE_TEST_CACHE"  # the tests' download cache (where the demo also finds that build)
LEGACY_URL_ENV = "LLAMA_SWAP_URL"  # pre-bridge installs: the one llama-swap host
LEGACY_DEEPSEEK_KEY_ENV = "DEEPSEEK_API_KEY"  # pre-bridge installs: enables the DeepSeek provider

# --- defaults -------------------------------------------------------------------------------------------
DEFAULT_TTL_S = 30.0
# A provider's defaults (registry keys of the same name; the registry's models own their shape).
DEFAULT_TIMEOUT_S = 2.0  # timeout_s: discovery's deadline for one host
DEFAULT_REFRESH_S = 15.0  # refresh_s: `serve` re-discovers a provider this often (with jitter)
DEFAULT_REQUEST_TIMEOUT_S = 300.0  # request_timeout_s: opencode's wait for one model request
MAX_TTL_S = 366 * 86400.0
CACHE_CHECK_INTERVAL_S = 0.5  # how often a long-lived Bridge looks whether another process rewrote the cache
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ENTRY_POINT_GROUP = "boocoder_bridge"

# --- a host that goes away during a task (probe.py; docs/reliability.md "When a host goes away") ---------------
PROBE_TIMEOUT_S = 1.0  # a provider's probe_timeout_s default: a LAN host answers its cheap GET within 1 ms
WATCH_INTERVAL_S = 1.0  # while opencode runs, the host is probed this often
WATCH_MISSES = 2  # probes in a row left unanswered before the host counts as gone (one refusal is enough)
STOP_GRACE_S = 2.0  # opencode's process group gets SIGTERM, then SIGKILL after this long
APP_DIR_NAME = "boocoder-bridge"

# --- what one host may cost (docs/reliability.md); every limit is reported when it cuts -----------------------
MAX_BODY_BYTES = 16 * 1024 * 1024  # decoded bytes of one answer, counted chunk by chunk while inflating
MAX_CONTENT_ENCODINGS = 2  # layers of Content-Encoding decoded ("gzip, gzip"); more is an error
MAX_REDIRECTS = 3  # same-origin redirects followed per request
MAX_HEAD_BYTES = 64 * 1024  # a host's response head (status line and headers) during discovery
MAX_HOST_MODELS = 50_000  # /v1/models entries kept per host; the rest are cut (the perf benchmark lists 50,000)
MAX_JSON_CONTAINERS = 1_000_000  # objects and lists in one answer (50,000 real entries hold ~250,000)
PROPS_LOOKUPS = 32  # /upstream/<model>/props lookups per provider and discovery (loaded models only)
PROPS_CONCURRENCY = 4  # of those, at once per provider: at most the host's pool (CONNECTIONS_PER_HOST)
MAX_TOKENS = 1 << 30  # a context window or max output above this is junk and read as unknown
MAX_NAME_CHARS = 256  # display names from a host are cut to this
MAX_REASON_CHARS = 300  # a provider's one-line error or note is cut to this

# --- what one `serve` client may cost --------------------------------------------------------------------
# A client that stops reading holds at most about 2 x SERVE_SEND_BUFFER_BYTES in the kernel (Linux doubles it)
# plus EVENT_CHUNK_BYTES and the transport's 64 KiB high-water mark in the process, about 448 KiB, and is
# dropped after SERVE_STALL_DROP_S without progress.
SERVE_SEND_BUFFER_BYTES = 128 << 10  # each connection's socket send buffer (SO_SNDBUF; no autotuning to 4 MB)
SERVE_STALL_DROP_S = 10.0  # a connection whose sent data is not taken for this long is dropped (TCP_USER_TIMEOUT)
EVENT_CHUNK_BYTES = 128 << 10  # an event is written in pieces this big: a stalled client holds one, not a copy

# --- limits on input files (docs/reliability.md) -----------------------------------------------------------
MAX_REGISTRY_BYTES = 1 << 20  # a real registry is a few KB
MAX_REGISTRY_DEPTH = 32  # a real registry nests 6 levels; deeper JSON is refused before any check walks it
MAX_CACHE_BYTES = 256 << 20  # the discovery cache: MAX_HOST_MODELS per provider is ~15 MB; more is not ours

# --- limits on HTTP API requests (POST /api/dispatch, /api/arena) ------------------------------------------------
MAX_ID_CHARS = 4096  # a model ID in a request; longer is refused before it is parsed (ids.py refuses over 512)
MAX_PROMPT_PARTS = 256  # prompt words of one dispatch (each is one argv entry)
MAX_PROMPT_PART_CHARS = 128 * 1024  # Linux refuses a single argv entry over 128 KiB (MAX_ARG_STRLEN)
MAX_CONTENT_CHARS = 128 * 1024  # a client's OPENCODE_CONFIG_CONTENT: what one environment variable can hold
MAX_CONTESTANTS = 16  # arena contestants per match (each is an opencode process)
MAX_REQUEST_BYTES = 4 << 20  # a request body: Linux starts no program with more than about 2 MiB of argv and env

# --- files in the state dir -----------------------------------------------------------------------------
CACHE_FILE = "discovery-cache.json"
FAVORITES_FILE = "favorites.sqlite3"
OPENCODE_CONFIG_FILE = "opencode.json"
OPENCODE_TUI_BASE_FILE = "opencode-tui-favorites.json"  # the fleet favorites mirrored last into model.json
OPENCODE_TUI_LOCK_FILE = "opencode-tui.lock"
COMPLETION_FILE = "completion-ids.txt"  # the model IDs TAB completion offers, written with the cache
MAX_COMPLETION_BYTES = 64 << 20  # MAX_HOST_MODELS IDs per provider; a bigger file is not ours

# What a route is for (``resolve --purpose``). Here, not in routing.py, so the CLI's parser (and TAB completion)
# is built without pydantic; every purpose routes the same.
PURPOSES: tuple[str, ...] = ("dispatch", "arena", "compaction", "task", "context")

# --- tunables of one module each (kept here so every default is in one place) -----------------------------
# discovery.py: one connection pool per host, not one for the fleet: httpx's shared pool holds 100 connections
# (the 101st host waits, spending its own deadline), and httpcore scans every connection of a pool on each
# request, so one pool for 256 hosts costs seconds of CPU. A host's own pool also bounds its concurrent requests.
CONNECTIONS_PER_HOST = 4

# web/live.py: serve's live catalog
STARTUP_WAIT_S = 3.0  # serve starts answering after the first round, or this long at most
JITTER = 0.1  # every wait is stretched or shrunk by up to 10 %
RETRY_FIRST_S = 0.5  # a provider that is down is asked again after 0.5, 1, 2, 4 s ...
RETRY_MAX_S = 4.0  # ... but never less often than this (or its refresh_s, if shorter)
WATCH_RETRY_MAX_S = 10.0  # a push channel that dropped is reopened with backoff up to this
FAVORITES_CHECK_S = 0.5  # how often the favorites file is looked at (a stat call)
FAVORITES_REREAD_S = 5.0  # and read in full even if it looks unchanged (coarse file timestamps)
PUSH_REBUILD_S = 0.1  # push messages rebuild the catalog at most this often: a chatty host cannot hog the loop
PUSH_MESSAGES_PER_S = 20  # a push channel is read at most this fast; a flood waits in the host's socket
ROUND_MIN_S = 1.0  # a provider is discovered (and its answer written to the cache) at most once per this long
KEEPALIVE_S = 15.0  # an idle event stream sends a comment this often
CLIENT_RETRY_MS = 2000  # the reconnect delay the stream asks EventSource clients to use
REGISTRY_CHECK_S = 1.0  # how often serve looks at its registry file (a stat call: inode, mtime, size)
REGISTRY_REREAD_S = 10.0  # and reads it in full even if it looks unchanged (coarse file timestamps)
# serve probes the host of each dispatch plan's provider (every WATCH_INTERVAL_S) this long, renewed by each new
# plan for that provider; a host found gone is pushed as offline on GET /api/events (live.py)
DISPATCH_LEASE_S = 600.0  # serve probes the host of a provider it handed a dispatch plan for this long after it

# web/app.py
HOST_LANE_THREADS = 8  # threads for requests that may ask hosts; the rest of the server never waits for them

# opencode/config.py: the limits policy (plan_limit)
DEFAULT_OUTPUT_SHARE = 4  # output budget: a quarter of the window
MAX_OUTPUT_SHARE = 2  # a configured max_output is clamped to half the window
DEFAULT_HEADROOM_SHARE = 8  # headroom: an eighth of the window ...
DEFAULT_HEADROOM_CAP = 8192  # ... at most 8k tokens


def environ(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """The environment to read: the one given (tests, embedding hosts), else the process's."""
    return os.environ if env is None else env


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$BOOCODER_BRIDGE_STATE_DIR``, else the user's data dir (XDG on Linux)."""
    from pathlib import Path

    env = environ(env)
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR_NAME
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / APP_DIR_NAME
    return Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / APP_DIR_NAME


def cache_ttl(text: str, where: str) -> float:
    """``--cache-ttl`` or ``$BOOCODER_BRIDGE_CACHE_TTL`` as seconds: 0 (always ask) up to a year."""
    from .errors import BridgeError

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_TTL_S:  # also false for NaN
        raise BridgeError(f"{where} {text[:40]!r} is not a number of seconds; give 0 to {MAX_TTL_S:.0f}, e.g. 30")
    return value
