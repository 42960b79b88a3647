"""Answers a parsed Mirror API request from a source: paging, work cap, aggregation.

This is the mirror's logic with HTTP taken away: ``answer(request, source, limits)``
maps each of the four typed requests to its typed response, the same for every
source. Keeping it here means a source only lists fields and yields raw points,
and every source gets ``limit``/``offset``/``isPartial``, the cap on work per
request and all fourteen aggregation methods for free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import numpy as np

from .aggregation import Buckets, aggregate, zero_fill
from .options import option
from .protocol import (
    AggregatedMetricTelemetry,
    FieldNamesRequest,
    FieldNamesResponse,
    FieldValuesRequest,
    FieldValuesResponse,
    MetricsQuery,
    MetricsRequest,
    MetricsResponse,
    MirrorError,
    MirrorRequest,
    MirrorResponse,
    RawMetricTelemetry,
    RemoteMirrorError,
    TestConnectionRequest,
    TestConnectionResponse,
)
from .sources import ConnectionDetails, Points, PointWindow, TelemetrySource, WindowSpan
from .telemetry import counted_answer

T = TypeVar("T")

_CONNECTED = TestConnectionResponse()  # immutable: one serves every successful test


@dataclass(frozen=True)
class Limits:
    """Bounds on the work and memory of one request.

    ``max_points`` caps the raw points a source computes or fetches per metric
    request (16 bytes each, so the default holds about 16 MB): 1,000,000 points are
    115 days at 10-second resolution, so a month aggregated in one answer fits.
    ``max_answer_points`` caps the points one answer carries (raw points or
    buckets): JSON costs far more per point than numpy, and StackState follows
    ``isPartial`` for the rest. Past either cap the answer is cut with ``isPartial``.
    """

    max_points: int = option(
        1_000_000,
        "--max-points",
        "raw points computed per metric request, past it answers are cut (isPartial)",
    )
    max_answer_points: int = option(
        50_000,
        "--max-answer-points",
        "points (or buckets) one answer carries, past it answers are cut (isPartial)",
    )

    def __post_init__(self) -> None:
        if self.max_points < 1 or self.max_answer_points < 1:
            raise ValueError("max_points and max_answer_points must be at least 1")

    def answer_cap(self, limit: int | None) -> int:
        """How many points an answer may carry given the query's ``limit``."""
        cap = min(self.max_points, self.max_answer_points)
        return cap if limit is None else min(limit, cap)


@counted_answer  # points served, partial answers, store failures (mirror_kit/telemetry.py)
async def answer(request: MirrorRequest, source: TelemetrySource, limits: Limits) -> MirrorResponse:
    """The response to ``request``; protocol errors propagate as MirrorError."""
    details = request.connection_details
    if isinstance(request, TestConnectionRequest):
        try:
            EdgeBuckets.from_details(details)  # a bad option shows at Test Connection
            await source.test_connection(details)
        except MirrorError as error:
            return TestConnectionResponse(error)
        return _CONNECTED
    if isinstance(request, FieldNamesRequest):
        names = await source.field_names(request.query, details)
        page, partial = _page(names, 0, request.query.limit)
        return FieldNamesResponse(tuple(page), partial)
    if isinstance(request, FieldValuesRequest):
        q = request.query
        options = await source.field_values(q, details)
        shown, partial = _page(options, q.offset, q.limit)
        return FieldValuesResponse(tuple(shown), partial)
    if isinstance(request, MetricsRequest):
        return MetricsResponse(await _metrics(request.query, source, limits, details))
    raise TypeError(f"not a Mirror API request: {request!r}")


def _page(items: Sequence[T], offset: int, limit: int | None) -> tuple[Sequence[T], bool]:
    end = len(items) if limit is None else offset + limit
    return items[offset:end], end < len(items)


