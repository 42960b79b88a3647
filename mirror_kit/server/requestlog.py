"""A bounded log of the requests a mirror received, for the notebook to show.

When a real StackState is connected, this is where the user sees its calls arrive.
The buffer keeps the newest ``size`` entries, so memory stays bounded however long
the mirror serves. It is read from other threads (the notebook), hence the lock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


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


class RequestLog:
    def __init__(self, size: int = 500) -> None:
        self._entries: deque[RequestLogEntry] = deque(maxlen=size)
        self._lock = threading.Lock()

    def append(self, entry: RequestLogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, last: int | None = None) -> list[RequestLogEntry]:
        """A copy of the entries, oldest first (only the ``last`` newest if given)."""
        with self._lock:
            items = list(self._entries)
        return items if last is None else items[-last:] if last > 0 else []

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
