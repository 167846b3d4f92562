"""Does a model ID name something a host lists? The rule that turns typos into "did you mean" instead of
a route to nowhere (which opencode would only answer with "Unexpected server error").

- An ID is checked against its provider's last known model list (aliases included), its registry ``models``
  and ``bare_ids``. A provider whose list is unknown (never answered) cannot be checked: no verdict.
- Not listed, read as ``provider/model``: "P does not list M", with the closest listed names as suggestions.
- Not listed, read as a legacy bare ID that has a ``/`` (``nosuchprov/x``, ``DESK/m``): it looks like a
  provider typo, so the suggestion is the closest provider (case-insensitive match first).

Callers decide what a verdict means: ``run``, ``arena`` and ``resolve`` refuse (nothing could work);
``favorites add`` refuses only the provider-typo case and otherwise warns (a favorite may wait for its model).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .hostdata import ProviderReport
from .ids import ModelRef
from .registry import Registry


@dataclass(frozen=True)
class Verdict:
    """``problem`` is one line; ``suggestions`` are full IDs to try; ``provider_typo`` marks the legacy case."""

    problem: str
    suggestions: tuple[str, ...]
    provider_typo: bool

    def message(self) -> str:
        if not self.suggestions:
            return self.problem
        return f"{self.problem}; did you mean {' or '.join(self.suggestions)}?"


def _closest(word: str, choices: Iterable[str], n: int = 2) -> list[str]:
    choices = list(choices)
    exact = [c for c in choices if c.lower() == word.lower()]
    return exact[:1] or difflib.get_close_matches(word, choices, n=n, cutoff=0.6)


def check(registry: Registry, reports: Mapping[str, ProviderReport], text: str,
          parsed: tuple[ModelRef, bool] | None = None) -> Verdict | None:
    """None when the ID is listed, or when nobody can tell (the provider never answered). ``parsed``: the ID
    already parsed (``registry.parse_model_id(text)``, as a route holds it), so it is not parsed twice."""
    ref, legacy = parsed or registry.parse_model_id(text)
    provider = registry.providers[ref.provider]
    report = reports.get(ref.provider)
    if report is None or not report.available:
        return None
    listed = {m.id for m in report.models} | set(provider.models) | set(provider.bare_ids)
    if ref.model in listed:
        return None
    head, slash, rest = text.partition("/")
    if legacy and slash and ref.model == text:  # not the old `llama-swap/<model>` namespace: a whole legacy ID
        guesses = _closest(head, registry.providers)
        problem = (f"{head!r} is not a provider ({', '.join(sorted(registry.providers))}), and "
                   f"{ref.provider} does not list {text!r}")
        return Verdict(problem, tuple(f"{g}/{rest}" for g in guesses), provider_typo=True)
    guesses = _closest(ref.model, sorted(listed), n=1)
    return Verdict(f"{ref.provider} does not list model {ref.model!r}",
                   tuple(f"{ref.provider}/{g}" for g in guesses), provider_typo=False)
