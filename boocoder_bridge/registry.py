"""The provider registry: a JSON file checked by ``schemas/providers.schema.json``, parsed into pydantic models.

Without a registry file the legacy environment (``LLAMA_SWAP_URL``, ``DEEPSEEK_API_KEY``) is turned into one,
so installs that predate the bridge keep working.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    StringConstraints,
)
from pydantic import ValidationError as ShapeError

from . import jsonschemas
from .errors import ModelIdError, RegistryError
from .files import ReadRefused, read_capped
from .ids import ModelRef, check_id_text, split_composite
from .settings import (
    LEGACY_DEEPSEEK_KEY_ENV,
    LEGACY_URL_ENV,
    MAX_REGISTRY_BYTES,
    MAX_REGISTRY_DEPTH,
    PROBE_TIMEOUT_S,
    REGISTRY_ENV,
    environ,
)

SCHEMA = "providers.schema.json"
LEGACY_NAMESPACE = "llama-swap"  # what the host prefixed local models with before the bridge
_URL_KEYS = ("base_url", "sidecar_url")
_SECRET_KEYS = {"api_key", "apikey", "key", "token", "secret", "password", "authorization", "bearer"}


class ModelSettings(BaseModel):
    """``providers.<p>.models.<m>``: a static model, or overrides for a discovered one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    context_window: PositiveInt | None = None
    max_output: PositiveInt | None = None
    headroom: NonNegativeInt | None = None
    upstream_id: str | None = None


class Provider(BaseModel):
    """One model server. ``id`` is the key it has in ``providers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: str
    base_url: str
    sidecar_url: str | None = None
    label: str | None = None
    api_key_env: str | None = None
    enabled_if_env: str | None = None
    discover: bool = True
    timeout_s: float = Field(default=2.0, gt=0, le=600)
    refresh_s: float = Field(default=15.0, ge=1, le=86400)  # `serve` re-discovers this often (with jitter)
    request_timeout_s: float = Field(default=300.0, gt=0, le=86400)
    probe_timeout_s: float = Field(default=PROBE_TIMEOUT_S, ge=0, le=60)  # probe.py; 0: never probed
    bare_ids: tuple[str, ...] = ()
    models: dict[str, ModelSettings] = Field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.label or self.id

    @property
    def discovery_base(self) -> str:
        """Discovery and metadata requests always go to the host itself, never to the sidecar."""
        return self.base_url + "/v1"

    @property
    def route_base(self) -> str:
        """Where model requests go: the sidecar exactly when this provider has one."""
        return (self.sidecar_url or self.base_url) + "/v1"

    def enabled(self, env: Mapping[str, str] | None = None) -> bool:
        if self.enabled_if_env is None:
            return True
        return bool(environ(env).get(self.enabled_if_env))

    def asks_host(self, env: Mapping[str, str] | None = None) -> bool:
        """Whether discovery asks this provider's host (else its models come from the registry alone)."""
        return self.discover and self.enabled(env)

    def disabled_reason(self) -> str:
        return f"provider {self.id} is disabled: set {self.enabled_if_env} to enable it"


