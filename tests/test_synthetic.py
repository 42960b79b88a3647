"""The synthetic source: deterministic, on its grid, and safely changeable while serving.

StackState re-asks overlapping windows all the time (zooming, continuation after
``isPartial``, several streams of one component); they only line up if every
window is a slice of one fixed series. The notebook's widgets change shapes from
another thread while StackState is asking; no answer may mix old and new shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import DAY, HOUR, T0
from hypothesis import given, settings
from hypothesis import strategies as st
from mirror_wire import METRIC, metrics_body, raw_arrays

from mirror_kit import RunningMirror, SeriesShape, SyntheticSource, Wave, start_mirror
from mirror_kit.client import build_conditions
from mirror_kit.protocol import MetricsQuery
from mirror_kit.sources import PointWindow

A_CPU = {"host": "a-host", "metric": "cpu.user"}


def fetch(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = http.post(METRIC, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def http(mirror: RunningMirror) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mirror.url, timeout=10) as client:
        yield client


# --- the grid ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    resolution=st.integers(1, 100_000),
    start=st.integers(-(10**13), 10**13),
    length=st.integers(-5_000, 2_000_000),
    cap=st.integers(0, 300),
    newest_first=st.booleans(),
)
def test_grid_points_are_on_grid_and_in_window(
    resolution: int, start: int, length: int, cap: int, newest_first: bool
) -> None:
    shape = SeriesShape(resolution_ms=resolution)
    stamps, cut = shape.grid(PointWindow(start, start + length, cap, newest_first))
    on_grid = range(start + (-start % resolution), start + length, resolution)
    kept = on_grid[max(0, len(on_grid) - cap) :] if newest_first else on_grid[:cap]
    assert stamps.tolist() == list(kept)
    assert cut == (len(on_grid) > cap)
    assert np.all(np.diff(stamps) == resolution)


def test_same_query_same_answer_and_on_grid(http: httpx.Client) -> None:
    start, end = T0 + 1_234, T0 + HOUR + 5_678
    first = fetch(http, metrics_body(start, end, A_CPU))
    assert fetch(http, metrics_body(start, end, A_CPU)) == first
    stamps, _ = raw_arrays(first)
    assert len(stamps) == 360
    assert np.all(stamps % 10_000 == 0)
    assert stamps[0] >= start and stamps[-1] < end


def test_sub_window_is_slice_of_wider_window(http: httpx.Client) -> None:
    wide_t, wide_v = raw_arrays(fetch(http, metrics_body(T0 - DAY, T0 + DAY, A_CPU)))
    for start, end in [(T0, T0 + HOUR), (T0 - 7_777, T0 + 3_333), (T0 + DAY - 10_000, T0 + DAY)]:
        t, v = raw_arrays(fetch(http, metrics_body(start, end, A_CPU)))
        inside = (wide_t >= start) & (wide_t < end)
        assert t.tolist() == wide_t[inside].tolist()
        assert v.tolist() == wide_v[inside].tolist()


def test_another_source_instance_serves_the_same_values() -> None:
    """Values are a pure function of shape and time: a second process would agree."""
    one, two = SyntheticSource(), SyntheticSource()
    stamps = np.arange(T0, T0 + HOUR, 10_000, dtype=np.int64)
    for series in one.catalog.series:
        assert np.array_equal(
            one.shape(series.labels).values_at(stamps), two.shape(series.labels).values_at(stamps)
        )


def test_series_differ_from_each_other() -> None:
    source = SyntheticSource()
    stamps = np.arange(T0, T0 + HOUR, 10_000, dtype=np.int64)
    cpu = [source.shape({**A_CPU, "host": h}).values_at(stamps) for h in ("a-host", "b-host")]
    assert not np.array_equal(cpu[0], cpu[1])


@pytest.mark.parametrize("wave", list(Wave))
def test_waves_stay_within_their_bounds(wave: Wave) -> None:
    shape = SeriesShape(wave=wave, baseline=10, amplitude=3, noise=0, period_ms=60_000)
    values = shape.values_at(np.arange(0, 600_000, 1_000, dtype=np.int64))
    assert values.min() >= 7 - 1e-9 and values.max() <= 13 + 1e-9
    if wave is Wave.FLAT:
        assert np.all(values == 10)
    else:
        assert values.max() - values.min() > 5


def test_noise_has_unit_scale_and_spikes_their_rate() -> None:
    stamps = np.arange(0, 200_000 * 1_000, 1_000, dtype=np.int64)
    noisy = SeriesShape(wave=Wave.FLAT, baseline=0, noise=2.0).values_at(stamps)
    assert abs(noisy.mean()) < 0.05 and abs(noisy.std() - 2.0) < 0.05
    spiky = SeriesShape(wave=Wave.FLAT, baseline=0, noise=0, spike_rate=0.1, spike_height=5)
    rate = float(np.mean(spiky.values_at(stamps) == 5))
    assert abs(rate - 0.1) < 0.01


def test_clipping_and_trend() -> None:
    clipped = SeriesShape(baseline=50, amplitude=100, noise=0, minimum=0, maximum=100)
    values = clipped.values_at(np.arange(0, 3_600_000, 10_000, dtype=np.int64))
    assert values.min() == 0 and values.max() == 100
    rising = SeriesShape(wave=Wave.FLAT, baseline=0, noise=0, trend_per_day=24)
    a, b, c = rising.values_at(np.array([T0, T0 + DAY, T0 + 3 * DAY], dtype=np.int64))
    assert (b - a, c - a) == pytest.approx((24.0, 72.0))


# --- set_shape ---------------------------------------------------------------------------


def test_set_shape_changes_what_is_served(http: httpx.Client, mirror: RunningMirror) -> None:
    source = mirror.source
    assert isinstance(source, SyntheticSource)
    before = fetch(http, metrics_body(T0, T0 + HOUR, A_CPU))
    other_before = fetch(http, metrics_body(T0, T0 + HOUR, {**A_CPU, "host": "b-host"}))
    changed = source.set_shape(A_CPU, wave="flat", baseline=42.0, noise=0.0, resolution_ms=60_000)
    assert changed == 1
    t, v = raw_arrays(fetch(http, metrics_body(T0, T0 + HOUR, A_CPU)))
    assert len(t) == 60 and np.all(t % 60_000 == 0) and np.all(v == 42.0)
    assert fetch(http, metrics_body(T0, T0 + HOUR, A_CPU)) != before
    assert fetch(http, metrics_body(T0, T0 + HOUR, {**A_CPU, "host": "b-host"})) == other_before


def test_set_shape_on_several_series() -> None:
    source = SyntheticSource()
    assert source.set_shape({"metric": "cpu.user"}, noise=0.0) == 3
    assert all(
        source.shape({**A_CPU, "host": h}).noise == 0 for h in ("a-host", "b-host", "c-host")
    )
    assert source.shape({"host": "a-host", "metric": "cpu.system"}).noise == 1.5
    with pytest.raises(KeyError):
        source.set_shape({"host": "z-host"}, noise=0.0)


BAD_CHANGES: list[dict[str, Any]] = [
    {"resolution_ms": 0},
    {"period_ms": -5},
    {"noise": -1.0},
    {"spike_rate": 1.5},
    {"wave": "zigzag"},
    {"no_such_parameter": 1},
    {"noise": "loud"},
    {"baseline": float("nan")},
    {"amplitude": float("inf")},
    {"minimum": 10.0, "maximum": 5.0},
]


@pytest.mark.parametrize(
    "changes", BAD_CHANGES, ids=[",".join(f"{k}={v}" for k, v in c.items()) for c in BAD_CHANGES]
)
def test_set_shape_rejects_bad_values_and_changes_nothing(changes: dict[str, Any]) -> None:
    """ValueError is what the notebook's widgets catch; no series may be half-changed."""
    source = SyntheticSource()
    before = {s.key: source.shape(s.labels) for s in source.catalog.series}
    with pytest.raises(ValueError):
        source.set_shape({"metric": "cpu.user"}, phase_ms=123, **changes)
    assert {s.key: source.shape(s.labels) for s in source.catalog.series} == before


