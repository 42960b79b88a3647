"""The HTTP server: exact bodies, the API-key header, bad input, caps, paging, the log.

Most tests run the aiohttp application in-process (``aiohttp_client``) and speak
raw JSON built from MIRROR_API.md; the continuation tests also go over the wire
with ``MirrorClient(fetch_all=True)``, as a notebook would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from conftest import DAY, HOUR, T0
from mirror_wire import (
    API_PATHS,
    CONNECTION,
    FIELD_NAMES,
    FIELD_VALUES,
    METRIC,
    add_unknown_fields,
    aggregated_arrays,
    assert_aggregated_shape,
    assert_connection_ok,
    assert_error,
    assert_field_names_shape,
    assert_field_values_shape,
    assert_raw_shape,
    connection_body,
    field_names_body,
    field_values_body,
    metrics_body,
    strip_types,
    with_query,
)

from mirror_kit import Limits, MetricSeries, MirrorClient, ServerSettings, create_app, start_mirror
from mirror_kit.protocol import MetricsQuery, MetricStoreConnectionError
from mirror_kit.server import API_KEY_HEADER, REQUEST_LOG
from mirror_kit.sources import (
    ConnectionDetails,
    Points,
    PointWindow,
    RoutingSource,
    SyntheticSource,
)

A_CPU = {"host": "a-host", "metric": "cpu.user"}
CAP = 1_000
Json = dict[str, Any]
MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def api(aiohttp_client: MakeClient) -> TestClient:
    return await aiohttp_client(create_app())


@pytest.fixture
async def capped(aiohttp_client: MakeClient) -> TestClient:
    """A mirror that computes at most CAP raw points per metric request."""
    return await aiohttp_client(create_app(settings=ServerSettings(limits=Limits(max_points=CAP))))


async def post(api: TestClient, path: str, body: Any) -> tuple[int, Json]:
    answer = await api.post(path, json=body)
    assert answer.headers[API_KEY_HEADER] == "api_key"
    assert answer.content_type == "application/json"
    return answer.status, await answer.json()


async def ok(api: TestClient, path: str, body: Any) -> Json:
    status, answer = await post(api, path, body)
    assert status == 200, answer
    return answer


async def assert_still_serves(api: TestClient) -> None:
    assert_connection_ok(await ok(api, CONNECTION, connection_body()))
    answer = await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU))
    assert len(answer["telemetry"]["points"]) == 360


# --- the four methods, exactly shaped ------------------------------------------------------


def four_requests() -> list[tuple[str, Json]]:
    where = {"host": "a-host"}
    return [
        (CONNECTION, connection_body()),
        (FIELD_NAMES, field_names_body(T0, T0 + HOUR, where)),
        (FIELD_VALUES, field_values_body("metric", T0, T0 + HOUR, where=where)),
        (METRIC, metrics_body(T0, T0 + HOUR, A_CPU)),
        (METRIC, metrics_body(T0, T0 + HOUR, A_CPU, method="MAX", bucket_ms=600_000)),
    ]


async def test_four_methods_answer_exact_shapes(api: TestClient) -> None:
    connection, names, values, raw, aggregated = [
        await ok(api, path, body) for path, body in four_requests()
    ]
    assert_connection_ok(connection)
    assert_field_names_shape(names)
    assert [f["fieldName"] for f in names["fields"]][:2] == ["host", "metric"]
    assert_field_values_shape(values)
    assert {"value": "cpu.*", "_type": "FieldValuePattern"} in values["values"]
    assert_raw_shape(raw)
    assert len(raw["telemetry"]["points"]) == 360 and raw["telemetry"]["isPartial"] is False
    assert_aggregated_shape(aggregated)
    starts, ends, _ = aggregated_arrays(aggregated)
    assert starts.tolist() == list(range(T0, T0 + HOUR, 600_000))
    assert (ends - starts).tolist() == [600_000] * 6


@pytest.mark.parametrize("change", [strip_types, add_unknown_fields], ids=["untyped", "unknown"])
async def test_untyped_and_extended_requests_get_the_same_answers(
    api: TestClient, change: Callable[[Any], Any]
) -> None:
    for path, body in four_requests():
        assert await ok(api, path, change(body)) == await ok(api, path, body)


async def test_connection_details_reach_the_source_untouched(aiohttp_client: MakeClient) -> None:
    """connectionDetails is the user's JSON for the store: passed on as sent, unknown keys too."""
    seen: list[Any] = []

    class Recording(SyntheticSource):
        async def test_connection(self, connection_details: ConnectionDetails) -> None:
            seen.append(connection_details)

        async def points(
            self, query: MetricsQuery, window: PointWindow, details: ConnectionDetails
        ) -> Points:
            seen.append(details)
            return await super().points(query, window, details)

    api = await aiohttp_client(create_app(Recording()))
    details = {"host": "prometheus.local.com", "port": 9900, "nested": {"a": [1, None]}}
    assert_connection_ok(
        await ok(api, CONNECTION, {**connection_body(), "connectionDetails": details})
    )
    await ok(api, METRIC, {**metrics_body(T0, T0 + HOUR, A_CPU), "connectionDetails": details})
    assert seen == [details, details]


