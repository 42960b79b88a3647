"""Benchmark the mirror against the tutorial's sample mirror and a bare aiohttp ceiling.

``python bench/bench_mirror.py`` (``make bench``) starts three servers on free
127.0.0.1 ports, each in its own process: the mirror (``python -m mirror_kit
serve``), the baseline (bench/baseline_sample_mirror.py, a stdlib
ThreadingHTTPServer in the tutorial sample's style) and the ceiling
(bench/ceiling_app.py, one aiohttp route with a constant body). wrk drives
keep-alive POSTs at 1 and 32 connections. The script prints throughput and
latency, the ratios the issue sets targets for, the in-process compute time of a
30-day aggregated query, and the mirror's memory before and after a request the
mirror must cap. Figures are reported, never asserted: see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import loadgen
import psutil
import servers

from mirror_kit import service
from mirror_kit.protocol import (
    Aggregation,
    AggregationMethod,
    EqualityCondition,
    MetricsQuery,
    MetricsRequest,
    StringValue,
    TestConnectionRequest,
)
from mirror_kit.sources import SyntheticSource

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a multiple of the 10 s resolution
HOUR = 3_600_000
DAY = 24 * HOUR
API_KEY = "api_key"
RAW_POINTS = 3 * HOUR // 10_000  # 1080: the mirror's answer to the 3-hour raw query
CONDITIONS = (
    EqualityCondition("host", StringValue("a-host")),
    EqualityCondition("metric", StringValue("cpu.user")),
)
STACKSTATE_LIMIT = 2_147_483_647  # what StackState usually sends as query.limit
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MIB = 1024
OTHER_CPU_WARNING = 0.2  # cores; the 2-core machine has 0.0-0.05 busy when idle


@dataclass(frozen=True)
class Workload:
    """One kind of request, the servers it runs on, and what a correct answer holds."""

    label: str
    path: str
    body: dict[str, Any]
    servers: tuple[str, ...]
    points: int | None = None  # expected points in a metric answer


def metrics_body(start: int, end: int, aggregation: Aggregation | None = None) -> dict[str, Any]:
    query = MetricsQuery(start, end, CONDITIONS, limit=STACKSTATE_LIMIT, aggregation=aggregation)
    return MetricsRequest(query, {}).to_json()


def thirty_day_body() -> dict[str, Any]:
    """30 days of 10 s points (259,200) into 720 one-hour PERCENTILE_99 buckets."""
    return metrics_body(T0 - 30 * DAY, T0, Aggregation(AggregationMethod.PERCENTILE_99, HOUR))


def huge_body() -> dict[str, Any]:
    """10 years in 1 ms buckets: far past what the mirror computes (max_points) or
    answers (max_answer_points) per request, so its Limits must cap the work."""
    return metrics_body(T0 - 3650 * DAY, T0, Aggregation(AggregationMethod.PERCENTILE_99, 1))


WORKLOADS = (
    Workload(
        "test connection",
        TestConnectionRequest.path,
        TestConnectionRequest({}).to_json(),
        ("mirror", "ceiling", "baseline"),
    ),
    Workload(
        "3-hour raw",
        MetricsRequest.path,
        metrics_body(T0 - 3 * HOUR, T0),
        ("mirror", "mirror x2", "baseline"),
        RAW_POINTS,
    ),
    Workload("30-day P99 1h", MetricsRequest.path, thirty_day_body(), ("mirror",), 30 * 24),
)


# --------------------------------------------------------------------------- compute


def measure_compute(repetitions: int) -> dict[str, Any]:
    """Server-side time of the 30-day aggregated query, in this process, no HTTP.

    ``service.answer`` is the mirror's whole work for a request minus HTTP and JSON;
    ``answer + to_bytes`` adds the JSON rendering the handler does next.
    """
    request = MetricsRequest.from_json(thirty_day_body())
    source, limits = SyntheticSource(), service.Limits()

    async def run() -> tuple[list[float], list[float]]:
        answer_s, rendered_s = [], []
        for _ in range(2):  # warm caches and numpy's first-call paths
            await service.answer(request, source, limits)
        for _ in range(repetitions):
            started = time.perf_counter()
            response = await service.answer(request, source, limits)
            answered = time.perf_counter()
            response.to_bytes()
            answer_s.append(answered - started)
            rendered_s.append(time.perf_counter() - started)
        return answer_s, rendered_s

    busy_before, own_before, started = machine_busy_seconds(), time.process_time(), time.monotonic()
    answer_s, rendered_s = asyncio.run(run())
    elapsed = time.monotonic() - started
    own = time.process_time() - own_before
    return {
        "repetitions": repetitions,
        "other_cpu_cores": max((machine_busy_seconds() - busy_before - own) / elapsed, 0.0),
        "answer_ms": _min_median_ms(answer_s),
        "answer_and_json_ms": _min_median_ms(rendered_s),
    }


def _min_median_ms(seconds: list[float]) -> dict[str, float]:
    return {"min": min(seconds) * 1e3, "median": statistics.median(seconds) * 1e3}


# --------------------------------------------------------------------------- HTTP checks


def post(url: str, body: dict[str, Any], timeout_s: float = 300.0) -> tuple[bytes, str | None]:
    """One POST; the raw response body and its X-MIRROR-API-KEY header."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.read(), response.headers.get("X-MIRROR-API-KEY")


