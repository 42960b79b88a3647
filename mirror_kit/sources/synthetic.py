"""Deterministic synthetic telemetry: the default source of the kit.

Every value is a pure function of a series' ``SeriesShape`` and the timestamp, so
the same query always gives the same answer, overlapping windows agree point for
point, and several processes serving the same catalog agree too. Points sit on an
epoch-aligned grid of ``resolution_ms`` (a timestamp ``t`` has a point iff
``t % resolution_ms == 0``), as a store scraping at a fixed interval would.

Noise and spikes come from a counter-based hash (splitmix64) of ``(seed, t)``, not
from a random generator with state: that is what makes any sub-window reproducible
without computing what came before it.

Because values are a pure function of (shape, t), a ``SyntheticSource`` memoises
them (``ValueMemo``): generating 259,200 points was most of a 30-day aggregated
query's time, and StackState asks the same days again at every poll.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from ..protocol import FieldScalar
from .base import Points, PointWindow
from .catalog import CatalogSource, LabeledSeries, SeriesCatalog

DAY_MS = 86_400_000
#: Trends are measured from this instant (2026-01-01T00:00:00Z) so values stay near
#: their baseline in the years people query, whatever the epoch.
TREND_ORIGIN_MS = 1_767_225_600_000


class Wave(str, Enum):
    SINE = "sine"
    SQUARE = "square"
    SAWTOOTH = "sawtooth"
    TRIANGLE = "triangle"
    FLAT = "flat"


@dataclass(frozen=True)
class SeriesShape:
    """The parameters of one synthetic series. Immutable: change it with ``replace``."""

    wave: Wave = Wave.SINE
    baseline: float = 50.0
    amplitude: float = 10.0
    period_ms: int = 3_600_000
    phase_ms: int = 0
    noise: float = 1.0
    trend_per_day: float = 0.0
    spike_rate: float = 0.0
    spike_height: float = 0.0
    seed: int = 0
    resolution_ms: int = 10_000
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "wave", Wave(self.wave))
            for name in _FLOATS:
                object.__setattr__(self, name, _finite(name, getattr(self, name)))
            for name in _OPTIONAL_FLOATS:
                value = getattr(self, name)
                if value is not None:
                    object.__setattr__(self, name, _finite(name, value))
            for name in _INTS:
                object.__setattr__(self, name, _whole(name, getattr(self, name)))
        except (TypeError, ValueError) as error:
            raise ValueError(f"invalid series shape: {error}") from None
        if self.resolution_ms < 1 or self.period_ms < 1:
            raise ValueError("resolution_ms and period_ms must be at least 1")
        if self.noise < 0 or not 0.0 <= self.spike_rate <= 1.0:
            raise ValueError("noise must be >= 0 and spike_rate within [0, 1]")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum must not exceed maximum")
        object.__setattr__(self, "seed", self.seed & 0xFFFFFFFF)

    def replace(self, **changes: Any) -> SeriesShape:
        """A copy with ``changes``; ValueError for unknown parameters or invalid values."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown series parameters: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def grid(self, window: PointWindow) -> tuple[np.ndarray, bool]:
        """Grid timestamps inside the window (ascending) and whether the cap cut them."""
        res = self.resolution_ms
        first = -(-window.start // res) * res
        count = 0 if window.end <= first else -(-(window.end - first) // res)
        kept = min(count, max(window.max_points, 0))
        offset = count - kept if window.newest_first else 0
        timestamps = first + res * (offset + np.arange(kept, dtype=np.int64))
        return timestamps, kept < count

    def values_at(self, timestamps: np.ndarray, step: int | None = None) -> np.ndarray:
        """The series' values at the given epoch-ms timestamps (a pure function).

        ``step`` says the timestamps are evenly spaced by it (a grid): when it divides
        the period, the wave repeats every ``period_ms // step`` points, so it is
        computed over one period and repeated, the same numbers for a third of the work
        on a 3-hour window of a 1-hour wave.
        """
        t = np.asarray(timestamps, dtype=np.int64)
        repeat = self.period_ms // step if step and self.period_ms % step == 0 else len(t)
        one = t[:repeat]
        phase = ((one - self.phase_ms) % self.period_ms) / self.period_ms
        wave = _wave(self.wave, phase)
        if len(one) < len(t):
            wave = np.resize(wave, len(t))  # np.resize repeats the array
        values = self.amplitude * wave  # in place below: the same sums and products
        values += self.baseline
        if self.trend_per_day:
            values += self.trend_per_day * ((t - TREND_ORIGIN_MS) / DAY_MS)
        if self.noise:
            noise = _noise(self.seed, t)
            noise *= self.noise
            values += noise
        if self.spike_rate and self.spike_height:
            spikes = _uniform(self.seed, t, salt=3) < self.spike_rate
            values = values + np.where(spikes, self.spike_height, 0.0)
        if self.minimum is not None or self.maximum is not None:
            values = np.clip(values, self.minimum, self.maximum)
        return values


_FLOATS = ("baseline", "amplitude", "noise", "trend_per_day", "spike_rate", "spike_height")
_OPTIONAL_FLOATS = ("minimum", "maximum")
_INTS = ("period_ms", "phase_ms", "seed", "resolution_ms")


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, not {value!r}")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite")
    # -0.0 == 0.0 and hashes alike, so two such shapes are one memo key: make them
    # one shape too (x + -0.0 and x + 0.0 differ in the sign of a zero result)
    return number + 0.0


def _whole(name: str, value: Any) -> int:
    number = _finite(name, value)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number")
    return int(number)


def _wave(wave: Wave, phase: np.ndarray) -> np.ndarray:
    if wave is Wave.SINE:
        return np.sin(2 * np.pi * phase)
    if wave is Wave.SQUARE:
        return np.where(phase < 0.5, 1.0, -1.0)
    if wave is Wave.SAWTOOTH:
        return 2.0 * phase - 1.0
    if wave is Wave.TRIANGLE:
        return 4.0 * np.abs(phase - 0.5) - 1.0
    return np.zeros_like(phase)


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _hash(seed: int, t: np.ndarray, salt: int) -> np.ndarray:
    """64 well-mixed bits per timestamp: splitmix64 of ``t`` offset by (seed, salt)."""
    offset = np.uint64((((seed << 8) | salt) * _GOLDEN) & _MASK64)
    z = t.astype(np.uint64)
    z += offset
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _uniform(seed: int, t: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) numbers, one per timestamp."""
    return (_hash(seed, t, salt) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


_TWO32 = float(1 << 32)
_TRIANGULAR_SCALE = np.sqrt(6.0)


def _noise(seed: int, t: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance noise per timestamp.

    The sum of two independent uniforms (the two 32-bit halves of one hash) has a
    triangular distribution; scaled by sqrt(6) its variance is 1. Bell-shaped enough
    for telemetry noise and several times cheaper than Box-Muller.
    """
    z = _hash(seed, t, salt=1)
    noise = (z & np.uint64(0xFFFFFFFF)).astype(np.float64)
    z >>= np.uint64(32)
    noise += z  # the same operations as ((low + high) / 2**32 - 1) * sqrt(6), in place
    noise /= _TWO32
    noise -= 1.0
    noise *= _TRIANGULAR_SCALE
    return noise


#: grid points per memoised chunk: 32 KiB of values, 11.4 hours at 10 s resolution
CHUNK_POINTS = 4096
#: bytes one memoised chunk costs beyond its values (array header, key, LRU links)
CHUNK_OVERHEAD_BYTES = 400
#: default memo budget of a SyntheticSource: 16 series x 31 days at 10 s
MEMO_BYTES = 32 << 20
_INT64_SAFE = 1 << 62


def _chunk_values(shape: SeriesShape, chunk: int, points: int) -> np.ndarray:
    """The values at grid points ``chunk * points`` .. ``(chunk + 1) * points - 1``
    of ``shape`` (read-only: the memo hands out copies of slices only)."""
    timestamps = shape.resolution_ms * (chunk * points + np.arange(points, dtype=np.int64))
    values = shape.values_at(timestamps, shape.resolution_ms)
    values.flags.writeable = False
    return values


class ValueMemo:
    """Values of synthetic series, memoised in chunks of the epoch-aligned grid.

    A chunk is ``chunk_points`` consecutive grid points, keyed on the whole
    ``SeriesShape`` (frozen, hashable) and the chunk's index, so any window of any
    series is a slice of the same chunks and gets exactly the values
    ``values_at`` computes for it (every value depends on its own ``t`` only).
    Changing a shape makes a new key: the old shape's chunks are never hit again
    and are the first to go. The budget is in bytes; every chunk costs the same,
    so an LRU bounded in entries (``functools.lru_cache``, thread-safe) is bounded
    in bytes. ``budget_bytes=0`` turns memoising off.
    """

    def __init__(self, budget_bytes: int = MEMO_BYTES, chunk_points: int = CHUNK_POINTS) -> None:
        if budget_bytes < 0 or chunk_points < 1:
            raise ValueError("budget_bytes must be >= 0 and chunk_points >= 1")
        self.chunk_points = chunk_points
        self.chunk_bytes = 8 * chunk_points + CHUNK_OVERHEAD_BYTES
        self.max_chunks = budget_bytes // self.chunk_bytes
        self._chunk = functools.lru_cache(maxsize=self.max_chunks)(_chunk_values)

    @property
    def nbytes(self) -> int:
        """Bytes the memoised chunks hold now (at most the budget)."""
        return self._chunk.cache_info().currsize * self.chunk_bytes

    def clear(self) -> None:
        self._chunk.cache_clear()

    def values(self, shape: SeriesShape, timestamps: np.ndarray) -> np.ndarray:
        """``shape.values_at(timestamps)`` for consecutive grid timestamps, from chunks."""
        count, res, size = len(timestamps), shape.resolution_ms, self.chunk_points
        if not count or not self.max_chunks:
            return shape.values_at(timestamps, res)
        first = int(timestamps[0]) // res  # timestamps sit on the grid: exact
        last = first + count - 1
        if max(-first, last + size) * res >= _INT64_SAFE:  # chunks would overflow int64
            return shape.values_at(timestamps, res)
        pieces = []
        for chunk in range(first // size, last // size + 1):
            base = chunk * size
            values = self._chunk(shape, chunk, size)
            pieces.append(values[max(first, base) - base : min(last + 1, base + size) - base])
        return np.concatenate(pieces)


# The default catalog: the tutorial's component ``a-host`` and two more hosts, each
# with hierarchical metric names so ``cpu.*`` is a meaningful FieldValuePattern.
DEFAULT_HOSTS: tuple[dict[str, FieldScalar], ...] = (
    {"host": "a-host", "region": "eu-west", "cores": 4.0, "production": True},
    {"host": "b-host", "region": "eu-west", "cores": 8.0, "production": True},
    {"host": "c-host", "region": "us-east", "cores": 2.0, "production": False},
)
DEFAULT_METRICS: tuple[tuple[str, dict[str, FieldScalar], SeriesShape], ...] = (
    ("cpu.user", {}, SeriesShape(baseline=35, amplitude=15, noise=3, minimum=0, maximum=100)),
    (
        "cpu.system",
        {},
        SeriesShape(baseline=12, amplitude=4, phase_ms=900_000, noise=1.5, minimum=0, maximum=100),
    ),
    (
        "mem.used",
        {},
        SeriesShape(
            wave=Wave.SAWTOOTH,
            baseline=2048,
            amplitude=128,
            period_ms=6 * 3_600_000,
            noise=16,
            trend_per_day=4,
            minimum=0,
        ),
    ),
    (
        "net.bytes_in",
        {"interface": "eth0"},
        SeriesShape(
            baseline=500_000,
            amplitude=200_000,
            period_ms=DAY_MS,
            noise=30_000,
            spike_rate=0.01,
            spike_height=1_000_000,
            minimum=0,
        ),
    ),
)


def default_series() -> list[tuple[LabeledSeries, SeriesShape]]:
    """Hosts x metrics; each series gets its own seed and phase, derived from its key."""
    out = []
    for index, host in enumerate(DEFAULT_HOSTS):
        for metric, extra, shape in DEFAULT_METRICS:
            key = f"{host['host']}/{metric}"
            labels = {"host": host["host"], "metric": metric, **extra, **host}
            seeded = shape.replace(
                seed=zlib.crc32(key.encode()), phase_ms=shape.phase_ms + index * 420_000
            )
            out.append((LabeledSeries(key, labels), seeded))
    return out


class SyntheticSource(CatalogSource):
    """Serves a catalog of synthetic series; parameters can change while it serves.

    It is a ``Shapeable`` (mirror_kit.sources.shaping): the notebook's shaping panel
    changes it through that protocol.

    ``set_shape`` may be called from any thread (the notebook's widgets do): shapes
    are immutable and swapped whole under a lock, so a request sees either the old
    or the new shape of a series, never a mix.
    """

    def __init__(
        self,
        series: Sequence[tuple[LabeledSeries, SeriesShape]] | None = None,
        *,
        memo_bytes: int = MEMO_BYTES,
    ) -> None:
        pairs = list(series) if series is not None else default_series()
        self.catalog = SeriesCatalog([s for s, _ in pairs])
        self._shapes: dict[str, SeriesShape] = {s.key: shape for s, shape in pairs}
        self._lock = threading.Lock()
        #: generated values, shared by all series of this source (``ValueMemo``)
        self.memo = ValueMemo(memo_bytes)

    def series_labels(self) -> list[Mapping[str, FieldScalar]]:
        """Every series' labels, in catalog order (part of the Shapeable protocol)."""
        return [s.labels for s in self.catalog.series]

    def shape(self, match: Mapping[str, FieldScalar] | None = None) -> SeriesShape:
        """The shape of the first series whose labels include ``match``."""
        return self._shapes[self._matching(match or {})[0]]

    def set_shape(self, match: Mapping[str, FieldScalar] | None = None, **changes: Any) -> int:
        """Change parameters of every series whose labels include ``match``; returns how many.

        Raises ValueError (nothing changed) for unknown parameters or invalid values.
        """
        keys = self._matching(match or {})
        with self._lock:
            updated = {k: self._shapes[k].replace(**changes) for k in keys}
            self._shapes.update(updated)
        return len(updated)

    def _matching(self, match: Mapping[str, FieldScalar]) -> list[str]:
        keys = [
            s.key
            for s in self.catalog.series
            if all(s.labels.get(k) == v for k, v in match.items())
        ]
        if not keys:
            raise KeyError(f"no series has labels {dict(match)}")
        return keys

    def series_points(self, series: LabeledSeries, window: PointWindow) -> Points:
        shape = self._shapes[series.key]  # read once: a concurrent set_shape can't tear it
        timestamps, truncated = shape.grid(window)
        return Points(timestamps, self.memo.values(shape, timestamps), truncated)
