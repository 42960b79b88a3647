"""PollCache: answers identical to the store's, the store asked only for what is new.

The store here is a deterministic fake with one point every 15 s whose value is a
function of time, plus a ``revision`` that changes every *recent* point (newer
than the fake clock minus a lag): exactly what a live store does, and what a cache
that kept unsettled points would get wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror_kit.protocol import (
    AggregationMethod,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldValueOption,
    FieldValuesQuery,
    InSetValue,
    MetricNotFoundError,
    MetricsQuery,
    StringValue,
)
from mirror_kit.sources import ConnectionDetails, Points, PointWindow, TelemetrySource, WindowSpan
from mirror_kit.sources.cache import PollCache, series_key

STEP = 15_000
T0 = 1_767_225_600_000
MINUTE = 60_000


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000


class LiveStore(TelemetrySource):
    """Points every 15 s up to "now"; points newer than ``lag_ms`` still change."""

    def __init__(self, clock: Clock, lag_ms: int = 60_000) -> None:
        self.clock, self.lag_ms = clock, lag_ms
        self.asked: list[tuple[int, int, int]] = []
        self.asked_windows: list[tuple[int, int]] = []
        self.leave_to_service = False
        self.revision = 0
        self.fail = False

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        return None

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldDescriptor]:
        return [FieldDescriptor("host")]

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldValueOption]:
        return []

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        self.asked.append((window.start, window.end, window.max_points))
        if self.fail:
            raise MetricNotFoundError("x", "gone")
        end = min(window.end, self.clock.now_ms + 1)
        first = -(-window.start // STEP) * STEP
        t = np.arange(first, max(first, end), STEP, dtype=np.int64)
        seed = sum(len(str(c)) for c in query.conditions)
        v = np.sin(t / 1e7) * 100 + seed
        recent = t > self.clock.now_ms - self.lag_ms
        v = np.where(recent, v + self.revision, v)
        truncated = len(t) > window.max_points
        return Points(t[: window.max_points], v[: window.max_points], truncated)

    async def windows(
        self, query: MetricsQuery, span: WindowSpan, connection_details: ConnectionDetails
    ) -> Points | None:
        """The mean of each window with points (as a store aggregating itself would)."""
        self.asked_windows.append((span.first, span.end))
        if self.fail:
            raise MetricNotFoundError("x", "gone")
        if self.leave_to_service:
            return None
        points = await self.points(query, PointWindow(span.first, span.end, 10**9), {})
        self.asked.pop()
        ids = (points.timestamps - span.first) // span.size
        starts = span.first + span.size * np.unique(ids)
        means = [points.values[ids == i].mean() for i in np.unique(ids)]
        return Points(starts, np.asarray(means, dtype=np.float64))


def query(host: str = "a-host") -> MetricsQuery:
    return MetricsQuery(T0, T0, (EqualityCondition("host", StringValue(host)),))


def same(a: Points, b: Points) -> bool:
    return (
        np.array_equal(a.timestamps, b.timestamps)
        and np.array_equal(a.values, b.values)
        and a.truncated == b.truncated
    )


async def test_sliding_polls_ask_the_store_only_for_the_newest_part() -> None:
    clock = Clock(T0 + 60 * MINUTE)
    store, reference = LiveStore(clock), LiveStore(clock)
    cache = PollCache(store, settle_ms=2 * MINUTE, clock=clock)
    for poll in range(10):
        now = clock.now_ms
        window = PointWindow(now - 60 * MINUTE, now, 10_000)
        store.revision = reference.revision = poll  # recent points change every poll
        got = await cache.points(query(), window, {})
        assert same(got, await reference.points(query(), window, {}))
        clock.now_ms += MINUTE
    assert cache.stats.misses == 1 and cache.stats.partial_hits == 9
    # after the first poll, each asks only from the settled edge (2 minutes back) on
    tails = [end - start for start, end, _ in store.asked[1:]]
    assert all(span <= 3 * MINUTE for span in tails), tails


async def test_a_settled_window_is_answered_without_asking_the_store() -> None:
    clock = Clock(T0 + 10 * 60 * MINUTE)
    store = LiveStore(clock)
    cache = PollCache(store, settle_ms=2 * MINUTE, clock=clock)
    window = PointWindow(T0, T0 + 60 * MINUTE, 10_000)  # hours in the past
    first = await cache.points(query(), window, {})
    for _ in range(5):
        assert same(await cache.points(query(), window, {}), first)
    assert len(store.asked) == 1 and cache.stats.hits == 5


async def test_series_are_kept_apart() -> None:
    clock = Clock(T0 + 10 * 60 * MINUTE)
    store = LiveStore(clock)
    cache = PollCache(store, clock=clock)
    window = PointWindow(T0, T0 + 60 * MINUTE, 10_000)
    a = await cache.points(query("a"), window, {})
    b = await cache.points(query("bb"), window, {})
    c = await cache.points(query("a"), window, {"source": "other"})
    assert not np.array_equal(a.values, b.values)
    assert len(store.asked) == 3 and same(await cache.points(query("a"), window, {}), a)
    assert same(c, a)  # same data, but asked of the store: other details, other series


async def test_memory_stays_within_the_budget_in_bytes() -> None:
    clock = Clock(T0 + 100 * 60 * MINUTE)
    store = LiveStore(clock)
    cache = PollCache(store, budget_bytes=200_000, clock=clock)
    window = PointWindow(T0, T0 + 60 * MINUTE, 10_000)  # 240 points: 4,240 bytes
    for i in range(200):
        await cache.points(query(f"host-{i}"), window, {})
        assert cache.nbytes <= 200_000
    assert cache.stats.evictions > 100
    huge = MetricsQuery(
        T0,
        T0,
        (EqualityCondition("host", InSetValue(frozenset(f"h{i:06d}" for i in range(50_000)))),),
    )
    assert len(series_key(huge, {})) == 16  # a huge condition set is a 16-byte key


async def test_failures_and_cut_fetches_are_not_kept() -> None:
    clock = Clock(T0 + 10 * 60 * MINUTE)
    store = LiveStore(clock)
    cache = PollCache(store, clock=clock)
    window = PointWindow(T0, T0 + 60 * MINUTE, 100)  # 240 points in the window: cut
    cut = await cache.points(query(), window, {})
    assert cut.truncated and len(cut) == 100 and cache.nbytes == 0
    store.fail = True
    with pytest.raises(MetricNotFoundError):
        await cache.points(query(), PointWindow(T0, T0 + MINUTE, 10), {})
    assert cache.nbytes == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # minutes the clock moves before the query
            st.integers(0, 90),  # window start, minutes before now
            st.integers(0, 90),  # window length, minutes
            st.integers(1, 400),  # max_points
            st.integers(0, 3),  # revision of recent points
        ),
        min_size=1,
        max_size=12,
    )
)
async def test_any_sequence_of_queries_gets_the_stores_own_answers(
    steps: list[tuple[int, int, int, int, int]],
) -> None:
    clock = Clock(T0 + 200 * MINUTE)
    store, reference = LiveStore(clock), LiveStore(clock)
    cache = PollCache(store, budget_bytes=20_000, settle_ms=2 * MINUTE, clock=clock)
    for move, back, length, max_points, revision in steps:
        clock.now_ms += move * MINUTE + 7_000
        store.revision = reference.revision = revision
        start = clock.now_ms - back * MINUTE
        window = PointWindow(start, start + length * MINUTE, max_points)
        got = await cache.points(query(), window, {})
        want = await reference.points(query(), window, {})
        assert same(got, want), (window, got.truncated, want.truncated)
        assert cache.nbytes <= 20_000


@pytest.mark.parametrize("max_points", [239, 240, 241])
@pytest.mark.parametrize("length_min", [60, 90])
async def test_the_cut_is_the_stores_cut_at_the_cached_edge(
    max_points: int, length_min: int
) -> None:
    """The cached run holds exactly 240 points; windows cut one before, at, one after."""
    clock = Clock(T0 + 62 * MINUTE)
    store, reference = LiveStore(clock), LiveStore(clock)
    cache = PollCache(store, settle_ms=2 * MINUTE, clock=clock)
    await cache.points(query(), PointWindow(T0, T0 + 60 * MINUTE, 10_000), {})
    clock.now_ms += 60 * MINUTE
    window = PointWindow(T0, T0 + length_min * MINUTE, max_points)
    got = await cache.points(query(), window, {})
    assert same(got, await reference.points(query(), window, {}))


def span(end: int, minutes: int = 60, size: int = MINUTE) -> WindowSpan:
    """The whole windows of the ``minutes`` before ``end`` (as the service asks them)."""
    last = end // size * size
    return WindowSpan(last - minutes * MINUTE, minutes * MINUTE // size, size,
                      AggregationMethod.MEAN)  # fmt: skip


async def test_sliding_polls_of_windows_ask_the_store_only_for_new_windows() -> None:
    clock = Clock(T0 + 60 * MINUTE + 7_000)
    store, reference = LiveStore(clock), LiveStore(clock)
    cache = PollCache(store, settle_ms=2 * MINUTE, clock=clock)
    for poll in range(10):
        store.revision = reference.revision = poll  # recent windows change every poll
        asked = span(clock.now_ms)
        got = await cache.windows(query(), asked, {})
        want = await reference.windows(query(), asked, {})
        assert got is not None and want is not None and same(got, want)
        clock.now_ms += MINUTE
    assert cache.stats.misses == 1 and cache.stats.partial_hits == 9
    # later polls ask from the settled edge on, whole windows only
    tails = store.asked_windows[1:]
    assert all(end - start <= 3 * MINUTE and start % MINUTE == 0 for start, end in tails), tails


async def test_windows_and_points_and_methods_are_kept_apart() -> None:
    clock = Clock(T0 + 10 * 60 * MINUTE)
    store = LiveStore(clock)
    cache = PollCache(store, clock=clock)
    mean = span(T0 + 60 * MINUTE)
    maxed = WindowSpan(mean.first, mean.count, mean.size, AggregationMethod.MAX)
    five = span(T0 + 60 * MINUTE, size=5 * MINUTE)
    for asked in (mean, maxed, five, mean):
        await cache.windows(query(), asked, {})
    await cache.points(query(), PointWindow(mean.first, mean.end, 10_000), {})
    assert len(store.asked_windows) == 3 and len(store.asked) == 1
    assert cache.stats.hits == 1


async def test_windows_left_to_the_service_are_left_to_it() -> None:
    clock = Clock(T0 + 10 * 60 * MINUTE)
    store = LiveStore(clock)
    store.leave_to_service = True
    cache = PollCache(store, clock=clock)
    assert await cache.windows(query(), span(T0 + 60 * MINUTE), {}) is None
    assert cache.nbytes == 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # minutes the clock moves before the query
            st.integers(0, 90),  # window end, minutes before now
            st.integers(1, 90),  # windows
            st.sampled_from([MINUTE, 5 * MINUTE]),
            st.integers(0, 3),  # revision of recent points
        ),
        min_size=1,
        max_size=12,
    )
)
async def test_any_sequence_of_window_queries_gets_the_stores_own_answers(
    steps: list[tuple[int, int, int, int, int]],
) -> None:
    clock = Clock(T0 + 200 * MINUTE)
    store, reference = LiveStore(clock), LiveStore(clock)
    cache = PollCache(store, budget_bytes=20_000, settle_ms=2 * MINUTE, clock=clock)
    for move, back, count, size, revision in steps:
        clock.now_ms += move * MINUTE + 7_000
        store.revision = reference.revision = revision
        end = (clock.now_ms - back * MINUTE) // size * size
        asked = WindowSpan(end - count * size, count, size, AggregationMethod.MEAN)
        got = await cache.windows(query(), asked, {})
        want = await reference.windows(query(), asked, {})
        assert got is not None and want is not None and same(got, want), asked
        assert cache.nbytes <= 20_000
