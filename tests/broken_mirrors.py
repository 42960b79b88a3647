"""Deliberately broken mirrors: each breaks one rule of MIRROR_API.md, and only that one.

``Mirror`` is a small, correct aiohttp mirror over the kit's service and synthetic
source; every subclass overrides one hook to break one thing. They prove that each
conformance check can fail (``BROKEN`` maps each to the check that must catch it).
``serving(app)`` runs an app on 127.0.0.1, on a free port, in a background loop
thread, because the checker is blocking and must not share the server's loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from aiohttp import web

from mirror_kit import service
from mirror_kit.protocol import (
    ROUTES,
    MetricStoreConnectionError,
    MirrorError,
    RemoteMirrorError,
    UnsupportedFieldTypeError,
)
from mirror_kit.protocol.constants import API_KEY_HEADER
from mirror_kit.sources import SyntheticSource

API_KEY = "api_key"
#: How long a hanging mirror hangs: far beyond the tests' client timeouts.
HANG_S = 5.0
#: The checker's "everything" limit is 2147483647; its paging limits are small.
SMALL_LIMIT = 1_000_000

Json = dict[str, Any]


class Mirror:
    """A correct mirror; each hook below is where a subclass breaks one thing."""

    def __init__(self) -> None:
        self.source = SyntheticSource()
        self.limits = service.Limits()

    def app(self) -> web.Application:
        app = web.Application()
        for path in ROUTES:
            app.router.add_post(path, self.handle)
        app.on_response_prepare.append(self._stamp_key)
        return app

    async def _stamp_key(self, request: web.Request, response: web.StreamResponse) -> None:
        key = self.key_for(response.status)
        if key is not None:
            response.headers[API_KEY_HEADER] = key

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return await self.bad_json(request)
        try:
            body = self.edit_request(request.path, body)
            parsed = ROUTES[request.path].from_json(body)
            answer = (await service.answer(parsed, self.source, self.limits)).to_json()
        except MirrorError as error:
            return self.error(error)
        return web.json_response(self.edit_answer(request.path, body, answer))

    # The hooks.

    def key_for(self, status: int) -> str | None:
        return API_KEY

    async def bad_json(self, request: web.Request) -> web.StreamResponse:
        return self.error(RemoteMirrorError("Invalid request: body is not valid JSON"))

    def error(self, error: MirrorError) -> web.Response:
        return web.json_response(error.to_json(), status=error.http_status)

    def edit_request(self, path: str, body: Json) -> Json:
        return body

    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        return answer


def _query(body: Json) -> Json:
    query = body.get("query")
    return query if isinstance(query, dict) else {}


def _raw_metric(path: str, request: Json) -> bool:
    return path == "/api/metric" and _query(request).get("aggregation") is None


def _aggregated_metric(path: str, request: Json) -> bool:
    return path == "/api/metric" and _query(request).get("aggregation") is not None


def _paging(body: Json) -> bool:
    return _query(body).get("limit", SMALL_LIMIT) < SMALL_LIMIT


# reachability


class Hangs(Mirror):
    async def handle(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(HANG_S)
        return await super().handle(request)


class DropsConnections(Mirror):
    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        return web.Response()


# api-key.*


class NoKeyOnSuccess(Mirror):
    def key_for(self, status: int) -> str | None:
        return None if status < 400 else API_KEY


class WrongKey(Mirror):
    def key_for(self, status: int) -> str | None:
        return "not-the-key" if status < 400 else API_KEY


class NoKeyOnErrors(Mirror):
    def key_for(self, status: int) -> str | None:
        return API_KEY if status < 400 else None


# test-connection


class OddConnectionStatus(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if path == "/api/connection":
            return {"status": "FINE", "_type": "TestConnectionResponse"}
        return answer


class StoreUnreachable(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if path == "/api/connection":
            error = {"_type": "MetricStoreConnectionError", "details": "store down"}
            return {"status": "FAILURE", "error": error, "_type": "TestConnectionResponse"}
        return answer


# field-names, field-values, field-values.prefix, field-values.paging, narrowing


class InvalidFieldType(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if path == "/api/field/name":
            for field in answer["fields"]:
                if field["fieldName"] == "cores":
                    field["fieldType"] = "INTEGER"
        return answer


class InvalidValueType(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if path == "/api/field/value" and _query(request)["field"]["fieldName"] == "region":
            for value in answer["values"]:
                value["_type"] = "SomeValue"
        return answer


class IgnoresPrefix(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        _query(body).pop("fieldValuePrefix", None)
        return body


class IgnoresValuePaging(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        if path == "/api/field/value":
            _query(body).pop("limit", None)
            _query(body).pop("offset", None)
        return body


class NarrowingFails(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        if path == "/api/field/name" and _query(body).get("conditions"):
            raise RemoteMirrorError("Internal mirror error", "conditions", http_status=500)
        return body


# discovery


class NoData(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if path == "/api/metric":
            answer["telemetry"]["points"] = []
        return answer


# metrics.raw, metrics.aggregated, metrics.aggregation-methods


class UntypedRawResponse(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if _raw_metric(path, request):
            del answer["_type"]
        return answer


class NaNValue(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        raw = _raw_metric(path, request) and not _paging(request)
        points = answer["telemetry"]["points"] if raw else []
        if points:
            points[0][0] = math.nan
        return answer


class HalfWindows(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if _aggregated_metric(path, request):
            size = _query(request)["aggregation"]["bucketSizeMillis"]
            for point in answer["telemetry"]["points"]:
                point[2] = point[1] + size // 2
        return answer


class RejectsPercentile98(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        aggregation = _query(body).get("aggregation") or {}
        if aggregation.get("method") == "PERCENTILE_98":
            raise RemoteMirrorError("Unsupported aggregation", "PERCENTILE_98")
        return body


# metrics.values.*, metrics.edge-buckets


def _method(body: Json) -> str | None:
    return (_query(body).get("aggregation") or {}).get("method")


class InstantSampleAggregates(Mirror):
    """Every method answers the raw sample at the window's start (the aws peer's defect)."""

    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if _aggregated_metric(path, request):
            query = dict(_query(request))
            query.pop("aggregation")
            raw = self.source_points(query)
            for point in answer["telemetry"]["points"]:
                point[0] = raw.get(point[1], point[0])
        return answer

    def source_points(self, query: Json) -> dict[int, float]:
        from mirror_kit.protocol import MetricsQuery
        from mirror_kit.sources import PointWindow

        q = MetricsQuery.from_json(query)
        window = PointWindow(q.start_time, q.end_time, 1_000_000)
        series = self.source.catalog.select(q.conditions)[0]
        points = self.source.series_points(series, window)
        return dict(zip(points.timestamps.tolist(), points.values.tolist(), strict=True))


class LateBuckets(Mirror):
    """Each window's value is labelled with the next window's times."""

    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if _aggregated_metric(path, request):
            size = _query(request)["aggregation"]["bucketSizeMillis"]
            points = answer["telemetry"]["points"]
            answer["telemetry"]["points"] = [[v, s + size, e + size] for v, s, e in points[:-1]]
        return answer


class SwappedQuartiles(Mirror):
    """PERCENTILE_25 and PERCENTILE_75 answer each other's value."""

    SWAP: ClassVar[dict[str, str]] = {
        "PERCENTILE_25": "PERCENTILE_75",
        "PERCENTILE_75": "PERCENTILE_25",
    }

    def edit_request(self, path: str, body: Json) -> Json:
        method = _method(body)
        if method in self.SWAP:
            _query(body)["aggregation"]["method"] = self.SWAP[method]
        return body


