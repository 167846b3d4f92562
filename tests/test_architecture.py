"""The exception tree (every error has an exit code and an HTTP status) and the maps of the package tell the truth."""

from __future__ import annotations

import re

import boocoder_bridge
from boocoder_bridge import errors


def _classes() -> list[type[errors.BridgeError]]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.BridgeError)]


def test_the_drawn_tree_matches_the_classes() -> None:
    drawn = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"── (\w+)\b.*?exit (\d+)\s+HTTP (\d+)",
                                                                 errors.__doc__ or "")}
    assert drawn == {c.__name__: (c.exit_code, c.http_status) for c in _classes()}
    for cls in _classes():  # a class is drawn under its parent
        doc = errors.__doc__ or ""
        parent = cls.__mro__[1].__name__
        assert cls is errors.BridgeError or doc.index(parent) < doc.index(cls.__name__)


def test_every_error_is_public_and_host_error_is_a_bridge_error() -> None:
    assert {c.__name__ for c in _classes()} <= set(boocoder_bridge.__all__)
    error = boocoder_bridge.HostError("offline", "cannot connect")
    assert isinstance(error, boocoder_bridge.BridgeError) and (error.status, error.reason) == ("offline",
                                                                                             "cannot connect")


def test_architecture_md_names_every_module() -> None:
    """ARCHITECTURE.md is the map of the package: a module it does not name is a room missing from the map."""
    from pathlib import Path

    package = Path(boocoder_bridge.__file__).parent
    text = (package.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = [p.name for p in package.glob("*.py") if p.name != "__main__.py"]
    modules += [p.stem for p in (package / "default_plugins").glob("*.py") if p.stem != "__init__"]
    modules += [p.name + "/" for p in package.iterdir() if (p / "__init__.py").is_file()]
    assert [m for m in modules if m not in text] == []
