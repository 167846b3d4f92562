"""``boocoder-bridge serve``: the same library behind a small FastAPI app, so BooChat's web front end and
BooCoder share one source of truth. Binds loopback by default; any other address needs a bearer token.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..bridge import Bridge
from ..catalog import Catalog
from ..errors import BridgeError, ModelIdError, ServeError
from ..fleetstate import ProviderRow
from ..opencode.config import render_pieces
from ..opencode.runner import Dispatch
from ..routing import Purpose, Route
from ..settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DISPATCH_LEASE_S,
    HOST_LANE_THREADS,
    MAX_ID_CHARS,
    MAX_REQUEST_BYTES,
    SERVE_SEND_BUFFER_BYTES,
    SERVE_STALL_DROP_S,
    TOKEN_ENV,
    WATCH_INTERVAL_S,
    WATCH_MISSES,
)
from .api import (
    ID_RULES,
    ArenaPlan,
    ArenaRequest,
    CompactionChoice,
    DispatchPlan,
    DispatchRequest,
    ErrorBody,
    OpencodeConfig,
    Resolution,
)
from .guard import HostPolicy, RequestGuard
from .live import CatalogEvent, LiveCatalog

log = logging.getLogger("boocoder_bridge")
T = TypeVar("T")


class FavoritesBody(BaseModel):
    favorites: list[str]


class ProvidersBody(BaseModel):
    providers: list[ProviderRow]
    registry_error: str | None = Field(default=None, description=(
        "why serve still runs the last good registry: the registry file's newest text is invalid or the file is "
        "gone (one line naming the file, the JSON path and the fix); null when the file as it is now is applied"))


class Health(BaseModel):
    status: str


_ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 409: {"model": ErrorBody},
                                            503: {"model": ErrorBody}}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Documented error answers, each ``{"error": "..."}`` (the statuses are those of errors.py)."""
    return {status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses}


ERROR_MEANINGS = {
    400: "refused: a plugin stopped it, no opencode binary, or bad opencode_config_content",
    401: "missing or wrong bearer token (only when serve has one: BOOCODER_BRIDGE_TOKEN)",
    403: "a browser request from another web site",
    409: "the provider is disabled (its enabled_if_env variable is not set)",
    413: f"the request body is over {MAX_REQUEST_BYTES >> 20} MiB",
    421: "the Host header does not name this server (DNS rebinding guard; see serve --allow-host)",
    422: "a model ID, provider or field that is invalid or not listed (with a 'did you mean')",
    500: "an unexpected error; the server log has the details",
    503: "the provider's host is offline or unreachable, or the state dir cannot be used; try again later",
}
# Every operation's ID: what a generated client names its method.
OPERATION_IDS = {
    ("/healthz", "get"): "health", ("/api/models", "get"): "listModels",
    ("/api/providers", "get"): "listProviders", ("/api/events", "get"): "events",
    ("/api/favorites", "get"): "listFavorites", ("/api/favorites/{model_id}", "put"): "putFavorite",
    ("/api/favorites/{model_id}", "delete"): "deleteFavorite", ("/api/resolve", "get"): "resolve",
    ("/api/opencode-config", "get"): "opencodeConfig", ("/api/dispatch", "post"): "dispatch",
    ("/api/arena", "post"): "arena", ("/api/compaction", "get"): "compaction",
    ("/api/task-model", "get"): "taskModel",
}
EVENTS_DOC = {
    "description": "Server-Sent Events: a `catalog` event (`id`: its version; `data`: a CatalogEvent as JSON) with "
                   "the newest catalog at once, then one per change. A comment line (`: keep-alive`) comes every "
                   "15 s when nothing changes; `retry:` gives the reconnect delay. Send `Last-Event-ID` on "
                   "reconnect to skip a version already seen. The schema describes one event.",
    "content": {"text/event-stream": {"schema": {
        "type": "object", "title": "CatalogServerSentEvent",
        "properties": {"event": {"const": "catalog"}, "id": {"type": "string"}, "retry": {"type": "integer"},
                       "data": {"type": "string", "contentMediaType": "application/json",
                                "contentSchema": {"$ref": "#/components/schemas/CatalogEvent"}}},
        "required": ["event", "id", "data"]}}},
}

