"""``GET /metrics`` and ``GET /readyz``, and the middleware that times every request.

``setup_metrics(app)`` is called once by ``create_app``: it adds the two routes (at
the root and under the secret's prefix; the mirror's middleware gives them the API
key and maps their errors like every other route's) and, outermost, a middleware that
counts and times every answer by route and status class, so it sees the status the
caller gets (mirror_kit/telemetry.py has the metrics and why their labels stay
bounded).

Auth: ``/readyz`` is open like ``/healthz`` (server/auth.py's OPEN_PATHS), so that
probes need no secret; it shows a status per store name and nothing else.
``/metrics`` tells how the mirror is used, so with a secret set it takes the secret
like the Mirror API does (scrape ``/<secret>/metrics``, or send the header).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .. import telemetry
from ..protocol.encoding import encode
from . import auth
from .readiness import Readiness, store_checks

READINESS = web.AppKey("readiness", Readiness)
METRICS_PATH = "/metrics"
READYZ_PATH = "/readyz"
#: Error bodies are small; a larger answer is not an error body worth reading.
ERROR_BODY_BYTES = 64 * 1024

Plain = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup_metrics(app: web.Application) -> None:
    """Add /metrics, /readyz and the timing middleware to a mirror's ``app``."""
    from .app import SETTINGS, SOURCE  # app.py calls this: no import cycle at load

    secret = app[SETTINGS].auth_secret
    app[READINESS] = Readiness(store_checks(app[SOURCE]))
    app.on_cleanup.append(_close_readiness)
    app.middlewares.insert(0, _timing(secret))  # outside the mirror's own middleware
    for prefix in auth.route_prefixes(secret):
        app.router.add_get(prefix + METRICS_PATH, _metrics)
        app.router.add_get(prefix + READYZ_PATH, _readyz)


async def _close_readiness(app: web.Application) -> None:
    await app[READINESS].close()


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = telemetry.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _readyz(request: web.Request) -> web.Response:
    verdict = await request.app[READINESS].verdict()
    return web.Response(
        body=encode(verdict.to_json()),
        status=200 if verdict.ready else 503,
        content_type="application/json",
    )


def _timing(secret: str | None) -> Any:
    """The middleware counting and timing answers; label children are made once each
    (in the serving process: under gunicorn, after the fork)."""
    methods: dict[Any, str] = {}  # aiohttp route -> method label: bounded by the routes
    answered: dict[tuple[str, int], tuple[Any, Any]] = {}
    in_flight: dict[str, Any] = {}

    def method_of(request: web.Request) -> str:
        route = request.match_info.route
        method = methods.get(route)
        if method is None:
            if route.resource is None:  # aiohttp's system route, made anew per request
                return telemetry.OTHER
            path = auth.public_path(route.resource.canonical, secret)
            method = methods[route] = telemetry.METHOD_LABELS.get(path, telemetry.OTHER)
        return method

    def count(method: str, status: int, seconds: float) -> None:
        metrics = answered.get((method, status))
        if metrics is None:
            labels = (method, telemetry.status_class(status))
            metrics = answered[method, status] = (
                telemetry.REQUESTS.labels(*labels),
                telemetry.REQUEST_SECONDS.labels(*labels),
            )
        metrics[0].inc()
        metrics[1].observe(seconds)

    @web.middleware
    async def timed(request: web.Request, handler: Plain) -> web.StreamResponse:
        method = method_of(request)
        gauge = in_flight.get(method)
        if gauge is None:
            gauge = in_flight[method] = telemetry.IN_FLIGHT.labels(method)
        started = time.perf_counter()
        gauge.inc()
        try:
            response = await handler(request)
        finally:
            gauge.dec()
        count(method, response.status, time.perf_counter() - started)
        if response.status >= 400:
            _count_error(response)
        return response

    return timed


def _count_error(response: web.StreamResponse) -> None:
    """Count an error answer by the ``_type`` of its protocol body (a body without
    one, such as /readyz's 503, is not a mirror error)."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or len(body) > ERROR_BODY_BYTES:
        return
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(parsed, dict) and "_type" in parsed:
        kind = telemetry.error_type(parsed["_type"])
        telemetry.ERRORS.labels(kind, telemetry.error_status(response.status)).inc()
