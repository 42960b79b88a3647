"""A poll cache in front of a slow store: settled points are fetched once.

StackState re-asks a live stream every minute with a window sliding to "now", and
several streams and monitors often show the same series: each poll asks again for
an hour of points the mirror fetched a minute before. ``PollCache`` wraps any
TelemetrySource and keeps, per series, one contiguous run of the points it has
already fetched, ``[lo, hi)``. A query inside that run is answered from memory; a
query that runs past ``hi`` fetches only ``[hi, end)``; anything else is fetched
whole and replaces the run.

Only *settled* points are kept: those older than ``settle_ms`` before the
mirror's clock. A store may still add or change recent points (a late scrape, an
ingestion delay), so the newest ``settle_ms`` are always asked again, and a cached
answer is the answer the store would give. With the whole-window edge policy
(service.EdgeBuckets) aggregated queries ask bucket-aligned windows, so every poll
of a series within the same bucket asks the same window and, once settled, the
store is asked nothing at all.

Aggregated windows a store computes itself (``TelemetrySource.windows``,
Prometheus' ``*_over_time``) are kept the same way, one run per series, method and
window size, one point per window at its start; a window is settled once its end
is, so a run always ends on a window edge and a poll asks only for new windows.

Memory is bounded in bytes: 16 bytes a point plus the key, across all series,
least recently used first out; a run longer than ``max_run_points`` keeps its
newest points. The series key is a digest of what selects the series (connection
details, conditions, metric field), so a huge condition set costs no memory here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..protocol import (
    FieldDescriptor,
    FieldNamesQuery,
    FieldValueOption,
    FieldValuesQuery,
    MetricsQuery,
)
from ..telemetry import cache_eviction, cache_lookup
from .base import ConnectionDetails, Points, PointWindow, TelemetrySource, WindowSpan

#: bytes a cached point costs (int64 timestamp + float64 value)
POINT_BYTES = 16
#: bytes a cached run costs beyond its points (key, arrays, bookkeeping)
RUN_OVERHEAD_BYTES = 400


@dataclass
class _Run:
    """Settled points of one series, covering ``[lo, hi)`` (all of it, none missing)."""

    lo: int
    hi: int
    timestamps: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return POINT_BYTES * len(self.timestamps) + RUN_OVERHEAD_BYTES

    def inside(self, start: int, end: int) -> Points:
        a, b = np.searchsorted(self.timestamps, (start, end))
        return Points(self.timestamps[a:b], self.values[a:b])


@dataclass
class CacheStats:
    """What the cache did: hits answered from memory alone, partial hits that asked
    the store only for the newest part, misses that asked for the whole window."""

    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    evictions: int = 0


class PollCache(TelemetrySource):
    """``inner`` with settled points remembered (module docstring). Field names and
    values are passed through: they are small and StackState asks them rarely."""

    def __init__(
        self,
        inner: TelemetrySource,
        *,
        budget_bytes: int = 64 << 20,
        settle_ms: int = 120_000,
        max_run_points: int = 1_000_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if budget_bytes < RUN_OVERHEAD_BYTES or settle_ms < 0 or max_run_points < 1:
            raise ValueError("budget_bytes, settle_ms and max_run_points must be positive")
        self.inner = inner
        self.budget_bytes = budget_bytes
        self.settle_ms = settle_ms
        self.max_run_points = max_run_points
        self.clock = clock
        self.stats = CacheStats()
        self._runs: OrderedDict[bytes, _Run] = OrderedDict()
        self._bytes = 0

    @property
    def url(self) -> str | None:
        """The wrapped store's URL, if it has one (routing selects stores by URL)."""
        url = getattr(self.inner, "url", None)
        return url if isinstance(url, str) else None

    def __repr__(self) -> str:
        return f"PollCache({self.inner!r}, budget_bytes={self.budget_bytes})"

    @property
    def nbytes(self) -> int:
        """Bytes the cached runs hold now (never above ``budget_bytes``)."""
        return self._bytes

    async def aclose(self) -> None:
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        await self.inner.test_connection(connection_details)

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldDescriptor]:
        return await self.inner.field_names(query, connection_details)

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldValueOption]:
        return await self.inner.field_values(query, connection_details)

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        if window.newest_first or window.end <= window.start:
            return await self.inner.points(query, window, connection_details)

        def fetch(part: PointWindow) -> Awaitable[Points]:
            return self.inner.points(query, part, connection_details)

        return await self._cached(series_key(query, connection_details), window, fetch, 1)

    async def windows(
        self, query: MetricsQuery, span: WindowSpan, connection_details: ConnectionDetails
    ) -> Points | None:
        """Aggregated windows the store computes, kept like points: one point per window
        at its start, a window settled once its end is (so runs end on window edges)."""
        if span.count < 1:
            return await self.inner.windows(query, span, connection_details)

        async def fetch(part: PointWindow) -> Points:
            count = (part.end - part.start) // span.size
            asked = WindowSpan(part.start, count, span.size, span.method)
            got = await self.inner.windows(query, asked, connection_details)
            if got is None:
                raise _LeftToService
            return got

        key = series_key(query, connection_details, f"{span.method.value}/{span.size}")
        try:
            return await self._cached(key, PointWindow(span.first, span.end, span.count), fetch,
                                      span.size)  # fmt: skip
        except _LeftToService:
            return None

    async def _cached(
        self,
        key: bytes,
        window: PointWindow,
        fetch: Callable[[PointWindow], Awaitable[Points]],
        grain: int,
    ) -> Points:
        """``window`` from the run under ``key`` and ``fetch`` for the rest; runs end on
        multiples of ``grain`` after their start."""
        run = self._runs.get(key)
        if run is not None and run.lo <= window.start <= run.hi:
            self._runs.move_to_end(key)
            return await self._extend(key, run, window, fetch, grain)
        self.stats.misses += 1
        cache_lookup("miss")
        fetched = await fetch(window)
        if not fetched.truncated:
            self._keep(key, self._settled_run(window.start, window.end, fetched, grain))
        return fetched

    async def _extend(
        self,
        key: bytes,
        run: _Run,
        window: PointWindow,
        fetch: Callable[[PointWindow], Awaitable[Points]],
        grain: int,
    ) -> Points:
        """Answer from ``run``, asking the store only for what lies past ``run.hi``."""
        cached = run.inside(window.start, window.end)
        if window.end <= run.hi or len(cached) > window.max_points:
            self.stats.hits += 1
            cache_lookup("hit")
            return _cut(cached, window.max_points)
        self.stats.partial_hits += 1
        cache_lookup("partial_hit")
        budget = max(1, window.max_points - len(cached))
        tail = await fetch(PointWindow(run.hi, window.end, budget))
        if not tail.truncated:
            grown = self._settled_run(run.hi, window.end, tail, grain)
            if grown.hi > run.hi:
                self._keep(key, _joined(run, grown, self.max_run_points))
        joined = Points(
            np.concatenate((cached.timestamps, tail.timestamps)),
            np.concatenate((cached.values, tail.values)),
            tail.truncated,
        )
        return _cut(joined, window.max_points)

    def _settled_run(self, start: int, end: int, points: Points, grain: int) -> _Run:
        """The part of a complete fetch of ``[start, end)`` the store will not change,
        ending on a multiple of ``grain`` after ``start``."""
        hi = max(start, min(end, int(self.clock() * 1000) - self.settle_ms))
        hi = start + (hi - start) // grain * grain
        n = int(np.searchsorted(points.timestamps, hi))
        return _Run(start, hi, points.timestamps[:n].copy(), points.values[:n].copy())

    def _keep(self, key: bytes, run: _Run) -> None:
        """Store ``run`` under ``key``, evicting the least recently used past the budget."""
        old = self._runs.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        if run.hi <= run.lo or run.nbytes > self.budget_bytes // 4:
            return  # nothing settled yet, or too big to be worth a quarter of the budget
        self._runs[key] = run
        self._bytes += run.nbytes
        while self._bytes > self.budget_bytes:
            _, evicted = self._runs.popitem(last=False)
            self._bytes -= evicted.nbytes
            self.stats.evictions += 1
            cache_eviction()


