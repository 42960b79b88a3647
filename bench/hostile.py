"""A well-behaved client's latency while hostile clients run, against the idle mirror.

One ``python -m mirror_kit serve`` process (default settings). The well-behaved
client asks what StackState asks (test connection, an hour of raw points, a day
aggregated), one request at a time, for ``--seconds``: first alone (idle), then
while hostile clients run in their own processes, each within the documented limits:

* big ``connectionDetails``: test connections of 93 % of the body cap (``--max-body``,
  the mirror's default unless given), as a list of short strings;
* unique ``InSetValue`` sets of 88 % of the body cap in metric requests;
* idle connections: 1,500 opened and held (past the 1,000-connection cap);
* non-readers: clients asking for an answer and never reading it (64 KB window);
* encoding abuse: gzip bombs, ``Content-Encoding: gzip`` on plain bodies, ``br``.

Each hostile sender waits ``--pace`` seconds between its requests (0: back to back).
Printed side by side: p50/p99 idle and hostile, their ratio, and the mirror's RSS
before and after. Targets (reported, not asserted): hostile p99 under 5x idle p99,
RSS growth under 100 MiB.

    .venv/bin/python bench/hostile.py [--seconds 20] [--pace 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil

from mirror_kit.server.settings import ServerSettings

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600_000
HOUR = 3_600_000
DAY = 24 * HOUR
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def condition(key: str, value: object) -> dict[str, object]:
    kind = "InSetValue" if isinstance(value, list) else "StringValue"
    return {"key": key, "value": {"value": value, "_type": kind}, "_type": "EqualityCondition"}


def metric(start: int, end: int, where: dict[str, object], bucket: int | None = None) -> bytes:
    query: dict[str, object] = {
        "_type": "MetricsQuery",
        "conditions": [condition(k, v) for k, v in where.items()],
        "startTime": start,
        "endTime": end,
        "limit": 2_147_483_647,
    }
    if bucket:
        query["aggregation"] = {"method": "MEAN", "bucketSizeMillis": bucket}
    return json.dumps({"_type": "MetricsRequest", "connectionDetails": {}, "query": query}).encode()


A_CPU = {"host": "a-host", "metric": "cpu.user"}
WELL_BEHAVED = [
    ("/api/connection", b'{"_type": "TestConnectionRequest", "connectionDetails": {}}'),
    ("/api/metric", metric(T0, T0 + HOUR, A_CPU)),
    ("/api/metric", metric(T0, T0 + DAY, A_CPU, bucket=HOUR)),
]


def well_behaved(url: str, seconds: float) -> list[float]:
    """Latencies (s) of the well-behaved client's requests, sent one after another."""
    latencies = []
    with httpx.Client(base_url=url, timeout=120) as http:
        deadline = time.monotonic() + seconds
        index = 0
        while time.monotonic() < deadline:
            path, body = WELL_BEHAVED[index % len(WELL_BEHAVED)]
            started = time.perf_counter()
            answer = http.post(path, content=body, headers={"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text[:200]
            index += 1
    return latencies


# --- hostile clients, each run in its own process until terminated ----------------------


#: Hostile requests answered (the senders'), by status class: 2xx, 503, other; and
#: requests sent without reading (non-readers). Shared with the forked senders.
SENT = multiprocessing.Array("l", 4)


def _count(slot: int) -> None:
    with SENT.get_lock():
        SENT[slot] += 1


def _sender(
    port: int, pace: float, bodies: Callable[[int], tuple[str, bytes, dict[str, str]]]
) -> None:
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=120) as http:
        index = 0
        while True:
            path, body, headers = bodies(index)
            with contextlib.suppress(httpx.HTTPError):
                answer = http.post(
                    path, content=body, headers={"Content-Type": "application/json", **headers}
                )
                _count(0 if answer.status_code < 300 else 1 if answer.status_code == 503 else 2)
            index += 1
            time.sleep(pace)


#: Stands for a request's index in the templates below: each body is unique, and
#: made with one bytes.replace (building it as JSON took the sender ~50 ms of CPU,
#: so on a 2-core machine the hostile clients starved the mirror of CPU).
MARK = b"IIIIIII"


def _details(members: int) -> bytes:
    pad = [f"{MARK.decode()}-{i}" for i in range(members)]
    request = {"_type": "TestConnectionRequest", "connectionDetails": {"pad": pad}}
    return json.dumps(request).encode()


def _in_set(members: int) -> bytes:
    hosts = [f"{MARK.decode()}-{m:07d}" for m in range(members)] + ["a-host"]
    return metric(T0, T0 + HOUR, {"host": hosts, "metric": "cpu.user"})


def filling(make: Callable[[int], bytes], size: int) -> bytes:
    """``make(n)`` with as many members as keep it under ``size`` bytes (after the
    index replaces MARK: same length)."""
    per_member = (len(make(2_000)) - len(make(1_000))) / 1_000
    members = int((size - len(make(0))) / per_member)
    while len(make(members)) >= size:
        members -= 100
    return make(members)


def big_details(template: bytes, index: int) -> tuple[str, bytes, dict[str, str]]:
    return "/api/connection", template.replace(MARK, b"%07d" % index), {}


def unique_in_set(template: bytes, index: int) -> tuple[str, bytes, dict[str, str]]:
    return "/api/metric", template.replace(MARK, b"%07d" % index), {}


PLAIN = b'{"_type": "TestConnectionRequest", "connectionDetails": {}}'
BOMB = zlib.compress(b" " * (64 * MiB), 1)


def bad_encodings(index: int) -> tuple[str, bytes, dict[str, str]]:
    kind = index % 4
    if kind == 0:
        return "/api/connection", BOMB, {"Content-Encoding": "deflate"}
    if kind == 1:
        return "/api/connection", PLAIN, {"Content-Encoding": "gzip"}
    if kind == 2:
        return "/api/connection", PLAIN, {"Content-Encoding": "br"}
    return "/api/connection", gzip.compress(PLAIN)[:-5], {"Content-Encoding": "gzip"}


def idle_connections(port: int, pace: float) -> None:
    held = []
    while True:
        if len(held) >= 1_500:
            held.pop(0).close()
        with contextlib.suppress(OSError):
            held.append(socket.create_connection((HOST, port), timeout=5))
        time.sleep(pace / 50)


def non_readers(port: int, pace: float) -> None:
    body = metric(T0, T0 + 7 * DAY, A_CPU)  # 50,000 points, ~2.4 MB
    request = (
        f"POST /api/metric HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    held = []
    while True:
        if len(held) >= 150:
            held.pop(0).close()
        with contextlib.suppress(OSError):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((HOST, port))
            sock.sendall(request)
            held.append(sock)
            _count(3)
        time.sleep(pace)


KINDS = ("details", "encodings", "idle", "in-set", "non-readers")


def hostile_client(kind: str, max_body: int) -> tuple[Callable[..., None], tuple[object, ...]]:
    """A hostile client's function and its arguments after port and pace; the two big
    bodies fill the mirror's body cap (~93 % and ~88 % of it: within the limits)."""
    if kind == "details":
        return _sender, (functools.partial(big_details, filling(_details, int(0.93 * max_body))),)
    if kind == "in-set":
        return _sender, (functools.partial(unique_in_set, filling(_in_set, int(0.88 * max_body))),)
    if kind == "encodings":
        return _sender, (bad_encodings,)
    return {"idle": idle_connections, "non-readers": non_readers}[kind], ()


def _niced(target: Callable[..., None], *args: object) -> None:
    """Run a hostile client at a lower CPU priority: an attacker's CPU is not the
    mirror's (its clients are elsewhere); on a shared 2-core machine they would
    otherwise take the mirror's core."""
    os.nice(10)
    target(*args)


def hostile_processes(
    port: int, pace: float, kinds: list[str], max_body: int
) -> list[multiprocessing.Process]:
    processes = []
    for kind in kinds:
        target, args = hostile_client(kind, max_body)
        processes.append(
            multiprocessing.Process(target=_niced, args=(target, port, pace, *args), daemon=True)
        )
    return processes


# --- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def mirror(max_body: int) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    command = [sys.executable, "-m", "mirror_kit", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--max-body", str(max_body)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.post(url + "/api/connection", content=PLAIN, timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the mirror did not start") from None
                time.sleep(0.05)
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
        lines = err.decode(errors="replace").splitlines()
        print(f"\nmirror log: {len(err)} bytes, {len(lines)} lines; last lines:")
        for line in lines[-4:]:
            print("  " + line[:160])


def load() -> str:
    return " ".join(f"{x:.1f}" for x in psutil.getloadavg())


def quantiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase (20)")
    parser.add_argument("--pace", type=float, default=0.2, help="s between hostile requests")
    parser.add_argument("--only", nargs="+", choices=KINDS, default=list(KINDS), help="kinds")
    parser.add_argument(
        "--max-body",
        type=int,
        default=ServerSettings().max_body_bytes,
        help="the mirror's body cap, which the big hostile bodies fill (its default)",
    )
    args = parser.parse_args(argv)
    with mirror(args.max_body) as (url, process):
        well_behaved(url, 2.0)  # warm-up
        rss_before = process.memory_info().rss
        idle = well_behaved(url, args.seconds)
        rss_idle = process.memory_info().rss
        port = int(url.rsplit(":", 1)[1])
        hostile = hostile_processes(port, args.pace, args.only, args.max_body)
        for child in hostile:
            child.start()
        time.sleep(2.0)  # let the hostile clients get going
        try:
            cpu_before, started = sum(process.cpu_times()[:2]), time.monotonic()
            attacked = well_behaved(url, args.seconds)
            cpu_share = (sum(process.cpu_times()[:2]) - cpu_before) / (time.monotonic() - started)
            rss_peak = process.memory_info().rss
        finally:
            for child in hostile:
                child.terminate()
                child.join(10)
        time.sleep(2.0)
        rss_after = process.memory_info().rss
    idle_p50, idle_p99 = quantiles(idle)
    hostile_p50, hostile_p99 = quantiles(attacked)
    print(f"\nwell-behaved client, {args.seconds:g} s per phase, hostile pace {args.pace:g} s")
    print(f"hostile clients: {', '.join(args.only)}; body cap {args.max_body:,} bytes")
    print(f"{'':22}{'idle':>10}{'hostile':>10}{'ratio':>8}")
    print(f"{'requests':22}{len(idle):>10}{len(attacked):>10}")
    print(f"{'p50 (ms)':22}{idle_p50:>10.2f}{hostile_p50:>10.2f}{hostile_p50 / idle_p50:>8.2f}")
    print(f"{'p99 (ms)':22}{idle_p99:>10.2f}{hostile_p99:>10.2f}{hostile_p99 / idle_p99:>8.2f}")
    print(
        f"RSS (MiB): before {rss_before / MiB:.1f}, after idle {rss_idle / MiB:.1f}, "
        f"during hostile {rss_peak / MiB:.1f}, after {rss_after / MiB:.1f}: "
        f"growth {(max(rss_peak, rss_after) - rss_before) / MiB:+.1f}"
    )
    ok, busy, other, unread = SENT[:]
    print(
        f"hostile requests: {ok} answered 2xx, {busy} 503, {other} other 4xx/5xx "
        f"(bad encodings: 400/413); {unread} sent and never read"
    )
    print(f"mirror CPU while hostile: {cpu_share:.0%} of one core; load average {load()}")
    ok_latency = hostile_p99 < 5 * idle_p99
    ok_rss = max(rss_peak, rss_after) - rss_before < 100 * MiB
    print(
        f"target p99 < 5x idle: {'met' if ok_latency else 'NOT met'}; "
        f"RSS growth < 100 MiB: {'met' if ok_rss else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
