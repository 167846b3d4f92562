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
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from .bridge import Bridge
from .catalog import Catalog
from .errors import BridgeError, ServeError
from .fleetstate import ProviderRow
from .httpguard import HostPolicy, RequestGuard
from .live import LiveCatalog
from .opencode import render_pieces
from .routing import Purpose, Route
from .settings import DEFAULT_HOST, DEFAULT_PORT, HOST_LANE_THREADS, TOKEN_ENV

ID_RULES = ("provider/model (split at the first '/'; the model part may hold '/' and ':') or a legacy bare ID; "
            "at most 512 characters, no whitespace or control characters. Anything else gets 422.")
log = logging.getLogger("boocoder_bridge")
T = TypeVar("T")


class FavoritesBody(BaseModel):
    favorites: list[str]


class ErrorBody(BaseModel):
    error: str


class ProvidersBody(BaseModel):
    providers: list[ProviderRow]


class Health(BaseModel):
    status: str


_ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 409: {"model": ErrorBody},
                                            503: {"model": ErrorBody}}


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


def create_app(bridge: Bridge, token: str | None = None, *, bound: str = DEFAULT_HOST,
               allowed_hosts: Iterable[str] = ()) -> FastAPI:
    """The API. ``bound`` and ``allowed_hosts`` say which ``Host`` headers name this server (see httpguard).

    Run with its lifespan (as ``serve`` does), the catalog is kept current in the background and pushed on
    ``GET /api/events``; every request reads the live fleet snapshot and none waits on a host.
    """
    catalog = LiveCatalog(bridge)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
        (in ``serve``, from the live state, like ``/api/models``)."""
        if refresh and catalog.running:
            await catalog.refresh()
        return ProvidersBody(providers=bridge.fleet.current().rows())

    @app.get("/api/events", include_in_schema=False)
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

    @app.get("/api/resolve", response_model=Route, responses=_ERRORS)
    async def resolve(model: str = Query(max_length=4096, description=ID_RULES),
                      purpose: Purpose = "dispatch") -> Route:
        return await lane.run(bridge.resolve, model, purpose)

    @app.get("/api/opencode-config", responses=_ERRORS)
    async def opencode_config(offline: bool = False) -> Response:
        # The bridge's own rendering: host text in it can never be substituted by opencode (see opencode.render).
        config = (await lane.run(bridge.opencode_config, offline))[0]
        return StreamingResponse(render_pieces(config), media_type="application/json")  # 42 MB at 50k models

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with one operation ID per method: its own ID is per route, so a route with two
    methods (PUT and DELETE of a favorite, one route so a 405 names both) would repeat one ID."""
    if app.openapi_schema is None:
        import warnings

        from fastapi.openapi.utils import get_openapi

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")  # made unique just below
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
        for methods in schema.get("paths", {}).values():
            for method, operation in methods.items():
                base = operation["operationId"].rsplit("_", 1)[0]
                operation["operationId"] = f"{base}_{method}"
        app.openapi_schema = schema
    return app.openapi_schema


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
