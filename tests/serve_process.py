"""``python -m mirror_kit serve`` as a child process on a free loopback port.

For the tests that need a real process: its RSS, its file-descriptor limit, its
signals, its log. ``stderr`` goes to a file, so a chatty mirror cannot fill a pipe.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import psutil
from conftest import free_port
from mirror_wire import CONNECTION, connection_body

REPO = Path(__file__).resolve().parents[1]
READY_S = 60.0


class ServeProcess:
    """A ``serve`` process, answered once Test Connection works (bounded wait)."""

    def __init__(
        self,
        *flags: str,
        preexec_fn: Callable[[], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="mirror-serve-")
        self.log_path = Path(self._dir.name) / "stderr.log"
        self._stopped_log: str | None = None
        with self.log_path.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mirror_kit", "serve", "--port", str(self.port), *flags],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                preexec_fn=preexec_fn,
                env=None if env is None else dict(env),
            )
        deadline = time.monotonic() + READY_S
        while True:
            assert self.process.poll() is None, self.log
            with contextlib.suppress(httpx.TransportError):
                httpx.post(self.url + CONNECTION, json=connection_body(), timeout=5)
                return
            assert time.monotonic() < deadline, "the mirror did not start"
            time.sleep(0.05)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def stop(self) -> str:
        """SIGTERM, wait, and the log; then the files are gone. Idempotent."""
        if self._stopped_log is not None:
            return self._stopped_log
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(READY_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(READY_S)
        self._stopped_log = self.log
        self._dir.cleanup()
        return self._stopped_log