def validate(server: servers.Server, workload: Workload) -> int:
    """Check one answer is right before timing thousands; its size in bytes."""
    raw, key = post(server.url + workload.path, workload.body)
    answer = json.loads(raw)
    problems = []
    if key != API_KEY:
        problems.append(f"X-MIRROR-API-KEY is {key!r}")
    if workload.points is None:
        if answer.get("status") != "OK":
            problems.append(f"answer {answer}")
    else:
        got = len(answer.get("telemetry", {}).get("points", []))
        if got != workload.points:
            problems.append(f"{got} points, expected {workload.points}")
    if problems:
        raise RuntimeError(f"{server.name} {workload.label}: " + "; ".join(problems))
    return len(raw)


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Run:
    workload: str
    server: str
    connections: int
    result: loadgen.LoadResult
    body_bytes: int
    server_cpu: float  # cores the server used on average (1.0 = one core busy)
    wrk_cpu: float
    other_cpu: float  # cores busy with anything else: other programs competing
    cpu_us: float  # server CPU time per request: less sensitive to competition than req/s
    rounds: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "server": self.server,
            "connections": self.connections,
            "body_bytes": self.body_bytes,
            "server_cpu_cores": self.server_cpu,
            "wrk_cpu_cores": self.wrk_cpu,
            "other_cpu_cores": self.other_cpu,
            "server_cpu_us_per_request": self.cpu_us,
            "rounds": self.rounds,
            **self.result.to_json(),
        }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process and its live descendants (gunicorn's
    workers) have used, all threads included."""
    total = 0.0
    root = psutil.Process(pid)
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU time all cores have spent running programs: user + nice + system (/proc/stat).

    irq and softirq are left out: loopback TCP is processed there, and that is the
    benchmark's own traffic, not another program's.
    """
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(ticks) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    server: servers.Server, workload: Workload, connections: int, duration_s: int, body_bytes: int
) -> Run:
    payload = json.dumps(workload.body).encode()
    server_before, wrk_before = cpu_seconds(server.pid), children_cpu_seconds()
    busy_before, started = machine_busy_seconds(), time.monotonic()
    result = loadgen.run_wrk(server.url + workload.path, payload, connections, duration_s)
    elapsed = time.monotonic() - started
    server_cpu_s = cpu_seconds(server.pid) - server_before
    server_cpu = server_cpu_s / elapsed
    wrk_cpu = (children_cpu_seconds() - wrk_before) / elapsed
    busy = (machine_busy_seconds() - busy_before) / elapsed
    return Run(
        workload.label,
        server.name,
        connections,
        result,
        body_bytes,
        server_cpu,
        wrk_cpu,
        max(busy - server_cpu - wrk_cpu, 0.0),
        server_cpu_s / max(result.requests, 1) * 1e6,
    )


