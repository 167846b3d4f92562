"""The JSON Schemas in ``schemas/``: where they are, one compiled validator each, and readable JSON paths.

jsonschema is imported only when a check runs, so ``import boocoder_bridge`` stays cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent
# In a wheel the schemas sit inside the package; in a source checkout they sit beside it.
_SCHEMA_DIRS = (_PACKAGE_DIR / "schemas", _PACKAGE_DIR.parent / "schemas")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def schema_path(name: str) -> Path:
    for folder in _SCHEMA_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"schema {name} is missing from the installation; reinstall boocoder-bridge")


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(schema_path(name).read_text(encoding="utf-8"))


@cache
def validator(name: str) -> Any:
    """Compile a schema once per process."""
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def json_path(parts: Iterable[str | int]) -> str:
    """``$.providers.sam-desktop.models["unsloth/Qwen3:Q4"]`` style path, readable and unambiguous."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}"
        else:
            out += "[" + json.dumps(part) + "]"
    return out


def errors(name: str, instance: Any) -> list[Any]:
    """All schema errors, shallowest path first, so the first one is the most useful to print."""
    found = list(validator(name).iter_errors(instance))
    return sorted(found, key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
