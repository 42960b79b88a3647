"""The aiohttp application: routes, the API-key header, limits and error mapping.

``create_app`` is the application factory. One middleware carries every
cross-cutting concern so that each request pays for it once: it sets
``X-MIRROR-API-KEY`` on every response (errors, 404 and 405 included), turns any
failure into a protocol error body, and records the request in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .. import service
from ..protocol import ROUTES, MetricsResponse, MirrorError, RemoteMirrorError
from ..sources import SyntheticSource, TelemetrySource
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


SOURCE = web.AppKey("source", TelemetrySource)
SETTINGS = web.AppKey("settings", ServerSettings)
REQUEST_LOG = web.AppKey("request_log", RequestLog)

_SUMMARY = web.RequestKey("summary", str)
_POINTS = web.RequestKey("points", int)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    source: TelemetrySource | None = None, settings: ServerSettings | None = None
) -> web.Application:
    """A mirror application serving ``source`` (the synthetic catalog by default)."""
    settings = settings or ServerSettings()
    app = web.Application(middlewares=[_mirror_middleware], client_max_size=settings.max_body_bytes)
    app[SOURCE] = source if source is not None else SyntheticSource()
    app[SETTINGS] = settings
    app[REQUEST_LOG] = RequestLog(settings.log_size)
    for path, request_type in ROUTES.items():
        app.router.add_post(path, _method_handler(request_type))
    app.router.add_get("/healthz", _healthz)
    return app


def _method_handler(request_type: Any) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        app = request.app
        parsed = request_type.from_json(await _read_json(request))
        request[_SUMMARY] = parsed.summary()
        settings = app[SETTINGS]
        try:
            response = await asyncio.wait_for(
                service.answer(parsed, app[SOURCE], settings.limits),
                settings.request_timeout_s,
            )
        except asyncio.TimeoutError:
            raise RemoteMirrorError(
                "Request timed out",
                f"no answer within {settings.request_timeout_s:g} s",
                http_status=504,
            ) from None
        if isinstance(response, MetricsResponse):
            request[_POINTS] = len(response.telemetry.values)
        return web.json_response(response.to_json())

    handle.__name__ = f"handle_{request_type.type_name}"
    return handle


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise RemoteMirrorError("Invalid request: body is not valid JSON", str(error)) from None
    except RecursionError:
        raise RemoteMirrorError("Invalid request: body is nested too deeply") from None


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _error_response(error: MirrorError) -> web.Response:
    return web.json_response(error.to_json(), status=error.http_status)


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
    try:
        response = await handler(request)
    except MirrorError as error:
        response = _error_response(error)
        request[_SUMMARY] = f"{request.get(_SUMMARY, '')} -> {error}".lstrip(" ->")
    except web.HTTPException as error:
        mirror_error = _http_error(error)
        response = _error_response(mirror_error)
        request[_SUMMARY] = str(mirror_error)
    except Exception as error:  # the mirror's own fault: still a protocol body
        log.exception("unexpected failure answering %s %s", request.method, request.path)
        response = _error_response(
            RemoteMirrorError("Internal mirror error", repr(error), http_status=500)
        )
        request[_SUMMARY] = f"internal error: {error!r}"
    response.headers[API_KEY_HEADER] = settings.api_key
    request.app[REQUEST_LOG].append(
        RequestLogEntry(
            time=arrived,
            method=_method_name(request),
            path=request.path,
            summary=request.get(_SUMMARY, ""),
            status=response.status,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            points=request.get(_POINTS),
        )
    )
    return response


def _method_name(request: web.Request) -> str:
    """``metric``, ``field/name``... for the four methods; the HTTP method otherwise."""
    known = request.method == "POST" and request.path in ROUTES
    return request.path.removeprefix("/api/") if known else request.method