def run_load(
    running: dict[str, servers.Server], args: argparse.Namespace, say: Callable[[str], None]
) -> list[Run]:
    """Every workload on its servers at 1 and 32 connections; best round of each kept.

    The servers of a workload take turns, round after round, so that a burst of
    other work on the machine hits all of them alike, and the best round of each
    (as ``timeit`` keeps the best repeat) is the least disturbed one.
    """
    best: list[Run] = []
    for workload in workloads(args):
        sizes = {name: validate(running[name], workload) for name in workload.servers}
        if args.warmup:
            payload = json.dumps(workload.body).encode()
            for name in workload.servers:
                loadgen.run_wrk(running[name].url + workload.path, payload, 32, args.warmup)
        for connections in (1, 32):
            rounds: dict[str, list[Run]] = {name: [] for name in workload.servers}
            for _ in range(args.rounds):
                for name in workload.servers:
                    run = measure(running[name], workload, connections, args.duration, sizes[name])
                    rounds[name].append(run)
            for name in workload.servers:
                best.append(_best(rounds[name]))
                say(_row(best[-1]))
    return best


def _best(rounds: list[Run]) -> Run:
    """The round with the most requests/s, with the errors of all rounds."""
    top = max(rounds, key=lambda r: r.result.requests_per_s)
    errors = sum(r.result.errors for r in rounds)
    return replace(top, result=replace(top.result, errors=errors), rounds=len(rounds))


# --------------------------------------------------------------------------- memory


def measure_memory(mirror: servers.Server, repeats: int = 3) -> dict[str, Any]:
    """The mirror's peak RSS under load, then its RSS after capped huge requests."""
    after_load = servers.memory_kib(mirror.pid)
    huge: list[dict[str, Any]] = []
    for _ in range(repeats):
        started = time.perf_counter()
        raw, _ = post(mirror.url + MetricsRequest.path, huge_body())
        seconds = time.perf_counter() - started
        telemetry = json.loads(raw)["telemetry"]
        huge.append(
            {
                "seconds": seconds,
                "body_bytes": len(raw),
                "points": len(telemetry["points"]),
                "is_partial": telemetry["isPartial"],
                **servers.memory_kib(mirror.pid),
            }
        )
        del raw, telemetry
    return {"after_load_kib": after_load, "huge_requests": huge}


# --------------------------------------------------------------------------- report

HEADER = (
    f"{'request':<16} {'server':<9} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'errors':>6} {'body KB':>8} {'CPU us/req':>10} {'srv CPU':>7} {'wrk CPU':>7} {'other':>5}"
)


def _row(run: Run) -> str:
    r = run.result
    return (
        f"{run.workload:<16} {run.server:<9} {run.connections:>5} {r.requests_per_s:>9.0f} "
        f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>6} {run.body_bytes / 1000:>8.1f} "
        f"{run.cpu_us:>10.0f} "
        f"{run.server_cpu:>7.2f} {run.wrk_cpu:>7.2f} {run.other_cpu:>5.2f}"
    )


def _find(runs: list[Run], workload: str, server: str, connections: int) -> Run:
    return next(
        r for r in runs if (r.workload, r.server, r.connections) == (workload, server, connections)
    )


def _ratio(runs: list[Run], workload: str, top: str, bottom: str, connections: int) -> float:
    over = _find(runs, workload, bottom, connections).result.requests_per_s
    return _find(runs, workload, top, connections).result.requests_per_s / max(over, 1e-9)


