"""A bounded log of the requests a mirror received, for the notebook to show.

When a real StackState is connected, this is where the user sees its calls arrive.
The buffer keeps the newest ``size`` entries, so memory stays bounded however long
the mirror serves. It is read from other threads (the notebook), hence the lock.

Recording is on every request's path and reading is rare, so ``record`` keeps the
bare facts (a tuple, the parsed request's ``summary`` method uncalled) and
``entries`` builds the RequestLogEntry objects and summaries when someone looks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

#: A request's summary, or what makes it when the log is read.
Subject = str | Callable[[], str]


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


_Record = tuple[float, float, str, str, Subject, int, "int | None"]


class RequestLog:
    def __init__(self, size: int = 500) -> None:
        self._entries: deque[_Record] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(
        self,
        started: float,
        method: str,
        path: str,
        subject: Subject,
        status: int,
        points: int | None = None,
    ) -> None:
        """Log a request answered now that started at ``started`` (time.perf_counter)."""
        latency_s = time.perf_counter() - started
        record = (time.time() - latency_s, latency_s, method, path, subject, status, points)
        with self._lock:
            self._entries.append(record)

    def entries(self, last: int | None = None) -> list[RequestLogEntry]:
        """A copy of the entries, oldest first (only the ``last`` newest if given)."""
        with self._lock:
            records = list(self._entries)
        records = records if last is None else records[-last:] if last > 0 else []
        return [_entry(*record) for record in records]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def summary_of(subject: Subject) -> str:
    """The summary text a subject stands for."""
    return subject if isinstance(subject, str) else subject()


def _entry(
    arrived: float,
    latency_s: float,
    method: str,
    path: str,
    subject: Subject,
    status: int,
    points: int | None,
) -> RequestLogEntry:
    summary = summary_of(subject)
    return RequestLogEntry(arrived, method, path, summary, status, latency_s * 1000.0, points)
