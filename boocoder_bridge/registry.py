"""The provider registry: a JSON file whose shape the strict models below own (they generate
``schemas/providers.schema.json``), parsed into pydantic models bound to their environment at load.

Without a registry file the legacy environment (``LLAMA_SWAP_URL``, ``DEEPSEEK_API_KEY``) is turned into one,
so installs that predate the bridge keep working.
"""

from __future__ import annotations

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

from . import jsonschemas, registry_errors
from .errors import ModelIdError, RegistryError
from .files import ReadRefused, read_capped
from .ids import ModelRef, split_composite
from .settings import (
    DEFAULT_REFRESH_S,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
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
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=600)
    refresh_s: float = Field(default=DEFAULT_REFRESH_S, ge=1, le=86400)  # `serve` re-discovers this often
    request_timeout_s: float = Field(default=DEFAULT_REQUEST_TIMEOUT_S, gt=0, le=86400)
    probe_timeout_s: float = Field(default=PROBE_TIMEOUT_S, ge=0, le=60)  # probe.py; 0: never probed
    bare_ids: tuple[str, ...] = ()
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    _enabled: bool | None = PrivateAttr(default=None)  # bound at load (Registry.bind): env is read once

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
        """Enabled by ``enabled_if_env``: in the environment bound at load, unless ``env`` is given."""
        if self.enabled_if_env is None:
            return True
        if env is None and self._enabled is not None:
            return self._enabled
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

    def bind(self, env: Mapping[str, str]) -> Registry:
        """A copy whose providers know whether they are enabled in ``env``: decided once, at load, so nobody
        threads the environment through every call that asks."""
        providers = {}
        for pid, provider in self.providers.items():
            providers[pid] = bound = provider.model_copy()
            bound._enabled = provider.enabled(env)
        registry = self.model_copy(update={"providers": providers})
        registry._source = self._source
        return registry

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
    problems = registry_errors.shape_problems(data, source)
    if problems:
        problems[0].others = problems[1:]
        raise problems[0]
    return registry_from_data(data, source, known_kinds)


# --- the registry file's shape: the one statement of it -----------------------------------------------
# Strict pydantic models of the file. They generate ``schemas/providers.schema.json`` (:func:`json_schema`; a
# test keeps the committed file current), and they are the fast gate: jsonschema costs a CLI call more than the
# rest of its work (importing it, compiling the schema); these cost a fraction of a millisecond. A file they
# accept needs no schema run; a file they refuse goes to jsonschema on the generated schema, which finds every
# problem, and registry_errors.py explains each with file, JSON path and fix.

