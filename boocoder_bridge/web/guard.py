"""Who may talk to ``serve``: a pure ASGI middleware run before any route (so streaming routes work too).

Three checks, in order:

1. ``Host`` must name the bound address (DNS rebinding: a page on ``attacker.example`` whose name now
   resolves to 127.0.0.1 sends ``Host: attacker.example``). Accepted: ``localhost``, the bound IP (any
   loopback IP when bound to loopback or to the name localhost, any IP literal when bound to all addresses:
   an IP literal cannot be rebound), and the names given with ``--allow-host``. Else 421.
2. The bearer token, when one is set (scheme case-insensitive, RFC 7235). Else 401 with ``WWW-Authenticate``.
   The picker page and its static files need none: they are the package's own code and hold no data; the page
   then sends the token it was given in its address fragment (``/#token=...``) with every API request.
3. Browser requests from another site are refused (403): ``Sec-Fetch-Site: cross-site|same-site``, or an
   ``Origin`` that is not this server. Without CORS headers such a page could never read an answer anyway,
   but a simple GET would still run: a refresh that asks every host, or a change. The picker page and its
   static files are exempt (GET only): apps embed the page in a frame or open it as a popup.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
REALM = "boocoder-bridge"


def host_name(header: str) -> str | None:
    """The name in a ``Host`` header (lower case, no port, no brackets), or None if it is malformed."""
    value = header.strip().lower()
    if value.startswith("["):  # an IPv6 literal: [::1]:8765
        name, bracket, port = value[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
        port = port[1:]
    else:
        name, _, port = value.partition(":")
        name = name.removesuffix(".")
    if not name or (port and not port.isdigit()):
        return None
    return name


class HostPolicy:
    """The Host names that mean "this server" for a server bound to ``bound``."""

    def __init__(self, bound: str, names: Iterable[str] = ()) -> None:
        # Given as a Host header would hold them ("box.lan:8765", "[fd00::1]"): only the name part is compared.
        self.names = {"localhost", *(host_name(n) or n.strip().lower().removesuffix(".") for n in names)}
        try:
            self.ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(bound.strip("[]"))
        except ValueError:
            self.ip = None
            self.names.add(bound.lower())
        if bound.lower().removesuffix(".") == "localhost":  # bound to a loopback IP, which serve prints as its URL
            self.ip = ipaddress.ip_address("127.0.0.1")

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if name is None:
            return False
        if name in self.names:
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        if self.ip is None:
            return False
        if self.ip.is_unspecified:
            return True
        return ip == self.ip or (self.ip.is_loopback and ip.is_loopback)


class RequestGuard:
    """ASGI middleware: Host check, bearer token, cross-site refusal (see the module docstring)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy, token: str | None = None) -> None:
        self.app, self.policy, self.token = app, policy, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not self.policy.allows(host):
            return await _refuse(send, 421, f"Host {host[:100]!r} does not name this server; use 127.0.0.1 or "
                                            "localhost, or start serve with --allow-host NAME")
        if self.token is not None and not _embeddable(scope) and not self._authorized(headers.get("authorization", "")):
            challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if "authorization" in headers else "")
            return await _refuse(send, 401, "missing or wrong bearer token", {"WWW-Authenticate": challenge})
        if not _embeddable(scope) and (headers.get("sec-fetch-site") in ("cross-site", "same-site")
                                       or not _same_origin(headers, host)):
            return await _refuse(send, 403, "requests from another web site are refused; open the page this "
                                            "server serves, or call the API without a browser")
        return await self.app(scope, receive, send)

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.strip().partition(" ")
        assert self.token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode())


def _embeddable(scope: Scope) -> bool:
    """The picker page and its files may be opened from another site (an app's iframe or ``?select=`` popup):
    reading them changes nothing, and the page then talks to this server as its own origin."""
    path = scope.get("path", "")
    return scope.get("method") in ("GET", "HEAD") and (path == "/" or path.startswith("/static/"))


def _same_origin(headers: dict[str, str], host: str) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc.lower() == host.strip().lower() != ""
    except ValueError:
        return False


async def _refuse(send: Send, status: int, error: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