class _LeftToService(Exception):
    """The store did not compute the windows: the service aggregates raw points."""


def series_key(
    query: MetricsQuery, connection_details: ConnectionDetails, aggregation: str = ""
) -> bytes:
    """A digest of what selects a series and its values: details, conditions, field
    (and, for windows, the method and size)."""
    conditions = sorted((c.key, type(c.value).__name__, repr(c.value)) for c in query.conditions)
    canonical = json.dumps(
        [connection_details, conditions, query.metric_field, aggregation],
        sort_keys=True,
        default=repr,
        separators=(",", ":"),
    )
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _cut(points: Points, max_points: int) -> Points:
    """The first ``max_points`` points, truncated when there were more (as a store cuts)."""
    if len(points) > max_points:
        return Points(points.timestamps[:max_points], points.values[:max_points], True)
    return points


def _joined(run: _Run, grown: _Run, max_points: int) -> _Run:
    """``run`` then ``grown`` (which starts at ``run.hi``), keeping the newest points."""
    timestamps = np.concatenate((run.timestamps, grown.timestamps))
    values = np.concatenate((run.values, grown.values))
    lo = run.lo
    if len(timestamps) > max_points:
        timestamps, values = timestamps[-max_points:], values[-max_points:]
        lo = int(timestamps[0])
    return _Run(lo, grown.hi, timestamps, values)
