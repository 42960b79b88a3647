"""Two mirror replicas behind one address (haproxy) against one, in the same run.

``python bench/replicas.py [--seconds 10] [--rounds 2] [--connections 32]`` starts
two single-process mirrors (``python -m mirror_kit serve``) on free 127.0.0.1 ports
and haproxy (Debian's package) in front of them, as a Kubernetes Service spreads
StackState's requests over the pods: frontend *one* forwards to replica A only,
frontend *two* balances A and B round robin, with ``GET /healthz`` as haproxy's
health check (the Deployment's probes). Then:

1. every request of bench/rotation.py's mix, sent through *two* twice, must answer
   byte for byte what replica A answers directly, and both replicas must have
   answered (haproxy names the one in ``X-Replica``);
2. wrk drives each address (A direct, *one*, *two*) with the four-method rotation
   and with the CPU-bound 30-day PERCENTILE_99 query, round after round, and the
   best round of each is kept (bench/README.md explains why);
3. haproxy's own counters: requests per replica, 5xx answers, and the identity check
   again after the load.

Exit 1 on any wrk error, 5xx, difference or a replica that served nothing. On 2
cores wrk and haproxy share the machine with the replicas, so two replicas cannot
reach twice one: the figures say what one more process buys here, not on a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import functools
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import loadgen
import rotation
import servers
from bench_mirror import children_cpu_seconds, cpu_seconds, machine_busy_seconds
from bench_workers import aggregated_load

from mirror_kit.simulate import Clock, LoadModel, simulate

API_KEY = "api_key"
WARMUP_S = 2
HAPROXY_CONFIG = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 75s
    timeout server 60s
frontend one
    bind {host}:{one}
    default_backend one
frontend two
    bind {host}:{two}
    default_backend two
backend one
    server a {host}:{a}
backend two
    balance roundrobin
    option httpchk GET /healthz
    http-response set-header X-Replica %[srv_name]
    server a {host}:{a} check inter 2s
    server b {host}:{b} check inter 2s
listen stats
    bind {host}:{stats}
    stats enable
    stats uri /stats
"""
LOADS = {"four-method rotation": rotation.run_rotation, "30-day P99 aggregated": aggregated_load}


def start_haproxy(
    a: int, b: int, stack: contextlib.ExitStack
) -> tuple[servers.Server, dict[str, str]]:
    """haproxy in the foreground, and the URLs of its frontends and its stats page."""
    if shutil.which("haproxy") is None:
        raise SystemExit("haproxy not found: apt-get install -y haproxy")
    ports = {name: servers.free_port() for name in ("one", "two", "stats")}
    config = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-haproxy-")))
    config = config / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(host=servers.HOST, a=a, b=b, **ports))
    command = ["haproxy", "-db", "-f", str(config)]
    haproxy = servers.start("haproxy", command, ports["one"], stack)  # waits until it accepts
    return haproxy, {name: f"http://{servers.HOST}:{port}" for name, port in ports.items()}


def wait_healthy(stats_url: str, timeout_s: float = 20.0) -> None:
    """Until haproxy's health checks have seen both replicas up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = haproxy_stats(stats_url)
        if all(rows[("two", server)]["status"] == "UP" for server in ("a", "b")):
            return
        time.sleep(0.2)
    raise SystemExit(f"haproxy did not see both replicas up within {timeout_s:g} s")


def haproxy_stats(stats_url: str) -> dict[tuple[str, str], dict[str, str]]:
    text = httpx.get(stats_url + "/stats;csv", timeout=5).text.lstrip("# ")
    return {(row["pxname"], row["svname"]): row for row in csv.DictReader(io.StringIO(text))}


def identical_answers(direct: str, balanced: str) -> set[str]:
    """Each rotation request twice through the balancer, compared with replica A direct.

    Returns the replicas that answered; raises SystemExit on the first difference.
    """
    replicas: set[str] = set()
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=30, headers=headers) as one, httpx.Client(timeout=30) as two:
        for path, body in rotation.rotation():
            content = json.dumps(body)
            expected = one.post(direct + path, content=content)
            for _ in range(2):
                answer = two.post(balanced + path, content=content, headers=headers)
                replica = answer.headers.get("X-Replica", "?")
                replicas.add(replica)
                if (answer.status_code, answer.content) != (200, expected.content):
                    raise SystemExit(
                        f"{path} via replica {replica}: {answer.status_code}, "
                        f"{answer.content[:200]!r} differs from {expected.content[:200]!r}"
                    )
                if answer.headers.get("X-MIRROR-API-KEY") != API_KEY:
                    raise SystemExit(f"{path} via replica {replica}: no X-MIRROR-API-KEY")
    return replicas


Run = tuple[loadgen.LoadResult, float]  # and the cores other programs used meanwhile


def measured(load: Callable[[], loadgen.LoadResult], pids: list[int]) -> Run:
    """``load()``, and how many cores programs other than ours used while it ran."""
    ours = sum(cpu_seconds(pid) for pid in pids) + children_cpu_seconds()
    busy, start = machine_busy_seconds(), time.monotonic()
    result = load()
    wall = time.monotonic() - start
    ours = sum(cpu_seconds(pid) for pid in pids) + children_cpu_seconds() - ours
    return result, max(0.0, machine_busy_seconds() - busy - ours) / wall


def measure(
    targets: dict[str, str], pids: list[int], seconds: int, rounds: int, connections: int
) -> dict[str, dict[str, list[Run]]]:
    """Every round per (load, target); the targets take turns within each round."""
    runs: dict[str, dict[str, list[Run]]] = {}
    for title, load in LOADS.items():
        runs[title] = {name: [] for name in targets}
        for url in targets.values():
            load(url, connections, WARMUP_S)
        for _ in range(rounds):
            for name, url in targets.items():
                run = measured(functools.partial(load, url, connections, seconds), pids)
                runs[title][name].append(run)
    return runs


def report(runs: dict[str, dict[str, list[Run]]]) -> None:
    """The best round of each, the errors of all rounds, other programs' CPU."""
    for title, results in runs.items():
        best = {n: max(rs, key=lambda r: r[0].requests_per_s) for n, rs in results.items()}
        base = best["1 replica via haproxy"][0].requests_per_s
        print(f"\n{title} (best of {len(next(iter(results.values())))} rounds)")
        print(
            f"{'address':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
            f"{'vs 1':>6} {'other CPU':>9}"
        )
        for name, (r, other) in best.items():
            errors = sum(x.errors for x, _ in results[name])
            print(
                f"{name:<24} {r.requests_per_s:8.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} "
                f"{errors:7d} {r.requests_per_s / base:6.2f} {other:9.2f}"
            )
    print(
        "other CPU: cores used by programs other than the replicas, haproxy and wrk "
        "during that round; above ~0.2 the figures understate what this machine does"
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="seconds per measured round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--streams", type=int, default=200, help="live streams of the simulated hour (200)"
    )
    return parser.parse_args()


