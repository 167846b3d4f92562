"""boocoder-bridge: lets BooCoder and BooChat use a fleet of model servers through composite IDs.

This is the public API: what the host, the CLI, the server and plugins (the built-in ones too) import. A name
not listed in ``__all__`` is internal and may move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bridge import Bridge, Compaction
from .catalog import Catalog, CatalogGroup, CatalogModel
from .errors import (
    BridgeError,
    HostError,
    ModelIdError,
    OpencodeNotFoundError,
    OpencodeTimeoutError,
    PluginError,
    ProviderUnavailableError,
    Refused,
    RegistryError,
    ServeError,
    StateError,
)
from .hookspecs import hookimpl
from .hostdata import HostModel, ProviderReport, load_json, parse_model_list, positive_int, safe_text
from .ids import ModelRef
from .kinds import ModelState, ProviderKind, PushUnsupported
from .registry import Provider, Registry
from .routing import Route
from .settings import PROPS_CONCURRENCY, PROPS_LOOKUPS  # the bounds a kind's extra lookups keep (llama_swap)
from .sse import read_events

if TYPE_CHECKING:
    from .discovery import HostClient
    from .dispatch import Answer, ArenaMatch, Dispatch

__version__ = "0.1.0"
__all__ = [
    "PROPS_CONCURRENCY",
    "PROPS_LOOKUPS",
    "Answer",
    "ArenaMatch",
    "Bridge",
    "BridgeError",
    "Catalog",
    "CatalogGroup",
    "CatalogModel",
    "Compaction",
    "Dispatch",
    "HostClient",
    "HostError",
    "HostModel",
    "ModelIdError",
    "ModelRef",
    "ModelState",
    "OpencodeNotFoundError",
    "OpencodeTimeoutError",
    "PluginError",
    "Provider",
    "ProviderKind",
    "ProviderReport",
    "ProviderUnavailableError",
    "PushUnsupported",
    "Refused",
    "Registry",
    "RegistryError",
    "Route",
    "ServeError",
    "StateError",
    "__version__",
    "hookimpl",
    "load_json",
    "parse_model_list",
    "positive_int",
    "read_events",
    "safe_text",
]


_LAZY = {"HostClient": "discovery", "Answer": "dispatch", "ArenaMatch": "dispatch", "Dispatch": "dispatch"}


def __getattr__(name: str) -> Any:
    """Some names load on first use: ``HostClient`` brings httpx, the dispatch types bring subprocess and
    threads; commands served from the cache (a warm ``resolve``) need neither."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
