"""Composite model IDs: ``provider/model``, split at the first ``/``.

The model part is whatever the host calls the model, so it may itself hold ``/`` and ``:``
(``sam-desktop/unsloth/Qwen3:Q4_K_M``). Which strings are legacy bare IDs depends on the registry,
so that decision lives in :meth:`boocoder_bridge.registry.Registry.parse_model_id`.

Names as people type them: ``café`` may come composed (NFC, one code point for é) or decomposed (NFD, e then a
combining accent, as macOS file names are). They look the same and compare different. The one rule, used
wherever an ID is compared (favorites, the typo check, the catalog, the resolver): a name that is not listed as
typed stands for the listed name that differs from it only in Unicode normalization, when exactly one does
(:class:`Spellings`); with several, nothing is guessed and the message says the forms differ.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
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


def same_letters(text: str) -> str:
    """The form two names are compared in when they differ as typed (NFC)."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


class Spellings:
    """The names one place lists (a host's models, the stored favorites), looked up by the rule above. The
    index by normalized form is built on the first miss only: a name listed as typed costs one lookup."""

    def __init__(self, listed: Iterable[str]) -> None:
        self._listed: Collection[str] = listed if isinstance(listed, (set, frozenset, dict)) else set(listed)
        self._index: dict[str, list[str]] | None = None

    def forms(self, name: str) -> list[str]:
        """The listed names that differ from ``name`` only in Unicode normalization (``name`` itself not)."""
        if self._index is None:
            self._index = {}
            for listed in self._listed:
                self._index.setdefault(same_letters(listed), []).append(listed)
        return [n for n in self._index.get(same_letters(name), ()) if n != name]

    def exact(self, name: str) -> str | None:
        """``name`` when listed; else the one listed name in another normalization form; else None."""
        if name in self._listed:
            return name
        forms = self.forms(name)
        return forms[0] if len(forms) == 1 else None


def exact_spelling(name: str, listed: Iterable[str]) -> str | None:
    """:meth:`Spellings.exact` for one lookup."""
    return Spellings(listed).exact(name)


def show_form(text: str) -> str:
    """A name with its non-ASCII code points escaped, so two forms that look alike are told apart."""
    return ascii(text)