def simulated_alike(direct: str, balanced: str, streams: int) -> bool:
    """StackState's polling (``simulate``: ten minutes in 30 s, at the pace one replica
    on a shared machine keeps up with) against one replica and against the balancer:
    both without errors, and every poll answered the same."""
    model = LoadModel(live_streams=streams)
    start = int(time.time() * 1000) // 60_000 * 60_000
    clock = Clock(start_ms=start, duration_s=600, speed=20)
    reports = {}
    for name, url in (("1 replica direct", direct), ("2 replicas via haproxy", balanced)):
        reports[name] = asyncio.run(simulate(url, model=model, clock=clock, api_key=API_KEY))
        print(f"\nsimulate, {name}:")
        print("\n".join("  " + line for line in reports[name].lines()))
    one, two = reports.values()
    compared, differing = one.same_answers(two)
    print(f"simulated polls answered alike: {compared - differing} of {compared}")
    return one.ok and two.ok and compared > 0 and differing == 0


def main() -> int:
    args = _arguments()
    print(f"{loadgen.wrk_version()}; {os.cpu_count()} CPUs; {args.connections} connections")
    with contextlib.ExitStack() as stack:
        replicas = {}
        for name in ("a", "b"):
            port = servers.free_port()
            command = servers.server_commands(port, baseline_points=0)["mirror"]
            replicas[name] = servers.start(f"replica-{name}", command, port, stack)
        haproxy, urls = start_haproxy(replicas["a"].port, replicas["b"].port, stack)
        wait_healthy(urls["stats"])
        answered = identical_answers(replicas["a"].url, urls["two"])
        print(
            f"identical answers: {len(rotation.rotation())} requests x2 via haproxy, "
            f"answered by replicas {sorted(answered)}, byte for byte replica A's"
        )
        if answered != {"a", "b"}:
            raise SystemExit(f"only {answered} answered through the balancer")
        simulated_ok = simulated_alike(replicas["a"].url, urls["two"], args.streams)
        targets = {
            "1 replica direct": replicas["a"].url,
            "1 replica via haproxy": urls["one"],
            "2 replicas via haproxy": urls["two"],
        }
        pids = [r.pid for r in replicas.values()] + [haproxy.pid]
        runs = measure(targets, pids, args.seconds, args.rounds, args.connections)
        report(runs)
        stats = haproxy_stats(urls["stats"])
        served = {s: int(stats[("two", s)]["stot"]) for s in ("a", "b")}
        errors_5xx = sum(int(stats[("two", s)]["hrsp_5xx"] or 0) for s in ("a", "b"))
        print(f"\nhaproxy 'two': requests per replica {served}, 5xx answers {errors_5xx}")
        identical_answers(replicas["a"].url, urls["two"])
        print("identical answers after the load: yes")
    wrk_errors = sum(
        r.errors for results in runs.values() for rs in results.values() for r, _ in rs
    )
    ok = simulated_ok and wrk_errors == 0 and errors_5xx == 0 and min(served.values()) > 0
    print(
        f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"{'OK' if ok else 'FAILED'} (wrk errors {wrk_errors})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
