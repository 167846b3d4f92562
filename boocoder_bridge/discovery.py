"""Ask every enabled provider what it serves (``GET {base_url}/v1/models``), all at once, each bounded in time.

A host that refuses, hangs, answers non-2xx or answers junk becomes a report with status ``offline`` or
``error`` and a one-line reason; the others are still served. Whatever else a kind's discovery raises is caught
in one place, :func:`_discover_one`, and becomes that provider's ``error`` too. Bodies are capped on their
*decoded* size (the bridge inflates gzip/deflate itself, a bounded piece at a time), redirects are followed only
within the same origin, and a whole provider (including slow trickling bodies) has one total deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx

from .errors import HostError
from .registry import Provider, Registry
from .reports import HostModel, ProviderReport, load_json, parse_model_list, positive_int, static_report
from .settings import (
    CONNECTIONS_PER_HOST,
    MAX_BODY_BYTES,
    MAX_CONTENT_ENCODINGS,
    MAX_HEAD_BYTES,
    MAX_HOST_MODELS,
    MAX_REDIRECTS,
    environ,
)

__all__ = ["HostError", "HostModel", "ProviderReport", "discover", "parse_model_list", "static_report"]
log = logging.getLogger("boocoder_bridge")
_PIECE = 64 * 1024  # most bytes one inflate step may produce: memory stays bounded whatever the ratio
_INFORMATIONAL = 5  # 1xx heads skipped before a final answer (PlainHttp); more is a protocol error


class HostClient:
    """GETs against one provider's host: auth header, same-origin redirects, size cap, shared deadline.

    ``notes`` collects what the user should know about an answer that was still used (cuts, lookups given up);
    they become the provider's ``error`` line while its status stays ``online``. ``max_loaded``: a kind sets it
    when the host holds at most that many models at once (llama.cpp's router, ``--models-max``).
    """

    def __init__(self, http: httpx.AsyncClient | Callable[[], httpx.AsyncClient], provider: Provider,
                 env: Mapping[str, str], plain: PlainHttp | None = None) -> None:
        self.provider, self._plain = provider, plain
        # A callable: the httpx client is made on first use (discovery of a plain-http host never makes one).
        self._http, self._make_http = (http, None) if isinstance(http, httpx.AsyncClient) else (None, http)
        key = env.get(provider.api_key_env) if provider.api_key_env else None
        # Only encodings the bridge inflates itself, so the size cap holds on decoded bytes.
        self.headers = {"Accept-Encoding": "gzip, deflate"} | ({"Authorization": f"Bearer {key}"} if key else {})
        self.deadline = asyncio.get_running_loop().time() + provider.timeout_s
        self.notes: list[str] = []
        self.max_loaded: int | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            assert self._make_http is not None
            self._http = self._make_http()
        return self._http

    async def _close_made(self) -> None:
        """Close the httpx client if this object made it (one given to it belongs to the giver)."""
        if self._make_http is not None and self._http is not None:
            await self._http.aclose()

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    def note(self, message: str) -> None:
        self.notes.append(message)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, provider: Provider, env: Mapping[str, str]) -> AsyncIterator[HostClient]:
        """A client with a connection pool of its own (for a long-lived stream or a probe, outside discovery)."""
        # Only an https host needs the CA bundle: loading it costs 0.5-1.4 s of CPU here, which a probe of a
        # plain-http LAN host before each dispatch must not pay (redirects never leave the host's origin).
        verify_tls = provider.base_url.startswith("https:")
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=verify_tls) as http:
            yield cls(http, provider, env)

    @contextlib.asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        """A long-lived GET such as an event stream: ``(status, body chunks)``. Connecting and the response head
        are bounded by the provider's ``timeout_s`` (a host that accepts and never answers would hold the stream
        forever); reading the body is not (an idle stream may say nothing for hours)."""
        timeout = httpx.Timeout(self.provider.timeout_s, read=None)
        headers = {**self.headers, "Accept": "text/event-stream", "Accept-Encoding": "identity"}
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(self.provider.timeout_s):
                response = await stack.enter_async_context(self.http.stream(
                    "GET", self.provider.base_url + path, headers=headers, timeout=timeout))
            yield response.status_code, _decoded(response, path)

    async def status(self, path: str) -> int:
        """The HTTP status of ``GET path``, within the provider's ``probe_timeout_s``, reading no body (a cheap
        check that the host is there; see :meth:`ProviderKind.probe`)."""
        timeout = self.provider.probe_timeout_s
        async with asyncio.timeout(timeout), self.http.stream(
                "GET", self.provider.base_url + path, headers=self.headers, timeout=timeout) as response:
            return response.status_code

    async def get_json(self, path: str) -> Any:
        url = httpx.URL(self.provider.base_url + path)
        origin = (url.scheme, url.host, url.port)
        for _ in range(MAX_REDIRECTS + 1):
            opened = (self._plain.get(url, self.headers) if self._plain is not None and url.scheme == "http" else
                      self.http.stream("GET", url, headers=self.headers, timeout=self.provider.timeout_s))
            async with opened as response:
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
        return load_json(body, path)


class PlainResponse:
    """The part of :class:`httpx.Response` that :meth:`HostClient.get_json` reads, from :class:`PlainHttp`."""

    def __init__(self, status_code: int, headers: httpx.Headers, body: AsyncIterator[bytes]) -> None:
        self.status_code, self.headers, self._body = status_code, headers, body

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "location" in self.headers

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self._body


class PlainHttp:
    """GET over plain http for discovery, on asyncio streams: one connection per request, at most
    ``CONNECTIONS_PER_HOST`` at once. Why: httpx, httpcore and anyio cost about 1-1.4 ms of CPU per request
    here, asyncio's own streams about 0.25 ms, and a refresh of 256 hosts is CPU-bound on that alone
    (BENCHMARKS.md). Failures are raised as httpx's transport errors, so they read as they always did; https
    hosts, probes and event streams keep httpx. Framing as HTTP/1.1 says: Content-Length, chunked, or until
    the host closes; anything else is a :class:`httpx.RemoteProtocolError`. Time is bounded by the caller's
    deadline, memory by ``MAX_HEAD_BYTES`` (the head, one chunk-size line) and ``_PIECE`` (a body read)."""

    def __init__(self) -> None:
        self._gate = asyncio.Semaphore(CONNECTIONS_PER_HOST)

    @contextlib.asynccontextmanager
    async def get(self, url: httpx.URL, headers: Mapping[str, str]) -> AsyncIterator[PlainResponse]:
        head = [b"GET " + url.raw_path + b" HTTP/1.1", b"Host: " + url.netloc, b"Accept: */*",
                b"Connection: close", *(f"{k}: {v}".encode("ascii") for k, v in headers.items())]  # ascii: as httpx
        if any(c in line for line in head for c in (b"\r", b"\n", b"\0")):  # a key from the env must not add headers
            raise httpx.LocalProtocolError("illegal header value")
        async with self._gate:
            try:
                reader, writer = await asyncio.open_connection(url.host, url.port or 80, limit=MAX_HEAD_BYTES)
            except OSError as exc:
                raise httpx.ConnectError(str(exc)) from exc
            try:
                writer.write(b"\r\n".join(head) + b"\r\n\r\n")
                try:
                    status, fields = await _read_head(reader)
                except OSError as exc:
                    raise httpx.ReadError(str(exc) or exc.__class__.__name__) from exc
                yield PlainResponse(status, fields, _plain_body(reader, status, fields))
            finally:
                writer.transport.abort()  # never reused: nothing to drain or wait for


def _protocol(message: str) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(message)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, httpx.Headers]:
    """The status and headers, skipping informational (1xx) heads."""
    for _ in range(_INFORMATIONAL):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _protocol(f"response head over {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError:
            raise _protocol("the host closed the connection before answering") from None
        status_line, *rest = head[:-4].split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
            raise _protocol("not an HTTP/1.x status line")
        fields = []
        for line in rest:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or line[:1] in b" \t":
                raise _protocol("malformed header line")
            fields.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        status = int(parts[1])
        if status >= 200:
            return status, httpx.Headers(fields)
    raise _protocol("too many informational answers")


async def _plain_body(reader: asyncio.StreamReader, status: int, headers: httpx.Headers) -> AsyncIterator[bytes]:
    """The raw body, piece by piece, framed as RFC 9112 section 6.3 says."""
    try:
        if status in (204, 304):
            return
        coding = headers.get_list("transfer-encoding", split_commas=True)
        if coding:
            if [c.strip().lower() for c in coding] != ["chunked"]:
                raise _protocol(f"Transfer-Encoding {', '.join(coding)!r} is not supported")
            while size := await _chunk_size(reader):
                async for piece in _exactly(reader, size):
                    yield piece
                if await reader.readexactly(2) != b"\r\n":
                    raise _protocol("chunk not followed by CRLF")
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailer fields: ignored
                pass
            return
        lengths = set(headers.get_list("content-length", split_commas=True))
        if lengths:
            length = lengths.pop().strip()
            if lengths or not length.isdigit():
                raise _protocol("invalid Content-Length")
            async for piece in _exactly(reader, int(length)):
                yield piece
            return
        while piece := await reader.read(_PIECE):  # until the host closes
            yield piece
    except asyncio.IncompleteReadError:
        raise _protocol("the host closed the connection mid-answer") from None
    except asyncio.LimitOverrunError:
        raise _protocol(f"chunk-size line over {MAX_HEAD_BYTES} bytes") from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or exc.__class__.__name__) from exc


async def _chunk_size(reader: asyncio.StreamReader) -> int:
    line = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0].strip()
    if not line or len(line) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in line):
        raise _protocol("invalid chunk size")
    return int(line, 16)


async def _exactly(reader: asyncio.StreamReader, size: int) -> AsyncIterator[bytes]:
    while size > 0:
        piece = await reader.read(min(size, _PIECE))
        if not piece:
            raise asyncio.IncompleteReadError(b"", size)
        size -= len(piece)
        yield piece


async def _read_capped(response: httpx.Response | PlainResponse, path: str) -> bytearray:
    """The decoded body, refused as soon as it passes ``MAX_BODY_BYTES`` (httpx's own decoder would inflate a
    whole chunk at once: 2 KB of ``gzip, gzip`` is 1 GiB)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HostError("error", f"{path} body is {int(declared)} bytes; the limit is {MAX_BODY_BYTES}")
    body = bytearray()
    async for piece in _decoded(response, path):
        body.extend(piece)
        if len(body) > MAX_BODY_BYTES:
            raise HostError("error", f"{path} body exceeds {MAX_BODY_BYTES} bytes once decoded; cut off")
    return body