PAIRS = {float(k): 10_000 * (k + 1) for k in range(4)}


def check_whole(t: np.ndarray, v: np.ndarray) -> float:
    """The baseline of an answer whose values and grid must come from one shape."""
    assert len(set(v.tolist())) == 1, "values of two shapes in one answer"
    baseline = float(v[0])
    assert np.all(np.diff(t) == PAIRS[baseline]), "grid of one shape, values of another"
    return baseline


@contextlib.contextmanager
def busy_writers(source: SyntheticSource, count: int = 3) -> Iterator[None]:
    """Threads swapping (baseline, resolution) pairs of a flat series until the block ends.

    Thread switches are made very frequent meanwhile, so a window between reading
    one parameter and another is actually hit.
    """
    source.set_shape(A_CPU, wave="flat", noise=0.0, minimum=None, maximum=None)
    stop = threading.Event()

    def writer(offset: int) -> None:
        for i in range(1_000_000):  # bounded; normally ended by ``stop`` far sooner
            if stop.is_set():
                return
            baseline = float((i + offset) % len(PAIRS))
            source.set_shape(A_CPU, baseline=baseline, resolution_ms=PAIRS[baseline])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(count)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        sys.setswitchinterval(interval)


def test_concurrent_set_shape_never_gives_a_torn_answer_over_http() -> None:
    source = SyntheticSource()
    seen: set[float] = set()
    with (
        start_mirror(source, port=0) as running,
        httpx.Client(base_url=running.url) as client,
        busy_writers(source),
    ):
        for _ in range(40):
            t, v = raw_arrays(fetch(client, metrics_body(T0, T0 + HOUR, A_CPU)))
            seen.add(check_whole(t, v))
    assert seen <= set(PAIRS)
    assert len(seen) >= 2, "the writers never overlapped the requests"