DISPATCH_DOC = f"""``Bridge.dispatch``: how to start opencode on ``model`` (hooks applied). Start ``argv`` with your
environment updated by ``env``. Refuses an unlisted ID (422), a disabled provider (409) and an offline one (503)
before anything starts; the provider's host is probed now, so a host that went away a moment ago is refused here.

**While your opencode runs** (``mode: acp``, or ``argv`` started by you): opencode itself retries a host that went
away for a minute or more, saying nothing. So from each plan on, for {DISPATCH_LEASE_S / 60:g} minutes (renewed by
every new plan for the same provider, from ``/api/dispatch`` or ``/api/arena``), serve probes that provider's
host every {WATCH_INTERVAL_S:g} s. A refused connection, or {WATCH_MISSES} probes in a row without an answer, is
published at once as a new version on ``GET /api/events``, in which the provider's group (``catalog.providers[]``
with ``id`` = ``route.provider``) has ``status: "offline"`` and ``error`` saying what the probe met, typically
within 2 s of the host going away. To cancel: keep ``GET /api/events`` open while the task runs; on each event,
look up your route's provider; if its ``status`` is not ``online`` or ``static``, stop the opencode you started
(its whole process group: SIGTERM, then SIGKILL) or, in ACP, send ``session/cancel``, and report the provider and
its ``error`` to the user. A host that is merely slow keeps answering the probe and is never reported offline.
Providers not asked over the network (``discover: false``) and those with ``probe_timeout_s: 0`` are not probed."""