# --- the API-key header, everywhere ---------------------------------------------------------


async def test_api_key_header_on_errors_and_unknown_routes(api: TestClient) -> None:
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "/api/nope", {}, 404),
        ("GET", "/", None, 404),
        ("PUT", "/api/metric/extra", {}, 404),
        ("GET", METRIC, None, 405),
        ("PUT", CONNECTION, {}, 405),
        ("DELETE", FIELD_NAMES, None, 405),
        ("POST", METRIC, {"connectionDetails": {}}, 400),
        ("GET", "/%0A", None, 404),  # a newline in the path still meets the catch-all route
        ("POST", "/healthz", {}, 405),
    ]
    for method, path, body, status in cases:
        answer = await api.request(method, path, json=body)
        assert answer.status == status, (method, path)
        assert answer.headers[API_KEY_HEADER] == "api_key"
        assert answer.headers["x-mirror-api-key"] == "api_key"
        assert_error(await answer.json(), "RemoteMirrorError")
    await assert_still_serves(api)


async def test_405_says_which_methods_the_path_takes(api: TestClient) -> None:
    for method, path, allowed in [
        ("GET", METRIC, {"POST"}),
        ("PATCH", CONNECTION, {"POST"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("DELETE", "/openapi.json", {"GET", "HEAD"}),
    ]:
        answer = await api.request(method, path)
        assert answer.status == 405, (method, path)
        assert set(answer.headers["Allow"].split(",")) == allowed
        assert answer.headers[API_KEY_HEADER] == "api_key"


async def test_custom_api_key(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(create_app(settings=ServerSettings(api_key="s3cret-key")))
    for path, body in [(CONNECTION, connection_body()), (METRIC, {}), ("/x", {})]:
        answer = await client.post(path, json=body)
        assert answer.headers[API_KEY_HEADER] == "s3cret-key"
    answer = await client.get(CONNECTION)
    assert answer.status == 405 and answer.headers[API_KEY_HEADER] == "s3cret-key"


async def test_failing_store_reports_failure_in_test_connection(
    aiohttp_client: MakeClient,
) -> None:
    class Down(SyntheticSource):
        async def test_connection(self, connection_details: ConnectionDetails) -> None:
            raise MetricStoreConnectionError()

    client = await aiohttp_client(create_app(Down()))
    answer = await client.post(CONNECTION, json=connection_body())
    assert answer.status == 200 and answer.headers[API_KEY_HEADER] == "api_key"
    assert await answer.json() == {
        "status": "FAILURE",
        "error": {
            "_type": "MetricStoreConnectionError",
            "details": "Unable to connect to remote metrics store.",
        },
        "_type": "TestConnectionResponse",
    }


async def test_source_crash_and_timeout_are_protocol_errors(aiohttp_client: MakeClient) -> None:
    class Broken(SyntheticSource):
        async def points(
            self, query: MetricsQuery, window: PointWindow, details: ConnectionDetails
        ) -> Points:
            if query.limit == 1:
                await asyncio.sleep(5)
            raise ZeroDivisionError("store bug")

    settings = ServerSettings(request_timeout_s=0.05)
    client = await aiohttp_client(create_app(Broken(), settings))
    for limit, status in [(None, 500), (1, 504)]:
        answer = await client.post(METRIC, json=metrics_body(T0, T0 + HOUR, A_CPU, limit=limit))
        assert answer.status == status
        assert answer.headers[API_KEY_HEADER] == "api_key"
        assert_error(await answer.json(), "RemoteMirrorError")
    assert_connection_ok(await (await client.post(CONNECTION, json=connection_body())).json())


async def test_the_request_timeout_bounds_every_source(aiohttp_client: MakeClient) -> None:
    """In memory or not, routed or not: a source declares nothing for the timeout to
    apply (before, only sources declaring ``may_block`` were bounded)."""

    class Stuck(SyntheticSource):
        async def test_connection(self, connection_details: ConnectionDetails) -> None:
            await asyncio.sleep(5)

    settings = ServerSettings(request_timeout_s=0.05)
    for source in (Stuck(), RoutingSource({"synthetic": Stuck()})):
        client = await aiohttp_client(create_app(source, settings))
        answer = await client.post(CONNECTION, json=connection_body())
        assert answer.status == 504
        assert answer.headers[API_KEY_HEADER] == "api_key"
        assert_error(await answer.json(), "RemoteMirrorError")


# --- bad input; the server must go on serving --------------------------------------------


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_BODIES: list[tuple[str, str, bytes, str]] = [
    ("malformed", METRIC, b'{"connectionDetails": {}, "query": {', "JSON"),
    (
        "nan",
        METRIC,
        b'{"connectionDetails": {}, "query": {"startTime": NaN, "endTime": 1}}',
        "JSON",
    ),
    ("infinity", METRIC, b'{"connectionDetails": {"x": Infinity}, "query": {}}', "JSON"),
    ("-infinity", CONNECTION, b'{"connectionDetails": {"x": -Infinity}}', "JSON"),
    ("deep-array", METRIC, deep(120_000).encode(), "nested"),  # 240 KB: under the cap
    ("deep-inside", CONNECTION, b'{"connectionDetails": ' + deep(50_000).encode() + b"}", "nested"),
    ("empty", FIELD_NAMES, b"", "JSON"),
    ("not-utf8", FIELD_VALUES, b'{"connectionDetails": "\xff\xfe"}', "JSON"),
    ("list", METRIC, b"[1, 2]", "request body"),
    ("string", CONNECTION, b'"hello"', "request body"),
]


@pytest.mark.parametrize(
    ("path", "raw", "named"),
    [(p, r, n) for _, p, r, n in BAD_BODIES],
    ids=[name for name, _, _, _ in BAD_BODIES],
)
async def test_unparsable_body_is_remote_mirror_error(
    api: TestClient, path: str, raw: bytes, named: str
) -> None:
    answer = await api.post(path, data=raw, headers={"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.headers[API_KEY_HEADER] == "api_key"
    body = await answer.json()
    assert_error(body, "RemoteMirrorError")
    assert named in body["summary"]
    await assert_still_serves(api)


def metric_with(**changes: Any) -> Json:
    return with_query(metrics_body(T0, T0 + HOUR, A_CPU), **changes)


WRONG_TYPES: list[tuple[str, str, Json, str]] = [
    ("start-string", METRIC, metric_with(startTime="2026-01-01"), "query.startTime"),
    ("end-null", METRIC, metric_with(endTime=None), "query.endTime"),
    ("limit-negative", METRIC, metric_with(limit=-5), "query.limit"),
    ("conditions-object", METRIC, metric_with(conditions={"host": "a"}), "query.conditions"),
    (
        "bucket-zero",
        METRIC,
        metric_with(aggregation={"method": "MEAN", "bucketSizeMillis": 0}),
        "query.aggregation.bucketSizeMillis",
    ),
    (
        "method-unknown",
        METRIC,
        metric_with(aggregation={"method": "AVG", "bucketSizeMillis": 10}),
        "query.aggregation.method",
    ),
    ("missing-query", METRIC, {"connectionDetails": {}}, "query"),
    (
        "missing-details",
        FIELD_NAMES,
        {"query": {"startTime": 0, "endTime": 1}},
        "connectionDetails",
    ),
    (
        "missing-details-connection",
        CONNECTION,
        {"_type": "TestConnectionRequest"},
        "connectionDetails",
    ),
    ("query-null", FIELD_VALUES, {"connectionDetails": {}, "query": None}, "query"),
    (
        "field-missing",
        FIELD_VALUES,
        {"connectionDetails": {}, "query": {"startTime": 0, "endTime": 1}},
        "query.field",
    ),
    (
        "offset-negative",
        FIELD_VALUES,
        with_query(field_values_body("host", T0, T0 + 1), offset=-1),
        "query.offset",
    ),
    (
        "wrong-type-name",
        METRIC,
        {**metrics_body(T0, T0 + 1), "_type": "FieldNamesRequest"},
        "_type",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [(p, b, n) for _, p, b, n in WRONG_TYPES],
    ids=[name for name, _, _, _ in WRONG_TYPES],
)
async def test_wrong_member_is_remote_mirror_error_naming_it(
    api: TestClient, path: str, body: Json, named: str
) -> None:
    status, answer = await post(api, path, body)
    assert status == 400
    assert_error(answer, "RemoteMirrorError")
    assert named in answer["summary"]
    await assert_still_serves(api)


def padded_connection(total_bytes: int) -> bytes:
    """A valid Test Connection body of exactly ``total_bytes`` bytes."""
    empty = json.dumps({"connectionDetails": {"pad": ""}}).encode()
    body = json.dumps({"connectionDetails": {"pad": "x" * (total_bytes - len(empty))}}).encode()
    assert len(body) == total_bytes
    return body


@pytest.mark.parametrize("cap", [None, 4_096], ids=["default-256KiB", "configured-4KiB"])
async def test_body_size_cap(aiohttp_client: MakeClient, cap: int | None) -> None:
    settings = ServerSettings() if cap is None else ServerSettings(max_body_bytes=cap)
    limit = settings.max_body_bytes
    assert limit == (cap or 256 << 10)
    client = await aiohttp_client(create_app(settings=settings))
    fits = await client.post(CONNECTION, data=padded_connection(limit - 10))
    assert fits.status == 200
    assert_connection_ok(await fits.json())
    for size in (limit + 1, limit + 100_000):
        answer = await client.post(CONNECTION, data=padded_connection(size))
        assert answer.status == 413
        assert answer.headers[API_KEY_HEADER] == "api_key"
        body = await answer.json()
        assert_error(body, "RemoteMirrorError")
        assert "too large" in body["summary"]
    assert_connection_ok(await (await client.post(CONNECTION, json=connection_body())).json())


@pytest.mark.parametrize("end", [T0, T0 - 1, T0 - DAY])
async def test_empty_or_reversed_range_is_an_empty_answer(api: TestClient, end: int) -> None:
    raw = await ok(api, METRIC, metrics_body(T0, end, A_CPU))
    assert_raw_shape(raw)
    assert raw["telemetry"]["points"] == [] and raw["telemetry"]["isPartial"] is False
    body = metrics_body(T0, end, A_CPU, method="SUM", bucket_ms=60_000)
    aggregated = await ok(api, METRIC, body)
    assert_aggregated_shape(aggregated)
    assert aggregated["telemetry"]["points"] == []


# --- limit, the work cap and latestFirst ---------------------------------------------------


async def test_limit_on_raw_query(api: TestClient) -> None:
    whole = await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU))
    exact = await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU, limit=360))
    assert exact == whole and whole["telemetry"]["isPartial"] is False
    cut = await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU, limit=359))
    assert cut["telemetry"]["points"] == whole["telemetry"]["points"][:359]
    assert cut["telemetry"]["isPartial"] is True


