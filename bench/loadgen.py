"""Load generation with wrk: closed-loop keep-alive POSTs, results parsed from one line.

wrk is written in C and drives many connections from one thread with epoll. On a
2-core machine the generator competes with the server for CPU, and wrk needs a
fraction of what a Python client pool would to issue the same requests, so more
of the second core is left to the server and the figures say more about it.
``post_body.lua`` sets the method and body and prints the results as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("post_body.lua")
RESULT_PREFIX = "WRK_RESULT "


class LoadGeneratorError(RuntimeError):
    """wrk is missing, failed, or printed no result line."""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured; latencies in milliseconds."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    bytes_read: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_s": self.requests_per_s}


def wrk_version() -> str:
    """wrk's version line; raises LoadGeneratorError with an install hint if absent."""
    if shutil.which("wrk") is None:
        raise LoadGeneratorError(
            "wrk not found: install it (Debian/Ubuntu: `apt-get install -y wrk`, "
            "macOS: `brew install wrk`) and run the benchmark again"
        )
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def run_wrk(
    url: str, body: bytes, connections: int, duration_s: int, timeout_s: int = 30
) -> LoadResult:
    """POST ``body`` to ``url`` over ``connections`` keep-alive connections for a while.

    One wrk thread: it saturates any of these servers, and a second thread would
    take CPU from the server under test.
    """
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        env = {"BENCH_BODY_FILE": str(body_file)}
        return run_script(url, LUA_SCRIPT, env, connections, duration_s, timeout_s)


def run_script(
    url: str,
    script: Path,
    env: dict[str, str],
    connections: int,
    duration_s: int,
    timeout_s: int = 30,
) -> LoadResult:
    """Run wrk (one thread, keep-alive) with a Lua ``script`` that prints a result line."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=duration_s + timeout_s + 30,
        check=False,
    )
    return _parse(done)


def _parse(done: subprocess.CompletedProcess[str]) -> LoadResult:
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            raw = json.loads(line[len(RESULT_PREFIX) :])
            errors = sum(int(raw[k]) for k in ("connect", "read", "write", "status", "timeout"))
            return LoadResult(
                requests=int(raw["requests"]),
                duration_s=raw["duration_us"] / 1e6,
                p50_ms=raw["p50_us"] / 1e3,
                p99_ms=raw["p99_us"] / 1e3,
                max_ms=raw["max_us"] / 1e3,
                errors=errors,
                bytes_read=int(raw["bytes"]),
            )
    raise LoadGeneratorError(
        f"wrk exited {done.returncode} without a result line:\n{done.stdout}\n{done.stderr}"
    )
