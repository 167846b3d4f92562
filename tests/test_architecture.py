"""The exception tree (every error has an exit code and an HTTP status) and the maps of the package tell the truth."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

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


def _lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    from pathlib import Path

    root = Path(boocoder_bridge.__file__).parent.parent
    binary = Path(sys.executable).with_name("lint-imports")  # import-linter's command, installed beside python
    return subprocess.run([str(binary), *args], capture_output=True, text=True, cwd=root, timeout=120)


def test_the_layers_of_architecture_md_hold() -> None:
    """The layer rule (a module imports only from its own layer or those below) is checked by import-linter's
    layers contract in pyproject.toml, whose layers are ARCHITECTURE.md's."""
    done = _lint_imports()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_the_layers_contract_catches_an_upward_import(tmp_path) -> None:
    """The same contract with two layers swapped (bridge.py below fleetstate.py, which it imports) is broken:
    the check above could fail."""
    import tomllib
    from pathlib import Path

    root = Path(boocoder_bridge.__file__).parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = config["contracts"][0]["layers"]
    high, low = layers.index("boocoder_bridge.bridge"), layers.index("boocoder_bridge.fleetstate")
    layers[high], layers[low] = layers[low], layers[high]
    lines = ["[importlinter]", f"root_package = {config['root_package']}", "exclude_type_checking_imports = True",
             "", "[importlinter:contract:layers]", "name = swapped", "type = layers", "layers =",
             *(f"    {layer}" for layer in layers)]
    (tmp_path / "swapped.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = _lint_imports("--config", str(tmp_path / "swapped.ini"))
    assert done.returncode != 0 and "boocoder_bridge.bridge -> boocoder_bridge.fleetstate" in done.stdout, done.stdout


def test_built_in_plugins_use_only_the_public_api() -> None:
    """A third party can do all a built-in plugin does: built-ins import ``boocoder_bridge`` (its ``__all__``) and
    each other, never an inner module (``boocoder_bridge.settings`` slipped in once)."""
    folder = Path(boocoder_bridge.__file__).parent / "default_plugins"
    inner = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("boocoder_"):
                module = node.module or ""
                if module != "boocoder_bridge" and not module.startswith("boocoder_bridge.default_plugins"):
                    inner.append(f"{path.name}: from {module} import ...")
                elif module == "boocoder_bridge":
                    inner += [f"{path.name}: {a.name} is not public" for a in node.names
                              if a.name not in boocoder_bridge.__all__]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                inner.append(f"{path.name}: a relative import")
            elif isinstance(node, ast.Import):
                inner += [f"{path.name}: import {a.name}" for a in node.names
                          if a.name.startswith("boocoder_bridge.") and "default_plugins" not in a.name]
    assert inner == []