async def test_work_cap_cuts_a_long_raw_query(api: TestClient, capped: TestClient) -> None:
    uncut = await ok(api, METRIC, metrics_body(T0, T0 + DAY, A_CPU))
    cut = await ok(capped, METRIC, metrics_body(T0, T0 + DAY, A_CPU))
    assert_raw_shape(cut)
    assert len(cut["telemetry"]["points"]) == CAP and cut["telemetry"]["isPartial"] is True
    assert cut["telemetry"]["points"] == uncut["telemetry"]["points"][:CAP]


async def test_work_cap_keeps_only_whole_buckets(api: TestClient, capped: TestClient) -> None:
    """1000 points are 16.7 ten-minute buckets: 16 whole ones are served, then isPartial."""
    for method in ("EVENT_COUNT", "MEAN", "PERCENTILE_99"):
        body = metrics_body(T0, T0 + DAY, A_CPU, method=method, bucket_ms=600_000)
        uncut = await ok(api, METRIC, body)
        cut = await ok(capped, METRIC, body)
        assert_aggregated_shape(cut)
        assert cut["telemetry"]["isPartial"] is True
        assert len(cut["telemetry"]["points"]) == CAP * 10_000 // 600_000
        assert cut["telemetry"]["points"] == uncut["telemetry"]["points"][:16]
        if method == "EVENT_COUNT":
            assert {p[0] for p in cut["telemetry"]["points"]} == {60.0}


