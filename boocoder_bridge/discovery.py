"""Ask every enabled provider what it serves (``GET {base_url}/v1/models``), all at once, each bounded in time.

A host that refuses, hangs, answers non-2xx or answers junk becomes a report with status ``offline`` or
``error`` and a one-line reason; the others are still served. Bodies are size-capped, redirects are followed
only within the same origin, and a whole provider (including slow trickling bodies) has one total deadline.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from .errors import HostError
from .hostdata import HostModel, ProviderReport, parse_model_list, static_report
from .registry import Provider, Registry
from .settings import environ

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_REDIRECTS = 3
# One connection pool per host, not one for the fleet: httpx's shared pool holds 100 connections (the 101st
# host waits, spending its own deadline), and httpcore scans every connection of a pool on each request, so
# one pool for 256 hosts costs seconds of CPU. A host's own pool also bounds its concurrent requests.
CONNECTIONS_PER_HOST = 4
__all__ = ["HostError", "HostModel", "ProviderReport", "discover", "parse_model_list", "static_report"]


class HostClient:
    """GETs against one provider's host: auth header, same-origin redirects, size cap, shared deadline."""

    def __init__(self, http: httpx.AsyncClient, provider: Provider, env: Mapping[str, str]) -> None:
        self.http, self.provider = http, provider
        key = env.get(provider.api_key_env) if provider.api_key_env else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.deadline = asyncio.get_running_loop().time() + provider.timeout_s

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    async def get_json(self, path: str) -> Any:
        url = httpx.URL(self.provider.base_url + path)
        origin = (url.scheme, url.host, url.port)
        for _ in range(MAX_REDIRECTS + 1):
            async with self.http.stream("GET", url, headers=self.headers,
                                        timeout=self.provider.timeout_s) as response:
                if response.is_redirect:
                    target = url.join(response.headers.get("location", ""))
                    if (target.scheme, target.host, target.port) != origin:
                        raise HostError("error", f"{path} redirects to another origin ({target.scheme}://"
                                                 f"{target.host}:{target.port}); not followed")
                    url = target
                    continue
                if not response.is_success:
                    raise HostError("error", f"{path} answered HTTP {response.status_code}")
                body = await _read_capped(response, path)
                break
        else:
            raise HostError("error", f"{path} redirected more than {MAX_REDIRECTS} times")
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            kind = "HTML" if body.lstrip()[:1] == b"<" else "not JSON"
            raise HostError("error", f"{path} answered {kind}, not a JSON model list") from None


async def _read_capped(response: httpx.Response, path: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HostError("error", f"{path} body is {int(declared)} bytes; the limit is {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HostError("error", f"{path} body exceeds {MAX_BODY_BYTES} bytes; cut off")
        chunks.append(chunk)
    return b"".join(chunks)


# --- running discovery ---------------------------------------------------------------------------------

ListModels = Callable[[HostClient], Any]  # ProviderKind.list_models: async, returns (models, skipped)


async def _discover_one(provider: Provider, list_models: ListModels, env: Mapping[str, str],
                        tls: ssl.SSLContext) -> ProviderReport:
    started = time.time()
    limits = httpx.Limits(max_connections=CONNECTIONS_PER_HOST, max_keepalive_connections=CONNECTIONS_PER_HOST)
    try:
        async with asyncio.timeout(provider.timeout_s), httpx.AsyncClient(
                follow_redirects=False, trust_env=False, verify=tls, limits=limits) as http:
            models, skipped = await list_models(HostClient(http, provider, env))
    except HostError as exc:
        return ProviderReport(provider=provider.id, status=exc.status, error=exc.reason, fetched_at=started)
    except TimeoutError:
        return ProviderReport(provider=provider.id, status="offline", fetched_at=started,
                              error=f"no complete answer within {provider.timeout_s:g} s")
    except httpx.TransportError as exc:
        return ProviderReport(provider=provider.id, status="offline", fetched_at=started,
                              error=_transport_reason(exc, provider))
    note = f"skipped {skipped} entries whose IDs hold whitespace or control characters" if skipped else None
    return ProviderReport(provider=provider.id, status="online", error=note, models=models, fetched_at=started)


def _transport_reason(exc: httpx.TransportError, provider: Provider) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {provider.base_url} (refused or unreachable)"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {provider.base_url} within {provider.timeout_s:g} s"
    return f"{exc.__class__.__name__} talking to {provider.base_url}"


async def discover_async(registry: Registry, list_models_for: Callable[[Provider], ListModels],
                         only: Iterable[str] | None = None,
                         env: Mapping[str, str] | None = None) -> dict[str, ProviderReport]:
    """Reports for the chosen providers (default: all), network ones fetched concurrently."""
    env = environ(env)
    chosen = [registry.providers[p] for p in (only if only is not None else registry.providers)]
    reports = {p.id: static_report(p, env) for p in chosen if not p.asks_host(env)}
    asked = [p for p in chosen if p.id not in reports]
    if asked:
        tls = httpx.create_ssl_context()  # once: building one per host costs milliseconds each
        found = await asyncio.gather(*(_discover_one(p, list_models_for(p), env, tls) for p in asked))
        reports.update((r.provider, r) for r in found)
    return {p.id: reports[p.id] for p in chosen}


def discover(registry: Registry, list_models_for: Callable[[Provider], ListModels],
             only: Iterable[str] | None = None, env: Mapping[str, str] | None = None) -> dict[str, ProviderReport]:
    return asyncio.run(discover_async(registry, list_models_for, only, env))
