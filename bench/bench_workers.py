"""Throughput of one process vs gunicorn workers: the four-method rotation, and a
CPU-bound 30-day aggregated query.

``python bench/bench_workers.py [--seconds 20] [--workers 1 2]`` starts, one after
the other on free 127.0.0.1 ports, the plain single-process mirror (``python -m
mirror_kit serve``) and the gunicorn-served mirror with each worker count
(mirror_kit.server.workers.run), and drives each with wrk at 32 keep-alive
connections sending bench/rotation.py's mix, then the 30-day PERCENTILE_99 query
(259,200 raw points per answer: where the server, not wrk, needs the CPU). It prints
requests/s, p50/p99 and the speed-up over one worker. wrk shares the machine: on 2
cores it takes part of one, most of it for the light rotation, so N workers cannot
reach N times one. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable

import loadgen
import rotation
import servers

from mirror_kit.protocol import (
    Aggregation,
    AggregationMethod,
    EqualityCondition,
    MetricsQuery,
    MetricsRequest,
    StringValue,
)

WARMUP_S = 2
DAY_MS = 86_400_000
T0 = 1_767_225_600_000
AGGREGATED_30_DAYS = MetricsRequest(
    MetricsQuery(
        T0 - 30 * DAY_MS,
        T0,
        (
            EqualityCondition("host", StringValue("a-host")),
            EqualityCondition("metric", StringValue("cpu.user")),
        ),
        aggregation=Aggregation(AggregationMethod.PERCENTILE_99, 3_600_000),
    ),
    {},
)
Load = Callable[[str, int, int], loadgen.LoadResult]


def aggregated_load(url: str, connections: int, seconds: int) -> loadgen.LoadResult:
    body = json.dumps(AGGREGATED_30_DAYS.to_json()).encode()
    return loadgen.run_wrk(url + AGGREGATED_30_DAYS.path, body, connections, seconds)


LOADS: dict[str, Load] = {
    "four-method rotation": rotation.run_rotation,
    "30-day P99 aggregated": aggregated_load,
}
RUN_WORKERS = (
    "import sys\n"
    "from mirror_kit import ServerSettings\n"
    "from mirror_kit.server.workers import run\n"
    "sys.exit(run(ServerSettings(), host={host!r}, port={port}, workers={workers}))\n"
)


def command(workers: int, port: int) -> list[str]:
    """0 workers: the plain `serve` command; N: gunicorn with N aiohttp workers."""
    if workers == 0:
        return servers.server_commands(port, baseline_points=0)["mirror"]
    code = RUN_WORKERS.format(host=servers.HOST, port=port, workers=workers)
    return [sys.executable, "-c", code]


def measure(workers: int, seconds: int, connections: int, load: Load) -> loadgen.LoadResult:
    with contextlib.ExitStack() as stack:
        port = servers.free_port()
        server = servers.start(f"workers-{workers}", command(workers, port), port, stack)
        time.sleep(1.0)  # let every worker boot (the port accepts once the first has)
        load(server.url, connections, WARMUP_S)
        return load(server.url, connections, seconds)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts (1 2)"
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    print(f"{loadgen.wrk_version()}; {os.cpu_count()} CPUs; {args.connections} connections")
    failed = False
    for title, load in LOADS.items():
        results = {0: measure(0, args.seconds, args.connections, load)}
        for workers in args.workers:
            results[workers] = measure(workers, args.seconds, args.connections, load)
        one = results.get(1, results[0]).requests_per_s
        print(f"\n{title}; load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{'server':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs 1':>6}")
        for workers, result in results.items():
            name = "serve (no gunicorn)" if workers == 0 else f"gunicorn, {workers} worker(s)"
            print(
                f"{name:<22} {result.requests_per_s:8.0f} {result.p50_ms:8.2f} "
                f"{result.p99_ms:8.2f} {result.errors:7d} {result.requests_per_s / one:6.2f}"
            )
        failed |= any(r.errors for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
