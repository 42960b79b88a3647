"""The aiohttp application: routes, the API-key header, limits and error mapping.

``create_app`` is the application factory. One middleware carries every
cross-cutting concern so that each request pays for it once: it checks the
optional shared secret, sets ``X-MIRROR-API-KEY`` on every response (errors, 404
and 405 included), turns any failure into a protocol error body, writes the answer
within the send timeout, and records the request in the log.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .. import openapi, service
from ..protocol import ROUTES, MetricsResponse, MirrorError, RemoteMirrorError
from ..sources import SyntheticSource, TelemetrySource
from . import auth
from .requestlog import RequestLog, RequestLogEntry

log = logging.getLogger("mirror_kit.server")

API_KEY_HEADER = "X-MIRROR-API-KEY"
DEFAULT_API_KEY = "api_key"
DEFAULT_PORT = 7007


@dataclass(frozen=True)
class ServerSettings:
    """Everything about serving that is not the data: key, caps and timeouts."""

    api_key: str = DEFAULT_API_KEY
    max_body_bytes: int = 1 << 20
    request_timeout_s: float = 30.0
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
OPENAPI = web.AppKey("openapi", dict)

_SUMMARY = web.RequestKey("summary", str)
_POINTS = web.RequestKey("points", int)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    source: TelemetrySource | None = None, settings: ServerSettings | None = None
) -> web.Application:
    """A mirror application serving ``source`` (the synthetic catalog by default)."""
    settings = settings or ServerSettings()
    auth.check_secret(settings.auth_secret)
    app = web.Application(
        middlewares=[_mirror_middleware],
        client_max_size=settings.max_body_bytes,
        handler_args={
            "keepalive_timeout": settings.keepalive_timeout_s,
            # after an early answer (408, 413), read and drop the rest of a body no
            # longer than the body timeout (aiohttp's default: 10 s)
            "lingering_time": min(10.0, settings.body_timeout_s),
        },
    )
    app[SOURCE] = source if source is not None else SyntheticSource()
    app[SETTINGS] = settings
    app[REQUEST_LOG] = RequestLog(settings.log_size)
    app[OPENAPI] = openapi.build_document(
        api_key_header=API_KEY_HEADER,
        auth_header=None if settings.auth_secret is None else auth.AUTH_HEADER,
    )
    for prefix in auth.route_prefixes(settings.auth_secret):
        for path, request_type in ROUTES.items():
            app.router.add_post(prefix + path, _method_handler(request_type))
        app.router.add_get(prefix + "/healthz", _healthz)
        app.router.add_get(prefix + "/openapi.json", _openapi)
    app.on_cleanup.append(_close_source)
    return app


async def _close_source(app: web.Application) -> None:
    """Sources that hold connections (Prometheus) close them when the mirror stops."""
    closer = getattr(app[SOURCE], "aclose", None)
    if closer is not None:
        await closer()


def _method_handler(request_type: Any) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        app = request.app
        parsed = request_type.from_json(await _read_json(request))
        request[_SUMMARY] = parsed.summary()
        settings, source = app[SETTINGS], app[SOURCE]
        try:
            if source.blocks(parsed.connection_details):
                async with _timeout(settings.request_timeout_s):
                    response = await service.answer(parsed, source, settings.limits)
            else:
                response = await service.answer(parsed, source, settings.limits)
        except asyncio.TimeoutError:
            raise RemoteMirrorError(
                "Request timed out",
                f"no answer within {settings.request_timeout_s:g} s",
                http_status=504,
            ) from None
        if isinstance(response, MetricsResponse):
            request[_POINTS] = len(response.telemetry.values)
        return _json_response(response.to_json())

    handle.__name__ = f"handle_{request_type.type_name}"
    return handle


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: One decoder for all requests (json.loads would build one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


async def _read_body(request: web.Request) -> bytes:
    """The body, within the body timeout (aiohttp itself would wait for it forever)."""
    if request.content.is_eof():  # all arrived with the headers: no timer needed
        return await request.read()
    timeout_s = request.app[SETTINGS].body_timeout_s
    try:
        return await asyncio.wait_for(request.read(), timeout_s)
    except asyncio.TimeoutError:
        raise RemoteMirrorError(
            "Request body not received in time",
            f"Content-Length announced more than arrived within {timeout_s:g} s",
            http_status=408,
        ) from None


async def _read_json(request: web.Request) -> Any:
    raw = await _read_body(request)
    try:
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, UnicodeDecodeError) as error:
        raise RemoteMirrorError("Invalid request: body is not valid JSON", str(error)) from None
    except RecursionError:
        raise RemoteMirrorError("Invalid request: body is nested too deeply") from None


async def _healthz(request: web.Request) -> web.Response:
    return _json_response({"status": "ok"})


async def _openapi(request: web.Request) -> web.Response:
    return _json_response(request.app[OPENAPI])


def _json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON answer encoded with orjson: encoding metric points is the hot path.

    Text echoed from a request may hold lone surrogates (``"\\ud800"`` is valid JSON);
    orjson refuses them, the standard library escapes them again.
    """
    try:
        encoded = orjson.dumps(body)
    except orjson.JSONEncodeError:
        encoded = json.dumps(body).encode()
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


@web.middleware
async def _mirror_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    arrived = time.time()
    settings = request.app[SETTINGS]
    secret = settings.auth_secret
    path = request.path if secret is None else auth.public_path(request.path, secret)
    try:
        if secret is not None:  # logs never show the secret: ``path`` is without it
            auth.authorize(request.path, request.headers.get(auth.AUTH_HEADER), secret)
        response = await handler(request)
    except MirrorError as error:
        response = _error_response(error)
        request[_SUMMARY] = f"{request.get(_SUMMARY, '')} -> {error}".lstrip(" ->")
    except web.HTTPException as error:
        mirror_error = _http_error(error)
        response = _error_response(mirror_error)
        if "Allow" in error.headers:  # a 405 must say which methods are allowed
            response.headers["Allow"] = error.headers["Allow"]
        request[_SUMMARY] = str(mirror_error)
    except Exception as error:  # the mirror's own fault: still a protocol body
        log.exception("unexpected failure answering %s %s", request.method, path)
        response = _error_response(
            RemoteMirrorError("Internal mirror error", repr(error), http_status=500)
        )
        request[_SUMMARY] = f"internal error: {error!r}"
    response.headers[API_KEY_HEADER] = settings.api_key
    request.app[REQUEST_LOG].append(  # before sending: whoever has the answer finds it logged
        RequestLogEntry(
            time=arrived,
            method=_method_name(request.method, path),
            path=path,
            summary=request.get(_SUMMARY, ""),
            status=response.status,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            points=request.get(_POINTS),
        )
    )
    body = getattr(response, "body", None)
    if not (isinstance(body, bytes) and len(body) < SMALL_ANSWER_BYTES):
        await _send(request, response, settings.send_timeout_s, path)
    return response  # a small answer cannot stall: aiohttp writes it


async def _send(
    request: web.Request, response: web.StreamResponse, timeout_s: float, path: str
) -> None:
    """Write the answer, aborting the connection if it is not written within ``timeout_s``.

    aiohttp has no write timeout: a client that stops reading would hold the
    connection, the handler and the encoded body in memory for ever.
    """
    transport = request.transport
    if transport is None:
        return

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
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass  # the client left or was aborted; aiohttp ends the connection
    finally:
        timer.cancel()


def _method_name(method: str, path: str) -> str:
    """``metric``, ``field/name``... for the four methods; the HTTP method otherwise."""
    known = method == "POST" and path in ROUTES
    return path.removeprefix("/api/") if known else method
