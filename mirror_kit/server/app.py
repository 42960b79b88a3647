"""The aiohttp application: routes, the API-key header, limits and error mapping.

``create_app`` is the application factory. One middleware, ``mirror_middleware``,
carries what every answer shares: it checks the optional shared secret, turns any
failure into a protocol error body (404 and 405 included: the router raises them
inside the middleware), sets ``X-MIRROR-API-KEY`` on every response, records the
request in the log, and writes the answer within the send timeout. The handlers
only answer: parse the body, ask ``service.answer`` within the request timeout,
render.

Slow clients are bounded by three timeouts (docs/hardening.md): keep-alive (an
idle connection, or one whose request headers never complete), body (a request
whose body stalls) and send (a client that stops reading its answer).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web

from .. import openapi, service
from ..protocol import ROUTES, MetricsResponse, MirrorError, RemoteMirrorError
from ..protocol.constants import API_KEY_HEADER
from ..protocol.encoding import encode
from ..sources import SyntheticSource, TelemetrySource
from . import auth
from .admission import Admission
from .metrics import setup_metrics
from .requestlog import RequestLog
from .settings import ServerSettings
from .tally import LOG_INTERVAL_S, Tally

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # pragma: no cover - aiohttp depends on async-timeout on Python 3.10
    from async_timeout import timeout

log = logging.getLogger("mirror_kit.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Connections:
    """What the connection cap must know: which connections are answering a request
    now (never closed), and which have answered one (closed after those that never
    did: a client's kept-alive connection outlives a flood of idle ones)."""

    def __init__(self) -> None:
        self.busy: set[Any] = set()
        self.served: set[Any] = set()
        self._prune_at = 1024

    def mark_served(self, connection: Any) -> None:
        served = self.served
        served.add(connection)
        if len(served) > self._prune_at:  # forget closed ones; amortised O(1)
            served.intersection_update([c for c in served if c.transport is not None])
            self._prune_at = max(1024, 2 * len(served))


@dataclass(slots=True)
class Facts:
    """What a handler tells the log about its request, beyond status and timing."""

    #: the parsed request's summary, or what failed
    subject: str = ""
    #: metric points answered, for metric requests
    points: int | None = None


SOURCE = web.AppKey("source", TelemetrySource)
SETTINGS = web.AppKey("settings", ServerSettings)
REQUEST_LOG = web.AppKey("request_log", RequestLog)
CONNECTIONS = web.AppKey("connections", Connections)
OPENAPI = web.AppKey("openapi", dict)
ADMISSION = web.AppKey("admission", Admission)
FACTS = web.RequestKey("facts", Facts)
#: The request log's name for each method's path ("metric", "field/name", ...).
LOG_NAMES = {path: path.removeprefix("/api/") for path in ROUTES}


def create_app(
    source: TelemetrySource | None = None, settings: ServerSettings | None = None
) -> web.Application:
    """A mirror application serving ``source`` (the synthetic catalog by default)."""
    settings = settings or ServerSettings()
    auth.check_secret(settings.auth_secret)
    source = source if source is not None else SyntheticSource()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[mirror_middleware],
        handler_args={
            "keepalive_timeout": settings.keepalive_timeout_s,
            # after an early answer (408, 413), read and drop the rest of a body no
            # longer than the body timeout (aiohttp's default: 10 s)
            "lingering_time": min(10.0, settings.body_timeout_s),
            # bodies are decoded by _decoded: aiohttp's parser would answer an encoding
            # it cannot decode (br without Brotli) with a text/plain 400 of its own
            "auto_decompress": False,
        },
    )
    app[SOURCE] = source
    app[SETTINGS] = settings
    app[REQUEST_LOG] = RequestLog(settings.log_size)
    app[CONNECTIONS] = Connections()
    app[SENDS] = SendBudget(settings.max_unsent_bytes)
    app[OPENAPI] = openapi.build_document(
        api_key_header=API_KEY_HEADER,
        auth_header=None if settings.auth_secret is None else auth.AUTH_HEADER,
    )
    admission = app[ADMISSION] = Admission()  # heavy work off the loop (admission.py)
    app.on_cleanup.append(_close_admission)
    for prefix in auth.route_prefixes(settings.auth_secret):
        for path, request_type in ROUTES.items():
            handler = _method_handler(request_type, source, settings, admission)
            app.router.add_post(prefix + path, handler)
        app.router.add_get(prefix + "/healthz", _healthz)
        app.router.add_get(prefix + "/openapi.json", _openapi)
    setup_metrics(app)  # /metrics, /readyz and the request timing
    app.on_cleanup.append(_close_source)
    return app


async def _close_admission(app: web.Application) -> None:
    await app[ADMISSION].aclose()


async def _close_source(app: web.Application) -> None:
    """Sources that hold connections (Prometheus) close them when the mirror stops."""
    closer = getattr(app[SOURCE], "aclose", None)
    if closer is not None:
        await closer()


