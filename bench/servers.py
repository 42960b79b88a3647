"""The servers under test, each in its own process, and their guaranteed shutdown.

Each server gets its own interpreter so that neither the load generator nor the
other servers share its GIL. Every process is registered with an ExitStack the
moment it starts, so it is terminated on success, error and Ctrl-C alike; on
Linux the kernel also sends it SIGTERM if the benchmark itself dies (prctl
PR_SET_PDEATHSIG), so no server outlives a killed run.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it; the server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_commands(port: int, baseline_points: int) -> dict[str, list[str]]:
    """How to start each server on ``port`` (``mirror x2``: two gunicorn workers)."""
    python = sys.executable
    mirror = [python, "-m", "mirror_kit", "serve", "--host", HOST, "--port", str(port)]
    return {
        "mirror": mirror,
        "mirror x2": [*mirror, "--workers", "2"],
        "baseline": [
            python,
            str(BENCH_DIR / "baseline_sample_mirror.py"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--points",
            str(baseline_points),
        ],
        "ceiling": [python, str(BENCH_DIR / "ceiling_app.py"), "--host", HOST, "--port", str(port)],
    }


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the benchmark process dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start(
    name: str,
    command: list[str],
    port: int,
    stack: contextlib.ExitStack,
    env: dict[str, str] | None = None,
) -> Server:
    """Start one server, register its shutdown with ``stack``, wait until it accepts."""
    log = stack.enter_context(tempfile.TemporaryFile(prefix=f"bench-{name}-"))  # noqa: SIM115
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,  # Ctrl-C reaches only the benchmark, which stops them
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    server = Server(name, process, port, log)
    stack.callback(stop, server)
    _wait_ready(server)
    return server


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not accept connections within {READY_TIMEOUT_S:g} s")


def stop(server: Server) -> None:
    """SIGTERM, then SIGKILL if it has not exited within a few seconds."""
    if server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(STOP_TIMEOUT_S)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak resident set) of a live process, in KiB (Linux)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out
