"""The client: request bodies exactly as StackState sends them, and how answers are read.

Bodies are compared with literal dicts written from shared/MIRROR_API.md, both as
built (``client.build``) and as received on the wire by a recording app, so a
change in either the builder or the transport shows up here. Error handling is
checked against a real mirror and against tiny aiohttp apps that answer what a
real mirror would not (foreign bodies, HTML, no key).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from conftest import HOUR, T0

from mirror_kit import (
    ApiKeyMismatchError,
    AsyncMirrorClient,
    Limits,
    MetricSeries,
    MirrorClient,
    MirrorClientError,
    MirrorUnreachableError,
    RunningMirror,
    ServerSettings,
    start_mirror,
)
from mirror_kit.protocol import (
    MetricNotFoundError,
    MetricStoreConnectionError,
    MirrorError,
    RemoteMirrorError,
    UnsupportedFieldTypeError,
)

DETAILS = {"host": "prometheus.local.com", "port": 9900, "requestTimeout": 15000}
INT_MAX = 2147483647


def condition(key: str, value: Any, type_name: str) -> dict[str, Any]:
    """One EqualityCondition exactly as MIRROR_API.md writes it."""
    return {"key": key, "value": {"value": value, "_type": type_name}, "_type": "EqualityCondition"}


EXPECTED_AGGREGATED_METRICS = {
    "_type": "MetricsRequest",
    "connectionDetails": DETAILS,
    "query": {
        "_type": "MetricsQuery",
        "conditions": [
            condition("__name__", "up", "StringValue"),
            condition("host", "a-host", "StringValue"),
            condition("cores", 4.0, "DoubleValue"),
            condition("production", True, "BooleanValue"),
            condition("region", ["eu-west", "us-east"], "InSetValue"),
        ],
        "startTime": T0,
        "endTime": T0 + HOUR,
        "latestFirst": False,
        "limit": INT_MAX,
        "aggregation": {"method": "MAX", "bucketSizeMillis": 3600000, "_type": "Aggregation"},
    },
}

#: The call (builder or client) that sends EXPECTED_AGGREGATED_METRICS with DETAILS.
AGGREGATED_CALL: dict[str, Any] = {
    "start": T0,
    "end": T0 + HOUR,
    "method": "MAX",
    "bucket_ms": HOUR,
    "limit": INT_MAX,
    "conditions": {"__name__": "up"},
    "host": "a-host",
    "cores": 4,
    "production": True,
    "region": ["us-east", "eu-west"],
}

EXPECTED_RAW_METRICS = {
    "_type": "MetricsRequest",
    "connectionDetails": {},
    "query": {
        "_type": "MetricsQuery",
        "conditions": [condition("host", "a-host", "StringValue")],
        "startTime": T0,
        "endTime": T0 + HOUR,
        "latestFirst": False,
        "metricField": "value",
    },
}

EXPECTED_FIELD_VALUES = {
    "_type": "FieldValuesRequest",
    "connectionDetails": {},
    "query": {
        "_type": "FieldValuesQuery",
        "conditions": [condition("region", "eu-west", "StringValue")],
        "startTime": T0,
        "endTime": T0 + HOUR,
        "latestFirst": False,
        "limit": 10,
        "field": {
            "_type": "FieldDescriptor",
            "fieldName": "metric",
            "fieldType": "STRING",
            "classified": False,
        },
        "offset": 0,
        "fieldValuePrefix": "cpu",
    },
}

EXPECTED_FIELD_NAMES = {
    "_type": "FieldNamesRequest",
    "connectionDetails": {},
    "query": {
        "_type": "FieldNamesQuery",
        "conditions": [condition("production", False, "BooleanValue")],
        "startTime": T0,
        "endTime": T0 + HOUR,
        "latestFirst": False,
    },
}

#: The protocol's error bodies, verbatim from MIRROR_API.md "Errors".
ERROR_BODIES: list[tuple[dict[str, Any], type[MirrorError]]] = [
    (
        {
            "_type": "MetricStoreConnectionError",
            "details": "Unable to connect to remote metrics store.",
        },
        MetricStoreConnectionError,
    ),
    (
        {
            "_type": "MetricNotFoundError",
            "metric": "service_request_seconds",
            "details": "Metric is not configured.",
        },
        MetricNotFoundError,
    ),
    ({"_type": "UnsupportedFieldTypeError", "mirrorType": "BOOLEAN"}, UnsupportedFieldTypeError),
    ({"_type": "RemoteMirrorError", "summary": "boom", "details": "it broke"}, RemoteMirrorError),
]

OK_CONNECTION = {"status": "OK", "_type": "TestConnectionResponse"}
EMPTY_VALUES = {"values": [], "isPartial": False, "_type": "FieldValuesResponse"}
EMPTY_NAMES = {"fields": [], "isPartial": False, "_type": "FieldNamesResponse"}
EMPTY_RAW = {
    "telemetry": {
        "points": [],
        "dataFormat": ["value", "timestamp"],
        "isPartial": False,
        "_type": "RawMetricTelemetry",
    },
    "_type": "MetricsResponse",
}
EMPTY_AGGREGATED = {
    "telemetry": {
        "points": [],
        "dataFormat": ["value", "startTimestamp", "endTimestamp"],
        "isPartial": False,
        "_type": "AggregatedMetricTelemetry",
    },
    "_type": "MetricsResponse",
}


@dataclass
class FakeMirror:
    """A tiny aiohttp app on 127.0.0.1 that records request bodies and gives one answer."""

    status: int = 200
    text: str = json.dumps(OK_CONNECTION)
    content_type: str = "application/json"
    api_key: str | None = "api_key"
    received: list[Any] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        headers = {} if self.api_key is None else {"X-MIRROR-API-KEY": self.api_key}
        return web.Response(
            status=self.status, text=self.text, content_type=self.content_type, headers=headers
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app


FakeFactory = Callable[..., Awaitable[tuple[str, FakeMirror]]]


@pytest.fixture
def fake_mirror(aiohttp_server: Any) -> FakeFactory:
    """Start a FakeMirror on a free loopback port; returns (url, fake)."""

    async def start(**answer: Any) -> tuple[str, FakeMirror]:
        if "body" in answer:
            answer["text"] = json.dumps(answer.pop("body"))
        fake = FakeMirror(**answer)
        server = await aiohttp_server(fake.app())
        return str(server.make_url("")).rstrip("/"), fake

    return start


# --- request bodies -------------------------------------------------------------------


def test_builder_metrics_body_matches_stackstate() -> None:
    client = MirrorClient("http://127.0.0.1:1", connection_details=DETAILS)
    request = client.build.metrics(**AGGREGATED_CALL)
    assert request.to_json() == EXPECTED_AGGREGATED_METRICS
    value = request.to_json()["query"]["conditions"][2]["value"]["value"]
    assert isinstance(value, float)  # DoubleValue: 4 is sent as 4.0
    client.close()


def test_builder_field_values_body_matches_stackstate() -> None:
    client = MirrorClient("http://127.0.0.1:1")
    request = client.build.field_values(
        "metric", prefix="cpu", limit=10, start=T0, end=T0 + HOUR, region="eu-west"
    )
    assert request.to_json() == EXPECTED_FIELD_VALUES
    client.close()


def test_aggregation_needs_a_bucket_size() -> None:
    with MirrorClient("http://127.0.0.1:1") as client, pytest.raises(ValueError, match="bucket"):
        client.build.metrics(start=T0, end=T0 + HOUR, method="MAX")


def test_unknown_value_type_is_refused() -> None:
    with MirrorClient("http://127.0.0.1:1") as client, pytest.raises(TypeError):
        client.build.metrics(start=T0, end=T0 + HOUR, x=object())  # type: ignore[arg-type]


def test_builder_arguments_are_keyword_only() -> None:
    """A positional time or limit is refused, not silently read as another part."""
    with MirrorClient("http://127.0.0.1:1") as client:
        with pytest.raises(TypeError, match="positional"):
            client.build.metrics(T0, T0 + HOUR)  # type: ignore[misc]
        with pytest.raises(TypeError, match="positional"):
            client.build.field_names(T0, T0 + HOUR)  # type: ignore[misc]
        with pytest.raises(TypeError, match="positional"):
            client.build.field_values("metric", "cpu")  # type: ignore[misc]


def test_builder_keywords_after_conditions_keep_their_order() -> None:
    with MirrorClient("http://127.0.0.1:1") as client:
        request = client.build.field_names(
            start=T0, end=T0 + HOUR, conditions={"b": "1"}, a="2", c=3
        )
    keys = [c["key"] for c in request.to_json()["query"]["conditions"]]
    assert keys == ["b", "a", "c"]


async def test_bodies_on_the_wire_match_stackstate(fake_mirror: FakeFactory) -> None:
    url, fake = await fake_mirror(body=EMPTY_AGGREGATED)
    async with AsyncMirrorClient(url, "api_key", connection_details=DETAILS) as client:
        await client.metrics(**AGGREGATED_CALL)
    assert fake.received == [EXPECTED_AGGREGATED_METRICS]
    assert isinstance(fake.received[0]["query"]["conditions"][2]["value"]["value"], float)


async def test_sync_bodies_on_the_wire(fake_mirror: FakeFactory) -> None:
    """The blocking client (called off the loop, as a notebook would) sends the same bodies."""
    url, fake = await fake_mirror(body=EMPTY_RAW)
    client = MirrorClient(url, "api_key")
    start = datetime.fromtimestamp(T0 / 1000, tz=timezone.utc)
    await asyncio.to_thread(
        client.metrics, start=start, end=T0 + HOUR, metric_field="value", host="a-host"
    )
    fake.text = json.dumps(EMPTY_VALUES)
    await asyncio.to_thread(
        client.field_values,
        "metric",
        prefix="cpu",
        limit=10,
        start=T0,
        end=T0 + HOUR,
        region="eu-west",
    )
    fake.text = json.dumps(EMPTY_NAMES)
    await asyncio.to_thread(client.field_names, start=T0, end=T0 + HOUR, production=False)
    fake.text = json.dumps(OK_CONNECTION)
    await asyncio.to_thread(client.test_connection)
    client.close()
    assert fake.received == [
        EXPECTED_RAW_METRICS,
        EXPECTED_FIELD_VALUES,
        EXPECTED_FIELD_NAMES,
        {"_type": "TestConnectionRequest", "connectionDetails": {}},
    ]


# --- the API key -----------------------------------------------------------------------


def test_wrong_api_key_is_reported(mirror: RunningMirror) -> None:
    with MirrorClient(mirror.url, api_key="wrong") as client:
        with pytest.raises(ApiKeyMismatchError) as caught:
            client.test_connection()
        assert caught.value.expected == "wrong"
        assert caught.value.received == mirror.api_key
        with pytest.raises(ApiKeyMismatchError):  # also when the answer is an error
            client.metrics(host="nowhere", start=T0, end=T0 + HOUR)


def test_no_api_key_means_no_check() -> None:
    with start_mirror(port=0, api_key="whatever") as mirror, MirrorClient(mirror.url) as client:
        assert client.test_connection().ok


async def test_missing_header_is_a_mismatch(fake_mirror: FakeFactory) -> None:
    url, _ = await fake_mirror(api_key=None)
    async with AsyncMirrorClient(url, "api_key") as client:
        with pytest.raises(ApiKeyMismatchError) as caught:
            await client.test_connection()
    assert caught.value.received is None
    async with AsyncMirrorClient(url) as unchecked:
        assert (await unchecked.test_connection()).ok


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "error_class"), ERROR_BODIES)
async def test_protocol_error_bodies_become_protocol_exceptions(
    fake_mirror: FakeFactory, body: dict[str, Any], error_class: type[MirrorError]
) -> None:
    url, _ = await fake_mirror(status=500, body=body)
    client = MirrorClient(url, "api_key")
    with pytest.raises(error_class) as caught:
        await asyncio.to_thread(client.metrics, start=T0, end=T0 + HOUR, host="a-host")
    client.close()
    assert caught.value.to_json() == body


def test_real_mirror_errors_carry_their_body(client: MirrorClient) -> None:
    with pytest.raises(MetricNotFoundError) as not_found:
        client.metrics(host="nowhere", start=T0, end=T0 + HOUR)
    assert "host=nowhere" in not_found.value.metric
    with pytest.raises(UnsupportedFieldTypeError) as wrong_type:
        client.metrics(host=4, start=T0, end=T0 + HOUR)
    assert wrong_type.value.to_json() == {
        "_type": "UnsupportedFieldTypeError",
        "mirrorType": "NUMBER",
    }


def test_stopped_mirror_is_unreachable() -> None:
    with start_mirror(port=0) as mirror:
        url = mirror.url
    with MirrorClient(url) as client, pytest.raises(MirrorUnreachableError, match=url):
        client.test_connection()


@pytest.mark.parametrize(
    ("status", "text", "content_type"),
    [
        (500, "<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html"),
        (500, json.dumps({"error": "not a protocol body"}), "application/json"),
        (200, json.dumps({"status": "MAYBE", "_type": "TestConnectionResponse"}), "text/plain"),
    ],
)
async def test_non_protocol_answers_are_client_errors(
    fake_mirror: FakeFactory, status: int, text: str, content_type: str
) -> None:
    url, _ = await fake_mirror(status=status, text=text, content_type=content_type)
    client = MirrorClient(url, "api_key")
    with pytest.raises(MirrorClientError) as caught:
        await asyncio.to_thread(client.test_connection)
    client.close()
    assert not isinstance(caught.value, MirrorError)
    assert not isinstance(caught.value, MirrorUnreachableError)


# --- fetch_all -------------------------------------------------------------------------


def assert_same_series(cut: MetricSeries, whole: MetricSeries) -> None:
    np.testing.assert_array_equal(cut.values, whole.values)
    np.testing.assert_array_equal(cut.timestamps, whole.timestamps)
    if whole.bucket_ends is None:
        assert cut.bucket_ends is None
    else:
        assert cut.bucket_ends is not None
        np.testing.assert_array_equal(cut.bucket_ends, whole.bucket_ends)
    assert not cut.is_partial


SERIES = {"host": "a-host", "metric": "cpu.user", "start": T0, "end": T0 + HOUR}


@pytest.mark.parametrize(
    "options",
    [{}, {"method": "MEAN", "bucket_ms": 300_000}, {"method": "EVENT_COUNT", "bucket_ms": 60_000}],
    ids=["raw", "mean-5min", "count-1min"],
)
def test_fetch_all_with_limit_equals_uncut(
    mirror: RunningMirror, client: MirrorClient, options: dict[str, Any]
) -> None:
    whole = client.metrics(**SERIES, **options)
    first = client.metrics(**SERIES, **options, limit=5)
    assert first.is_partial and len(first) == 5
    before = len(mirror.requests())
    cut = client.metrics(**SERIES, **options, limit=5, fetch_all=True)
    assert len(mirror.requests()) - before > 2  # it really followed isPartial
    assert_same_series(cut, whole)


@pytest.mark.parametrize(
    "options", [{}, {"method": "MAX", "bucket_ms": 300_000}], ids=["raw", "max-5min"]
)
def test_fetch_all_past_the_work_cap_equals_uncut(options: dict[str, Any]) -> None:
    capped = ServerSettings(limits=Limits(max_points=100))
    with start_mirror(port=0) as free, start_mirror(port=0, settings=capped) as small:
        with MirrorClient(free.url) as a, MirrorClient(small.url) as b:
            whole = a.metrics(**SERIES, **options)
            assert b.metrics(**SERIES, **options).is_partial
            cut = b.metrics(**SERIES, **options, fetch_all=True)
        assert len(small.requests()) > 3
    assert_same_series(cut, whole)


# --- MetricSeries and the async twin ---------------------------------------------------


def test_metric_series_fields_are_numpy_arrays(client: MirrorClient) -> None:
    raw = client.metrics(**SERIES)
    assert isinstance(raw.values, np.ndarray) and raw.values.dtype == np.float64
    assert isinstance(raw.timestamps, np.ndarray) and raw.timestamps.dtype == np.int64
    assert raw.bucket_ends is None and not raw.aggregated
    assert raw.is_partial is False
    assert len(raw) == len(raw.timestamps) == 360
    assert np.all(np.diff(raw.timestamps) > 0)
    agg = client.metrics(**SERIES, method="MAX", bucket_ms=600_000)
    assert isinstance(agg.bucket_ends, np.ndarray) and agg.bucket_ends.dtype == np.int64
    assert agg.timestamps.dtype == np.int64 and agg.values.dtype == np.float64
    np.testing.assert_array_equal(agg.bucket_ends - agg.timestamps, 600_000)
    assert agg.aggregated and len(agg) == 6


async def test_async_client_gives_the_same_results(
    mirror: RunningMirror, client: MirrorClient
) -> None:
    async with AsyncMirrorClient(mirror.url, api_key=mirror.api_key) as aclient:
        assert (await aclient.test_connection()).ok == client.test_connection().ok
        span = {"start": T0, "end": T0 + HOUR}
        assert await aclient.field_names(**span) == client.field_names(**span)
        assert await aclient.field_names(**span, interface="eth0") == client.field_names(
            **span, interface="eth0"
        )
        values = {"prefix": "cpu", **span, "host": "a-host"}
        assert await aclient.field_values("metric", **values) == client.field_values(
            "metric", **values
        )
        for options in (
            {},
            {"method": "PERCENTILE_90", "bucket_ms": 300_000},
            {"limit": 7, "fetch_all": True},
        ):
            assert_same_series(
                await aclient.metrics(**SERIES, **options), client.metrics(**SERIES, **options)
            )
        with pytest.raises(MetricNotFoundError):
            await aclient.metrics(host="nowhere", **span)