@web.middleware
async def mirror_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What every answer shares (see the module docstring)."""
    app, connection = request.app, request.protocol
    settings = app[SETTINGS]
    connections = app[CONNECTIONS]
    connections.busy.add(connection)  # answering: the connection cap may not close it
    try:
        started = time.perf_counter()
        path = auth.public_path(request.path, settings.auth_secret)  # logs never show it
        facts = request[FACTS] = Facts()
        try:
            auth.authorize(
                request.path, request.headers.get(auth.AUTH_HEADER), settings.auth_secret
            )
            response = await handler(request)
        except Exception as error:  # every failure becomes a protocol body
            response = _failure_response(request, error, path, facts)
        response.headers[API_KEY_HEADER] = settings.api_key
        name = LOG_NAMES.get(path, request.method) if request.method == "POST" else request.method
        # before sending: whoever has the answer finds it logged
        app[REQUEST_LOG].record(started, name, path, facts.subject, response.status, facts.points)
        return await _send(request, response, path, settings.send_timeout_s, app[SENDS])
    finally:
        connections.busy.discard(connection)
        connections.mark_served(connection)


def _method_handler(
    request_type: Any, source: TelemetrySource, settings: ServerSettings, admission: Admission
) -> Handler:
    """The handler of one Mirror API method, bound to the mirror's source and settings."""
    limits, timeout_s = settings.limits, settings.request_timeout_s

    def parse(body: bytes) -> Any:
        return request_type.from_bytes(body)

    async def handle(request: web.Request) -> web.Response:
        raw = await _body(request, settings.body_timeout_s)
        parsed = await admission.parse(raw, parse)
        facts = request[FACTS]
        facts.subject = parsed.summary()
        try:
            async with timeout(timeout_s):
                response = await service.answer(parsed, source, limits)
        except asyncio.TimeoutError:
            raise RemoteMirrorError(
                "Request timed out", f"no answer within {timeout_s:g} s", http_status=504
            ) from None
        if isinstance(response, MetricsResponse):
            facts.points = len(response.telemetry.values)
        return _bytes_response(await admission.encode(response))

    handle.__name__ = f"handle_{request_type.type_name}"
    return handle


async def _body(request: web.Request, timeout_s: float) -> bytes:
    """The body with its Content-Encoding undone, within the body timeout (aiohttp
    itself would wait for a stalled body for ever); 413 past the size cap."""
    try:
        async with timeout(timeout_s):
            raw = await request.read()
    except asyncio.TimeoutError:
        raise RemoteMirrorError(
            "Request body not received in time",
            f"Content-Length announced more than arrived within {timeout_s:g} s",
            http_status=408,
        ) from None
    encoding = request.headers.get(hdrs.CONTENT_ENCODING)
    return raw if encoding is None else _decoded(raw, encoding, request.client_max_size)


#: Content-Encoding -> zlib wbits: gzip; zlib-wrapped deflate (RFC 9110), or raw deflate.
_CODINGS = {"gzip": (31,), "x-gzip": (31,), "deflate": (15, -15)}


def _decoded(raw: bytes, encoding: str, cap: int) -> bytes:
    """The body with its Content-Encoding undone, inflating no more than ``cap`` bytes.

    One coding of gzip or deflate (or identity): what HTTP clients send. Others (br,
    zstd, stacked codings) are refused with a 400 naming those the mirror takes.
    """
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return raw
    if coding not in _CODINGS:
        raise RemoteMirrorError(
            "Unsupported Content-Encoding",
            f"{encoding[:40]!r}: the mirror takes gzip, deflate or identity",
        )
    for wbits in _CODINGS[coding]:
        inflater = zlib.decompressobj(wbits)
        try:
            body = inflater.decompress(raw, cap + 1)
        except zlib.error:
            continue
        if len(body) > cap or inflater.unconsumed_tail:
            raise web.HTTPRequestEntityTooLarge(cap, len(raw))
        if inflater.eof and not inflater.unused_data:
            return body
    raise RemoteMirrorError(
        f"Invalid request: body is not valid {coding}",
        "the body does not decode as its Content-Encoding says (truncated, trailing or plain)",
    )


async def _healthz(request: web.Request) -> web.Response:
    return _json_response({"status": "ok"})


async def _openapi(request: web.Request) -> web.Response:
    return _json_response(request.app[OPENAPI])


def _json_response(body: Any, status: int = 200) -> web.Response:
    return _bytes_response(encode(body), status)


def _bytes_response(encoded: bytes, status: int = 200) -> web.Response:
    return web.Response(body=encoded, status=status, content_type="application/json")


def _error_response(error: MirrorError) -> web.Response:
    return _json_response(error.to_json(), error.http_status)