async def test_bucket_larger_than_the_cap_is_an_error(capped: TestClient) -> None:
    body = metrics_body(T0, T0 + 2 * DAY, A_CPU, method="MAX", bucket_ms=DAY)
    status, answer = await post(capped, METRIC, body)
    assert status == 400
    assert_error(answer, "RemoteMirrorError")
    await assert_still_serves(capped)


async def test_ten_years_at_one_ms_buckets_is_cut_and_bounded(capped: TestClient) -> None:
    start = T0 - 10 * 365 * DAY
    body = metrics_body(start, T0, A_CPU, method="PERCENTILE_50", bucket_ms=1)
    answer = await capped.post(METRIC, json=body)
    assert answer.status == 200
    raw = await answer.read()
    assert len(raw) < CAP * 100
    parsed = json.loads(raw)
    assert_aggregated_shape(parsed)
    assert parsed["telemetry"]["isPartial"] is True
    starts, ends, _ = aggregated_arrays(parsed)
    assert 0 < len(starts) <= CAP
    assert starts[0] == start + (-start % 10_000)
    assert np.all(np.diff(starts) == 10_000) and np.all(ends - starts == 1)
    raw_body = metrics_body(start, T0, A_CPU)
    raw_answer = await ok(capped, METRIC, raw_body)
    assert len(raw_answer["telemetry"]["points"]) == CAP
    assert raw_answer["telemetry"]["isPartial"] is True