class Registry(BaseModel):
    """The fleet. Parse model IDs with :meth:`parse_model_id` so legacy bare IDs keep resolving."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_provider: str
    providers: dict[str, Provider]
    _source: str = PrivateAttr(default="<registry>")
    _bare_owner: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        return self._source

    def model_post_init(self, _context: Any) -> None:
        self._bare_owner = {bare: p.id for p in self.providers.values() for bare in p.bare_ids}

    def provider(self, provider_id: str) -> Provider:
        try:
            return self.providers[provider_id]
        except KeyError:
            known = ", ".join(sorted(self.providers))
            raise ModelIdError(f"unknown provider {provider_id!r}; registered: {known}") from None

    def parse_model_id(self, text: str) -> tuple[ModelRef, bool]:
        """Return ``(ref, legacy)``. A first segment that is no registered provider makes a legacy bare ID."""
        head, rest = split_composite(text)
        if head in self.providers:
            return ModelRef.checked(head, rest), False
        if head == LEGACY_NAMESPACE:
            return ModelRef(self.default_provider, rest), True
        owner = self._bare_owner.get(text, self.default_provider)
        return ModelRef(owner, text), True


# --- loading -----------------------------------------------------------------------------------------


def load_registry(path: str | os.PathLike[str], known_kinds: Iterable[str] | None = None) -> Registry:
    """Read, schema-check and parse a registry file. Raises :class:`RegistryError` naming file and JSON path.

    Read with a size cap, never from a fifo or device; duplicate keys and deep nesting are errors."""
    source = str(path)
    try:
        text = read_capped(path, MAX_REGISTRY_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise RegistryError(source, "$", "file not found", "pass --registry FILE or set " + REGISTRY_ENV) from None
    except ReadRefused as exc:
        raise RegistryError(source, "$", str(exc), "give the path of the registry JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(source, "$", f"cannot read the file ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text, object_pairs_hook=_JSONObject.from_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise RegistryError(
            source, "$", f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", "fix the JSON syntax"
        ) from None
    except RecursionError:
        raise RegistryError(source, "$", f"nested deeper than {MAX_REGISTRY_DEPTH} levels", "fix the JSON") from None
    except ValueError as exc:  # NaN/Infinity, or an integer longer than Python will convert
        raise RegistryError(source, "$", f"not valid JSON: {str(exc)[:120]}", "fix the JSON") from None
    problems = _shape_problems(data, source)
    if problems:
        problems[0].others = problems[1:]
        raise problems[0]
    return registry_from_data(data, source, known_kinds)


# --- the shape gate ---------------------------------------------------------------------------------
# The schema's rules again, as strict pydantic models. Why: jsonschema costs a CLI call more than the rest of
# its work (importing it, compiling the schema); the gate costs a fraction of a millisecond. It accepts only
# what the schema accepts (same patterns through Python's re, strict types, the same lengths; a property test
# holds the two together), so a file it accepts needs no schema run. A file it refuses goes to jsonschema,
# which explains every problem with file, JSON path and fix, exactly as before.

_ID = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$(?!\n)")]
_URL = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$(?!\n)", max_length=2048)]
_ENV = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")]
_TEXT_512 = Annotated[str, StringConstraints(min_length=1, max_length=512)]


def _unique(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("items are not unique")
    return items


class _Gate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re", defer_build=True)


class _ModelShape(_Gate):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    context_window: Annotated[int, Field(ge=1)] | None = None
    max_output: Annotated[int, Field(ge=1)] | None = None
    headroom: Annotated[int, Field(ge=0)] | None = None
    upstream_id: _TEXT_512 | None = None


class _ProviderShape(_Gate):
    kind: _ID
    base_url: _URL
    sidecar_url: _URL | None = None
    label: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    api_key_env: _ENV | None = None
    enabled_if_env: _ENV | None = None
    discover: bool | None = None
    timeout_s: Annotated[float, Field(gt=0, le=600)] | None = None
    refresh_s: Annotated[float, Field(ge=1, le=86400)] | None = None
    request_timeout_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    probe_timeout_s: Annotated[float, Field(ge=0, le=60)] | None = None
    bare_ids: Annotated[list[_TEXT_512], AfterValidator(_unique)] | None = None
    models: dict[_TEXT_512, _ModelShape] | None = None


class _RegistryShape(_Gate):
    schema_url: str | None = Field(default=None, alias="$schema")
    default_provider: _ID
    providers: Annotated[dict[_ID, _ProviderShape], Field(min_length=1)]


def _fits_schema(data: Any) -> bool:
    """True only for data the registry schema accepts (False may still be valid: jsonschema then decides)."""
    if not isinstance(data, dict) or any(value is None for value in _values(data)):
        return False  # JSON null is never allowed by the schema, but would pass as an absent optional field
    try:
        _RegistryShape.model_validate(data)
    except ShapeError:
        return False
    return True


def _values(data: Any) -> Iterable[Any]:
    """Every value under ``data`` (JSON objects and arrays), for the null check."""
    stack = [data]
    while stack:
        item = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            yield child
            stack.append(child)

class _JSONObject(dict[str, Any]):
    """A JSON object that remembers the keys it had more than once (``json`` keeps only the last silently)."""

    duplicates: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _JSONObject:
        obj = cls(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            obj.duplicates = tuple(dict.fromkeys(k for k, _ in pairs if k in seen or seen.add(k)))
        return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _shape_problems(data: Any, source: str) -> list[RegistryError]:
    """Duplicate keys anywhere, and nesting deeper than any registry needs (walked without recursion)."""
    problems: list[RegistryError] = []
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_REGISTRY_DEPTH:
            return [RegistryError(source, jsonschemas.json_path(path[:MAX_REGISTRY_DEPTH]),
                                  f"nested deeper than {MAX_REGISTRY_DEPTH} levels", "fix the JSON")]
        if isinstance(node, _JSONObject):
            problems += [RegistryError(source, jsonschemas.json_path([*path, key]), f"duplicate key {key!r}: "
                                       "JSON would keep only the last one", "keep one of them")
                         for key in node.duplicates]
        if isinstance(node, dict):
            stack += [(value, [*path, key]) for key, value in reversed(node.items())]
        elif isinstance(node, list):
            stack += [(value, [*path, i]) for i, value in reversed(list(enumerate(node)))]
    return problems


def registry_from_data(data: Any, source: str = "<registry>", known_kinds: Iterable[str] | None = None) -> Registry:
    problems = [] if _fits_schema(data) else [
        p for error in jsonschemas.errors(SCHEMA, data) for p in _explain(error, source)]
    # The rules the schema cannot say are checked too, on whatever is well-formed, so one run lists everything.
    seen = {str(p) for p in problems}
    problems += [p for p in _semantic_problems(data, source, known_kinds) if str(p) not in seen]
    if problems:
        first = problems[0]
        first.others = problems[1:]
        raise first
    providers = {pid: _provider(pid, body) for pid, body in data["providers"].items()}
    registry = Registry(default_provider=data["default_provider"], providers=providers)
    registry._source = source
    return registry


def _provider(provider_id: str, body: Mapping[str, Any]) -> Provider:
    fields = dict(body)
    for key in ("base_url", "sidecar_url"):
        if key in fields:
            fields[key] = fields[key].rstrip("/")
    return Provider(id=provider_id, **fields)


def registry_from_env(env: Mapping[str, str] | None = None) -> Registry:
    """The registry a pre-bridge install implies: ``LLAMA_SWAP_URL`` as provider ``local``, plus DeepSeek."""
    env = environ(env)
    url = env.get(LEGACY_URL_ENV, "").strip()
    if not url:
        raise RegistryError(
            "<environment>",
            "$",
            f"no registry given and {LEGACY_URL_ENV} is not set",
            f"pass --registry FILE, set {REGISTRY_ENV}, or set {LEGACY_URL_ENV}",
        )
    url = _legacy_server_url(url)
    data: dict[str, Any] = {
        "default_provider": "local",
        "providers": {"local": {"kind": "llama-swap", "base_url": url, "label": "llama-swap"}},
    }
    if env.get(LEGACY_DEEPSEEK_KEY_ENV):
        data["providers"]["deepseek"] = DEEPSEEK_PROVIDER
    return registry_from_data(data, f"<environment {LEGACY_URL_ENV}>")


# What people paste into LLAMA_SWAP_URL besides the server: its OpenAI base, or an endpoint under it.
_LEGACY_API_TAILS = ("/v1/models", "/v1/chat/completions", "/v1/completions", "/v1")


def _legacy_server_url(url: str) -> str:
    """The server's address from ``LLAMA_SWAP_URL``: ``http://h/v1`` and ``http://h/v1/models`` both mean
    ``http://h`` (the bridge adds ``/v1/models``; kept, it asked ``/v1/models/v1/models``). Any other API path
    under ``/v1/``, a query or a fragment is refused with the fix (naming the path only: the URL may hold a
    password)."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not (parts.query or parts.fragment):
        for tail in _LEGACY_API_TAILS:
            if path.endswith(tail):
                return url[: len(url) - len(parts.path)] + path[: -len(tail)]
        if "/v1/" not in path + "/":
            return url
    where = path + ("?..." if parts.query else "") + ("#..." if parts.fragment else "")
    raise RegistryError(f"<environment {LEGACY_URL_ENV}>", "$", f"{LEGACY_URL_ENV} names an API path ({where}), "
                        "not the server", "set it to the server's address, e.g. http://host:8080 (the bridge adds "
                        "/v1/models and /v1/chat/completions itself)")


DEEPSEEK_PROVIDER: dict[str, Any] = {
    "kind": "openai-compatible",
    "base_url": "https://api.deepseek.com",
    "label": "DeepSeek",
    "api_key_env": LEGACY_DEEPSEEK_KEY_ENV,
    "enabled_if_env": LEGACY_DEEPSEEK_KEY_ENV,
    "discover": False,
    "bare_ids": ["deepseek-chat", "deepseek-reasoner"],
    "models": {"deepseek-chat": {"context_window": 131072, "max_output": 8192}},
}


def find_registry(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None,
                  known_kinds: Iterable[str] | None = None) -> Registry:
    """``--registry FILE``, else ``$BOOCODER_BRIDGE_REGISTRY``, else the legacy environment."""
    env = environ(env)
    chosen = path or env.get(REGISTRY_ENV)
    if chosen:
        return load_registry(chosen, known_kinds)
    return registry_from_env(env)


# --- error messages ----------------------------------------------------------------------------------


def _explain(error: Any, source: str) -> list[RegistryError]:
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


def _semantic_problems(data: Any, source: str, known_kinds: Iterable[str] | None) -> list[RegistryError]:
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
