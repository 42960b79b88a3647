"""Soak test: steady load on the four methods for a long while; throughput, latency, memory.

``python bench/soak.py`` (default 10 minutes; ``--seconds 120`` for a short run)
starts the mirror (``python -m mirror_kit serve``) in its own process on a free
127.0.0.1 port and drives it with wrk at 32 keep-alive connections, sending the
mixed rotation of bench/rotation.py. The run is cut into intervals (10 s): each
reports requests/s, p50 and p99 latency and errors, while a sampler reads the
mirror's resident memory (VmRSS) every second. It prints the figures, and writes
them (JSON) and a plot (PNG) to bench/results/.

What to look for: requests/s and p99 flat over time, and RSS flat after the first
interval (warm-up: imports, numpy buffers, the request log filling to its cap).
Steady growth would be a leak. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import loadgen
import rotation
import servers

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MIB = 1024  # KiB per MiB: /proc reports KiB


@dataclass(frozen=True)
class Interval:
    """One wrk run of the soak; ``t_s`` is its end, seconds since the load started."""

    t_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    requests: int
    load_1min: float  # the machine's load average: other processes share the cores


class RssSampler(threading.Thread):
    """Reads a process's VmRSS every ``period_s`` seconds until stopped."""

    def __init__(self, pid: int, period_s: float = 1.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.period_s = pid, period_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop_event = threading.Event()
        self._origin = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = servers.memory_kib(self.pid).get("VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic() - self._origin, rss / MIB))
            self._stop_event.wait(self.period_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5.0)


def soak(url: str, seconds: int, interval_s: int, connections: int) -> list[Interval]:
    """Drive the mirror for ``seconds`` in wrk runs of ``interval_s``; print each."""
    intervals: list[Interval] = []
    started = time.monotonic()
    print(
        f"{'t (s)':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} "
        f"{'load':>5}"
    )
    while (remaining := seconds - (time.monotonic() - started)) >= 1:
        result = rotation.run_rotation(url, connections, int(min(interval_s, remaining)))
        interval = Interval(
            round(time.monotonic() - started, 1),
            result.requests_per_s,
            result.p50_ms,
            result.p99_ms,
            result.max_ms,
            result.errors,
            result.requests,
            os.getloadavg()[0],
        )
        intervals.append(interval)
        print(
            f"{interval.t_s:7.0f} {interval.requests_per_s:8.0f} {interval.p50_ms:8.2f} "
            f"{interval.p99_ms:8.2f} {interval.max_ms:8.1f} {interval.errors:7d} "
            f"{interval.load_1min:5.1f}",
            flush=True,
        )
    return intervals


def summarize(
    intervals: list[Interval], rss: list[tuple[float, float]], first_s: float
) -> dict[str, Any]:
    """Totals, latency over the intervals, and RSS growth after the warm-up interval."""
    total = sum(i.requests for i in intervals)
    duration = intervals[-1].t_s if intervals else 0.0
    warm = [mib for t, mib in rss if t >= first_s] or [mib for _, mib in rss]
    return {
        "requests": total,
        "errors": sum(i.errors for i in intervals),
        "duration_s": duration,
        "requests_per_s": total / duration if duration else 0.0,
        "p50_ms_median": statistics.median(i.p50_ms for i in intervals),
        "p99_ms_median": statistics.median(i.p99_ms for i in intervals),
        "p99_ms_worst": max(i.p99_ms for i in intervals),
        "load_1min_median": statistics.median(i.load_1min for i in intervals),
        "cpus": os.cpu_count(),
        "rss_mib_start": rss[0][1] if rss else None,
        "rss_mib_after_warmup": warm[0] if warm else None,
        "rss_mib_end": rss[-1][1] if rss else None,
        "rss_mib_peak": max(mib for _, mib in rss) if rss else None,
        "rss_mib_growth_after_warmup": (warm[-1] - warm[0]) if warm else None,
    }


def plot(intervals: list[Interval], rss: list[tuple[float, float]], path: Path, title: str) -> None:
    """Three panels sharing the time axis: requests/s, p50/p99, RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [i.t_s for i in intervals]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(9, 8))
    top.plot(t, [i.requests_per_s for i in intervals], marker="o")
    top.set_ylabel("requests/s")
    top.set_ylim(bottom=0)
    middle.plot(t, [i.p50_ms for i in intervals], marker="o", label="p50")
    middle.plot(t, [i.p99_ms for i in intervals], marker="o", label="p99")
    middle.set_ylabel("latency (ms)")
    middle.set_ylim(bottom=0)
    middle.legend()
    bottom.plot([s for s, _ in rss], [m for _, m in rss])
    bottom.set_ylabel("mirror RSS (MiB)")
    bottom.set_xlabel("seconds under load")
    bottom.set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=600, help="load duration (600)")
    parser.add_argument("--interval", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (32)")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    print(loadgen.wrk_version())
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with contextlib.ExitStack() as stack:
        port = servers.free_port()
        command = servers.server_commands(port, baseline_points=0)["mirror"]
        mirror = servers.start("mirror", command, port, stack)
        sampler = RssSampler(mirror.pid)
        sampler.start()
        stack.callback(sampler.stop)
        intervals = soak(mirror.url, args.seconds, args.interval, args.connections)
        sampler.stop()
    summary = summarize(intervals, sampler.samples, first_s=float(args.interval))
    title = (
        f"mirror soak: {args.connections} connections, four methods, {summary['duration_s']:.0f} s"
    )
    png = RESULTS_DIR / f"soak-{stamp}.png"
    plot(intervals, sampler.samples, png, title)
    record = {
        "summary": summary,
        "intervals": [asdict(i) for i in intervals],
        "rss_mib": sampler.samples,
        "arguments": vars(args),
    }
    (RESULTS_DIR / f"soak-{stamp}.json").write_text(json.dumps(record, indent=2))
    print("\n" + "\n".join(f"{k:>28}: {_shown(v)}" for k, v in summary.items()))
    print(f"\nplot: {png}")
    return 0 if summary["errors"] == 0 else 1


def _shown(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