async def test_latest_first_raw(api: TestClient, capped: TestClient) -> None:
    """latestFirst is ignored on metric queries: time order, cut at the newest end."""
    whole = (await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU)))["telemetry"]["points"]
    newest = await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU, limit=5, latest_first=True))
    assert_raw_shape(newest)
    assert newest["telemetry"]["points"] == whole[:5]
    assert newest["telemetry"]["isPartial"] is True
    day = (await ok(api, METRIC, metrics_body(T0, T0 + DAY, A_CPU)))["telemetry"]["points"]
    cut = await ok(capped, METRIC, metrics_body(T0, T0 + DAY, A_CPU, latest_first=True))
    assert cut["telemetry"]["points"] == day[:CAP]
    assert cut["telemetry"]["isPartial"] is True


async def test_latest_first_aggregated(api: TestClient, capped: TestClient) -> None:
    def body(**options: Any) -> Json:
        return metrics_body(T0, T0 + DAY, A_CPU, method="MAX", bucket_ms=600_000, **options)

    whole = (await ok(api, METRIC, body()))["telemetry"]["points"]
    newest = await ok(api, METRIC, body(limit=3, latest_first=True))
    assert_aggregated_shape(newest)
    assert newest["telemetry"]["points"] == whole[:3]
    assert newest["telemetry"]["isPartial"] is True
    cut = await ok(capped, METRIC, body(latest_first=True))
    assert cut["telemetry"]["points"] == whole[:16]
    assert cut["telemetry"]["isPartial"] is True