async def _decoded(response: httpx.Response | PlainResponse, path: str) -> AsyncIterator[bytes]:
    """The body as its ``Content-Encoding`` layers are undone by the bridge, in pieces of at most ``_PIECE``
    bytes, so whoever reads it can stop at its own limit with no more than that in memory."""
    layers = [_Inflater.for_encoding(e.strip().lower(), path)
              for e in reversed(response.headers.get("content-encoding", "").split(",")) if e.strip()]
    layers = [layer for layer in layers if layer is not None]
    if len(layers) > MAX_CONTENT_ENCODINGS:
        raise HostError("error", f"{path} is encoded {len(layers)} times; at most {MAX_CONTENT_ENCODINGS} "
                                 "layers are decoded")
    async for raw in response.aiter_raw():
        for piece in _through(layers, raw):
            yield piece
    for piece in _through(layers, b"", final=True):
        yield piece


def _through(layers: list[_Inflater], data: bytes, final: bool = False) -> Iterator[bytes]:
    """``data`` through every layer, lazily: no layer holds more than one bounded piece at a time."""
    if not layers:
        if data:
            yield data
        return
    first, rest = layers[0], layers[1:]
    for piece in first.feed(data):
        yield from _through(rest, piece)
    if final:
        first.finish()
        yield from _through(rest, b"", final=True)