class EdgeBuckets(str, Enum):
    """Which windows an aggregated answer holds (connection details ``edgeBuckets``).

    StackState re-queries live streams every minute or more with a range ending
    "now": a window cut by ``endTime`` (or by ``startTime``) holds part of its points
    and changes value from poll to poll. ``COMPLETE`` (the default, as the production
    Prometheus mirror does) answers only windows that lie wholly inside
    ``[startTime, endTime)``: the first is the first epoch-aligned window starting at
    or after ``startTime``, the last ends at or before ``endTime``. ``PARTIAL`` also
    answers the two cut windows, computed from the points inside the range.
    """

    COMPLETE = "complete"
    PARTIAL = "partial"

    @classmethod
    def from_details(cls, details: ConnectionDetails) -> EdgeBuckets:
        raw = details.get(EDGE_BUCKETS_KEY, cls.COMPLETE.value)
        try:
            return cls(raw)
        except ValueError:
            raise RemoteMirrorError(
                "Invalid connection details",
                f'"{EDGE_BUCKETS_KEY}" must be "complete" or "partial", not {raw!r:.60}',
            ) from None

    def windows(self, start: int, end: int, size: int) -> tuple[int, int]:
        """``(first, stop)``: the answered windows start in ``[first, stop)``."""
        if self is EdgeBuckets.COMPLETE:
            return -(-start // size) * size, (end // size) * size - size + 1
        return (start // size) * size, end


#: The connection-details key of the edge-bucket policy.
EDGE_BUCKETS_KEY = "edgeBuckets"


async def _metrics(
    q: MetricsQuery, source: TelemetrySource, limits: Limits, details: ConnectionDetails
) -> RawMetricTelemetry | AggregatedMetricTelemetry:
    """Raw or aggregated telemetry, always in time order and cut at the newest end.

    ``latestFirst`` is ignored on metric queries: StackState continues a cut answer
    from its last timestamp, which only works when answers are in time order and
    cut at the end (MIRROR_API.md, Get Metric Values).
    """
    end = max(q.end_time, q.start_time)  # an inverted range is an empty one
    if q.aggregation is None:
        points = await _fetch(q, q.start_time, end, source, limits.answer_cap(q.limit), details)
        return RawMetricTelemetry(points.values, points.timestamps, is_partial=points.truncated)
    size = q.aggregation.bucket_size_millis
    first, stop = EdgeBuckets.from_details(details).windows(q.start_time, end, size)
    # Points of the answered windows only, and never outside the range.
    lo, hi = max(q.start_time, first), min(end, max(first, stop - 1 + size))
    cap = limits.answer_cap(q.limit)
    if lo == first and hi > lo and (hi - lo) % size == 0:  # whole windows: the store may
        span = WindowSpan(first, (hi - lo) // size, size, q.aggregation.method)
        pushed = await _pushed(q, source, span, cap, details)
        if pushed is not None:
            return pushed
    points = await _fetch(q, lo, max(lo, hi), source, limits.max_points, details)
    return _aggregated(q, points, first, stop, cap)


async def _pushed(
    q: MetricsQuery,
    source: TelemetrySource,
    span: WindowSpan,
    cap: int,
    details: ConnectionDetails,
) -> AggregatedMetricTelemetry | None:
    """The windows as the store aggregates them (``TelemetrySource.windows``), at most
    one more than the answer carries; None when the store leaves it to the service."""
    asked = WindowSpan(span.first, min(span.count, cap + 1), span.size, span.method)
    windows = await source.windows(q, asked, details)
    if windows is None:
        return None
    finite = np.isfinite(windows.values)
    buckets = Buckets(windows.timestamps[finite], windows.values[finite])
    return _answered(q, buckets, asked.count < span.count, span.first, asked.end, cap)


async def _fetch(
    q: MetricsQuery,
    start: int,
    end: int,
    source: TelemetrySource,
    budget: int,
    details: ConnectionDetails,
) -> Points:
    """Raw points in ``[start, end)``, non-finite values dropped (JSON has no NaN)."""
    points = await source.points(q, PointWindow(start, end, budget), details)
    finite = np.isfinite(points.values)
    if finite.all():
        return points
    return Points(points.timestamps[finite], points.values[finite], points.truncated)


def _aggregated(
    q: MetricsQuery, points: Points, first: int, stop: int, cap: int
) -> AggregatedMetricTelemetry:
    """The windows starting in ``[first, stop)``: whole windows only, at most ``cap``."""
    assert q.aggregation is not None
    size, method = q.aggregation.bucket_size_millis, q.aggregation.method
    buckets = aggregate(points.timestamps, points.values, size, method)
    partial = points.truncated
    if partial:
        # The work cap cut the points inside the newest bucket: drop that bucket so
        # every value served is of a whole window; a continuation query from the
        # last start re-reads it whole.
        if len(buckets) <= 1:
            raise RemoteMirrorError(
                "Bucket too large",
                f"one bucket of {size} ms holds more points than this mirror computes per "
                "request (max_points); ask for smaller buckets or raise the cap",
            )
        stop = int(buckets.starts[-1])
        buckets = Buckets(buckets.starts[:-1], buckets.values[:-1])
    return _answered(q, buckets, partial, first, stop, cap)


def _answered(
    q: MetricsQuery, buckets: Buckets, partial: bool, first: int, stop: int, cap: int
) -> AggregatedMetricTelemetry:
    """Windows starting in ``[first, stop)``, the empty ones zero-filled where the
    method says so, cut at ``cap``."""
    assert q.aggregation is not None
    size, method = q.aggregation.bucket_size_millis, q.aggregation.method
    if method.zero_filled:
        buckets = zero_fill(buckets, first, stop, size, cap + 1)  # one more: is it cut?
    starts, values = buckets.starts, buckets.values
    if len(starts) > cap:
        starts, values, partial = starts[:cap], values[:cap], True
    return AggregatedMetricTelemetry(values, starts, starts + size, is_partial=partial)
