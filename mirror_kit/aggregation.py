"""Bucketed aggregation of raw points, vectorised with numpy.

Windows are fixed and epoch-aligned: a point at ``t`` falls in the bucket starting at
``floor(t / size) * size`` and ending ``size`` ms later, whatever the query's
``startTime``. Only buckets holding at least one point produce a value (an empty
window gives no point, for every method, as a store with no samples there would).

Percentiles use numpy's default definition ("linear", Hyndman & Fan type 7): for
the sorted values ``x[0..n-1]`` of a bucket, ``h = (n - 1) * p / 100`` and the
result is ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
``EVENT_COUNT`` is the number of points in the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .protocol import AggregationMethod


@dataclass(frozen=True)
class Buckets:
    starts: np.ndarray  # int64 epoch ms, ascending
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.starts)


def aggregate(
    timestamps: np.ndarray, values: np.ndarray, bucket_ms: int, method: AggregationMethod
) -> Buckets:
    """Aggregate points (ascending timestamps) into the non-empty buckets of ``bucket_ms``."""
    if len(timestamps) == 0:
        return Buckets(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    ids = timestamps // bucket_ms
    first = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    counts = np.diff(np.append(first, len(values)))
    return Buckets(ids[first] * bucket_ms, _reduce(values, first, counts, method))


def _reduce(
    values: np.ndarray, first: np.ndarray, counts: np.ndarray, method: AggregationMethod
) -> np.ndarray:
    if method is AggregationMethod.EVENT_COUNT:
        return counts.astype(np.float64)
    if method is AggregationMethod.SUM:
        return np.add.reduceat(values, first)
    if method is AggregationMethod.MEAN:
        return np.add.reduceat(values, first) / counts
    if method is AggregationMethod.MIN:
        return np.minimum.reduceat(values, first)
    if method is AggregationMethod.MAX:
        return np.maximum.reduceat(values, first)
    percentile = method.percentile
    assert percentile is not None, method
    return segment_percentile(values, first, counts, percentile)


def segment_percentile(
    values: np.ndarray, first: np.ndarray, counts: np.ndarray, percentile: float
) -> np.ndarray:
    """The linear-interpolated percentile of each contiguous segment, all at once."""
    ordered, starts = _sorted_within_segments(values, first, counts)
    h = (counts - 1) * (percentile / 100.0)
    low = np.floor(h).astype(np.int64)
    high = np.minimum(low + 1, counts - 1)
    lower = ordered[starts + low]
    return lower + (h - low) * (ordered[starts + high] - lower)


def _sorted_within_segments(
    values: np.ndarray, first: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values sorted inside each segment, flat, with each segment's start offset.

    Regular data (buckets of nearly equal size, the common case for grid-aligned
    series) is padded into a matrix with +inf and sorted row by row, which is several
    times faster than a lexsort; irregular data, where padding would waste memory,
    takes the lexsort.
    """
    rows, width = len(counts), int(counts.max())
    if rows * width <= 2 * len(values) + 4096:
        matrix = np.full((rows, width), np.inf)
        segment = np.repeat(np.arange(rows), counts)
        column = np.arange(len(values)) - np.repeat(first, counts)
        matrix[segment, column] = values
        matrix.sort(axis=1)
        return matrix.ravel(), np.arange(rows) * width
    segment = np.repeat(np.arange(rows), counts)
    return values[np.lexsort((values, segment))], first
