"""The aiohttp application: routes, the API-key header, limits and error mapping.

``create_app`` is the application factory. One wrapper, ``_Guard``, carries every
cross-cutting concern so that each request pays for it once: it checks the
optional shared secret, sets ``X-MIRROR-API-KEY`` on every response (errors, 404
and 405 included), turns any failure into a protocol error body, writes the answer
within the send timeout, and records the request in the log.

It wraps each route's handler rather than being a middleware: aiohttp's middleware
chain (its lookup, ``_fix_request_current_app`` and one more coroutine per request)
costs about 3 us, a tenth of what aiohttp itself spends on a test connection
(bench/README.md). So every path has a route: the four methods, ``/healthz``,
``/openapi.json``, and a catch-all that answers 404, or 405 on a known path.

Slow clients are bounded by three timeouts (docs/hardening.md): keep-alive (an
idle connection, or one whose request headers never complete), body (a request
whose body stalls) and send (a client that stops reading its answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import hdrs, web

from .. import openapi, service
from ..protocol import ROUTES, MetricsResponse, MirrorError, RemoteMirrorError
from ..protocol.constants import API_KEY_HEADER
from ..protocol.encoding import encode
from ..sources import SyntheticSource, TelemetrySource
from . import auth
from .admission import Admission
from .requestlog import RequestLog, Subject, summary_of
from .tally import LOG_INTERVAL_S, Tally

log = logging.getLogger("mirror_kit.server")

DEFAULT_API_KEY = "api_key"
DEFAULT_PORT = 7007


@dataclass(frozen=True)
class ServerSettings:
    """Everything about serving that is not the data: key, caps and timeouts."""

    api_key: str = DEFAULT_API_KEY
    max_body_bytes: int = 1 << 20
    request_timeout_s: float = 12.0  # under StackState's 15 s UI request timeout
    log_size: int = 500
    limits: service.Limits = field(default_factory=service.Limits)
    #: Shared secret requests must carry (header or path token, see auth.py); None: off.
    auth_secret: str | None = None
    #: Close a connection idle this long (aiohttp's default is an hour); nginx's value,
    #: longer than common client pools keep idle connections, so reuse rarely races it.
    keepalive_timeout_s: float = 75.0
    #: A request body must arrive within this once its headers have.
    body_timeout_s: float = 30.0
    #: An answer must be written within this, or the connection is aborted.
    send_timeout_s: float = 60.0
    #: Open connections; past it the oldest idle ones are closed (lifecycle.py).
    max_connections: int = 1000
    #: Bytes of answers being written to clients; past it the oldest sends are aborted.
    max_unsent_bytes: int = 32 << 20
    #: On SIGTERM/SIGINT, requests in progress and queued get this long to be answered.
    stop_grace_s: float = 15.0


#: Answers smaller than this fit the transport's buffer (aiohttp waits for a drain
#: only above its 64 KiB high-water mark), so writing them cannot stall.
SMALL_ANSWER_BYTES = 64 * 1024

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:  # pragma: no cover - Python 3.10 lacks asyncio.timeout

    @contextlib.asynccontextmanager
    async def _timeout(seconds: float) -> Any:
        task = asyncio.current_task()
        assert task is not None
        handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
        try:
            yield
        except asyncio.CancelledError:
            raise asyncio.TimeoutError from None
        finally:
            handle.cancel()


SOURCE = web.AppKey("source", TelemetrySource)
SETTINGS = web.AppKey("settings", ServerSettings)
REQUEST_LOG = web.AppKey("request_log", RequestLog)


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


CONNECTIONS = web.AppKey("connections", Connections)
OPENAPI = web.AppKey("openapi", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Facts:
    """What a handler tells the log about its request, beyond status and timing."""

    #: text, or the parsed request's ``summary``, called only when the log is read
    subject: Subject = ""
    #: metric points answered, for metric requests
    points: int | None = None


#: A route's handler as ``_Guard`` calls it: the request, and the facts to fill in.
Endpoint = Callable[[web.Request, Facts], Awaitable[web.StreamResponse]]


def create_app(
    source: TelemetrySource | None = None, settings: ServerSettings | None = None
) -> web.Application:
    """A mirror application serving ``source`` (the synthetic catalog by default)."""
    settings = settings or ServerSettings()
    auth.check_secret(settings.auth_secret)
    source = source if source is not None else SyntheticSource()
    request_log = RequestLog(settings.log_size)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
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
    app[REQUEST_LOG] = request_log
    app[OPENAPI] = openapi.build_document(
        api_key_header=API_KEY_HEADER,
        auth_header=None if settings.auth_secret is None else auth.AUTH_HEADER,
    )
    connections = Connections()
    app[CONNECTIONS] = connections
    guard = _Guard(settings, request_log, connections)
    admission = Admission()  # heavy bodies and answers off the loop (admission.py)
    app.on_cleanup.append(lambda _: admission.aclose())
    for prefix in auth.route_prefixes(settings.auth_secret):
        for path, request_type in ROUTES.items():
            handler = _method_handler(request_type, source, settings, admission)
            app.router.add_post(prefix + path, guard(handler, path.removeprefix("/api/"), path))
        app.router.add_get(prefix + "/healthz", guard(_healthz, "GET", "/healthz"))
        app.router.add_get(prefix + "/openapi.json", guard(_openapi, "GET", "/openapi.json"))
    allowed = {r.canonical: {route.method for route in r} for r in app.router.resources()}
    app.router.add_route("*", r"/{path:[\s\S]*}", guard(_off_the_api(allowed)))  # \n too
    app.on_cleanup.append(_close_source)
    return app


async def _close_source(app: web.Application) -> None:
    """Sources that hold connections (Prometheus) close them when the mirror stops."""
    closer = getattr(app[SOURCE], "aclose", None)
    if closer is not None:
        await closer()


def _method_handler(
    request_type: Any, source: TelemetrySource, settings: ServerSettings, admission: Admission
) -> Endpoint:
    """The handler of one Mirror API method, bound to the mirror's source and settings."""
    limits, timeout_s = settings.limits, settings.request_timeout_s

    def parse(body: bytes) -> Any:
        return request_type.from_json(_parse_json(body))

    async def handle(request: web.Request, facts: Facts) -> web.Response:
        raw = _arrived_body(request)
        if raw is None:
            raw = await _late_body(request, settings.body_timeout_s)
        encoding = request.headers.get(hdrs.CONTENT_ENCODING)
        if encoding is not None:
            raw = _decoded(raw, encoding, request.client_max_size)
        parsed = await admission.parse(raw, parse)
        facts.subject = parsed.summary
        try:
            if source.blocks(parsed.connection_details):
                async with _timeout(timeout_s):
                    response = await service.answer(parsed, source, limits)
            else:
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: One decoder for all requests (json.loads would build one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _arrived_body(request: web.Request) -> bytes | None:
    """The body if all of it came with the headers (the usual case), else None."""
    if not request.content.is_eof():
        return None
    body = request.content.read_nowait()
    if len(body) > request.client_max_size:
        raise web.HTTPRequestEntityTooLarge(request.client_max_size, len(body))
    return body


async def _late_body(request: web.Request, timeout_s: float) -> bytes:
    """The body, within the body timeout (aiohttp itself would wait for it forever)."""
    try:
        return await asyncio.wait_for(request.read(), timeout_s)
    except asyncio.TimeoutError:
        raise RemoteMirrorError(
            "Request body not received in time",
            f"Content-Length announced more than arrived within {timeout_s:g} s",
            http_status=408,
        ) from None


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


def _parse_json(raw: bytes) -> Any:
    """The body as JSON: orjson for the usual UTF-8 body, the standard library else.

    The standard library also reads what orjson refuses but JSON allows (UTF-16 and
    UTF-32 bodies, lone surrogate escapes, integers past 64 bits), and words the error.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, UnicodeDecodeError) as error:
        raise RemoteMirrorError("Invalid request: body is not valid JSON", str(error)) from None
    except RecursionError:
        raise RemoteMirrorError("Invalid request: body is nested too deeply") from None


def _off_the_api(allowed: dict[str, set[str]]) -> Endpoint:
    """404 for an unknown path; 405, with the Allow header, for a known one."""

    async def off_the_api(request: web.Request, facts: Facts) -> web.Response:
        methods = allowed.get(request.path)
        if methods is None:
            raise web.HTTPNotFound()
        raise web.HTTPMethodNotAllowed(request.method, methods)

    return off_the_api


async def _healthz(request: web.Request, facts: Facts) -> web.Response:
    return _json_response({"status": "ok"})


async def _openapi(request: web.Request, facts: Facts) -> web.Response:
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


class _Guard:
    """Wraps route handlers in the concerns every answer shares (see the module doc)."""

    def __init__(
        self, settings: ServerSettings, request_log: RequestLog, connections: Connections
    ) -> None:
        self.settings = settings
        self.request_log = request_log
        self.connections = connections
        self.busy = connections.busy
        self.sends = SendBudget(settings.max_unsent_bytes)

    def __call__(
        self, endpoint: Endpoint, method: str | None = None, route: str | None = None
    ) -> Handler:
        """An aiohttp handler: ``endpoint`` guarded. The log names it ``method`` (None:
        the HTTP method) and shows ``route`` as its path (None: the request's, the
        secret taken out)."""
        api_key, secret = self.settings.api_key, self.settings.auth_secret
        send_timeout_s, record = self.settings.send_timeout_s, self.request_log.record
        busy, sends, connections = self.busy, self.sends, self.connections

        async def guarded(request: web.Request) -> web.StreamResponse:
            connection = request.protocol
            busy.add(connection)  # answering: the connection cap may not close it
            try:
                return await answer(request)
            finally:
                busy.discard(connection)
                connections.mark_served(connection)

        async def answer(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            path = route or auth.public_path(request.path, secret)
            facts = Facts()
            try:
                if secret is not None:  # logs never show the secret: ``path`` is without it
                    auth.authorize(request.path, request.headers.get(auth.AUTH_HEADER), secret)
                response = await endpoint(request, facts)
            except Exception as error:  # every failure becomes a protocol body
                response = _failure_response(request, error, path, facts)
            response.headers[API_KEY_HEADER] = api_key
            record(  # before sending: whoever has the answer finds it logged
                started,
                method or request.method,
                path,
                facts.subject,
                response.status,
                facts.points,
            )
            body = getattr(response, "body", None)
            if not (isinstance(body, bytes) and len(body) < SMALL_ANSWER_BYTES):
                return await _send(request, response, send_timeout_s, path, sends)
            return response  # a small answer cannot stall: aiohttp writes it

        guarded.__name__ = endpoint.__name__
        return guarded


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
    shown = summary_of(facts.subject)
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


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    timeout_s: float,
    path: str,
    budget: SendBudget,
) -> web.StreamResponse:
    """Write the answer, aborting the connection if it is not written within ``timeout_s``
    or if unsent answers exceed their byte budget; returns the response written.

    aiohttp has no write timeout: a client that stops reading would hold the
    connection, the handler and the encoded body in memory for ever.
    """
    transport = request.transport
    if transport is None:
        return response
    body = getattr(response, "body", None)
    budget.start(transport, len(body) if isinstance(body, bytes) else SMALL_ANSWER_BYTES)

    def abort() -> None:
        log.warning(
            "%s %s: answer not delivered within %g s (the client stopped reading); "
            "connection aborted",
            request.method,
            path,
            timeout_s,
        )
        transport.abort()  # drops the unsent buffer; close() would wait for it to drain

    timer = asyncio.get_running_loop().call_later(timeout_s, abort)
    try:
        if isinstance(body, bytes):
            response = await _write_in_chunks(request, response, body)
        else:
            await response.prepare(request)
            await response.write_eof()
    except ConnectionError:
        pass  # the client left or was aborted; aiohttp ends the connection
    finally:
        timer.cancel()
        budget.finish(transport)
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