def _cpu_ratio(runs: list[Run], workload: str, top: str, bottom: str) -> float:
    """How many times less CPU per request ``top`` needs than ``bottom`` (at 32)."""
    return _find(runs, workload, bottom, 32).cpu_us / max(
        _find(runs, workload, top, 32).cpu_us, 1e-9
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def contention_lines(runs: list[Run]) -> Iterator[str]:
    """A warning when other programs took CPU from the runs: their figures are low."""
    busiest = max(runs, key=lambda r: r.other_cpu)
    if busiest.other_cpu > OTHER_CPU_WARNING:
        yield (
            f"WARNING: other programs used up to {busiest.other_cpu:.2f} cores during the runs "
            f"({busiest.workload}, {busiest.server}, {busiest.connections}): the figures "
            "understate the servers; run again on an idle machine"
        )


def ratio_lines(runs: list[Run]) -> Iterator[str]:
    conn = [_ratio(runs, "test connection", "mirror", "ceiling", c) for c in (1, 32)]
    raw = [_ratio(runs, "3-hour raw", "mirror", "baseline", c) for c in (1, 32)]
    raw2 = [_ratio(runs, "3-hour raw", "mirror x2", "baseline", c) for c in (1, 32)]
    tc32 = _find(runs, "test connection", "mirror", 32).result
    tc_ok = conn[1] >= 0.8 and tc32.p99_ms < 10 and tc32.errors == 0
    yield (
        f"test connection, mirror/ceiling req/s: {conn[0]:.2f}x at 1, {conn[1]:.2f}x at 32; "
        f"p99 at 32 {tc32.p99_ms:.2f} ms, {tc32.errors} errors "
        f"(target >= 0.8x, p99 < 10 ms, 0 errors: {_verdict(tc_ok)})"
    )
    yield (
        f"3-hour raw, mirror/baseline req/s:     {raw[0]:.2f}x at 1, {raw[1]:.2f}x at 32 "
        f"(target >= 5x: {_verdict(min(raw) >= 5)} with one process)"
    )
    yield (
        f"3-hour raw, mirror x2/baseline req/s:  {raw2[0]:.2f}x at 1, {raw2[1]:.2f}x at 32 "
        f"(target >= 5x at 32: {_verdict(raw2[1] >= 5)} with --workers 2; at 1 connection "
        "one request is in flight, so a second worker cannot help)"
    )
    yield (
        "same ratios by server CPU per request at 32 (less sensitive to competing load): "
        f"test connection {_cpu_ratio(runs, 'test connection', 'mirror', 'ceiling'):.2f}x, "
        f"3-hour raw {_cpu_ratio(runs, '3-hour raw', 'mirror', 'baseline'):.2f}x"
    )


def compute_lines(compute: dict[str, Any]) -> Iterator[str]:
    a, j = compute["answer_ms"], compute["answer_and_json_ms"]
    yield (
        f"30-day P99 1h (259,200 raw points -> 720 buckets), in-process, "
        f"{compute['repetitions']} reps:"
    )
    yield (
        f"  service.answer                  min {a['min']:.1f} ms, median {a['median']:.1f} ms "
        f"(target < 30 ms: {_verdict(a['median'] < 30)})"
    )
    yield f"  answer + to_bytes               min {j['min']:.1f} ms, median {j['median']:.1f} ms"
    yield f"  (other programs used {compute['other_cpu_cores']:.2f} cores meanwhile)"


def memory_lines(started_kib: dict[str, int], memory: dict[str, Any]) -> Iterator[str]:
    load = memory["after_load_kib"]
    yield (
        f"mirror RSS: {started_kib.get('VmRSS', 0) / MIB:.0f} MiB after start, "
        f"peak {load.get('VmHWM', 0) / MIB:.0f} MiB during the load runs"
    )
    huge = memory["huge_requests"]
    first = huge[0]
    yield (
        f"10-year range, 1 ms buckets (the mirror caps it): {first['points']:,} buckets, "
        f"isPartial={first['is_partial']}, {first['body_bytes'] / 1e6:.0f} MB body, "
        f"{first['seconds']:.1f} s"
    )
    after = ", ".join(f"{h.get('VmRSS', 0) / MIB:.0f}" for h in huge)
    yield (
        f"  RSS after each of {len(huge)} such requests: {after} MiB; "
        f"peak (VmHWM) {huge[-1].get('VmHWM', 0) / MIB:.0f} MiB"
    )


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
        "mirror_kit": source_version(),
    }