class _Inflater:
    """One ``Content-Encoding`` layer (gzip, possibly multi-member, or deflate, zlib-wrapped or raw)."""

    def __init__(self, encoding: str, path: str) -> None:
        self.encoding, self.path = encoding, path
        self.gzip = encoding in ("gzip", "x-gzip")
        self.state = zlib.decompressobj(31 if self.gzip else 15)
        self.started = False

    @classmethod
    def for_encoding(cls, encoding: str, path: str) -> _Inflater | None:
        if encoding == "identity":
            return None
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise HostError("error", f"{path} answered with Content-Encoding {encoding!r}; only gzip and "
                                     "deflate are decoded")
        return cls(encoding, path)

    def _bad(self, problem: str) -> HostError:
        return HostError("error", f"{self.path} body is not valid {self.encoding} ({problem}) although "
                                  f"Content-Encoding says so")

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self.state.eof:  # the end of one member: another gzip member may follow; anything else is padding
                if not (self.gzip and data[:2] == b"\x1f\x8b"):
                    return
                self.state = zlib.decompressobj(31)
            try:
                piece = self.state.decompress(data, _PIECE)
            except zlib.error as exc:
                if not self.started and not self.gzip:  # some servers send raw deflate without the zlib header
                    self.state, self.started = zlib.decompressobj(-15), True
                    continue
                raise self._bad(str(exc).split(": ")[-1]) from None
            self.started = True
            data = self.state.unconsumed_tail or (self.state.unused_data if self.state.eof else b"")
            if piece:
                yield piece

    def finish(self) -> None:
        if not self.state.eof:
            raise self._bad("cut short" if self.started else "empty")