def test_concurrent_set_shape_never_gives_a_torn_points_answer() -> None:
    """Many direct reads of the source while shapes change: each is of one shape."""
    source = SyntheticSource()
    query = MetricsQuery(T0, T0 + 10 * 60_000, tuple(build_conditions(A_CPU, {})))
    window = PointWindow(query.start_time, query.end_time, 1_000)
    loop = asyncio.new_event_loop()
    seen: set[float] = set()
    try:
        with busy_writers(source):
            for _ in range(3_000):
                points = loop.run_until_complete(source.points(query, window, {}))
                seen.add(check_whole(points.timestamps, points.values))
    finally:
        loop.close()
    assert len(seen) >= 2, "the writers never overlapped the reads"


@pytest.mark.parametrize("wave", list(Wave))
@pytest.mark.parametrize(("period_ms", "resolution_ms"), [(3_600_000, 10_000), (60_000, 7_000)])
def test_a_grid_gives_the_same_values_as_any_timestamps(
    wave: Wave, period_ms: int, resolution_ms: int
) -> None:
    """With ``step`` the wave is computed over one period and repeated: bit for bit the
    values computed point by point (7 s does not divide 60 s: no repeat there)."""
    shape = SeriesShape(
        wave=wave, period_ms=period_ms, phase_ms=1_234, resolution_ms=resolution_ms, noise=2.0
    )
    stamps, _ = shape.grid(PointWindow(T0 - 3 * DAY, T0, 1_000_000, False))
    assert len(stamps) > period_ms // resolution_ms
    on_grid = shape.values_at(stamps, resolution_ms)
    assert on_grid.tobytes() == shape.values_at(stamps).tobytes()
    one_by_one = [shape.values_at(stamps[i : i + 1])[0] for i in range(0, len(stamps), 997)]
    assert on_grid[::997].tolist() == one_by_one


# --- the memo ----------------------------------------------------------------------------


