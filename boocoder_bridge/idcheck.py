"""Does a model ID name something a host lists? The rule that turns typos into "did you mean" instead of
a route to nowhere (which opencode would only answer with "Unexpected server error").

- An ID is checked against its provider's last known model list (aliases included), its registry ``models``
  and ``bare_ids``. A provider whose list is unknown (never answered) cannot be checked: no verdict.
- Not listed, read as ``provider/model``: "P does not list M", with the closest listed names as suggestions.
- Listed only in another Unicode normalization form (NFC vs NFD): exactly one such name is that model (the
  rule of :class:`boocoder_bridge.ids.Spellings`), so no verdict, and :func:`spelled` gives the host's form;
  several: the message says the forms differ, with their code points, never a "did you mean" that looks
  exactly like what was typed.
- Not listed, read as a legacy bare ID that has a ``/`` (``nosuchprov/x``, ``DESK/m``): it looks like a
  provider typo, so the suggestion is the closest provider (case-insensitive match first).

Callers decide what a verdict means: ``run``, ``arena`` and ``resolve`` refuse (nothing could work);
``favorites add`` refuses only the provider-typo case and otherwise warns (a favorite may wait for its model).
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .ids import ModelRef, Spellings, show_form
from .registry import Registry
from .reports import ProviderReport


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


MEMO_REPORTS = 8  # host lists kept as sets; a report is replaced, never changed, so its identity is the key
_host_ids: dict[int, tuple[ProviderReport, object, frozenset[str]]] = {}


def _listed(registry: Registry, reports: Mapping[str, ProviderReport], ref: ModelRef) -> frozenset[str] | None:
    """What ``ref``'s provider lists, or None when nobody can tell (it never answered). Built once per report
    (50,000 models: 27 ms to build, then a lookup): ``serve`` checks every resolve and dispatch against the same
    few reports."""
    provider = registry.providers[ref.provider]
    report = reports.get(ref.provider)
    if report is None or not report.available:
        return None
    hit = _host_ids.get(id(report))
    if hit is None or hit[0] is not report or hit[1] is not provider:
        if len(_host_ids) >= MEMO_REPORTS:
            _host_ids.clear()
        listed = frozenset(m.id for m in report.models) | frozenset(provider.models) | frozenset(provider.bare_ids)
        hit = _host_ids[id(report)] = (report, provider, listed)
    return hit[2]


def spelled(registry: Registry, reports: Mapping[str, ProviderReport], text: str) -> str:
    """``text`` in composite form, its model named as the host lists it when only the Unicode form differs."""
    ref, _ = registry.parse_model_id(text)
    listed = _listed(registry, reports, ref)
    name = Spellings(listed).exact(ref.model) if listed else None
    return f"{ref.provider}/{name or ref.model}"


def _looks_the_same(a: str, b: str) -> bool:
    return unicodedata.normalize("NFKC", a) == unicodedata.normalize("NFKC", b)


def check(registry: Registry, reports: Mapping[str, ProviderReport], text: str,
          parsed: tuple[ModelRef, bool] | None = None) -> Verdict | None:
    """None when the ID is listed, or when nobody can tell (the provider never answered). ``parsed``: the ID
    already parsed (``registry.parse_model_id(text)``, as a route holds it), so it is not parsed twice."""
    ref, legacy = parsed or registry.parse_model_id(text)
    listed = _listed(registry, reports, ref)
    if listed is None or ref.model in listed:
        return None
    forms = Spellings(listed).forms(ref.model)
    if len(forms) == 1:
        return None  # the same name in another Unicode form: it resolves to the host's spelling
    if forms:
        return Verdict(f"{ref.provider} lists {len(forms)} models whose names differ from {show_form(ref.model)} "
                       f"only in their Unicode form ({', '.join(map(show_form, sorted(forms)))}); give the exact "
                       f"form, e.g. copied from `boocoder-bridge models --json`", (), provider_typo=False)
    head, slash, rest = text.partition("/")
    if legacy and slash and ref.model == text:  # not the old `llama-swap/<model>` namespace: a whole legacy ID
        guesses = _closest(head, registry.providers)
        problem = (f"{head!r} is not a provider ({', '.join(sorted(registry.providers))}), and "
                   f"{ref.provider} does not list {text!r}")
        return Verdict(problem, tuple(f"{g}/{rest}" for g in guesses), provider_typo=True)
    guesses = _closest(ref.model, sorted(listed), n=1)
    same = [g for g in guesses if _looks_the_same(g, ref.model)]
    if same:  # "did you mean X" with an X that looks exactly like the typed name would help nobody
        return Verdict(f"{ref.provider} does not list model {show_form(ref.model)}; it lists {show_form(same[0])}, "
                       f"which looks the same but is written with other Unicode characters; give that form",
                       (), provider_typo=False)
    return Verdict(f"{ref.provider} does not list model {ref.model!r}",
                   tuple(f"{ref.provider}/{g}" for g in guesses), provider_typo=False)