# --- running discovery ---------------------------------------------------------------------------------

ListModels = Callable[[HostClient], Any]  # ProviderKind.list_models: async, returns (models, skipped)


async def _discover_one(provider: Provider, list_models: ListModels, env: Mapping[str, str],
                        tls: ssl.SSLContext) -> ProviderReport:
    """One provider's report, whatever its host sends and whatever its kind raises: the one place where any
    failure of a discovery becomes that provider's ``offline`` or ``error`` status, in one line."""
    started = time.time()
    limits = httpx.Limits(max_connections=CONNECTIONS_PER_HOST, max_keepalive_connections=CONNECTIONS_PER_HOST)
    try:
        plain = PlainHttp() if provider.base_url.startswith("http:") else None
        client = HostClient(lambda: httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=tls,
                                                      limits=limits), provider, env, plain)
        async with asyncio.timeout(provider.timeout_s):
            try:
                models, skipped = await list_models(client)
            finally:
                await client._close_made()
        return _online(provider, models, skipped, client.notes, started, client.max_loaded)
    except HostError as exc:  # a kind's own HostError is trusted only as far as its type says
        return ProviderReport(provider=provider.id, status="offline" if exc.status == "offline" else "error",
                              error=str(exc.reason), fetched_at=started)
    except TimeoutError:
        return ProviderReport(provider=provider.id, status="offline", fetched_at=started,
                              error=f"no complete answer within {provider.timeout_s:g} s")
    except httpx.TransportError as exc:
        return ProviderReport(provider=provider.id, status="offline", fetched_at=started,
                              error=_transport_reason(exc, provider))
    except Exception as exc:  # a bug, in a kind (a plugin's too) or here, meets a host it did not expect
        log.debug("discovery of %s failed", provider.id, exc_info=True)
        try:
            first_line = (str(exc).splitlines() or [""])[0]
        except Exception:  # even an exception whose message cannot be made stays one provider's error
            first_line = ""
        return ProviderReport(provider=provider.id, status="error", fetched_at=started,
                              error=f"discovery failed on the host's answer ({exc.__class__.__name__}"
                                    + (f": {first_line})" if first_line else ")"))


