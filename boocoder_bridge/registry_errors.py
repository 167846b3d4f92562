"""The registry's error messages: each names the file, the JSON path and the fix.

Why a module of its own: the registry's shape is owned by its pydantic models (registry.py, which generate
``schemas/providers.schema.json``); turning what jsonschema found, and the rules no schema can say
(cross-references, uniqueness, ports), into one readable line each is a separate job.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from . import jsonschemas
from .errors import ModelIdError, RegistryError
from .ids import check_id_text, split_composite
from .settings import MAX_REGISTRY_DEPTH

_URL_KEYS = ("base_url", "sidecar_url")
_SECRET_KEYS = {"api_key", "apikey", "key", "token", "secret", "password", "authorization", "bearer"}


def shape_problems(data: Any, source: str) -> list[RegistryError]:
    """Duplicate keys anywhere, and nesting deeper than any registry needs (walked without recursion)."""
    problems: list[RegistryError] = []
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_REGISTRY_DEPTH:
            return [RegistryError(source, jsonschemas.json_path(path[:MAX_REGISTRY_DEPTH]),
                                  f"nested deeper than {MAX_REGISTRY_DEPTH} levels", "fix the JSON")]
        if getattr(node, "duplicates", None):
            problems += [RegistryError(source, jsonschemas.json_path([*path, key]), f"duplicate key {key!r}: "
                                       "JSON would keep only the last one", "keep one of them")
                         for key in node.duplicates]
        if isinstance(node, dict):
            stack += [(value, [*path, key]) for key, value in reversed(node.items())]
        elif isinstance(node, list):
            stack += [(value, [*path, i]) for i, value in reversed(list(enumerate(node)))]
    return problems



def explain(error: Any, source: str) -> list[RegistryError]:
    """Turn a jsonschema error into file + JSON path + fix (one per offending key)."""
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    pattern = schema.get("pattern", "")
    if path and path[-1] in _URL_KEYS and isinstance(error.instance, str) and _has_credentials(error.instance):
        return [RegistryError(source, jsonschemas.json_path(path), "the URL holds a user name or password",
                              "remove 'user:password@' (it would show in every output); put the secret in an "
                              "environment variable and name it in api_key_env")]
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        return [_unknown_key(source, [*path, key], key, allowed) for key in sorted(error.instance)
                if key not in allowed]
    if "propertyNames" in error.relative_schema_path:
        path = [*path, str(error.instance)]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return [RegistryError(source, jsonschemas.json_path(path), f"missing key {missing!r}", f"add {missing!r}")]
    if error.validator == "pattern" and pattern.startswith("^[a-z0-9]"):
        fix = "use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit (no '/')"
        return [RegistryError(source, jsonschemas.json_path(path), f"{error.instance!r} is not a valid ID", fix)]
    if error.validator == "pattern" and "https?" in pattern:
        return [RegistryError(source, jsonschemas.json_path(path), f"{error.instance!r} is not an http(s) URL",
                              "use http://HOST:PORT or https://HOST, without query or fragment")]
    if error.validator == "pattern" and "A-Za-z_" in pattern:
        return [RegistryError(source, jsonschemas.json_path(path), f"{error.instance!r} is not an env var name",
                              "give the NAME of an environment variable, e.g. DEEPSEEK_API_KEY")]
    where = jsonschemas.json_path(path)
    value = _short(error.instance)
    if error.validator in _BOUNDS:
        return [RegistryError(source, where, f"{value} is out of range", "use " + _range(schema))]
    if error.validator == "type":
        wanted = _TYPE_NAMES.get(str(error.validator_value), str(error.validator_value))
        return [RegistryError(source, where, f"{value} is not {wanted}", f"use {wanted}")]
    if error.validator == "minLength":
        return [RegistryError(source, where, "is empty", "give a non-empty string, or remove the key")]
    if error.validator == "maxLength":
        return [RegistryError(source, where, f"is longer than {error.validator_value} characters",
                              f"shorten it to at most {error.validator_value} characters")]
    if error.validator == "minProperties":
        return [RegistryError(source, where, "is empty", "add at least one provider")]
    if error.validator == "uniqueItems":
        return [RegistryError(source, where, "lists an item twice", "list each item once")]
    message = error.message if len(error.message) < 200 else error.message[:197] + "..."
    return [RegistryError(source, where, message, "see the registry keys in docs/registry.md")]


_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
_TYPE_NAMES = {"string": "a string", "number": "a number", "integer": "a whole number", "boolean": "true or false",
               "object": "an object ({...})", "array": "a list ([...])"}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _range(schema: Mapping[str, Any]) -> str:
    """``a number greater than 0 and at most 600``, from the schema's bounds."""
    words = {"minimum": "at least", "exclusiveMinimum": "greater than", "maximum": "at most",
             "exclusiveMaximum": "less than"}
    parts = [f"{words[key]} {schema[key]}" for key in _BOUNDS if key in schema]
    kind = "a whole number" if schema.get("type") == "integer" else "a number"
    return f"{kind} {' and '.join(parts)}"


