"""Composite model IDs: ``provider/model``, split at the first ``/``.

The model part is whatever the host calls the model, so it may itself hold ``/`` and ``:``
(``sam-desktop/unsloth/Qwen3:Q4_K_M``). Which strings are legacy bare IDs depends on the registry,
so that decision lives in :meth:`boocoder_bridge.registry.Registry.parse_model_id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ModelIdError

MAX_ID_LENGTH = 512
PROVIDER_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$(?!\n)"  # strict end in Python and ECMA-262 alike
_PROVIDER_ID = re.compile(PROVIDER_ID_PATTERN)


def check_id_text(text: object) -> str:
    """Reject what can never be a model ID, whatever the registry says."""
    if not isinstance(text, str) or not text:
        raise ModelIdError("model ID is empty; give provider/model, e.g. sam-desktop/qwen3-coder-30b")
    if len(text) > MAX_ID_LENGTH:
        raise ModelIdError(f"model ID is {len(text)} characters long; the limit is {MAX_ID_LENGTH}")
    # isprintable() is False for control, format and separator characters except the ASCII space.
    if " " in text or not text.isprintable():
        raise ModelIdError(f"model ID {text!r} contains whitespace or control characters; remove them")
    return text


def is_provider_id(text: str) -> bool:
    return _PROVIDER_ID.match(text) is not None


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model on one provider. ``str(ref)`` is the composite ID; ``ModelRef.parse(str(ref)) == ref``."""

    provider: str
    model: str

    def __post_init__(self) -> None:
        if not is_provider_id(self.provider):
            raise ModelIdError(
                f"provider ID {self.provider!r} is invalid; use lower-case letters, digits, '.', '_' or '-'"
            )
        if not self.model:
            raise ModelIdError(f"model ID {self.provider + '/'!r} has no model part; give provider/model")
        check_id_text(f"{self.provider}/{self.model}")

    @classmethod
    def checked(cls, provider: str, model: str) -> ModelRef:
        """A ref from parts already checked (a registered provider, and a whole ID that passed
        :func:`split_composite`): skips checking them again, which is most of a first resolve's cost."""
        ref = object.__new__(cls)
        object.__setattr__(ref, "provider", provider)
        object.__setattr__(ref, "model", model)
        return ref

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse a composite ID (no registry needed). Legacy bare IDs are not accepted here."""
        provider, model = split_composite(text)
        if not provider:
            raise ModelIdError(f"{text!r} is not a composite ID; give provider/model")
        return cls(provider, model)


def split_composite(text: str) -> tuple[str, str]:
    """Split at the first ``/`` after the syntax checks; ``("", text)`` when there is no ``/``."""
    check_id_text(text)
    head, slash, rest = text.partition("/")
    if not slash:
        return "", text
    if not head:
        raise ModelIdError(f"model ID {text!r} has no provider part; give provider/model")
    if not rest:
        raise ModelIdError(f"model ID {text!r} has no model part; give provider/model")
    return head, rest
