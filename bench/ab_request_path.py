"""A/B of two mirror_kit trees' request path: server CPU per request, in turns.

``python bench/ab_request_path.py OTHER_TREE [--blocks 20]`` starts ``python -m
mirror_kit serve`` twice on free 127.0.0.1 ports, once from this checkout and once
with PYTHONPATH=OTHER_TREE (e.g. ``git archive main | tar -x -C /tmp/main``). One
keep-alive connection to each sends blocks of 300 sequential requests, the two
servers alternating block by block (A B, B A, ...), and each block's server CPU
time (user + system, from /proc via psutil) is divided by its requests. The
pairwise median of this/other is printed per workload: fine-grained turns keep the
ratio meaningful when other programs load the machine; the absolute figures are not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
from pathlib import Path

import psutil
import servers

T0 = 1_767_225_600_000
HOUR = 3_600_000
BLOCK = 300
WHERE = [
    {"_type": "EqualityCondition", "key": k, "value": {"_type": "StringValue", "value": v}}
    for k, v in (("host", "a-host"), ("metric", "cpu.user"))
]
WORKLOADS = {
    "test connection": ("/api/connection", {"_type": "TestConnectionRequest"}),
    "3-hour raw": (
        "/api/metric",
        {
            "_type": "MetricsRequest",
            "connectionDetails": {},
            "query": {"_type": "MetricsQuery", "startTime": T0 - 3 * HOUR, "endTime": T0,
                      "conditions": WHERE, "limit": 2_147_483_647},
        },
    ),
}  # fmt: skip


def request_bytes(path: str, body: dict[str, object]) -> bytes:
    payload = json.dumps({"connectionDetails": {}, **body}).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload


def exchange(sock: socket.socket, request: bytes, count: int) -> None:
    """``count`` requests, each answer read whole (and checked to be a 200)."""
    for _ in range(count):
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(1 << 16)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += sock.recv(1 << 16)


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other source tree (holds mirror_kit/)")
    parser.add_argument("--blocks", type=int, default=20, help="blocks per server (20)")
    args = parser.parse_args()
    trees = {"this": None, "other": str(args.other.resolve())}
    with contextlib.ExitStack() as stack:
        running = {}
        for name, tree in trees.items():
            port = servers.free_port()
            command = servers.server_commands(port, 0)["mirror"]
            env = None if tree is None else {**os.environ, "PYTHONPATH": tree}
            running[name] = servers.start(name, command, port, stack, env)
        for label, (path, body) in WORKLOADS.items():
            request = request_bytes(path, body)
            socks = {n: stack.enter_context(socket.create_connection((servers.HOST, s.port)))
                     for n, s in running.items()}  # fmt: skip
            for name in socks:
                exchange(socks[name], request, BLOCK)  # warm-up
            per_request: dict[str, list[float]] = {name: [] for name in socks}
            for block in range(args.blocks):
                for name in ("this", "other") if block % 2 == 0 else ("other", "this"):
                    before = cpu_s(running[name].pid)
                    exchange(socks[name], request, BLOCK)
                    per_request[name].append((cpu_s(running[name].pid) - before) / BLOCK * 1e6)
            mine, theirs = per_request["this"], per_request["other"]
            ratio = statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
            print(
                f"{label}: server CPU per request, median of {args.blocks} blocks of {BLOCK}: "
                f"this {statistics.median(mine):.0f} us, other {statistics.median(theirs):.0f} "
                f"us; this/other {ratio:.3f} (pairwise median)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
