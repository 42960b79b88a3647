"""A bounded log of the requests a mirror received, for the notebook to show.

When a real StackState is connected, this is where the user sees its calls arrive.
The log is bounded twice: it keeps the newest ``size`` entries, and no more than
``max_bytes`` of them, so memory stays within a fixed budget however long the
mirror serves and whatever the requests hold. It is read from other threads (the
notebook), hence the lock.

Each entry is rendered when it is recorded and cut to a few hundred characters: the
log never keeps a parsed request (a 1 MiB ``connectionDetails``, a huge
``InSetValue``) alive, only its short summary.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

#: Characters kept of a summary, a path and a method name; the rest becomes "...".
SUMMARY_CHARS = 240
PATH_CHARS = 120
METHOD_CHARS = 24
#: What an entry costs besides its strings (the tuple, floats, ints), in bytes.
ENTRY_OVERHEAD_BYTES = 160


@dataclass(slots=True)  # not frozen: one is built per request, frozen init is slower
class RequestLogEntry:
    time: float  # epoch seconds when the request arrived
    method: str  # "connection", "field/name", "field/value", "metric", or the HTTP method
    path: str
    summary: str  # conditions and options, or the error
    status: int
    latency_ms: float
    points: int | None = None  # metric points returned, for metric requests

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_Record = tuple[float, float, str, str, str, int, "int | None", int]


class RequestLog:
    def __init__(self, size: int = 500, max_bytes: int = 512 * 1024) -> None:
        self._entries: deque[_Record] = deque(maxlen=size)
        self._bytes = 0
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def record(
        self,
        started: float,
        method: str,
        path: str,
        summary: str,
        status: int,
        points: int | None = None,
    ) -> None:
        """Log a request answered now that started at ``started`` (time.perf_counter)."""
        latency_s = time.perf_counter() - started
        method, path = shorten(method, METHOD_CHARS), shorten(path, PATH_CHARS)
        summary = shorten(summary, SUMMARY_CHARS)
        cost = ENTRY_OVERHEAD_BYTES + sum(map(sys.getsizeof, (method, path, summary)))
        record = (time.time() - latency_s, latency_s, method, path, summary, status, points, cost)
        with self._lock:
            entries = self._entries
            if len(entries) == entries.maxlen:
                self._bytes -= entries[0][-1]  # append drops the oldest
            entries.append(record)
            self._bytes += cost
            while self._bytes > self.max_bytes and len(entries) > 1:
                self._bytes -= entries.popleft()[-1]

    def entries(self, last: int | None = None) -> list[RequestLogEntry]:
        """A copy of the entries, oldest first (only the ``last`` newest if given)."""
        with self._lock:
            records = list(self._entries)
        records = records if last is None else records[-last:] if last > 0 else []
        return [_entry(*record) for record in records]

    @property
    def size_bytes(self) -> int:
        """What the entries cost, as the budget counts it (at most ``max_bytes``)."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with "..."."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _entry(
    arrived: float,
    latency_s: float,
    method: str,
    path: str,
    summary: str,
    status: int,
    points: int | None,
    cost: int,
) -> RequestLogEntry:
    return RequestLogEntry(arrived, method, path, summary, status, latency_s * 1000.0, points)