_ID = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$(?!\n)")]
_URL = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$(?!\n)", max_length=2048)]
_ENV = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")]
_TEXT_512 = Annotated[str, StringConstraints(min_length=1, max_length=512)]
_LABEL = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _unique(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("items are not unique")
    return items


class _Gate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re", defer_build=True)


class _ModelShape(_Gate):
    name: _LABEL | None = None
    context_window: Annotated[int, Field(ge=1)] | None = None
    max_output: Annotated[int, Field(ge=1, description=(
        "Most tokens one answer may take; opencode gets at most half the context window."))] | None = None
    headroom: Annotated[int, Field(ge=0, description=(
        "Tokens kept free below the context window for the next turn (default: an eighth of the window, at "
        "most 8192)."))] | None = None
    upstream_id: _TEXT_512 | None = None


class _ProviderShape(_Gate):
    kind: _ID = Field(description=(
        "Provider kind; built in: llama-swap, llama-cpp, openai-compatible. Plugins may add more."))
    base_url: _URL = Field(description=(
        "Server root without /v1; the OpenAI API base is base_url + '/v1'. Discovery always asks it."))
    sidecar_url: _URL | None = Field(default=None, description=(
        "Proxy that chat traffic goes through; when set, every request for this provider goes there."))
    label: _LABEL | None = None
    api_key_env: _ENV | None = Field(default=None, description=(
        "NAME of the environment variable holding the API key (never the key itself)."))
    enabled_if_env: _ENV | None = Field(default=None, description=(
        "The provider is disabled while this environment variable is unset or empty."))
    discover: bool = True
    timeout_s: Annotated[float, Field(gt=0, le=600)] = DEFAULT_TIMEOUT_S
    refresh_s: Annotated[float, Field(ge=1, le=86400, description=(
        "How often `serve` asks this provider again in the background (\u00b110 % jitter; sooner while it is "
        "down)."))] = DEFAULT_REFRESH_S
    request_timeout_s: Annotated[float, Field(gt=0, le=86400, description=(
        "Seconds opencode waits for one model request to this provider before giving up (emitted as "
        "options.timeout)."))] = DEFAULT_REQUEST_TIMEOUT_S
    probe_timeout_s: Annotated[float, Field(ge=0, le=60, description=(
        "Seconds the host has to answer its probe before a dispatch and while opencode runs; 0: never "
        "probed."))] = PROBE_TIMEOUT_S
    bare_ids: Annotated[list[_TEXT_512], AfterValidator(_unique), Field(
        description="Legacy bare model IDs this provider claims (exact match only).",
        json_schema_extra={"uniqueItems": True})] | None = None
    models: dict[_TEXT_512, _ModelShape] | None = Field(default=None, description=(
        "Static models (for providers without discovery) and per-model overrides."))


class _RegistryShape(_Gate):
    """The fleet of model servers the host may use. Holds names of environment variables, never secrets."""

    schema_url: str | None = Field(default=None, alias="$schema")
    default_provider: _ID = Field(description=(
        "Provider that legacy bare model IDs resolve to when no provider claims them in bare_ids."))
    providers: Annotated[dict[_ID, _ProviderShape], Field(min_length=1)]


SCHEMA_ID = "https://boocoder.invalid/schemas/providers.schema.json"


def json_schema() -> dict[str, Any]:
    """``schemas/providers.schema.json``, generated from the models above (JSON null is never allowed: an optional
    key is left out, not set to null; dict keys are checked with ``propertyNames``)."""
    from pydantic.json_schema import GenerateJsonSchema

    class Writer(GenerateJsonSchema):
        def nullable_schema(self, schema: Any) -> Any:
            return self.generate_inner(schema["schema"])

        def default_schema(self, schema: Any) -> Any:
            if schema.get("default") is None:
                return self.generate_inner(schema["schema"])
            return super().default_schema(schema)

        def field_title_should_be_set(self, schema: Any) -> bool:
            return False

        def dict_schema(self, schema: Any) -> Any:
            out = super().dict_schema(schema)
            for pattern, values in out.pop("patternProperties", {}).items():  # unmatched keys would be allowed
                out["propertyNames"] = {"pattern": pattern}
                out["additionalProperties"] = values
            return out

    names = {"_ModelShape": "model", "_ProviderShape": "provider"}
    text = json.dumps(_RegistryShape.model_json_schema(by_alias=True, schema_generator=Writer))
    for old, new in names.items():
        text = text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
    schema = json.loads(text)
    schema["$defs"] = {names[key]: {k: v for k, v in value.items() if k != "title"}
                       for key, value in schema["$defs"].items()}
    schema.pop("title", None)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "boocoder-bridge provider registry", **schema}


def write_json_schema() -> None:
    """Regenerate the committed schema (after changing the models above)::

        python -c 'from boocoder_bridge.registry import write_json_schema; write_json_schema()'
    """
    path = jsonschemas.schema_path(SCHEMA)
    path.write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


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


def registry_from_data(data: Any, source: str = "<registry>", known_kinds: Iterable[str] | None = None) -> Registry:
    problems = [] if _fits_schema(data) else [
        p for error in jsonschemas.errors(SCHEMA, data) for p in registry_errors.explain(error, source)]
    # The rules the schema cannot say are checked too, on whatever is well-formed, so one run lists everything.
    seen = {str(p) for p in problems}
    problems += [p for p in registry_errors.semantic_problems(data, source, known_kinds) if str(p) not in seen]
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
