"""boocoder-bridge: lets BooCoder and BooChat use a fleet of model servers through composite IDs."""

from .bridge import Bridge
from .errors import (
    BridgeError,
    ModelIdError,
    PluginError,
    ProviderUnavailableError,
    Refused,
    RegistryError,
    StateError,
)
from .hookspecs import hookimpl
from .ids import ModelRef
from .kinds import ProviderKind
from .routing import Route

__version__ = "0.1.0"
__all__ = [
    "Bridge",
    "BridgeError",
    "ModelIdError",
    "ModelRef",
    "PluginError",
    "ProviderKind",
    "ProviderUnavailableError",
    "Refused",
    "RegistryError",
    "Route",
    "StateError",
    "__version__",
    "hookimpl",
]