# --- following isPartial gives the uncut series ------------------------------------------------


async def follow(api: TestClient, body: Json, max_pages: int = 50) -> tuple[list[Any], int]:
    """Ask again from the last timestamp received until isPartial is false, as StackState."""
    points: list[Any] = []
    for page_number in range(1, max_pages + 1):
        telemetry = (await ok(api, METRIC, body))["telemetry"]
        page = telemetry["points"]
        newer = [p for p in page if not points or p[1] > points[-1][1]]
        points.extend(newer)
        if not telemetry["isPartial"]:
            return points, page_number
        assert newer, "a continuation made no progress"
        body = with_query(body, startTime=page[-1][1])
    raise AssertionError(f"still partial after {max_pages} pages")


CONTINUED = [
    ("raw-limit", {}, {"limit": 500}, False),
    ("raw-cap", {}, {}, True),
    ("aggregated-limit", {"method": "MEAN", "bucket_ms": 300_000}, {"limit": 7}, False),
    ("aggregated-cap", {"method": "PERCENTILE_75", "bucket_ms": 300_000}, {}, True),
    ("aggregated-7s", {"method": "SUM", "bucket_ms": 7_000}, {"limit": 400}, False),
]


@pytest.mark.parametrize(
    ("aggregation", "cut", "use_cap"),
    [(a, c, u) for _, a, c, u in CONTINUED],
    ids=[name for name, _, _, _ in CONTINUED],
)
async def test_following_is_partial_over_json_gives_uncut_series(
    api: TestClient,
    capped: TestClient,
    aggregation: dict[str, Any],
    cut: dict[str, Any],
    use_cap: bool,
) -> None:
    start, end = T0 + 12_345, T0 + 6 * HOUR - 4_321
    uncut = await ok(api, METRIC, metrics_body(start, end, A_CPU, **aggregation))
    assert uncut["telemetry"]["isPartial"] is False
    first = metrics_body(start, end, A_CPU, **aggregation, **cut)
    points, pages = await follow(capped if use_cap else api, first)
    assert pages >= 2
    assert points == uncut["telemetry"]["points"]


@pytest.mark.parametrize(
    ("aggregation", "cut", "use_cap"),
    [(a, c, u) for _, a, c, u in CONTINUED],
    ids=[name for name, _, _, _ in CONTINUED],
)
def test_client_fetch_all_gives_uncut_series(
    client: MirrorClient, aggregation: dict[str, Any], cut: dict[str, Any], use_cap: bool
) -> None:
    start, end = T0 + 12_345, T0 + 6 * HOUR - 4_321
    uncut = client.metrics(start=start, end=end, **aggregation, **A_CPU)
    assert not uncut.is_partial

    def pages(asked: MirrorClient) -> MetricSeries:
        first = asked.metrics(start=start, end=end, **aggregation, **cut, **A_CPU)
        assert first.is_partial
        return asked.metrics(start=start, end=end, fetch_all=True, **aggregation, **cut, **A_CPU)

    if use_cap:
        settings = ServerSettings(limits=Limits(max_points=CAP))
        with start_mirror(port=0, settings=settings) as small, MirrorClient(small.url) as c:
            merged = pages(c)
    else:
        merged = pages(client)
    assert not merged.is_partial
    assert merged.timestamps.tolist() == uncut.timestamps.tolist()
    assert merged.values.tolist() == uncut.values.tolist()
    if uncut.bucket_ends is not None:
        assert merged.bucket_ends is not None
        assert merged.bucket_ends.tolist() == uncut.bucket_ends.tolist()


