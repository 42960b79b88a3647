"""Log lines about repeated trouble at most once per interval, never once per event.

A flood (failed accepts, connections past the cap, clients that never read) must
not flood the log: 127 MB of tracebacks in 12 s was what per-event logging gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("mirror_kit.server")

#: Seconds between two log lines about the same kind of trouble.
LOG_INTERVAL_S = 10.0


class Tally:
    """Counts events and logs them at most once per interval, never once per event."""

    def __init__(self, describe: Callable[[Counter[str]], str], interval_s: float) -> None:
        self._describe = describe
        self._interval_s = interval_s
        self._counts: Counter[str] = Counter()
        self._last = float("-inf")
        self._flush: asyncio.TimerHandle | None = None

    def add(self, kind: str, count: int = 1) -> None:
        self._counts[kind] += count
        loop = asyncio.get_running_loop()
        if loop.time() - self._last >= self._interval_s:
            self.flush()
        elif self._flush is None:
            self._flush = loop.call_at(self._last + self._interval_s, self.flush)

    def flush(self) -> None:
        self._flush = None
        if self._counts:
            log.warning("%s", self._describe(self._counts))
            self._counts = Counter()
            with contextlib.suppress(RuntimeError):
                self._last = asyncio.get_running_loop().time()

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        self.flush()
