"""Wire bytes: points rendered from numpy columns equal the JSON of the point lists."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mirror_kit.protocol import (
    AggregatedMetricTelemetry,
    MetricsResponse,
    RawMetricTelemetry,
    RemoteMirrorError,
    TestConnectionResponse,
    encoding,
)
from mirror_kit.protocol.encoding import encode, points_json

FINITE = st.floats(allow_nan=False, allow_infinity=False)
INT64 = st.integers(-(2**63), 2**63 - 1)
EXACT = st.integers(-(2**53) + 1, 2**53 - 1)  # what float64 holds exactly


def as_lists(*columns: np.ndarray) -> bytes:
    """The reference: orjson over one Python list per point."""
    return orjson.dumps([list(row) for row in zip(*(c.tolist() for c in columns), strict=True)])


@st.composite
def point_columns(
    draw: st.DrawFn, times: st.SearchStrategy[int] = INT64
) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 60))
    values = draw(hnp.arrays(np.float64, n, elements=FINITE))
    timestamps = draw(hnp.arrays(np.int64, n, elements=times))
    return values, timestamps


@given(st.one_of(point_columns(), point_columns(EXACT)))
def test_points_equal_the_lists_byte_for_byte(columns: tuple[np.ndarray, np.ndarray]) -> None:
    values, timestamps = columns
    assert points_json(values, timestamps) == as_lists(values, timestamps)
    assert points_json(values, timestamps, timestamps) == as_lists(values, timestamps, timestamps)


def test_answers_longer_than_a_chunk_are_rendered_whole() -> None:
    """Points are rendered CHUNK at a time (bounded memory); the bytes are one array."""
    n = 2 * encoding.CHUNK + 3
    v = np.linspace(-5.0, 5.0, n)
    t = np.arange(n, dtype=np.int64) * 10_000 + 1_764_000_000_000
    assert points_json(v, t) == as_lists(v, t)
    assert points_json(v, t, t + 10) == as_lists(v, t, t + 10)


def test_timestamps_past_float_precision_stay_exact() -> None:
    values = np.array([1.5, 2.5])
    times = np.array([2**53 + 1, -(2**62)], dtype=np.int64)  # float64 would round them
    assert points_json(values, times) == as_lists(values, times)
    assert json.loads(points_json(values, times))[0][1] == 2**53 + 1


@pytest.mark.parametrize(
    "values",
    [
        [0.0],
        [-0.0, 0.0, 1.0, -1.0],
        [5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 1e-7, 1e16, 0.1],
        [33.5933319229645, 3.0, 100.0, 12.25],  # widths differ: the padded path
    ],
)
def test_extreme_and_uneven_values(values: list[float]) -> None:
    v = np.array(values)
    t = np.arange(len(v), dtype=np.int64) * 10_000 + 1_764_000_000_000  # equal widths
    assert json.loads(points_json(v, t)) == [
        [a, b] for a, b in zip(values, t.tolist(), strict=True)
    ]
    assert points_json(v, t) == as_lists(v, t)


def test_empty_and_reversed_views() -> None:
    empty = np.empty(0)
    assert points_json(empty, empty.astype(np.int64)) == b"[]"
    v = np.linspace(-5.0, 5.0, 1080)
    t = np.arange(1080, dtype=np.int64) * 10_000
    assert points_json(v[::-1], t[::-1]) == as_lists(v[::-1], t[::-1])  # latestFirst slices


def test_to_bytes_is_the_json_of_to_json() -> None:
    v = np.array([1.5, 2.0, 1e-9])
    t = np.array([10, 20, 30], dtype=np.int64)
    for response in (
        MetricsResponse(RawMetricTelemetry(v, t, is_partial=True)),
        MetricsResponse(AggregatedMetricTelemetry(v, t, t + 10)),
        TestConnectionResponse(),
    ):
        assert json.loads(response.to_bytes()) == response.to_json()
        assert response.to_bytes() == orjson.dumps(response.to_json())


def test_lone_surrogates_fall_back_to_the_standard_library() -> None:
    body = RemoteMirrorError("bad field", "field \ud800").to_json()
    with pytest.raises(UnicodeEncodeError):
        msgspec.json.encode(body)
    assert json.loads(encode(body)) == body
