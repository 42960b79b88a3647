"""Time a 30-day aggregated query through Prometheus next to the same on synthetic data.

The query StackState's 30-day chart makes: PERCENTILE_99 in 1-hour buckets over
30 days of one series at 10 s resolution (259,200 samples). The series is the
synthetic catalog's ``a-host``/``cpu.user``, backfilled into a real Prometheus, so
both answers must agree value for value; the script checks that and prints the
timings. Needs Debian's ``prometheus`` package (prometheus + promtool on PATH).

    .venv/bin/python bench/bench_prometheus.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from prometheus_fixture import Series, start_prometheus

from mirror_kit import MirrorClient, start_mirror
from mirror_kit.sources import SyntheticSource
from mirror_kit.sources.prometheus import PrometheusSource
from mirror_kit.sources.routing import RoutingSource

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
STEP_MS = 10_000
DAYS = 30
METRIC = "bench_cpu_user"


def timed(call: Callable[[], object], runs: int) -> tuple[list[float], object]:
    """Wall times in ms of ``runs`` calls after one warm-up call, and the last result."""
    result = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000.0)
    return times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    synthetic = SyntheticSource()
    shape = synthetic.shape({"host": "a-host", "metric": "cpu.user"})
    start = (int(time.time() * 1000) // HOUR_MS) * HOUR_MS - (DAYS + 1) * DAY_MS
    end = start + DAYS * DAY_MS
    stamps = start + STEP_MS * np.arange(DAYS * DAY_MS // STEP_MS, dtype=np.int64)
    series = Series(METRIC, "gauge", {"host": "a-host"}, shape.values_at(stamps), start, STEP_MS)

    with tempfile.TemporaryDirectory(prefix="mirror-kit-bench-") as tmp:
        began = time.perf_counter()
        prometheus = start_prometheus([series], Path(tmp))
        print(
            f"backfilled {len(stamps):,} samples and started Prometheus "
            f"in {time.perf_counter() - began:.1f} s"
        )
        prometheus_store = PrometheusSource(prometheus.url)
        router = RoutingSource({"synthetic": synthetic, "prometheus": prometheus_store})
        details = {"source": "prometheus", "url": prometheus.url, "step": "10s"}
        query = {"start": start, "end": end, "method": "PERCENTILE_99", "bucket_ms": HOUR_MS}
        try:
            with (
                start_mirror(router, port=0) as mirror,
                MirrorClient(
                    mirror.url, mirror.api_key, connection_details=details, timeout=120
                ) as via_prom,
                MirrorClient(mirror.url, mirror.api_key, timeout=120) as via_syn,
            ):
                prom_ms, prom = timed(
                    lambda: via_prom.metrics(**query, conditions={"__name__": METRIC}), args.runs
                )
                syn_ms, syn = timed(
                    lambda: via_syn.metrics(**query, host="a-host", metric="cpu.user"), args.runs
                )
        finally:
            prometheus.stop()

    print(
        f"30-day PERCENTILE_99, 1 h buckets, 10 s data ({len(stamps):,} raw points), "
        f"{args.runs} runs after a warm-up, through the mirror over HTTP:"
    )
    for name, times in (("Prometheus (query_range, 24 pages)", prom_ms), ("synthetic", syn_ms)):
        print(f"  {name:36s} median {statistics.median(times):8.1f} ms   min {min(times):8.1f} ms")
    same = np.array_equal(prom.timestamps, syn.timestamps) and np.allclose(
        prom.values, syn.values, rtol=0, atol=1e-9
    )
    print(f"  buckets: {len(prom)} vs {len(syn)}; answers agree: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
