"""Answers a parsed Mirror API request from a source: paging, work cap, aggregation.

This is the mirror's logic with HTTP taken away: ``answer(request, source, limits)``
maps each of the four typed requests to its typed response, the same for every
source. Keeping it here means a source only lists fields and yields raw points,
and every source gets ``limit``/``offset``/``isPartial``, the cap on work per
request and all twelve aggregation methods for free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from .aggregation import aggregate
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
from .sources import ConnectionDetails, Points, PointWindow, TelemetrySource

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

    max_points: int = 1_000_000
    max_answer_points: int = 50_000

    def __post_init__(self) -> None:
        if self.max_points < 1 or self.max_answer_points < 1:
            raise ValueError("max_points and max_answer_points must be at least 1")

    def answer_cap(self, limit: int | None) -> int:
        """How many points an answer may carry given the query's ``limit``."""
        cap = min(self.max_points, self.max_answer_points)
        return cap if limit is None else min(limit, cap)


async def answer(request: MirrorRequest, source: TelemetrySource, limits: Limits) -> MirrorResponse:
    """The response to ``request``; protocol errors propagate as MirrorError."""
    details = request.connection_details
    if isinstance(request, TestConnectionRequest):
        try:
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
        page, partial = _page(options, q.offset, q.limit)
        return FieldValuesResponse(tuple(page), partial)
    if isinstance(request, MetricsRequest):
        return MetricsResponse(await _metrics(request.query, source, limits, details))
    raise TypeError(f"not a Mirror API request: {request!r}")


def _page(items: Sequence[T], offset: int, limit: int | None) -> tuple[Sequence[T], bool]:
    end = len(items) if limit is None else offset + limit
    return items[offset:end], end < len(items)


async def _metrics(
    q: MetricsQuery, source: TelemetrySource, limits: Limits, details: ConnectionDetails
) -> RawMetricTelemetry | AggregatedMetricTelemetry:
    if q.aggregation is None:
        points = await _fetch(q, source, limits.answer_cap(q.limit), details)
        return _raw(points, q.latest_first)
    points = await _fetch(q, source, limits.max_points, details)
    return _aggregated(q, points, limits.answer_cap(q.limit))


async def _fetch(
    q: MetricsQuery, source: TelemetrySource, budget: int, details: ConnectionDetails
) -> Points:
    """Raw points for the query's range, non-finite values dropped (JSON has no NaN)."""
    end = max(q.end_time, q.start_time)  # an inverted range is an empty one
    window = PointWindow(q.start_time, end, budget, q.latest_first)
    points = await source.points(q, window, details)
    finite = np.isfinite(points.values)
    if finite.all():
        return points
    return Points(points.timestamps[finite], points.values[finite], points.truncated)


def _raw(points: Points, latest_first: bool) -> RawMetricTelemetry:
    step = -1 if latest_first else 1
    return RawMetricTelemetry(
        points.values[::step], points.timestamps[::step], is_partial=points.truncated
    )


def _aggregated(q: MetricsQuery, points: Points, cap: int) -> AggregatedMetricTelemetry:
    assert q.aggregation is not None
    size = q.aggregation.bucket_size_millis
    buckets = aggregate(points.timestamps, points.values, size, q.aggregation.method)
    starts, values = buckets.starts, buckets.values
    partial = points.truncated
    if partial:
        # The cap cut the points inside the bucket at the cut's side: drop that
        # bucket so every value served is of a whole window; a continuation
        # query from the last start re-reads it whole.
        keep = slice(1, None) if q.latest_first else slice(None, -1)
        starts, values = starts[keep], values[keep]
        if len(starts) == 0:
            raise RemoteMirrorError(
                "Bucket too large",
                f"one bucket of {size} ms holds more points than this mirror computes per "
                "request (max_points); ask for smaller buckets or raise the cap",
            )
    if len(starts) > cap:
        keep = slice(len(starts) - cap, None) if q.latest_first else slice(0, cap)
        starts, values, partial = starts[keep], values[keep], True
    step = -1 if q.latest_first else 1
    return AggregatedMetricTelemetry(
        values[::step], starts[::step], starts[::step] + size, is_partial=partial
    )
