"""``boocoder-bridge serve``: the same library behind a small FastAPI app, so BooChat's web front end and
BooCoder share one source of truth. Binds loopback by default; any other address needs a bearer token.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from typing import Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from .bridge import Bridge
from .catalog import Catalog
from .errors import BridgeError, ModelIdError, ProviderUnavailableError, RegistryError, StateError
from .routing import Purpose, Route
from .settings import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV

ID_RULES = ("provider/model (split at the first '/'; the model part may hold '/' and ':') or a legacy bare ID; "
            "at most 512 characters, no whitespace or control characters. Anything else gets 422.")
log = logging.getLogger("boocoder_bridge")


class FavoritesBody(BaseModel):
    favorites: list[str]


class ErrorBody(BaseModel):
    error: str


class Health(BaseModel):
    status: str


_ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 409: {"model": ErrorBody},
                                            503: {"model": ErrorBody}}


def _status(exc: BridgeError) -> int:
    if isinstance(exc, ModelIdError | RegistryError):
        return 422
    if isinstance(exc, ProviderUnavailableError):
        return 409
    if isinstance(exc, StateError):
        return 503
    return 400


class _AnyText(Convertor[str]):
    """Like Starlette's ``path`` convertor, but also matches a newline, so such an ID gets a 422, not a 404."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", _AnyText())


def create_app(bridge: Bridge, token: str | None = None) -> FastAPI:
    app = FastAPI(title="boocoder-bridge", version="1", description=__doc__)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        return await call_next(request)

    @app.exception_handler(BridgeError)
    async def bridge_error(request: Request, exc: BridgeError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=_status(exc))

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
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/api/models", response_model=Catalog, responses=_ERRORS)
    def models(refresh: bool = False) -> Catalog:
        return bridge.catalog(refresh=refresh)

    @app.get("/api/favorites", response_model=FavoritesBody, responses=_ERRORS)
    def favorites() -> FavoritesBody:
        return FavoritesBody(favorites=bridge.favorites.list())

    # One route for both methods, so a 405 lists both in its Allow header.
    @app.api_route("/api/favorites/{model_id:anytext}", methods=["PUT", "DELETE"], response_model=FavoritesBody,
                   responses=_ERRORS)
    def change_favorite(request: Request, model_id: str = Path(description=ID_RULES)) -> FavoritesBody:
        """PUT stores a favorite (adding twice is a no-op); DELETE forgets it. The ID may hold '/' and ':'."""
        if request.method == "PUT":
            bridge.favorites.add(model_id)
        else:
            bridge.favorites.remove(model_id)
        return FavoritesBody(favorites=bridge.favorites.list())

    @app.get("/api/resolve", response_model=Route, responses=_ERRORS)
    def resolve(model: str = Query(max_length=4096, description=ID_RULES), purpose: Purpose = "dispatch") -> Route:
        return bridge.resolve(model, purpose)

    @app.get("/api/opencode-config", responses=_ERRORS)
    def opencode_config(offline: bool = False) -> dict[str, Any]:
        return bridge.opencode_config(offline=offline)[0]

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(bridge: Bridge, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    import uvicorn

    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        raise BridgeError(f"refusing to bind {host}: set {TOKEN_ENV} so every request needs "
                          "'Authorization: Bearer <token>', or bind 127.0.0.1")
    uvicorn.run(create_app(bridge, token), host=host, port=port, log_level="warning")
