"""The fourteen aggregation methods, checked against an independent computation.

The reference here is deliberately naive: a dict of Python lists keyed by
``floor(t / size) * size``, reduced with ``math.fsum``, ``min``/``max`` and
``np.percentile`` one bucket at a time. ``mirror_kit.aggregation`` reaches the same
numbers by vectorised segment tricks (``reduceat``, a padded matrix sort for
regular buckets, a lexsort for irregular ones); each trick is exercised here.
Over HTTP, the reference is computed from the raw points the mirror itself returns
for the same range, so the test checks the aggregated answer against the raw one,
with the documented edge-bucket policy (whole windows only, unless ``partial``) and
empty-window rule (SUM and EVENT_COUNT give 0, every other method no point).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from conftest import DAY, HOUR, T0
from hypothesis import event, given, settings
from hypothesis import strategies as st
from mirror_wire import (
    AGGREGATION_METHODS,
    METRIC,
    aggregated_arrays,
    assert_aggregated_shape,
    assert_raw_shape,
    metrics_body,
    raw_arrays,
)

from mirror_kit import create_app
from mirror_kit.aggregation import aggregate
from mirror_kit.protocol import (
    AggregationMethod,
    FieldDescriptor,
    FieldNamesQuery,
    FieldValueOption,
    FieldValuesQuery,
    MetricsQuery,
)
from mirror_kit.sources import ConnectionDetails, Points, PointWindow, TelemetrySource

A_CPU = {"host": "a-host", "metric": "cpu.user"}


# --- the independent reference -------------------------------------------------------


def reduce_bucket(values: list[float], method: str) -> float:
    if method.startswith("EVENT_COUNT"):
        return float(len(values))
    if method.startswith("SUM"):
        return math.fsum(values)
    if method == "MEAN":
        return math.fsum(values) / len(values)
    if method == "MIN":
        return min(values)
    if method == "MAX":
        return max(values)
    return float(np.percentile(values, float(method.removeprefix("PERCENTILE_"))))


def reference(
    timestamps: Sequence[int],
    values: Sequence[float],
    size: int,
    method: str,
    window_range: tuple[int, int] | None = None,
) -> tuple[list[int], list[float]]:
    """Bucket starts and values, one bucket at a time, in plain Python.

    With ``window_range`` = (start, end) of a query, only the windows an answer holds
    (starting in ``[start, end)``) count, and SUM / EVENT_COUNT give 0 for the empty ones.
    """
    buckets: dict[int, list[float]] = {}
    for t, v in zip(timestamps, values, strict=True):
        buckets.setdefault((int(t) // size) * size, []).append(float(v))
    if window_range is not None:
        first, end = window_range
        inside = {s: buckets.get(s, []) for s in range(first, end, size)}
        zeros = method in ("SUM", "EVENT_COUNT")
        buckets = {s: vs for s, vs in inside.items() if vs or zeros}
    starts = sorted(buckets)
    return starts, [reduce_bucket(buckets[s], method) if buckets[s] else 0.0 for s in starts]


def answered_windows(start: int, end: int, size: int, partial: bool) -> tuple[int, int]:
    """The documented edge-bucket rule, written out: (first window start, stop)."""
    if partial:
        return start // size * size, end
    first = -(-start // size) * size  # the first window starting at or after startTime
    last = end // size * size - size  # the last window ending at or before endTime
    return first, last + 1


def assert_matches_reference(
    timestamps: np.ndarray, values: np.ndarray, size: int, method: str
) -> None:
    got = aggregate(timestamps, values, size, AggregationMethod(method))
    starts, expected = reference(timestamps.tolist(), values.tolist(), size, method)
    assert got.starts.tolist() == starts
    assert got.starts.dtype == np.int64
    scale = float(np.abs(values).max(initial=0.0)) * max(1, len(values))
    np.testing.assert_allclose(got.values, expected, rtol=1e-9, atol=1e-12 * scale + 1e-12)


def padded_path(counts: np.ndarray) -> bool:
    """Whether aggregation.py sorts these segments in a padded matrix (else lexsort)."""
    return len(counts) * int(counts.max()) <= 2 * int(counts.sum()) + 4096


# --- aggregate(): unit tests -------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(st.tuples(st.integers(-(10**6), 10**6), finite), min_size=0, max_size=80),
    size=st.integers(1, 200_000),
    method=st.sampled_from(AGGREGATION_METHODS),
)
def test_aggregate_matches_reference_on_arbitrary_points(
    points: list[tuple[int, float]], size: int, method: str
) -> None:
    """Any ascending timestamps (duplicates, negatives, gaps) and any finite values."""
    points.sort(key=lambda p: p[0])
    timestamps = np.array([p[0] for p in points], dtype=np.int64)
    values = np.array([p[1] for p in points], dtype=np.float64)
    assert_matches_reference(timestamps, values, size, method)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.one_of(st.integers(1, 4), st.integers(200, 3_000)), min_size=1, max_size=40),
    gaps=st.lists(st.integers(1, 5), min_size=40, max_size=40),
    size=st.integers(1, 100_000),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
    method=st.sampled_from(AGGREGATION_METHODS),
)
def test_aggregate_matches_reference_on_irregular_buckets(
    counts: list[int], gaps: list[int], size: int, seed: int, ties: bool, method: str
) -> None:
    """Buckets of very different sizes: both the padded and the lexsort path."""
    rng = np.random.default_rng(seed)
    bucket_ids = np.cumsum(gaps[: len(counts)]) - 20
    stamps = np.concatenate(
        [
            np.sort(rng.integers(b * size, (b + 1) * size, c))
            for b, c in zip(bucket_ids, counts, strict=True)
        ]
    ).astype(np.int64)
    values = rng.normal(100.0, 30.0, len(stamps))
    if ties:
        values = np.round(values / 10.0) * 10.0
    event("padded path" if padded_path(np.array(counts)) else "lexsort path")
    assert_matches_reference(stamps, values, size, method)


@pytest.mark.parametrize("method", AGGREGATION_METHODS)
def test_lexsort_path_matches_reference(method: str) -> None:
    rng = np.random.default_rng(11)
    counts = np.array([1] * 300 + [3_000] * 3)
    rng.shuffle(counts)
    assert not padded_path(counts)
    stamps = np.concatenate(
        [np.sort(rng.integers(b * 60_000, (b + 1) * 60_000, c)) for b, c in enumerate(counts)]
    )
    values = np.round(rng.normal(0.0, 5.0, len(stamps)), 1)
    assert_matches_reference(stamps.astype(np.int64), values, 60_000, method)


@pytest.mark.parametrize("method", AGGREGATION_METHODS)
def test_padded_path_matches_reference(method: str) -> None:
    counts = np.full(5, 1_000)
    assert padded_path(counts)
    rng = np.random.default_rng(5)
    stamps = np.arange(5_000, dtype=np.int64) * 60 + T0
    values = rng.exponential(3.0, len(stamps))
    assert_matches_reference(stamps, values, 60_000, method)


def test_aggregate_of_nothing_is_empty() -> None:
    for method in AggregationMethod:
        out = aggregate(np.empty(0, dtype=np.int64), np.empty(0), 1000, method)
        assert len(out) == 0


def test_percentiles_use_linear_interpolation() -> None:
    """Hyndman & Fan type 7 by hand: for 1..10, p90 is at h = 9 * 0.9 = 8.1 -> 9.1."""
    stamps = np.arange(10, dtype=np.int64)
    values = np.arange(1.0, 11.0)
    out = aggregate(stamps, values, 100, AggregationMethod.PERCENTILE_90)
    assert out.values.tolist() == pytest.approx([9.1])
    out = aggregate(stamps, values, 100, AggregationMethod.PERCENTILE_25)
    assert out.values.tolist() == pytest.approx([3.25])


# --- over HTTP: the mirror's aggregated answer against its own raw answer ----------------


@pytest.fixture
async def api(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app())


async def metric(api: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await api.post(METRIC, json=body)
    assert answer.status == 200, await answer.text()
    return await answer.json()


async def check_against_raw(
    api: TestClient,
    where: dict[str, Any],
    start: int,
    end: int,
    size: int,
    partial: bool = False,
) -> None:
    raw = await metric(api, metrics_body(start, end, where))
    assert_raw_shape(raw)
    assert raw["telemetry"]["isPartial"] is False
    t, v = raw_arrays(raw)
    assert len(t) > 0
    details = {"edgeBuckets": "partial"} if partial else None
    windows = answered_windows(start, end, size, partial)
    for method in AGGREGATION_METHODS:
        query = metrics_body(start, end, where, method=method, bucket_ms=size, details=details)
        body = await metric(api, query)
        assert_aggregated_shape(body)
        assert body["telemetry"]["isPartial"] is False
        starts, ends, values = aggregated_arrays(body)
        expected_starts, expected = reference(t.tolist(), v.tolist(), size, method, windows)
        assert starts.tolist() == expected_starts, method
        assert (ends - starts).tolist() == [size] * len(starts)
        np.testing.assert_allclose(values, expected, rtol=1e-9, err_msg=method)


@pytest.mark.parametrize(
    ("start", "end", "size"),
    [
        (T0, T0 + 6 * HOUR, 60_000),  # aligned, 6 points a bucket
        (T0 + 4_321, T0 + 2 * HOUR - 999, 300_000),  # start and end inside buckets
        (T0 - 12_345, T0 + HOUR, 7_000),  # 7 s buckets on a 10 s grid: gaps
        (T0 + 13_000, T0 + 3 * HOUR, 73_000),  # 7 or 8 points a bucket, unaligned
        (T0 - DAY + 5_000, T0 + 2 * DAY, DAY),  # large equal buckets, first one cut
        (T0, T0 + HOUR, 10_000),  # one point a bucket
    ],
    ids=["1min", "5min-unaligned", "7s", "73s", "1day", "res"],
)
@pytest.mark.parametrize("partial", [False, True], ids=["complete", "partial"])
async def test_every_method_over_http_matches_raw_points(
    api: TestClient, start: int, end: int, size: int, partial: bool
) -> None:
    where = {"host": "b-host", "metric": "net.bytes_in"}
    await check_against_raw(api, where, start, end, size, partial)


class BurstySource(TelemetrySource):
    """A store with irregular timestamps: bursts of thousands of points, then singles.

    The synthetic grid always gives near-equal buckets; a real store does not. This
    source makes the service take aggregation's lexsort path.
    """

    def __init__(self, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        counts = np.array([1] * 200 + [2_500] * 3 + [2] * 50)
        rng.shuffle(counts)
        self.counts = counts
        stamps = [np.sort(rng.integers(b, b + 60_000, c)) for b, c in self._buckets(counts)]
        self.timestamps = np.concatenate(stamps).astype(np.int64)
        self.values = np.round(rng.normal(10.0, 4.0, len(self.timestamps)), 1)

    @staticmethod
    def _buckets(counts: np.ndarray) -> list[tuple[int, int]]:
        return [(T0 + i * 60_000, int(c)) for i, c in enumerate(counts)]

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        return None

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> list[FieldDescriptor]:
        return []

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> list[FieldValueOption]:
        return []

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        inside = np.flatnonzero((self.timestamps >= window.start) & (self.timestamps < window.end))
        cut = len(inside) > window.max_points
        first = max(0, len(inside) - window.max_points) if window.newest_first else 0
        kept = inside[first : first + window.max_points]
        return Points(self.timestamps[kept], self.values[kept], cut)


async def test_irregular_store_over_http_matches_raw_points(aiohttp_client: Any) -> None:
    source = BurstySource()
    assert not padded_path(source.counts)
    api = await aiohttp_client(create_app(source))
    end = T0 + len(source.counts) * 60_000
    await check_against_raw(api, {}, T0, end, 60_000)
    await check_against_raw(api, {}, T0 + 30_000, end - 1, 120_000)
    await check_against_raw(api, {}, T0 + 30_000, end - 1, 120_000, partial=True)


# --- the empty-window rule, the edge-bucket policy, latestFirst ------------------------

#: Points at 0 s, 10 s and 250 s after T0: with 60 s windows, 1-3 are empty.
SPARSE = {"timestamp": [T0, T0 + 10_000, T0 + 250_000], "value": [1.0, 2.0, 4.0]}
#: Per method: the (start offset in s, value) pairs of the 5 windows from T0.
EMPTY_WINDOW_RULE = {
    "SUM": [(0, 3.0), (60, 0.0), (120, 0.0), (180, 0.0), (240, 4.0)],
    "EVENT_COUNT": [(0, 2.0), (60, 0.0), (120, 0.0), (180, 0.0), (240, 1.0)],
    "SUM_NO_ZEROS": [(0, 3.0), (240, 4.0)],
    "EVENT_COUNT_NO_ZEROS": [(0, 2.0), (240, 1.0)],
    "MEAN": [(0, 1.5), (240, 4.0)],
    "MIN": [(0, 1.0), (240, 4.0)],
    "MAX": [(0, 2.0), (240, 4.0)],
    **{
        m: [(0, float(np.percentile([1.0, 2.0], float(m[11:])))), (240, 4.0)]
        for m in AGGREGATION_METHODS
        if m.startswith("PERCENTILE_")
    },
}


@pytest.fixture
async def sparse(aiohttp_client: Any) -> TestClient:
    from mirror_kit.sources import DataFrameSource

    return await aiohttp_client(create_app(DataFrameSource(SPARSE)))


def test_the_rule_names_every_method() -> None:
    assert set(EMPTY_WINDOW_RULE) == {m.value for m in AggregationMethod}
    assert {m.value for m in AggregationMethod if m.zero_filled} == {"SUM", "EVENT_COUNT"}


@pytest.mark.parametrize("method", AGGREGATION_METHODS)
async def test_empty_windows_per_method(sparse: TestClient, method: str) -> None:
    body = await metric(sparse, metrics_body(T0, T0 + 300_000, {}, method=method, bucket_ms=60_000))
    starts, ends, values = aggregated_arrays(body)
    expected = EMPTY_WINDOW_RULE[method]
    assert [(s - T0) // 1000 for s in starts.tolist()] == [s for s, _ in expected]
    assert values.tolist() == pytest.approx([v for _, v in expected])
    assert (ends - starts).tolist() == [60_000] * len(starts)


async def test_zero_fill_reaches_the_range_not_the_data(sparse: TestClient) -> None:
    """A window after the last point, still inside the range, is 0 for SUM."""
    body = await metric(sparse, metrics_body(T0, T0 + 600_000, {}, method="SUM", bucket_ms=60_000))
    starts, _, values = aggregated_arrays(body)
    assert len(starts) == 10 and values.tolist()[5:] == [0.0] * 5


async def test_zero_fill_is_bounded_by_limit_and_continues(sparse: TestClient) -> None:
    """A day of 1 s windows is 86,400 zeros: limit cuts them and isPartial says so."""
    query = metrics_body(T0, T0 + DAY, {}, method="EVENT_COUNT", bucket_ms=1000, limit=100)
    body = await metric(sparse, query)
    starts, _, values = aggregated_arrays(body)
    assert len(starts) == 100 and body["telemetry"]["isPartial"] is True
    assert values[0] == 1.0 and values[10] == 1.0 and values[1:10].tolist() == [0.0] * 9
    query["query"]["startTime"] = int(starts[-1])
    again = await metric(sparse, query)
    assert aggregated_arrays(again)[0][0] == starts[-1]


async def test_edge_buckets_complete_by_default_partial_on_request(api: TestClient) -> None:
    """A range ending mid-window: the cut window only with edgeBuckets partial."""
    start, end = T0 + 30_000, T0 + 330_000  # 5 min windows: [0, 5) cut at both ends
    whole = await metric(api, metrics_body(start, end, A_CPU, method="MEAN", bucket_ms=60_000))
    starts, ends, _ = aggregated_arrays(whole)
    assert (starts[0], ends[-1]) == (T0 + 60_000, T0 + 300_000) and len(starts) == 4
    query = metrics_body(start, end, A_CPU, method="MEAN", bucket_ms=60_000)
    query["connectionDetails"] = {"edgeBuckets": "partial"}
    cut = await metric(api, query)
    starts, ends, _ = aggregated_arrays(cut)
    assert (starts[0], ends[-1]) == (T0, T0 + 360_000) and len(starts) == 6


async def test_a_range_shorter_than_a_window_has_no_complete_window(api: TestClient) -> None:
    body = await metric(
        api, metrics_body(T0 + 1, T0 + 60_000, A_CPU, method="SUM", bucket_ms=60_000)
    )
    assert body["telemetry"]["points"] == [] and body["telemetry"]["isPartial"] is False


async def test_a_bad_edge_policy_is_a_clear_error_also_at_test_connection(
    api: TestClient,
) -> None:
    query = metrics_body(T0, T0 + HOUR, A_CPU, method="MEAN", bucket_ms=60_000)
    query["connectionDetails"] = {"edgeBuckets": "half"}
    answer = await api.post(METRIC, json=query)
    assert answer.status == 400
    assert "edgeBuckets" in (await answer.json())["details"]
    test = await api.post(
        "/api/connection",
        json={"_type": "TestConnectionRequest", "connectionDetails": {"edgeBuckets": 3}},
    )
    body = await test.json()
    assert body["status"] == "FAILURE" and "edgeBuckets" in body["error"]["details"]


@pytest.mark.parametrize("method", [None, "MAX"])
async def test_latest_first_is_ignored_on_metric_queries(api: TestClient, method: str) -> None:
    """Time order always, cut at the newest end, so continuing from the last timestamp works."""
    bucket = None if method is None else 60_000
    plain = metrics_body(T0, T0 + HOUR, A_CPU, method=method, bucket_ms=bucket, limit=10)
    newest = metrics_body(
        T0, T0 + HOUR, A_CPU, method=method, bucket_ms=bucket, limit=10, latest_first=True
    )
    assert await metric(api, plain) == await metric(api, newest)
    stamps = [p[1] for p in (await metric(api, newest))["telemetry"]["points"]]
    assert stamps == sorted(stamps) and stamps[0] == T0
