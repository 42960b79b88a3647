"""The twelve aggregation methods, checked against an independent computation.

The reference here is deliberately naive: a dict of Python lists keyed by
``floor(t / size) * size``, reduced with ``math.fsum``, ``min``/``max`` and
``np.percentile`` one bucket at a time. ``mirror_kit.aggregation`` reaches the same
numbers by vectorised segment tricks (``reduceat``, a padded matrix sort for
regular buckets, a lexsort for irregular ones); each trick is exercised here.
Over HTTP, the reference is computed from the raw points the mirror itself returns
for the same range, so the test checks the aggregated answer against the raw one.
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
    if method == "EVENT_COUNT":
        return float(len(values))
    if method == "SUM":
        return math.fsum(values)
    if method == "MEAN":
        return math.fsum(values) / len(values)
    if method == "MIN":
        return min(values)
    if method == "MAX":
        return max(values)
    return float(np.percentile(values, float(method.removeprefix("PERCENTILE_"))))


def reference(
    timestamps: Sequence[int], values: Sequence[float], size: int, method: str
) -> tuple[list[int], list[float]]:
    """Bucket starts and values, one non-empty bucket at a time, in plain Python."""
    buckets: dict[int, list[float]] = {}
    for t, v in zip(timestamps, values, strict=True):
        buckets.setdefault((int(t) // size) * size, []).append(float(v))
    starts = sorted(buckets)
    return starts, [reduce_bucket(buckets[s], method) for s in starts]


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
    api: TestClient, where: dict[str, Any], start: int, end: int, size: int
) -> None:
    raw = await metric(api, metrics_body(start, end, where))
    assert_raw_shape(raw)
    assert raw["telemetry"]["isPartial"] is False
    t, v = raw_arrays(raw)
    assert len(t) > 0
    for method in AGGREGATION_METHODS:
        body = await metric(api, metrics_body(start, end, where, method=method, bucket_ms=size))
        assert_aggregated_shape(body)
        assert body["telemetry"]["isPartial"] is False
        starts, ends, values = aggregated_arrays(body)
        expected_starts, expected = reference(t.tolist(), v.tolist(), size, method)
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
async def test_every_method_over_http_matches_raw_points(
    api: TestClient, start: int, end: int, size: int
) -> None:
    await check_against_raw(api, {"host": "b-host", "metric": "net.bytes_in"}, start, end, size)


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
