"""constraints.txt pins every package the test command installs: a dependency added to pyproject.toml without a
pin would make next year's install differ from today's."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("test", "server", "demo")


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def installed() -> dict[str, metadata.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}


def installed_closure(dists: dict[str, metadata.Distribution]) -> set[str]:
    """Every distribution that boocoder-bridge[test,server,demo] needs, from the installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name("boocoder-bridge"), set(EXTRAS))]
    while todo:
        name, extras = todo.pop()
        for text in dists[name].requires or []:
            requirement = Requirement(text)
            wanted = [{"extra": e} for e in extras] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in wanted):
                continue
            dependency = canonicalize_name(requirement.name)
            key = (dependency, frozenset(requirement.extras))
            if key in seen:
                continue
            seen.add(key)
            todo.append((dependency, set(requirement.extras)))
    return {name for name, _ in seen}


def test_every_installed_test_dependency_is_pinned() -> None:
    pins = pinned()
    missing = sorted(installed_closure(installed()) - set(pins))
    assert missing == [], f"add to constraints.txt (pip freeze of a green venv): {missing}"


def test_pins_match_what_is_installed() -> None:
    """The suite runs on the pinned versions (else the pins are not what was tested)."""
    pins, dists = pinned(), installed()
    needed = installed_closure(dists)
    wrong = {name: (version, dists[name].version) for name, version in pins.items()
             if name in needed and dists[name].version != version}
    assert wrong == {}, f"installed versions differ from constraints.txt (pinned, installed): {wrong}"
