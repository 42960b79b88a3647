"""Bucketed aggregation of raw points, vectorised with numpy.

Windows are fixed and epoch-aligned: a point at ``t`` falls in the bucket starting at
``floor(t / size) * size`` and ending ``size`` ms later, whatever the query's
``startTime``. ``aggregate`` gives the buckets holding at least one point;
``zero_fill`` then gives ``SUM`` and ``EVENT_COUNT`` a 0 for every empty window of
the answered range (StackState 4.3+: the ``_NO_ZEROS`` variants are the ones where
"missing values from a data source won't be filled with zeros"). Every other
method, and both ``_NO_ZEROS`` variants, give no point for an empty window.

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


def zero_fill(buckets: Buckets, first: int, end: int, bucket_ms: int, most: int) -> Buckets:
    """Every window starting in ``[first, end)`` (``first`` aligned), the empty ones 0.

    At most ``most`` windows are made (the answer cap), so a year of 1 ms buckets
    costs no more than the answer can carry; the caller marks such an answer partial.
    """
    count = max(0, min(-(-(end - first) // bucket_ms), most))
    starts = first + bucket_ms * np.arange(count, dtype=np.int64)
    values = np.zeros(count, dtype=np.float64)
    index = (buckets.starts - first) // bucket_ms
    inside = (index >= 0) & (index < count)
    values[index[inside]] = buckets.values[inside]
    return Buckets(starts, values)


_SUMS = (AggregationMethod.SUM, AggregationMethod.SUM_NO_ZEROS)
_COUNTS = (AggregationMethod.EVENT_COUNT, AggregationMethod.EVENT_COUNT_NO_ZEROS)


def _reduce(
    values: np.ndarray, first: np.ndarray, counts: np.ndarray, method: AggregationMethod
) -> np.ndarray:
    if method in _COUNTS:
        return counts.astype(np.float64)
    if method in _SUMS:
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