def _has_credentials(url: str) -> bool:
    """``user:password@`` in the authority part of a URL (the value itself is never echoed)."""
    rest = url.split("://", 1)[-1]
    for end in "/?#":
        rest = rest.split(end, 1)[0]
    return "@" in rest


def _unknown_key(source: str, path: list[Any], key: str, allowed: list[str]) -> RegistryError:
    if key.lower().replace("-", "_") in _SECRET_KEYS:
        fix = "the registry never holds a secret: put it in an environment variable and name that in api_key_env"
        return RegistryError(source, jsonschemas.json_path(path), "secrets are not allowed here", fix)
    guess = difflib.get_close_matches(key, allowed, n=1)
    fix = f"did you mean {guess[0]!r}?" if guess else "remove it; allowed keys: " + ", ".join(allowed)
    return RegistryError(source, jsonschemas.json_path(path), f"unknown key {key!r}", fix)


def semantic_problems(data: Any, source: str, known_kinds: Iterable[str] | None) -> list[RegistryError]:
    """Rules JSON Schema cannot say: cross-references and uniqueness. Runs on malformed data too (checking
    only what is well-formed), so that `validate` reports every problem in one run."""
    problems: list[RegistryError] = []
    if not isinstance(data, dict) or not isinstance(data.get("providers"), dict):
        return problems
    providers: dict[str, Any] = data["providers"]
    default = data.get("default_provider")
    if isinstance(default, str) and providers and default not in providers:
        guess = difflib.get_close_matches(default, list(providers), n=1)
        problems.append(RegistryError(source, "$.default_provider", f"{default!r} is not a provider in this registry",
                                      (f"did you mean {guess[0]!r}? " if guess else "") +
                                      "name one of: " + ", ".join(map(repr, sorted(providers)))))
    kinds = sorted(known_kinds) if known_kinds is not None else None
    owners: dict[str, str] = {}
    for pid, body in providers.items():
        if not isinstance(body, dict):
            continue
        kind = body.get("kind")
        if kinds is not None and isinstance(kind, str) and kind not in kinds:
            guess = difflib.get_close_matches(kind, kinds, n=1)
            problems.append(RegistryError(source, jsonschemas.json_path(["providers", pid, "kind"]),
                                          f"unknown provider kind {kind!r}",
                                          (f"did you mean {guess[0]!r}? " if guess else "") + "use one of: " +
                                          ", ".join(kinds) + " (or install the plugin that adds it)"))
        for key in ("base_url", "sidecar_url"):
            if not isinstance(body.get(key), str):
                continue
            if body[key].rstrip("/").endswith("/v1"):
                problems.append(RegistryError(source, jsonschemas.json_path(["providers", pid, key]),
                                              "ends in /v1", "drop the /v1: the bridge adds it"))
            try:
                port = urlsplit(body[key]).port
            except ValueError:  # "http://h:abc" or a port past 65535: every request would fail
                port = 0
            if port == 0:
                problems.append(RegistryError(source, jsonschemas.json_path(["providers", pid, key]),
                                              "has a port that is not a number from 1 to 65535", "fix the port"))
        bare_ids = body.get("bare_ids")
        for i, bare in enumerate(bare_ids if isinstance(bare_ids, list) else []):
            where = jsonschemas.json_path(["providers", pid, "bare_ids", i])
            if not isinstance(bare, str) or not bare:
                continue  # the schema has said so
            try:
                check_id_text(bare)
                head, _ = split_composite(bare)
            except ModelIdError as exc:
                problems.append(RegistryError(source, where, str(exc), "fix or remove this bare ID"))
                continue
            if head in providers:
                problems.append(RegistryError(source, where, f"{bare!r} starts with provider {head!r}, so it "
                                              "is never read as a bare ID", "remove it"))
            elif bare in owners and owners[bare] != pid:
                problems.append(RegistryError(source, where, f"{bare!r} is already claimed by provider "
                                              f"{owners[bare]!r}", "keep it in one provider's bare_ids only"))
            owners.setdefault(bare, pid)
    return problems