def _online(provider: Provider, models: list[HostModel], skipped: int, notes: list[str],
            started: float, max_loaded: Any = None) -> ProviderReport:
    """An online report; whatever kind listed the models, at most ``MAX_HOST_MODELS`` with distinct IDs."""
    notes = list(notes)
    if skipped:
        notes.insert(0, f"skipped {skipped} entries whose IDs hold whitespace or control characters")
    first: dict[str, HostModel] = {}
    for model in models:
        first.setdefault(model.id, model)
    unique = list(first.values())
    if len(unique) != len(models):
        notes.append(f"{len(models) - len(unique)} duplicate IDs; the first entry of each is used")
    if len(unique) > MAX_HOST_MODELS:
        notes.append(f"listed {len(unique)} models; only {MAX_HOST_MODELS} are kept (the limit per host)")
        unique = unique[:MAX_HOST_MODELS]
    return ProviderReport(provider=provider.id, status="online", error="; ".join(notes) or None,
                          models=sorted(unique, key=lambda m: m.id), fetched_at=started,
                          max_loaded=positive_int(max_loaded))


def _transport_reason(exc: httpx.TransportError, provider: Provider) -> str:
    if isinstance(exc, httpx.ConnectError):
        if _errno(exc) in (errno.EMFILE, errno.ENFILE):  # ours, not the host's: 1,100 providers at 1,024 files
            return (f"cannot connect to {provider.base_url}: this process ran out of file descriptors "
                    "(raise the limit: ulimit -n)")
        return f"cannot connect to {provider.base_url} (refused or unreachable)"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {provider.base_url} within {provider.timeout_s:g} s"
    return f"{exc.__class__.__name__} talking to {provider.base_url}"


def probe_failure(exc: BaseException, provider: Provider) -> tuple[str, str] | None:
    """What a failed probe says about a host, as ``(how, one line)``: ``refused`` (nothing listens, or no route
    to it), ``silent`` (no answer within ``probe_timeout_s``), ``dropped`` (the connection cut mid-answer).
    None: not a transport failure (a plugin's bug is no sign that the host went away)."""
    within = f"within {provider.probe_timeout_s:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "refused", _transport_reason(exc, provider)
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return "silent", f"no answer from {provider.base_url} {within}"
    if isinstance(exc, httpx.TransportError):
        return "dropped", f"{provider.base_url} dropped the connection ({exc.__class__.__name__})"
    return None


def _errno(exc: BaseException) -> int | None:
    """The errno of the OSError under a transport error (httpx and httpcore wrap it), if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause.errno
        cause = cause.__cause__ or cause.__context__
    return None


def _tls_context(asked: Iterable[Provider]) -> ssl.SSLContext:
    """One TLS context for the whole discovery (built per host it costs milliseconds each). The CA bundle is
    loaded only when a host is https: loading it is 35-40 ms of CPU, which a fleet of plain-http LAN hosts (the
    usual one) would pay on every refresh for nothing. Without it, the context holds no CA and verifies
    everything, so it can never reach an https host by mistake (redirects never leave a host's origin anyway)."""
    if any(p.base_url.startswith("https:") for p in asked):
        return httpx.create_ssl_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loaded: any https handshake would fail


async def discover_async(registry: Registry, list_models_for: Callable[[Provider], ListModels],
                         only: Iterable[str] | None = None, env: Mapping[str, str] | None = None,
                         on_report: Callable[[ProviderReport], None] | None = None) -> dict[str, ProviderReport]:
    """Reports for the chosen providers (default: all), network ones fetched concurrently. ``on_report`` hears
    of each host's report as it comes (the CLI's progress on a terminal)."""
    env = environ(env)
    chosen = [registry.providers[p] for p in (only if only is not None else registry.providers)]
    reports = {p.id: static_report(p, env) for p in chosen if not p.asks_host(env)}
    asked = [p for p in chosen if p.id not in reports]
    if asked:
        tls = _tls_context(asked)
        async def one(provider: Provider) -> ProviderReport:
            report = await _discover_one(provider, list_models_for(provider), env, tls)
            if on_report is not None:
                on_report(report)
            return report

        found = await asyncio.gather(*(one(p) for p in asked))
        reports.update((r.provider, r) for r in found)
    return {p.id: reports[p.id] for p in chosen}


def discover(registry: Registry, list_models_for: Callable[[Provider], ListModels],
             only: Iterable[str] | None = None, env: Mapping[str, str] | None = None,
             on_report: Callable[[ProviderReport], None] | None = None) -> dict[str, ProviderReport]:
    return asyncio.run(discover_async(registry, list_models_for, only, env, on_report))