def _http_error(error: web.HTTPException) -> MirrorError:
    if error.status == 413:
        summary = "Request body too large"
    elif error.status == 405:
        summary = "Method not allowed: the Mirror API takes POST"
    elif error.status == 404:
        summary = "Not found: the Mirror API paths are " + ", ".join(ROUTES)
    else:
        summary = error.reason
    return RemoteMirrorError(summary, error.text or error.reason, http_status=error.status)


def _failure_response(
    request: web.Request, error: Exception, path: str, facts: Facts
) -> web.Response:
    """The protocol error body for a failure; the log's subject says what failed."""
    if isinstance(error, MirrorError):
        mirror_error, what = error, str(error)
    elif isinstance(error, web.HTTPException):
        mirror_error = _http_error(error)
        what = str(mirror_error)
    else:  # the mirror's own fault: still a protocol body
        log.error("unexpected failure answering %s %s", request.method, path, exc_info=error)
        mirror_error = RemoteMirrorError("Internal mirror error", repr(error), http_status=500)
        what = f"internal error: {error!r}"
    shown = facts.subject
    facts.subject = f"{shown} -> {what}" if shown else what
    response = _error_response(mirror_error)
    if isinstance(error, web.HTTPException) and "Allow" in error.headers:
        response.headers["Allow"] = error.headers["Allow"]  # a 405 must say what is allowed
    retry_after_s = getattr(error, "retry_after_s", None)  # admission.Busy (a 503)
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response


class SendBudget:
    """Bounds the bytes of answers being written: past ``max_bytes``, the oldest go.

    A client that never reads holds its whole answer (and the handler around it) in
    memory until the send timeout; 150 of them held 1.5 GiB. So the answers being
    written are counted, and when a new one would take the total past the budget,
    the sends that started first -- the slowest readers -- are aborted, whatever
    their timeout. A client reading at any normal speed is done long before.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._sends: dict[asyncio.Transport, int] = {}  # oldest first
        self._tally = Tally(self._describe, LOG_INTERVAL_S)

    def start(self, transport: asyncio.Transport, size: int) -> None:
        self._sends[transport] = size
        self.total += size
        while self.total > self.max_bytes and len(self._sends) > 1:
            oldest = next(iter(self._sends))
            self.finish(oldest)
            oldest.abort()
            self._tally.add("aborted")

    def _describe(self, counts: Counter[str]) -> str:
        return (
            f"{counts['aborted']} answer(s) aborted in the last {LOG_INTERVAL_S:g} s or "
            f"less: clients not reading them held more than the {self.max_bytes} bytes of "
            "unsent answers allowed (max_unsent_bytes)"
        )

    def finish(self, transport: asyncio.Transport) -> None:
        self.total -= self._sends.pop(transport, 0)


SENDS = web.AppKey("sends", SendBudget)


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    path: str,
    timeout_s: float,
    budget: SendBudget,
) -> web.StreamResponse:
    """Write the answer; abort the connection if it is not written within ``timeout_s``
    or if unsent answers exceed their byte budget. Returns the response written.

    aiohttp has no write timeout: a client that stops reading would hold the
    connection, the handler and the encoded body in memory for ever.
    """
    transport = request.transport
    if transport is None:  # the client has left
        return response
    body = response.body if isinstance(response, web.Response) else None
    budget.start(transport, len(body) if isinstance(body, bytes) else SEND_CHUNK_BYTES)
    try:
        async with timeout(timeout_s):
            return await _write(request, response, body)
    except asyncio.TimeoutError:
        log.warning(
            "%s %s: answer not delivered within %g s (the client stopped reading); "
            "connection aborted",
            request.method,
            path,
            timeout_s,
        )
        transport.abort()  # drops the unsent buffer; close() would wait for it to drain
    except ConnectionError:
        pass  # the client left or was aborted; aiohttp ends the connection
    finally:
        budget.finish(transport)
    return response


async def _write(
    request: web.Request, response: web.StreamResponse, body: Any
) -> web.StreamResponse:
    """``response`` written to the client (a large body in slices, see below)."""
    if isinstance(body, bytes) and len(body) > SEND_CHUNK_BYTES and request.method != "HEAD":
        return await _write_in_chunks(request, response, body)
    await response.prepare(request)
    await response.write_eof()
    return response


#: A large answer goes out this much at a time, each waiting for the last to drain.
SEND_CHUNK_BYTES = 64 * 1024


async def _write_in_chunks(
    request: web.Request, response: web.StreamResponse, body: bytes
) -> web.StreamResponse:
    """The body written a slice at a time, so the transport never holds a copy of it
    (asyncio's buffer would copy what the socket does not take at once)."""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    view = memoryview(body)
    for start in range(0, len(body), SEND_CHUNK_BYTES):
        await stream.write(view[start : start + SEND_CHUNK_BYTES])
    await stream.write_eof()
    return stream
