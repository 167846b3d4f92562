"""boocoder-bridge: lets BooCoder and BooChat use a fleet of model servers through composite IDs.

This is the public API: what the host, the CLI, the server and plugins (the built-in ones too) import. A name
not listed in ``__all__`` is internal and may move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bridge import Bridge, Compaction
    from .catalog import Catalog, CatalogGroup, CatalogModel
    from .discovery import HostClient
    from .errors import (
        BridgeError,
        HostError,
        HostLostError,
        ModelIdError,
        OpencodeNotFoundError,
        OpencodeTimeoutError,
        PluginError,
        ProviderOfflineError,
        ProviderUnavailableError,
        Refused,
        RegistryError,
        ServeError,
        StateError,
    )
    from .hookspecs import hookimpl
    from .ids import ModelRef
    from .kinds import ModelState, ProviderKind, PushUnsupported
    from .opencode.runner import Answer, ArenaMatch, Dispatch
    from .probe import Watch
    from .registry import Provider, Registry
    from .reports import HostModel, ProviderReport, load_json, parse_model_list, positive_int, safe_text
    from .routing import Route
    from .settings import PROPS_CONCURRENCY, PROPS_LOOKUPS
    from .sse import read_events

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
    "HostLostError",
    "HostModel",
    "ModelIdError",
    "ModelRef",
    "ModelState",
    "OpencodeNotFoundError",
    "OpencodeTimeoutError",
    "PluginError",
    "Provider",
    "ProviderKind",
    "ProviderOfflineError",
    "ProviderReport",
    "ProviderUnavailableError",
    "PushUnsupported",
    "Refused",
    "Registry",
    "RegistryError",
    "Route",
    "ServeError",
    "StateError",
    "Watch",
    "__version__",
    "hookimpl",
    "load_json",
    "parse_model_list",
    "positive_int",
    "read_events",
    "safe_text",
]


# Every public name loads on first use (issue 22): the CLI's entry point imports this package, and TAB completion
# must not pay for pydantic, httpx or pluggy. Name -> the module that owns it.
_LAZY = {
    **dict.fromkeys(("Bridge", "Compaction"), "bridge"),
    **dict.fromkeys(("Catalog", "CatalogGroup", "CatalogModel"), "catalog"),
    "HostClient": "discovery",
    "Watch": "probe",
    **dict.fromkeys(("Answer", "ArenaMatch", "Dispatch"), "opencode.runner"),
    **dict.fromkeys(("BridgeError", "HostError", "HostLostError", "ModelIdError", "OpencodeNotFoundError",
                     "OpencodeTimeoutError", "PluginError", "ProviderOfflineError", "ProviderUnavailableError",
                     "Refused", "RegistryError", "ServeError", "StateError"), "errors"),
    "hookimpl": "hookspecs",
    **dict.fromkeys(("HostModel", "ProviderReport", "load_json", "parse_model_list", "positive_int", "safe_text"),
                    "reports"),
    "ModelRef": "ids",
    **dict.fromkeys(("ModelState", "ProviderKind", "PushUnsupported"), "kinds"),
    **dict.fromkeys(("Provider", "Registry"), "registry"),
    "Route": "routing",
    "read_events": "sse",
    **dict.fromkeys(("PROPS_CONCURRENCY", "PROPS_LOOKUPS"), "settings"),  # the bounds a kind's extra lookups keep
}


def __getattr__(name: str) -> Any:
    """A public name loads its module on first use: ``Bridge`` brings pydantic and pluggy, ``HostClient`` httpx,
    the dispatch types subprocess and threads; TAB completion needs none of them."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