def unmemoised(source: SyntheticSource, labels: dict[str, Any], window: PointWindow) -> bytes:
    """What the source serves for ``window`` computed without its memo, as bytes."""
    shape = source.shape(labels)
    stamps, _ = shape.grid(window)
    return stamps.tobytes() + shape.values_at(stamps, shape.resolution_ms).tobytes()


def served(source: SyntheticSource, labels: dict[str, Any], window: PointWindow) -> bytes:
    series = next(
        s for s in source.catalog.series if all(s.labels[k] == v for k, v in labels.items())
    )
    points = source.series_points(series, window)
    assert points.values.flags.writeable, "a caller may change what it was given"
    return points.timestamps.tobytes() + points.values.tobytes()


@settings(max_examples=120, deadline=None)
@given(
    start=st.integers(T0 - 40 * DAY, T0 + DAY),
    length=st.integers(0, 31 * DAY),
    cap=st.integers(0, 400_000),
    newest_first=st.booleans(),
    resolution=st.sampled_from([1_000, 7_000, 10_000, 60_000]),
    wave=st.sampled_from(list(Wave)),
)
def test_memoised_values_are_byte_identical_to_generated_ones(
    start: int, length: int, cap: int, newest_first: bool, resolution: int, wave: Wave
) -> None:
    """Any window, asked twice (the second from the memo) and around chunk edges, gets
    exactly the bytes ``values_at`` computes, for every kind of shape."""
    source = SyntheticSource(memo_bytes=4 << 20)
    source.set_shape(
        A_CPU,
        wave=wave,
        resolution_ms=resolution,
        trend_per_day=3.5,
        spike_rate=0.02,
        spike_height=40,
    )
    window = PointWindow(start, start + length, cap, newest_first)
    expected = unmemoised(source, A_CPU, window)
    assert served(source, A_CPU, window) == expected
    assert served(source, A_CPU, window) == expected  # now from the memo


def test_memo_follows_set_shape_and_serves_the_new_shape_exactly() -> None:
    source = SyntheticSource()
    window = PointWindow(T0 - 30 * DAY, T0, 10**7, False)
    before = served(source, A_CPU, window)
    held = source.memo.nbytes
    assert held >= 8 * 259_200, "the 30 days were not memoised"
    source.set_shape(A_CPU, amplitude=30, noise=0.5)
    after = served(source, A_CPU, window)
    assert after != before
    assert after == unmemoised(source, A_CPU, window)
    source.set_shape(A_CPU, amplitude=15, noise=3)  # back to the default shape
    assert served(source, A_CPU, window) == before


def test_memo_stays_within_its_byte_budget() -> None:
    budget = 1 << 20
    source = SyntheticSource(memo_bytes=budget)
    for series in source.catalog.series:
        source.series_points(series, PointWindow(T0 - 30 * DAY, T0, 10**7, False))
    assert 0 < source.memo.nbytes <= budget
    assert source.memo.nbytes > budget - source.memo.chunk_bytes  # full, not leaking


def test_memo_off_and_far_timestamps_still_serve_exact_values() -> None:
    off = SyntheticSource(memo_bytes=0)
    window = PointWindow(T0 - DAY, T0, 10**6, False)
    assert served(off, A_CPU, window) == unmemoised(off, A_CPU, window)
    assert off.memo.nbytes == 0
    far = SyntheticSource()
    end = (1 << 63) - 1  # the newest chunk would run past int64: computed directly
    window = PointWindow(end - HOUR, end, 10**6, False)
    assert served(far, A_CPU, window) == unmemoised(far, A_CPU, window)


def test_negative_zero_parameters_are_the_same_shape() -> None:
    """-0.0 == 0.0 (one memo key), so they must give the same values too."""
    stamps = np.arange(T0, T0 + HOUR, 10_000, dtype=np.int64)
    negative = SeriesShape(wave=Wave.FLAT, baseline=-0.0, amplitude=-0.0, noise=0)
    assert negative == SeriesShape(wave=Wave.FLAT, baseline=0.0, amplitude=0.0, noise=0)
    assert negative.values_at(stamps).tobytes() == np.zeros(len(stamps)).tobytes()
