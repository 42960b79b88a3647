"""What the mirror's own telemetry costs, and whether /metrics counts right under load.

``python bench/bench_telemetry.py [--seconds 3] [--rounds 3]`` starts, each in its own
process on a free 127.0.0.1 port:

* **mirror**: ``python -m mirror_kit serve``, telemetry on (as shipped);
* **no telemetry**: the same with ``setup_metrics`` replaced by a no-op (no timing
  middleware, no /metrics; the counters in service and stores still run);
* **mirror x2**: ``serve --workers 2`` with its own temporary directory.

It drives the first two with wrk (test connection and a 3-hour raw metric query, at 1
and 32 keep-alive connections), taking turns round after round and keeping each one's
best round, and prints requests/s, p50 and the ratio of the two, measured in the same
run. Then it sends the 3-hour query to mirror x2 with wrk and compares the requests
wrk saw answered with what /metrics counts (summed over both workers; it may count up
to one more request per connection, those in flight when wrk stopped), and prints
the bytes the workers' metric files take on disk. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import loadgen
import servers
from bench_mirror import HOUR, T0, metrics_body
from prometheus_client.parser import text_string_to_metric_families

from mirror_kit.protocol import TestConnectionRequest
from mirror_kit.protocol.constants import CONNECTION_PATH, METRICS_PATH

Workload = tuple[str, dict[str, Any]]  # path, body
RAW_3H: Workload = (METRICS_PATH, metrics_body(T0 - 3 * HOUR, T0))
WORKLOADS = {
    "test connection": (CONNECTION_PATH, TestConnectionRequest({}).to_json()),
    "3-hour raw": RAW_3H,
}
WITHOUT_TELEMETRY = (
    "import sys; import mirror_kit.server.app as app; "
    "app.setup_metrics = lambda app, wrap=None: None; "
    "from mirror_kit import cli; sys.exit(cli.main(sys.argv[1:]))"
)


def serve_command(port: int, telemetry: bool = True, workers: int = 1) -> list[str]:
    flags = ["serve", "--host", servers.HOST, "--port", str(port), "--workers", str(workers)]
    if telemetry:
        return [sys.executable, "-m", "mirror_kit", *flags]
    return [sys.executable, "-c", WITHOUT_TELEMETRY, *flags]


def load(url: str, workload: Workload, connections: int, seconds: int) -> loadgen.LoadResult:
    path, body = workload
    return loadgen.run_wrk(url + path, json.dumps(body).encode(), connections, seconds)


def compare(seconds: int, rounds: int) -> None:
    """Telemetry on vs off, single process, best round of each."""
    with contextlib.ExitStack() as stack:
        running = {}
        for name, telemetry in (("mirror", True), ("no telemetry", False)):
            port = servers.free_port()
            running[name] = servers.start(name, serve_command(port, telemetry), port, stack)
        print(f"{'workload':<16} {'conns':>5} {'mirror req/s':>13} {'no-telemetry req/s':>19}"
              f" {'ratio':>6} {'p50 ms (on/off)':>16}")  # fmt: skip
        for workload, request in WORKLOADS.items():
            for connections in (1, 32):
                best: dict[str, loadgen.LoadResult] = {}
                for _ in range(rounds):
                    for name, server in running.items():
                        result = load(server.url, request, connections, seconds)
                        if result.errors:
                            raise SystemExit(f"{name}: {result.errors} errors in {workload}")
                        if name not in best or result.requests_per_s > best[name].requests_per_s:
                            best[name] = result
                on, off = best["mirror"], best["no telemetry"]
                print(f"{workload:<16} {connections:>5} {on.requests_per_s:>13,.0f} "
                      f"{off.requests_per_s:>19,.0f} {on.requests_per_s / off.requests_per_s:>6.3f}"
                      f" {on.p50_ms:>7.2f}/{off.p50_ms:<7.2f}")  # fmt: skip


def metric_total(url: str, method: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mirror_kit_requests_total" and s.labels.get("method") == method
    )


def workers_count(seconds: int) -> None:
    """wrk's count of answered requests against /metrics' count, two workers."""
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp:
        port = servers.free_port()
        # the workers' metric directory is made under TMPDIR: here, to measure it
        with contextlib.ExitStack() as stack, mock.patch.dict(os.environ, {"TMPDIR": tmp}):
            server = servers.start("mirror x2", serve_command(port, workers=2), port, stack)
            result = load(server.url, RAW_3H, 32, seconds)
            counted = metric_total(server.url, "metric")
            files = list(Path(tmp).rglob("*.db"))
            on_disk = _du_bytes(tmp)
            apparent = sum(p.stat().st_size for p in files)
        print(f"\nmirror x2, 3-hour raw at 32 connections for {seconds} s:")
        print(f"  wrk answered {result.requests:,} requests ({result.errors} errors); "
              f"/metrics counts {counted:,.0f} metric requests "
              f"(difference {counted - result.requests:+,.0f}, at most +32 expected)")  # fmt: skip
        print(f"  metric files: {len(files)}, {on_disk:,} bytes on disk "
              f"({apparent:,} bytes apparent: sparse files)")  # fmt: skip


def _du_bytes(directory: str) -> int:
    """Bytes the directory's files take on disk (``du``: sparse files count what is used)."""
    used = subprocess.run(["du", "-sk", directory], capture_output=True, text=True, check=True)
    return int(used.stdout.split()[0]) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server and workload")
    args = parser.parse_args()
    try:
        print(loadgen.wrk_version())
    except loadgen.LoadGeneratorError as error:
        print(error, file=sys.stderr)
        return 2
    compare(args.seconds, args.rounds)
    workers_count(max(args.seconds, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
