"""Model IDs as people type them (issue 21): a name that differs from the host's only in Unicode normalization
(NFC vs NFD) is that model when exactly one listed name matches; with several, the message says the forms
differ. The one rule is ids.Spellings; these check it wherever an ID is compared: the resolver, the typo check,
favorites and the catalog, against a real HTTP host and the CLI as a real process."""

from __future__ import annotations

import unicodedata

import pytest

from boocoder_bridge import Bridge
from tests.fakehost import llama_swap_body
from tests.helpers import llama_swap, registry_data, run_process

NFC = unicodedata.normalize("NFC", "café-7b")
NFD = unicodedata.normalize("NFD", "café-7b")
# Three forms of one letter: composed, decomposed, and half-composed (ê + combining dot below).
E_NFC = unicodedata.normalize("NFC", "\u1ec7-1b")
E_NFD = unicodedata.normalize("NFD", E_NFC)
E_HALF = "\u00ea\u0323-1b"


def test_the_forms_really_differ() -> None:
    assert NFC != NFD and len({E_NFC, E_NFD, E_HALF}) == 3
    assert len({unicodedata.normalize("NFC", s) for s in (E_NFC, E_NFD, E_HALF)}) == 1


def test_spellings_rule() -> None:
    from boocoder_bridge.ids import Spellings

    listed = Spellings([NFD, "plain", E_NFD, E_HALF])
    assert listed.exact("plain") == "plain" and listed.exact(NFD) == NFD
    assert listed.exact(NFC) == NFD  # exactly one other form: that one
    assert listed.exact(E_NFC) is None and sorted(listed.forms(E_NFC)) == sorted([E_NFD, E_HALF])
    assert listed.exact(E_NFD) == E_NFD  # listed as typed wins over its other forms
    assert listed.exact("nope") is None and listed.forms("nope") == []


@pytest.fixture
def registry(hosts, write_registry):
    host = hosts(models_body=llama_swap_body(NFD, "plain", E_NFD, E_HALF, contexts={NFD: 8192}))
    return write_registry(registry_data({"pa": llama_swap(host.url)}))


def cli(registry, *argv: str):
    return run_process("--registry", str(registry), *argv)


def test_resolve_and_run_checks_take_the_composed_form_as_the_hosts_name(registry) -> None:
    """Typed composed, the host's decomposed name was refused with "did you mean pa/café-7b?", which looks
    exactly like what was typed."""
    result = cli(registry, "resolve", f"pa/{NFC}", "--json")
    assert result.code == 0, result.err
    route = result.json()
    assert route["model"] == NFD and route["id"] == f"pa/{NFD}" and route["context_window"] == 8192
    assert route["upstream_model"] == NFD  # what the host is asked for is its own name
    assert Bridge.load(registry).check_model(f"pa/{NFC}") is None  # run/arena refuse nothing either


def test_several_other_forms_are_said_to_differ_not_guessed(registry) -> None:
    result = cli(registry, "resolve", f"pa/{E_NFC}")
    assert result.code == 2
    line = result.err.strip()
    assert "only in their Unicode form" in line and ascii(E_NFD) in line and ascii(E_HALF) in line, line
    assert "did you mean" not in line and len(result.err.splitlines()) == 1


def test_favorites_store_show_and_remove_the_hosts_form(registry, isolated) -> None:
    assert cli(registry, "models").code == 0  # the host's list is cached: storing a favorite never asks a host
    added = cli(registry, "favorites", "add", f"pa/{NFC}")
    assert added.code == 0 and added.out == f"added pa/{NFD}\n", (added.out, added.err)
    assert "stays hidden" not in added.err
    catalog = cli(registry, "models", "--json").json()
    assert [m["id"] for m in catalog["favorites"]] == [f"pa/{NFD}"]
    removed = cli(registry, "favorites", "remove", f"pa/{NFC}")  # typed composed again: the stored one goes
    assert removed.out == f"removed pa/{NFD}\n"
    assert Bridge.load(registry).favorites.list() == []


def test_a_favorite_stored_in_the_other_form_shows_and_is_not_hidden(registry, isolated) -> None:
    """Stored composed (by an older version, or before the host moved to a Mac): "favorites add" stored a
    favorite that never showed."""
    Bridge.load(registry).favorites.add(f"pa/{NFC}")  # stored as typed, without asking anyone
    catalog = cli(registry, "models", "--json").json()
    assert [m["id"] for m in catalog["favorites"]] == [f"pa/{NFD}"]
    group = next(g for g in catalog["providers"] if g["id"] == "pa")
    assert [m["model"] for m in group["models"] if m["favorite"]] == [NFD]
    listed = cli(registry, "favorites", "list", "--json").json()
    assert listed == {"favorites": [f"pa/{NFC}"], "hidden": {}}


def test_a_name_that_only_looks_the_same_says_so(hosts, write_registry) -> None:
    """A compatibility character (the 'fi' ligature) looks like what was typed: a "did you mean" would show
    two identical-looking IDs, so the message shows the code points."""
    host = hosts(models_body=llama_swap_body("\ufb01ne-3b"))
    registry = write_registry(registry_data({"pa": llama_swap(host.url)}))
    result = cli(registry, "resolve", "pa/fine-3b")
    assert result.code == 2 and "did you mean" not in result.err
    assert ascii("\ufb01ne-3b") in result.err and "looks the same" in result.err, result.err