def source_version() -> str:
    """The commit benchmarked, ``+dirty`` when mirror_kit has uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "mirror_kit"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_results(results: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one 2 s round per run, no warm-up (~30 s)"
    )
    parser.add_argument("--duration", type=int, default=3, help="seconds per round (3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per run, best kept (3)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per server (2)")
    parser.add_argument("--reps", type=int, default=20, help="in-process repetitions (20)")
    parser.add_argument("--no-save", action="store_true", help="don't write bench/results/")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="also serve the mirror_kit of the source tree DIR (e.g. `git archive main`) as "
        "server 'before', taking turns with the others on every mirror workload",
    )
    return parser


def _terminate_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the ExitStack that stops the servers


def start_servers(
    stack: contextlib.ExitStack, before: Path | None = None
) -> dict[str, servers.Server]:
    running = {}
    for name in ("mirror", "mirror x2", "baseline", "ceiling", *(["before"] if before else [])):
        port = servers.free_port()
        if name == "before":  # the same command, importing mirror_kit from ``before``
            command = servers.server_commands(port, RAW_POINTS)["mirror"]
            env = {**os.environ, "PYTHONPATH": str(before)}
            running[name] = servers.start(name, command, port, stack, env)
        else:
            command = servers.server_commands(port, RAW_POINTS)[name]
            running[name] = servers.start(name, command, port, stack)
    return running


def workloads(args: argparse.Namespace) -> tuple[Workload, ...]:
    """WORKLOADS, with server 'before' next to 'mirror' when ``--before`` is given."""
    if args.before is None:
        return WORKLOADS
    return tuple(
        replace(w, servers=(*w.servers, "before")) if "mirror" in w.servers else w
        for w in WORKLOADS
    )


def before_lines(runs: list[Run]) -> Iterator[str]:
    """This tree's mirror against the ``--before`` one: req/s and CPU per request."""
    if not any(r.server == "before" for r in runs):
        return
    for workload in dict.fromkeys(r.workload for r in runs if r.server == "before"):
        rates = [_ratio(runs, workload, "mirror", "before", c) for c in (1, 32)]
        yield (
            f"{workload}, mirror/before req/s: {rates[0]:.2f}x at 1, {rates[1]:.2f}x at 32; "
            f"CPU per request at 32: {_cpu_ratio(runs, workload, 'mirror', 'before'):.2f}x less"
        )
    tc = [_ratio(runs, "test connection", "before", "ceiling", c) for c in (1, 32)]
    yield f"test connection, before/ceiling req/s: {tc[0]:.2f}x at 1, {tc[1]:.2f}x at 32"


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    def say(line: str) -> None:
        print(line, flush=True)

    info = {**machine(), "wrk": loadgen.wrk_version()}
    say(
        f"{info['date']}  nproc={info['nproc']} ({info['cpu']})  Python {info['python']}  "
        f"aiohttp {info['aiohttp']}  mirror_kit {info['mirror_kit']}\n{info['wrk']}"
    )
    say(
        f"best of {args.rounds} round(s) of {args.duration} s per run, servers taking turns; "
        f"{args.warmup} s warm-up; wrk -t1, keep-alive\n"
    )
    compute = measure_compute(args.reps)
    with contextlib.ExitStack() as stack:
        running = start_servers(stack, args.before)
        started_kib = servers.memory_kib(running["mirror"].pid)
        say(HEADER)
        runs = run_load(running, args, say)
        memory = measure_memory(running["mirror"])
    for line in [
        "",
        *contention_lines(runs),
        *ratio_lines(runs),
        *before_lines(runs),
        *compute_lines(compute),
        *memory_lines(started_kib, memory),
    ]:
        say(line)
    return {
        "machine": info,
        "settings": {"duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup},
        "runs": [r.to_json() for r in runs],
        "compute": compute,
        "memory": {"after_start_kib": started_kib, **memory},
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 2, 1, 0
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    try:
        results = benchmark(args)
    except loadgen.LoadGeneratorError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        return 130
    if not args.no_save:
        print(f"\nresults: {write_results(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