class _AnyText(Convertor[str]):
    """Like Starlette's ``path`` convertor, but also matches a newline, so such an ID gets a 422, not a 404."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", _AnyText())


class HostLane:
    """Runs work that may ask hosts (a dispatch's config, a resolve of a provider never seen) on its own few
    threads, so /healthz, the favorites and everything else keep their workers while a host hangs."""

    def __init__(self, threads: int = HOST_LANE_THREADS) -> None:
        self.limiter = CapacityLimiter(threads)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args, limiter=self.limiter)


STATIC = FilePath(__file__).with_name("static")
# The picker page loads only its own files and talks only to this server: no inline script or style, no eval.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'")
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer"}


class _PageHeaders:
    """Adds :data:`PAGE_HEADERS` to every answer (plain ASGI, so the event stream is not buffered)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()
                         if k.lower().encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyLimit:
    """Refuses a request body over :data:`MAX_REQUEST_BYTES` with 413 before any route reads it: the body is
    buffered here up to the limit (declared length or not), then handed on, so memory stays bounded."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        chunks: list[bytes] = []
        received = 0
        more = not (declared.isdigit() and int(declared) > MAX_REQUEST_BYTES)
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            more = message.get("more_body", False) and received <= MAX_REQUEST_BYTES
        if not chunks or received > MAX_REQUEST_BYTES:
            response = JSONResponse({"error": f"request body over {MAX_REQUEST_BYTES >> 20} MiB; send less"},
                                    status_code=413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        body: bytes | None = b"".join(chunks)

        async def replay() -> dict[str, Any]:
            nonlocal body
            if body is None:
                return await receive()  # after the body: wait for a disconnect, as the server would say it
            message, body = {"type": "http.request", "body": body, "more_body": False}, None
            return message

        await self.app(scope, replay, send)


def create_app(bridge: Bridge, token: str | None = None, *, bound: str = DEFAULT_HOST,
               allowed_hosts: Iterable[str] = ()) -> FastAPI:
    """The API. ``bound`` and ``allowed_hosts`` say which ``Host`` headers name this server (see guard.py).

    Run with its lifespan (as ``serve`` does), the catalog is kept current in the background and pushed on
    ``GET /api/events``; every request reads the live fleet snapshot and none waits on a host.
    """
    catalog = LiveCatalog(bridge)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:  # the explicit TUI sync step at start (reads never sync); then on every favorites change
            await anyio.to_thread.run_sync(bridge.sync_favorites)
        except BridgeError as exc:  # a damaged database: serve still starts, GET /api/favorites says 503
            log.warning("%s", exc)
        await catalog.start()
        try:
            yield
        finally:
            await catalog.stop()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, so offline they would show nothing.
    # The OpenAPI document itself stays at /openapi.json for tools.
    app = FastAPI(title="boocoder-bridge", version="1", description=__doc__, docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.live = catalog
    app.add_middleware(_BodyLimit)
    app.add_middleware(_PageHeaders)
    app.add_middleware(RequestGuard, policy=HostPolicy(bound, allowed_hosts), token=token)
    lane = HostLane()

    @app.exception_handler(BridgeError)
    async def bridge_error(request: Request, exc: BridgeError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s", request.url.path)
        return JSONResponse({"error": "internal error; see the server log"}, status_code=500)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/api/models", response_model=Catalog, responses=_ERRORS)
    async def models(refresh: bool = False) -> Response:
        """The catalog (the ``models --json`` contract): the live state at once (``refresh`` waits until every
        host was asked again; joins a refresh under way)."""
        if not catalog.running:
            return JSONResponse({"error": "the live catalog runs only in serve"}, status_code=503)
        if refresh:
            await catalog.refresh()
        return Response(catalog.current_json, media_type="application/json")

    @app.get("/api/providers", response_model=ProvidersBody, responses=_ERRORS)
    async def providers(refresh: bool = False) -> ProvidersBody:
        """Each provider's settings and live status: the same rows as ``boocoder-bridge providers --json``
        (in ``serve``, from the live state, like ``/api/models``). ``registry_error``: why an edit of the registry
        file is not applied (serve keeps running the last good registry until the file is fixed)."""
        if refresh and catalog.running:
            await catalog.refresh()
        return ProvidersBody(providers=bridge.fleet.current().rows(),
                             registry_error=catalog.registry_error if catalog.running else None)

    @app.get("/api/events", responses={200: EVENTS_DOC, **_errors(503)})
    async def events(last_event_id: str | None = Header(default=None, max_length=200)) -> Response:
        """Server-Sent Events: a ``catalog`` event with the newest version at once, then one per change."""
        if not catalog.running:
            return JSONResponse({"error": "the live catalog runs only in serve"}, status_code=503)
        return StreamingResponse(catalog.stream(last_event_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The picker page (``static/``): Favorites first, then each provider, updated live."""
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/favorites", response_model=FavoritesBody, responses=_ERRORS)
    def favorites() -> FavoritesBody:
        return FavoritesBody(favorites=bridge.list_favorites())

    # One route for both methods, so a 405 lists both in its Allow header.
    @app.api_route("/api/favorites/{model_id:anytext}", methods=["PUT", "DELETE"], response_model=FavoritesBody,
                   responses=_ERRORS)
    async def change_favorite(request: Request, model_id: str = Path(description=ID_RULES)) -> FavoritesBody:
        """PUT stores a favorite (adding twice is a no-op); DELETE forgets it. The ID may hold '/' and ':'.
        Answers once the live catalog shows the change, so a GET /api/models right after it sees it too."""

        def write() -> list[str]:
            if request.method == "PUT":
                bridge.add_favorite(model_id)
            else:
                bridge.remove_favorite(model_id)
            return bridge.favorites.list()

        favorites = await anyio.to_thread.run_sync(write)
        if catalog.running:
            await catalog.reload_favorites()
        return FavoritesBody(favorites=favorites)

    @app.get("/api/resolve", response_model=Resolution, responses=_errors(409, 422, 503))
    async def resolve(model: str = Query(max_length=MAX_ID_CHARS, description=ID_RULES),
                      purpose: Purpose = "dispatch") -> Resolution:
        """Where ``model`` goes, refused as ``resolve`` refuses it (422 with a "did you mean" for an ID or provider
        no host lists; 409 for a disabled provider), and whether its provider can take a request now."""
        live = dict(catalog.reports) if catalog.running else None

        def answer() -> Resolution:
            route = bridge.resolve(model, purpose)
            if (verdict := bridge.check_model(model)) is not None:
                raise ModelIdError(verdict.message())
            reports = live if live is not None and route.provider in live else bridge.reports()
            return Resolution.of(route, reports[route.provider])

        return await lane.run(answer)

    @app.get("/api/opencode-config", responses={200: {"model": OpencodeConfig}, **_ERRORS})
    async def opencode_config(offline: bool = False) -> Response:
        # The bridge's own rendering: host text in it can never be substituted by opencode (see opencode.render).
        config = (await lane.run(bridge.opencode_config, offline))[0]
        return StreamingResponse(render_pieces(config), media_type="application/json")  # 42 MB at 50k models

    @app.post("/api/dispatch", response_model=DispatchPlan, responses=_errors(400, 409, 413, 422, 503),
              description=DISPATCH_DOC)
    async def dispatch(body: DispatchRequest) -> DispatchPlan:
        def plan() -> DispatchPlan:
            done = bridge.dispatch(body.model, body.prompt, mode=body.mode,
                                   caller_content=body.opencode_config_content or "")
            return DispatchPlan.of(done, _warnings(bridge, done))

        answer = await lane.run(plan)
        catalog.watch_dispatch([answer.route.provider])  # its host is probed while the task may run
        return answer

    @app.post("/api/arena", response_model=ArenaPlan, responses=_errors(400, 409, 413, 422, 503))
    async def arena(body: ArenaRequest) -> ArenaPlan:
        """``Bridge.arena_match``: one plan per contestant (hooks applied; ``notes`` from plugins). Refuses fewer
        than two contestants, the same model twice, unlisted IDs (422), disabled (409) and offline (503)
        providers."""

        def plan() -> ArenaPlan:
            match = bridge.arena_match(body.models, caller_content=body.opencode_config_content or "")
            return ArenaPlan.of(match, _warnings(bridge, *match.contestants))

        answer = await lane.run(plan)
        catalog.watch_dispatch(dict.fromkeys(c.route.provider for c in answer.contestants))
        return answer

    @app.get("/api/compaction", response_model=CompactionChoice, responses=_errors(409, 422))
    async def compaction(session: str = Query(max_length=MAX_ID_CHARS, description=ID_RULES),
                         configured: str | None = Query(default=None, max_length=MAX_ID_CHARS)) -> CompactionChoice:
        """``Bridge.compaction_model``: the model that compacts a session on ``session`` (``configured``: the
        user's setting, if any; plugins may choose another), and the window that sets the threshold."""
        return CompactionChoice.of(await lane.run(bridge.compaction_model, session, configured))

    @app.get("/api/task-model", response_model=Route, responses=_errors(409, 422))
    async def task_model(kind: str = Query(min_length=1, max_length=64, description="title, summary, ..."),
                         session: str = Query(max_length=MAX_ID_CHARS, description=ID_RULES),
                         configured: str | None = Query(default=None, max_length=MAX_ID_CHARS)) -> Route:
        """``Bridge.task_model``: the model for a side task (``title``, ``summary``, ...) of a session on
        ``session`` (``configured``: the user's setting, if any; plugins may choose another)."""
        return await lane.run(bridge.task_model, kind, session, configured)

    return app


def _warnings(bridge: Bridge, *plans: Dispatch) -> list[str]:
    """This call's warnings: the plans' own notes, plugin failures and an ignored cache file. Not all of
    ``bridge.warnings``: in a long-lived server it also holds notes of earlier calls (a favorite stored, ...)."""
    problems = [bridge.cache.problem] if bridge.cache.problem else []
    return list(dict.fromkeys([*(n for plan in plans for n in plan.notes), *bridge.hooks.warnings, *problems]))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document made into a good client: a short ID per operation (:data:`OPERATION_IDS`; FastAPI's own
    is per route, and PUT and DELETE of a favorite share one route so a 405 names both), the guard's answers
    (401, 403, 421; guard.py) and 500 on every operation, the bearer scheme, and the event stream's data."""
    if app.openapi_schema is None:
        import warnings

        from fastapi.openapi.utils import get_openapi
        from pydantic.json_schema import models_json_schema

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")  # made unique just below
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        _, extra = models_json_schema([(CatalogEvent, "serialization")], ref_template="#/components/schemas/{model}")
        for name, definition in extra.get("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.pop("HTTPValidationError", None)  # every 422 is an ErrorBody (see bad_request)
        schemas.pop("ValidationError", None)
        components["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "needed only when serve has a token (BOOCODER_BRIDGE_TOKEN); else send none"}}
        schema["security"] = [{}, {"bearer": []}]
        guard = _errors(401, 403, 421, 500)
        guard[401]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"},
                                                      "description": 'Bearer realm="boocoder-bridge"'}}
        for path, methods in schema.get("paths", {}).items():
            for method, operation in methods.items():
                operation["operationId"] = OPERATION_IDS.get((path, method)) or operation["operationId"]
                responses = operation.setdefault("responses", {})
                for answer in responses.values():  # FastAPI's untyped default JSON beside a typed stream
                    content = answer.get("content", {})
                    if len(content) > 1 and content.get("application/json", {}).get("schema") == {}:
                        del content["application/json"]
                for status, answer in {**_errors(422), **guard}.items():
                    if status == 422 and not operation.get("parameters") and "requestBody" not in operation:
                        continue
                    if str(status) not in responses or "HTTPValidationError" in str(responses[str(status)]):
                        responses[str(status)] = _document(answer)
        app.openapi_schema = schema
    return app.openapi_schema


def _document(answer: dict[str, Any]) -> dict[str, Any]:
    """An ``_errors`` entry as an OpenAPI response object."""
    doc: dict[str, Any] = {"description": answer["description"], "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    if "headers" in answer:
        doc["headers"] = answer["headers"]
    return doc


def bind(host: str, port: int) -> Any:
    """A listening socket, or a :class:`ServeError` that says what to do (port in use, address not here)."""
    import errno
    import socket

    if not 0 <= port <= 65535:  # getaddrinfo would take 70000 and bind 4464 (70000 mod 65536)
        raise ServeError(f"port {port} is not a TCP port; give --port 1-65535, or 0 for a free one")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ServeError(f"cannot serve on {host}: {exc.strerror}; give an address of this machine with --host")\
            from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without waiting
    # Every accepted connection inherits these (Linux): a client that stops reading holds a bounded send buffer,
    # and is dropped once its data has waited SERVE_STALL_DROP_S; its EventSource then reconnects for a snapshot.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVE_SEND_BUFFER_BYTES)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # not on macOS: there a stalled client stays until it goes
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(SERVE_STALL_DROP_S * 1000))
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use (another server, or boocoder-bridge serve "
                             "already running?); pick another with --port, or --port 0 for a free one") from None
        raise ServeError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; check --host and --port") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: Any) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(bridge: Bridge, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          allowed_hosts: Iterable[str] = (), ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. ``ready`` gets the URL once the socket listens (with the real port for 0)."""
    import uvicorn

    token = bridge.env.get(TOKEN_ENV) or None  # the environment the bridge was loaded with, like every setting
    if not is_loopback(host) and token is None:
        raise BridgeError(f"refusing to bind {host}: set {TOKEN_ENV} so every request needs "
                          "'Authorization: Bearer <token>', or bind 127.0.0.1")
    app = create_app(bridge, token, bound=host, allowed_hosts=allowed_hosts)
    sock = bind(host, port)
    if ready is not None:
        ready(url_of(sock))

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.live.close()  # end the event streams first: shutdown waits for open responses
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
