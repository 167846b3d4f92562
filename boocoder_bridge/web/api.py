"""The HTTP API's request and answer bodies: the single source of the OpenAPI document a host's client is
generated from (openapi-typescript, openapi-generator, ...).

Why a module of their own: ``app.py`` stays a route table, and each shape here says what a TypeScript host sends
and gets, field by field. Answers are built from the library's own objects (``Route``, ``Dispatch``,
``ArenaMatch``, ``Compaction``), never computed again here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..reports import Status
from ..routing import Route
from ..settings import MAX_CONTENT_CHARS, MAX_CONTESTANTS, MAX_ID_CHARS, MAX_PROMPT_PART_CHARS, MAX_PROMPT_PARTS

if TYPE_CHECKING:
    from ..bridge import Compaction
    from ..opencode.runner import ArenaMatch, Dispatch
    from ..reports import ProviderReport

ID_RULES = ("provider/model (split at the first '/'; the model part may hold '/' and ':') or a legacy bare ID; "
            "at most 512 characters, no whitespace or control characters. Anything else gets 422.")
ModelId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, description=ID_RULES)]
CONTENT_HELP = ("the OPENCODE_CONFIG_CONTENT of the process that will start opencode (its own settings and "
                "providers; the fleet's providers are put over it). Left out: none. Never the server's own.")


class ErrorBody(BaseModel):
    """Every error answer: one line that names what is wrong (the provider, the ID, the field) and the fix."""

    error: str


class DispatchRequest(BaseModel):
    """``POST /api/dispatch``: what ``Bridge.dispatch`` takes."""

    model_config = ConfigDict(extra="forbid")

    model: ModelId
    prompt: list[Annotated[str, Field(max_length=MAX_PROMPT_PART_CHARS)]] = Field(
        default=[], max_length=MAX_PROMPT_PARTS,
        description="the prompt words, put after '--' in argv (mode 'run'); ignored in mode 'acp'")
    mode: Literal["run", "acp"] = Field(default="run", description="'run': one task; 'acp': an ACP agent process")
    opencode_config_content: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS, description=CONTENT_HELP)


class DispatchPlan(BaseModel):
    """Start ``argv`` with the host's own environment updated by ``env`` (``env`` replaces the host's
    ``OPENCODE_CONFIG_CONTENT``: it already holds the content that was sent, with the fleet over it)."""

    route: Route
    argv: list[str]
    env: dict[str, str]
    config_path: str
    warnings: list[str] = Field(description="plugin failures and notes the host should log or show")

    @classmethod
    def of(cls, dispatch: Dispatch, warnings: list[str]) -> DispatchPlan:
        return cls(route=dispatch.route, argv=dispatch.argv, env=dispatch.env, config_path=str(dispatch.config_path),
                   warnings=warnings)


class ArenaRequest(BaseModel):
    """``POST /api/arena``: what ``Bridge.arena_match`` takes."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelId] = Field(max_length=MAX_CONTESTANTS, description="two or more contestants")
    opencode_config_content: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS, description=CONTENT_HELP)


class ArenaPlan(BaseModel):
    """One match: each contestant's dispatch plan (append the prompt to its ``argv``, after the final ``--``),
    all on one shared config; ``notes`` are what ``arena_match`` plugins added."""

    contestants: list[DispatchPlan]
    notes: dict[str, Any]
    config_path: str
    warnings: list[str]

    @classmethod
    def of(cls, match: ArenaMatch, warnings: list[str]) -> ArenaPlan:
        return cls(contestants=[DispatchPlan.of(c, []) for c in match.contestants], notes=match.notes,
                   config_path=str(match.config_path), warnings=warnings)


class CompactionChoice(BaseModel):
    """``model`` compacts the session; compact when the session nears ``context_window`` (the session model's).
    ``context_window`` null: nobody knows it, so compact only on the server's context-overflow error."""

    model: Route
    session: Route
    context_window: int | None

    @classmethod
    def of(cls, compaction: Compaction) -> CompactionChoice:
        return cls(model=compaction.model, session=compaction.session, context_window=compaction.context_window)


class Resolution(Route):
    """``GET /api/resolve``: the route (the ``resolve --json`` fields), and whether its provider can take a
    request now (``available``; ``provider_status`` and ``provider_error`` say why not)."""

    available: bool
    provider_status: Status
    provider_error: str | None

    @classmethod
    def of(cls, route: Route, report: ProviderReport) -> Resolution:
        return cls.model_validate({**route.model_dump(), "available": report.available,
                                   "provider_status": report.status, "provider_error": report.error})


# --- the opencode config, as the bridge writes it ------------------------------------------------------------
# Open models (extra keys allowed): an ``opencode_provider_entry`` plugin may add any key opencode reads.


class OpencodeLimit(BaseModel):
    model_config = ConfigDict(extra="allow")

    context: int = Field(description="the context window in tokens; 0: unknown (opencode never compacts)")
    output: int = Field(description="the output budget (max_tokens) opencode sends; 0: unknown")
    input: int | None = Field(default=None, description="where opencode compacts")


class OpencodeModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    id: str = Field(description="the model name the host is sent (upstream_model)")
    limit: OpencodeLimit


class OpencodeOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    baseURL: str  # opencode's own key names
    apiKey: str = Field(description="'{env:NAME}' or empty: never a key itself")
    timeout: int = Field(description="milliseconds opencode waits for an answer")


class OpencodeProvider(BaseModel):
    model_config = ConfigDict(extra="allow")

    npm: str
    name: str
    env: list[str]
    whitelist: list[str] = []
    options: OpencodeOptions
    models: dict[str, OpencodeModel]


class OpencodeConfig(BaseModel):
    """``GET /api/opencode-config``: an opencode config (opencode.json) holding exactly the fleet's providers."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: str = Field(alias="$schema")
    provider: dict[str, OpencodeProvider]