class CountsOneMore(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if _aggregated_metric(path, request) and _method(request) == "EVENT_COUNT":
            for point in answer["telemetry"]["points"]:
                point[0] += 1
        return answer


class PartialLastWindow(Mirror):
    """Emits the windows cut by startTime and endTime (WARN only: a quality note)."""

    def edit_request(self, path: str, body: Json) -> Json:
        if _aggregated_metric(path, body):
            body["connectionDetails"] = {"edgeBuckets": "partial"}
        return body


# metrics.limit.*, metrics.continuation.*


class IgnoresRawLimit(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        if _raw_metric(path, body):
            _query(body).pop("limit", None)
        return body


class NeverPartial(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if _raw_metric(path, request):
            answer["telemetry"]["isPartial"] = False
        return answer


class IgnoresAggregatedLimit(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        if _aggregated_metric(path, body):
            _query(body).pop("limit", None)
        return body


class LosesAtBoundary(Mirror):
    """Reads a paged startTime as exclusive plus one step: the next point is lost."""

    def edit_request(self, path: str, body: Json) -> Json:
        if _raw_metric(path, body) and _paging(body):
            _query(body)["startTime"] += 10_000
        return body


class RepeatsAtBoundary(Mirror):
    """Starts paged answers two points early: points repeat across pages."""

    def edit_request(self, path: str, body: Json) -> Json:
        if _raw_metric(path, body) and _paging(body):
            _query(body)["startTime"] -= 20_000
        return body


class SkipsBuckets(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        if _aggregated_metric(path, body) and _paging(body):
            query = _query(body)
            query["startTime"] += query["aggregation"]["bucketSizeMillis"]
        return body


# determinism (WARN only)


class Noisy(Mirror):
    def edit_answer(self, path: str, request: Json, answer: Json) -> Json:
        if path == "/api/metric":
            for point in answer["telemetry"]["points"]:
                point[0] += random.random()
        return answer


# requests.*


class RequiresTypes(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        if "_type" not in body:
            raise RemoteMirrorError("Invalid request: _type is missing")
        return body


class RejectsUnknownFields(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        unknown = set(body) - {"_type", "connectionDetails", "query"}
        if unknown:
            raise RemoteMirrorError(f"Invalid request: unknown fields {sorted(unknown)}")
        return body


class RejectsInSet(Mirror):
    def edit_request(self, path: str, body: Json) -> Json:
        for condition in _query(body).get("conditions") or []:
            if condition["value"].get("_type") == "InSetValue":
                raise UnsupportedFieldTypeError("InSetValue")
        return body


# bad-input.*


class DropsOnBadJson(Mirror):
    async def bad_json(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()


class HtmlOnBadJson(Mirror):
    async def bad_json(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=400, text="<h1>Bad Request</h1>", content_type="text/html")


class CrashesWithoutQuery(Mirror):
    """Reads ``body["query"]`` unguarded: aiohttp answers its plain-text 500."""

    def edit_request(self, path: str, body: Json) -> Json:
        if path != "/api/connection":
            _ = body["query"]  # the KeyError, uncaught, is the point
        return body


class ErrorsWithStatus200(Mirror):
    def error(self, error: MirrorError) -> web.Response:
        return web.json_response(error.to_json(), status=200)


# Not broken: a mirror whose store needs the user's connection details.

TOKEN = "s3cret"


class RequiresToken(Mirror):
    """Answers only requests whose connectionDetails are ``{"token": TOKEN}``."""

    def edit_request(self, path: str, body: Json) -> Json:
        if body.get("connectionDetails") != {"token": TOKEN}:
            raise MetricStoreConnectionError("no valid token in the connection details")
        return body


# Not one check: mirrors that are broken everywhere (robustness of the checker).


class AnswersHtml(Mirror):
    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(text="<html>hello</html>", content_type="text/html")


class HangsOnMetrics(Mirror):
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/api/metric":
            await asyncio.sleep(HANG_S)
        return await super().handle(request)


class AnswersJsonOddities(Mirror):
    """Well-formed until Get Metric Values, which answers a different oddity each time."""

    ODDITIES: tuple[Any, ...] = (
        None,
        [1, 2, 3],
        {"_type": "MetricsResponse"},
        {"telemetry": {"points": "many", "dataFormat": ["value", "timestamp"]}},
        {"telemetry": {"points": [[1.0]], "dataFormat": ["value", "timestamp"]}},
        {"telemetry": {"points": [["x", 1]], "dataFormat": ["value", "timestamp"]}},
        {"telemetry": {"points": [[1.0, math.inf]], "dataFormat": ["value", "timestamp"]}},
        {"telemetry": {"points": [[1.0, 2.5]], "dataFormat": ["timestamp", "value"]}},
        {"telemetry": {"points": [[1, 2]], "dataFormat": None, "_type": "RawMetricTelemetry"}},
        {"telemetry": {"points": [[1, 1e300]], "dataFormat": ["value", "timestamp"]}},
    )

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def edit_answer(self, path: str, request: Json, answer: Json) -> Any:
        if path != "/api/metric":
            return answer
        self.calls += 1
        return self.ODDITIES[self.calls % len(self.ODDITIES)]


#: (mirror class, the one check it must make FAIL under --profile strict).
BROKEN: list[tuple[type[Mirror], str]] = [
    (Hangs, "reachability"),
    (DropsConnections, "reachability"),
    (NoKeyOnSuccess, "api-key.success"),
    (WrongKey, "api-key.success"),
    (NoKeyOnErrors, "api-key.error"),
    (OddConnectionStatus, "test-connection"),
    (StoreUnreachable, "test-connection"),
    (InvalidFieldType, "field-names"),
    (InvalidValueType, "field-values"),
    (IgnoresPrefix, "field-values.prefix"),
    (IgnoresValuePaging, "field-values.paging"),
    (NarrowingFails, "field-names.narrowing"),
    (NoData, "discovery"),
    (UntypedRawResponse, "metrics.raw"),
    (NaNValue, "metrics.raw"),
    (HalfWindows, "metrics.aggregated"),
    (RejectsPercentile98, "metrics.aggregation-methods"),
    (IgnoresRawLimit, "metrics.limit.raw"),
    (NeverPartial, "metrics.limit.raw"),
    (IgnoresAggregatedLimit, "metrics.limit.aggregated"),
    (LosesAtBoundary, "metrics.continuation.raw"),
    (RepeatsAtBoundary, "metrics.continuation.raw"),
    (SkipsBuckets, "metrics.continuation.aggregated"),
    (RequiresTypes, "requests.untyped"),
    (RejectsUnknownFields, "requests.unknown-fields"),
    (RejectsInSet, "requests.in-set"),
    (DropsOnBadJson, "bad-input.malformed-json"),
    (HtmlOnBadJson, "bad-input.malformed-json"),
    (CrashesWithoutQuery, "bad-input.missing-query"),
    (SwappedQuartiles, "metrics.values.order"),
    (CountsOneMore, "metrics.values.count-sum"),
]

#: Mirrors broken in one way that more than one check sees (all must FAIL, strict).
BROKEN_SEVERAL: list[tuple[type[Mirror], tuple[str, ...]]] = [
    (
        InstantSampleAggregates,
        ("metrics.values.extremes", "metrics.values.order", "metrics.values.count-sum"),
    ),
    (LateBuckets, ("metrics.values.extremes", "metrics.values.count-sum")),
]


@contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port from a background loop; yields the URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="broken-mirror", daemon=True)
    thread.start()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    async def stop() -> None:
        await runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:  # handlers of hanging mirrors
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    try:
        port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
