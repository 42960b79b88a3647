"""The kit in front of a real Prometheus, next to Prometheus itself, in one run.

Three ways to answer StackState's 30-day charts (MEAN, MAX, PERCENTILE_99 in 1-hour
buckets over 30 days of one series at 10 s: 259,200 samples) and a 3-hour raw query,
each at 1 and 8 connections:

* **floor**: Prometheus' own ``query_range`` with the matching ``*_over_time`` at
  step = 1 h (for raw: the selector at step 10 s), asked directly: the least any
  mirror can cost;
* **kit**: ``python -m mirror_kit serve`` in its own process, the store declared
  with the poll cache off (every request reaches Prometheus): aggregation in the store;
* **kit, local**: the same with ``aggregateInStore = false``: raw points fetched and
  aggregated in the mirror (what #15 did).

Answers are compared (kit vs local vs floor, value for value); the mirrors' RSS is
read from /proc after the 8-connection runs. Then StackState's polling
(``mirror_kit.simulate``: 200 live streams and 20 monitors over 20 series for one
simulated hour) against the kit with and without the poll cache: Prometheus' own
request counter says how many store queries each sent, and the two runs' answers
are compared question by question.

Needs Debian's ``prometheus`` package (prometheus + promtool on PATH).

    .venv/bin/python bench/bench_prometheus.py [--requests 16] [--speed 30] [--hour 3600]
        [--no-simulate | --only-simulate]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from prometheus_fixture import Series, start_prometheus
from servers import HOST, free_port, memory_kib

from mirror_kit.client import build_conditions
from mirror_kit.protocol import Aggregation, AggregationMethod, MetricsQuery, MetricsRequest
from mirror_kit.simulate import Clock, LoadModel, simulate
from mirror_kit.sources import SyntheticSource

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
STEP_MS = 10_000
DAYS = 30
METRIC = "bench_cpu_user"
LIVE = "bench_live"
LIVE_SERIES = 20
API_KEY = "api_key"
SELECTOR = f'{METRIC}{{host="a-host"}}'
#: the windows [s, s + 1 h) exactly (Prometheus 2.x: [t - d, t], evaluated at s + 1 h - 1 ms)
FLOOR = {
    "MEAN": "avg_over_time({}[3599999ms])",
    "MAX": "max_over_time({}[3599999ms])",
    "PERCENTILE_99": "quantile_over_time(0.99, {}[3599999ms])",
}


def known_data(now_ms: int) -> tuple[list[Series], int, int]:
    """30 days of cpu.user (synthetic a-host) and 2.5 hours of 20 live series at 10 s,
    ending a day ago (settled for any cache); returns them, the 30 days' start and end."""
    end = now_ms // HOUR_MS * HOUR_MS - DAY_MS
    start = end - DAYS * DAY_MS
    shape = SyntheticSource().shape({"host": "a-host", "metric": "cpu.user"})
    stamps = start + STEP_MS * np.arange(DAYS * DAY_MS // STEP_MS, dtype=np.int64)
    out = [Series(METRIC, "gauge", {"host": "a-host"}, shape.values_at(stamps), start, STEP_MS)]
    live_start = end - 5 * HOUR_MS // 2
    i = np.arange(5 * HOUR_MS // 2 // STEP_MS)
    out += [
        Series(LIVE, "gauge", {"host": f"h{n:02d}"}, 50 + 10 * np.sin(i / 37 + n), live_start)
        for n in range(LIVE_SERIES)
    ]
    return out, start, end


#: each mirror's one store (one URL is one store in a mirror: one process each)
MIRRORS = {
    "kit": {"pollCacheBytes": 0},
    "local": {"pollCacheBytes": 0, "aggregateInStore": False},
    "cached": {},
}


def stores_file(directory: Path, url: str, name: str) -> Path:
    """The store declaration of mirror ``name``: Prometheus on loopback, so plain
    answers (``compress = false``), ``step`` 10 s, the mirror's options."""
    store = {"kind": "prometheus", "url": url, "step": "10s", "compress": False, **MIRRORS[name]}
    path = directory / f"stores-{name}.json"
    path.write_text(json.dumps({"default": "p", "stores": {"p": store}}))
    return path


def metric_body(start: int, end: int, method: str | None, conditions: Any) -> bytes:
    aggregation = None if method is None else Aggregation(AggregationMethod(method), HOUR_MS)
    query = MetricsQuery(start, end, build_conditions(conditions, {}), aggregation=aggregation)
    return orjson.dumps(MetricsRequest(query, {}).to_json())


async def timed_load(
    ask: Callable[[httpx.AsyncClient], Any], base_url: str, connections: int, requests: int
) -> tuple[list[float], Any]:
    """Latencies (ms) of ``requests`` asks, ``connections`` at a time, after one warm-up
    per connection; and the last answer."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        await asyncio.gather(*(ask(client) for _ in range(connections)))
        latencies: list[float] = []
        last: list[Any] = [None]
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                began = time.perf_counter()
                answer = await ask(client)
                if answer is not None:  # an error answer is counted apart, untimed
                    last[0] = answer
                    latencies.append((time.perf_counter() - began) * 1000)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, last[0]


def mirror_ask(body: bytes) -> Callable[[httpx.AsyncClient], Any]:
    async def ask(client: httpx.AsyncClient) -> np.ndarray | None:
        response = await client.post(
            "/api/metric", content=body, headers={"X-Mirror-Api-Key": API_KEY}
        )
        if response.status_code != 200:  # e.g. 504: past the mirror's 12 s timeout
            return None
        points = orjson.loads(response.content)["telemetry"]["points"]
        return np.asarray(points, dtype=np.float64).reshape(-1, 3 if len(points[0]) == 3 else 2)

    return ask


def floor_ask(expression: str, start: int, end: int, step: int) -> Callable[..., Any]:
    params = {
        "query": expression,
        "start": f"{start / 1000:.3f}",
        "end": f"{end / 1000:.3f}",
        "step": f"{step / 1000:.3f}",
    }

    async def ask(client: httpx.AsyncClient) -> np.ndarray:
        response = await client.get("/api/v1/query_range", params=params)
        response.raise_for_status()
        result = orjson.loads(response.content)["data"]["result"]
        return np.asarray([float(v) for _, v in result[0]["values"]])

    return ask


def line(name: str, latencies: list[float], requests: int, floor_p50: float | None) -> str:
    if not latencies:
        return f"    {name:12s} every request failed"
    p50 = statistics.median(latencies)
    p99 = float(np.percentile(latencies, 99))
    ratio = f"{p50 / floor_p50:6.2f}x" if floor_p50 else "       "
    failed = requests - len(latencies)
    errors = f"  {failed} of {requests} failed" if failed else ""
    return f"    {name:12s} p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  {ratio}{errors}"


async def queries(
    prometheus_url: str, mirrors: dict[str, Any], start: int, end: int, requests: int
) -> bool:
    """The side-by-side table; True when every answer agreed."""
    agree = True
    cells: list[tuple[str, str | None, int, int, str]] = [
        (m, m, start, end, FLOOR[m].format(SELECTOR)) for m in FLOOR
    ]
    cells.append(("raw 3 h", None, end - 3 * HOUR_MS, end, SELECTOR))
    for connections in (1, 8):
        print(f"  {connections} connection{'s' if connections > 1 else ''}:")
        for name, method, lo, hi, floor_expression in cells:
            print(f"   {name}")
            if method is None:
                floor = floor_ask(floor_expression, lo, hi - STEP_MS, STEP_MS)
            else:
                floor = floor_ask(floor_expression, lo + HOUR_MS - 1, hi - 1, HOUR_MS)
            floor_ms, floor_values = await timed_load(floor, prometheus_url, connections, requests)
            print(line("floor", floor_ms, requests, None))
            floor_p50 = statistics.median(floor_ms)
            for store, mirror in mirrors.items():
                body = metric_body(lo, hi, method, {"__name__": METRIC, "host": "a-host"})
                took, points = await timed_load(mirror_ask(body), mirror.url, connections, requests)
                name = f"kit, {store}" if store != "kit" else "kit"
                print(line(name, took, requests, floor_p50))
                if points is None:
                    continue  # nothing answered: nothing to compare
                same = len(points) == len(floor_values) and np.allclose(
                    points[:, 0], floor_values, rtol=1e-12, atol=1e-9
                )
                if not same:
                    print(f"      answers differ from the floor's ({len(points)} points)")
                agree &= same
        for store, mirror in mirrors.items():
            kib = memory_kib(mirror.pid)
            print(
                f"  RSS of kit{'' if store == 'kit' else ', ' + store} after {connections} "
                f"connection(s): {kib.get('VmRSS', 0) / 1024:.0f} MiB "
                f"(peak {kib.get('VmHWM', 0) / 1024:.0f} MiB)"
            )
    return agree


def query_count(prometheus_url: str) -> float:
    """Every /api/v1 request Prometheus has answered (its own counter)."""
    text = httpx.get(f"{prometheus_url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/' in line
    )


async def polling(
    prometheus_url: str, mirrors: dict[str, Any], end: int, speed: float, duration_s: float
) -> bool:
    """The simulator's 200-stream hour without and with the poll cache."""
    series = [{"__name__": LIVE, "host": f"h{n:02d}"} for n in range(LIVE_SERIES)]
    clock = Clock(start_ms=end - HOUR_MS - HOUR_MS // 4, duration_s=duration_s, speed=speed)
    reports, sent_by = {}, {}
    for store in ("kit", "cached"):
        before = query_count(prometheus_url)
        reports[store] = await simulate(
            mirrors[store].url,
            model=LoadModel(wizard_sessions=0),
            clock=clock,
            api_key=API_KEY,
            series=series,
        )
        sent = query_count(prometheus_url) - before
        report = reports[store]
        polls = sum(k.requests for k in report.kinds.values())
        errors = sum(k.errors for k in report.kinds.values())
        gave_up = sum(k.gave_up for k in report.kinds.values())
        name = "with the poll cache" if store == "cached" else "without cache"
        print(
            f"  {name:20s} {polls:5d} polls, {sent:6.0f} store queries, errors {errors}, "
            f"gave up {gave_up}, real {report.real_s:.0f} s"
        )
        for kind in report.kinds.values():
            print(
                f"      {kind.kind:12s} p50 {kind.percentile_ms(50):7.1f} ms  "
                f"p99 {kind.percentile_ms(99):7.1f} ms"
            )
        sent_by[store] = sent
    common, differ = reports["cached"].same_answers(reports["kit"])
    ratio = sent_by["kit"] / max(1.0, sent_by["cached"])
    print(f"  {ratio:.1f}x fewer store queries; {common} answers compared, {differ} differ")
    return differ == 0 and common > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16, help="timed requests per cell")
    parser.add_argument("--speed", type=float, default=30.0, help="simulated s per real s")
    parser.add_argument("--no-simulate", action="store_true", help="skip the polling part")
    parser.add_argument("--only-simulate", action="store_true", help="only the polling part")
    parser.add_argument("--hour", type=float, default=3600.0, help="simulated seconds (3600)")
    args = parser.parse_args()
    series, start, end = known_data(int(time.time() * 1000))
    if args.only_simulate:
        series = series[1:]
    with (
        tempfile.TemporaryDirectory(prefix="mirror-kit-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        began = time.perf_counter()
        prometheus = stack.enter_context(start_prometheus(series, Path(tmp)))
        samples = sum(len(s.values) for s in series)
        print(
            f"backfilled {samples:,} samples, Prometheus up in {time.perf_counter() - began:.0f} s"
        )
        mirrors = {}
        for name in MIRRORS:
            stores = stores_file(Path(tmp), prometheus.url, name)
            port = free_port()
            command = [sys.executable, "-m", "mirror_kit", "serve", "--host", HOST,
                       "--port", str(port), "--stores", str(stores)]  # fmt: skip
            mirrors[name] = servers.start(name, command, port, stack)
        print(
            f"30-day queries, 1 h buckets, {DAYS * DAY_MS // STEP_MS:,} samples; "
            f"{args.requests} timed requests per cell; ratios to the floor in this run"
        )
        agree = True
        if not args.only_simulate:
            timed = {name: mirrors[name] for name in ("kit", "local")}
            agree = asyncio.run(queries(prometheus.url, timed, start, end, args.requests))
            print(f"  every answer agrees with the floor: {agree}")
        same = True
        if not args.no_simulate:
            print(f"simulate: 200 live streams + 20 monitors over {LIVE_SERIES} series, "
                  f"one simulated hour at {args.speed:g}x")  # fmt: skip
            same = asyncio.run(polling(prometheus.url, mirrors, end, args.speed, args.hour))
    return 0 if agree and same else 1


if __name__ == "__main__":
    sys.exit(main())
