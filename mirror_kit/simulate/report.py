"""What a simulated StackState saw: latency per request kind, and whether polls agree.

Latencies are kept per kind as floats (a 200-stream hour is 12,000 polls: about
100 KB), so percentiles are exact. Error texts are kept as a few samples only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: error texts kept per request kind (the count is always exact)
ERROR_SAMPLES = 3
#: answer digests kept per run (16 bytes each plus the key: about 10 MB at most)
MAX_DIGESTS = 100_000


@dataclass
class KindStats:
    """The outcomes of one kind of request (live-stream polls, monitors, wizard steps)."""

    kind: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    #: answered after the UI timeout, or not at all within it: StackState gave up
    gave_up: int = 0
    points: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def add(
        self, latency_ms: float, *, points: int = 0, error: str | None = None, gave_up: bool = False
    ) -> None:
        self.latencies_ms.append(latency_ms)
        self.points += points
        self.gave_up += gave_up
        if error is not None:
            self.errors += 1
            if len(self.error_samples) < ERROR_SAMPLES:
                self.error_samples.append(error[:300])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "requests": self.requests,
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": max(self.latencies_ms, default=float("nan")),
            "errors": self.errors,
            "gave_up": self.gave_up,
            "points": self.points,
            "error_samples": list(self.error_samples),
        }


@dataclass
class Consistency:
    """Do two polls of one stream agree where their windows overlap?

    A bucket present in both polls must have the same value, unless it sat at an
    edge of either window: a bucket the window cuts holds only part of its data,
    so its value may move from poll to poll ("moving edge bucket"). Any other
    difference means the mirror answers the same question differently.
    """

    polls_compared: int = 0
    buckets_compared: int = 0
    mismatched: int = 0
    moving_edges: int = 0
    misaligned: int = 0
    examples: list[str] = field(default_factory=list)

    def compare(self, stream: str, before: PollResult, after: PollResult) -> None:
        """Count agreements of two successive polls of ``stream``."""
        common, at_before, at_after = np.intersect1d(
            before.starts, after.starts, assume_unique=True, return_indices=True
        )
        if not len(common):
            overlap = (
                len(before.starts) and len(after.starts) and (after.starts[0] <= before.starts[-1])
            )
            self.misaligned += bool(overlap)
            return
        self.polls_compared += 1
        self.buckets_compared += len(common)
        a, b = before.values[at_before], after.values[at_after]
        same = np.isclose(a, b, rtol=1e-9, atol=1e-12) | (np.isnan(a) & np.isnan(b))
        edges = (before.starts[0], before.starts[-1], after.starts[0], after.starts[-1])
        edge = np.isin(common, edges)
        self.moving_edges += int(np.count_nonzero(~same & edge))
        moved = common[~same & ~edge]
        self.mismatched += len(moved)
        if len(moved) and len(self.examples) < ERROR_SAMPLES:
            i = int(np.flatnonzero(~same & ~edge)[0])
            self.examples.append(f"{stream}: bucket {int(moved[0])} was {a[i]!r}, then {b[i]!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "polls_compared": self.polls_compared,
            "buckets_compared": self.buckets_compared,
            "mismatched": self.mismatched,
            "moving_edges": self.moving_edges,
            "misaligned": self.misaligned,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class PollResult:
    """One poll's buckets, kept until the next poll of the same stream."""

    starts: np.ndarray
    values: np.ndarray


@dataclass
class Report:
    """Everything one simulation saw; ``ok`` when StackState would have been content."""

    kinds: dict[str, KindStats] = field(default_factory=dict)
    consistency: Consistency = field(default_factory=Consistency)
    series: int = 0
    simulated_s: float = 0.0
    real_s: float = 0.0
    #: a digest of every metric answer, by "kind index @ scheduled ms": two runs of one
    #: model ask the same questions, so ``same_answers`` can compare what they got
    digests: dict[str, bytes] = field(default_factory=dict)

    def remember(self, question: str, timestamps: np.ndarray, values: np.ndarray) -> None:
        if len(self.digests) < MAX_DIGESTS:
            digest = hashlib.blake2b(digest_size=16)
            digest.update(np.ascontiguousarray(timestamps, dtype=np.int64).tobytes())
            digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
            self.digests[question] = digest.digest()

    def same_answers(self, other: Report) -> tuple[int, int]:
        """(questions both runs answered, of which answered differently)."""
        common = self.digests.keys() & other.digests.keys()
        return len(common), sum(self.digests[q] != other.digests[q] for q in common)

    def stats(self, kind: str) -> KindStats:
        if kind not in self.kinds:
            self.kinds[kind] = KindStats(kind)
        return self.kinds[kind]

    @property
    def requests(self) -> int:
        return sum(k.requests for k in self.kinds.values())

    @property
    def ok(self) -> bool:
        """No errors, nothing StackState gave up on, no poll contradicting another."""
        bad = sum(k.errors + k.gave_up for k in self.kinds.values())
        return bad == 0 and self.consistency.mismatched == 0

    def lines(self) -> list[str]:
        """The report as a table, one line per request kind, then the consistency check."""
        head = f"{'request kind':<22}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        out = [
            f"{self.series} series, {self.simulated_s:g} s simulated in {self.real_s:.1f} s",
            head + f"{'errors':>8}{'gave up':>9}",
        ]
        for k in self.kinds.values():
            out.append(
                f"{k.kind:<22}{k.requests:>9}{k.percentile_ms(50):>9.1f}"
                f"{k.percentile_ms(99):>9.1f}{max(k.latencies_ms, default=float('nan')):>9.1f}"
                f"{k.errors:>8}{k.gave_up:>9}"
            )
            out += [f"    error: {text}" for text in k.error_samples]
        c = self.consistency
        out.append(
            f"consistency: {c.polls_compared} poll pairs, {c.buckets_compared} overlapping "
            f"buckets, {c.mismatched} disagree, {c.moving_edges} moving edge buckets, "
            f"{c.misaligned} misaligned poll pairs"
        )
        out += [f"    disagrees: {text}" for text in c.examples]
        out.append("verdict: " + ("OK" if self.ok else "StackState would see errors"))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "series": self.series,
            "simulated_s": self.simulated_s,
            "real_s": self.real_s,
            "kinds": [k.to_json() for k in self.kinds.values()],
            "consistency": self.consistency.to_json(),
        }