# --- the request log -------------------------------------------------------------------------


async def test_request_log_records_each_request(aiohttp_client: MakeClient) -> None:
    app = create_app()
    api = await aiohttp_client(app)
    await ok(api, CONNECTION, connection_body())
    await ok(api, FIELD_NAMES, field_names_body(T0, T0 + HOUR, {"host": "a-host"}))
    await ok(api, FIELD_VALUES, field_values_body("metric", T0, T0 + HOUR, prefix="cpu."))
    await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU))
    await ok(api, METRIC, metrics_body(T0, T0 + HOUR, A_CPU, method="MIN", bucket_ms=HOUR))
    status, _ = await post(api, METRIC, metrics_body(T0, T0 + HOUR, {"host": "z-host"}))
    assert status == 404
    await api.get(METRIC)
    entries = app[REQUEST_LOG].entries()
    assert [(e.method, e.path, e.status, e.points) for e in entries] == [
        ("connection", CONNECTION, 200, None),
        ("field/name", FIELD_NAMES, 200, None),
        ("field/value", FIELD_VALUES, 200, None),
        ("metric", METRIC, 200, 360),
        ("metric", METRIC, 200, 1),
        ("metric", METRIC, 404, None),
        ("GET", METRIC, 405, None),
    ]
    summaries = [e.summary for e in entries]
    assert "a-host" in summaries[1] and "cpu." in summaries[2]
    assert "raw" in summaries[3] and "cpu.user" in summaries[3]
    assert "MIN" in summaries[4]
    assert "z-host" in summaries[5]
    assert all(e.latency_ms >= 0 and e.time > 0 for e in entries)


async def test_request_log_names_the_http_method_off_the_api(aiohttp_client: MakeClient) -> None:
    """RequestLogEntry.method is one of the four method names, or else the HTTP method."""
    app = create_app()
    api = await aiohttp_client(app)
    for method, path in [("POST", "/api/nope"), ("POST", "/"), ("PUT", "/api/metric/x")]:
        await api.request(method, path, json={})
    assert [(e.method, e.status) for e in app[REQUEST_LOG].entries()] == [
        ("POST", 404),
        ("POST", 404),
        ("PUT", 404),
    ]


async def test_request_log_is_bounded(aiohttp_client: MakeClient) -> None:
    app = create_app(settings=ServerSettings(log_size=3))
    api = await aiohttp_client(app)
    for hours in range(1, 8):
        await ok(api, METRIC, metrics_body(T0, T0 + hours * HOUR, A_CPU))
    entries = app[REQUEST_LOG].entries()
    assert [e.points for e in entries] == [1800, 2160, 2520]
    assert [e.points for e in app[REQUEST_LOG].entries(last=2)] == [2160, 2520]


def test_request_log_of_a_running_mirror(client: MirrorClient, mirror: Any) -> None:
    client.test_connection()
    client.metrics(start=T0, end=T0 + HOUR, **A_CPU)
    assert [(e.method, e.status, e.points) for e in mirror.requests()] == [
        ("connection", 200, None),
        ("metric", 200, 360),
    ]


def test_api_paths_are_the_four_methods() -> None:
    assert API_PATHS == ("/api/connection", "/api/field/name", "/api/field/value", "/api/metric")
    app = create_app()
    posted = {r.resource.canonical for r in app.router.routes() if r.method == "POST"}
    assert posted == set(API_PATHS)


def test_the_request_timeout_ends_before_stackstate_gives_up() -> None:
    """StackState abandons a UI request after 15 s; the mirror answers 504 before that,
    and after Prometheus' own timeout, whose MetricStoreConnectionError says more."""
    from mirror_kit.sources.prometheus.config import DEFAULT_TIMEOUT_S

    assert DEFAULT_TIMEOUT_S < ServerSettings().request_timeout_s < 15.0
