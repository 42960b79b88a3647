"""Admission of heavy work: done off the event loop, one at a time, a few queued.

StackState's requests are small (its own mirrors' fixtures are under 1 KB), but
anyone who can reach the port may send bodies up to the body cap: an ``InSetValue``
of 13,000 members filling the default 256 KiB costs milliseconds of JSON decoding
and validation, and on the event loop every other client waits for it. So a body
larger than ``heavy_bytes`` (after its Content-Encoding is undone) is parsed in the
admission's one worker thread: the loop keeps serving meanwhile (the parser's Python
code gives the GIL back every switch interval, 5 ms; one C call -- a JSON decode --
holds it as long as the body takes: under 1 ms at 256 KiB, ~4.4 ms at 1 MiB, which
is why the cap is 256 KiB). One heavy parse runs at a time, so a small request
competes with at most one of them for the GIL; ``max_waiting`` more may wait their
turn (each holds its body, so this bounds their memory too). Past that a heavy
request gets a 503 ``RemoteMirrorError`` "Mirror busy" with ``Retry-After`` at once,
before any parsing.

Answers are the other heavy work a caller can ask for within the limits: 50,000
points (the answer cap) take 25-35 ms to encode, and a client that asks for them
without waiting for the answers (a flood) would keep the loop busy with nothing
else. So an answer of more than ``heavy_items`` points (or field names or values)
is encoded by the same worker (one job at a time, parse or encode), with its own
queue: an answer is only encoded, its work is done, so more of them may wait.

Small bodies and answers are handled where they are, on the loop: handing them to
a thread would cost more than the work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..protocol import (
    FieldNamesResponse,
    FieldValuesResponse,
    MetricsResponse,
    MirrorResponse,
    RemoteMirrorError,
)

A = TypeVar("A")
T = TypeVar("T")

#: Bodies larger than this are parsed off the loop (real requests: under 1 KB).
HEAVY_BODY_BYTES = 32 * 1024
#: Answers with more points (or field names or values) than this are encoded off the loop.
HEAVY_ANSWER_ITEMS = 5_000
#: Heavy requests that may wait while one is parsed or encoded; more get a 503.
MAX_WAITING = 4
#: Heavy answers that may wait while one is encoded (each holds at most the answer
#: cap's points, 50,000 x 16 bytes); more get a 503.
MAX_WAITING_ANSWERS = 32
#: What a 503 asks the client to wait, in seconds.
RETRY_AFTER_S = 1


class Busy(RemoteMirrorError):
    """A 503 for a heavy request past the queue; ``retry_after_s`` for its header."""

    def __init__(self, summary: str, details: str, retry_after_s: int) -> None:
        super().__init__(summary, details, http_status=503)
        self.retry_after_s = retry_after_s


class Admission:
    """Parses bodies and encodes answers: small ones at once, heavy ones in one worker
    thread, a bounded number waiting."""

    def __init__(
        self,
        heavy_bytes: int = HEAVY_BODY_BYTES,
        heavy_items: int = HEAVY_ANSWER_ITEMS,
        max_waiting: int = MAX_WAITING,
        max_waiting_answers: int = MAX_WAITING_ANSWERS,
        retry_after_s: int = RETRY_AFTER_S,
    ) -> None:
        if min(heavy_bytes, heavy_items, max_waiting, max_waiting_answers) < 0:
            raise ValueError("the bounds of an Admission must be at least 0")
        self.heavy_bytes = heavy_bytes
        self.heavy_items = heavy_items
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        # Taken when heavy work is handed to a worker, given back when the worker is
        # done with it (not when its request gives up waiting): what is held stays
        # bounded even when clients leave.
        self._places = threading.BoundedSemaphore(1 + max_waiting)
        self._answer_places = threading.BoundedSemaphore(1 + max_waiting_answers)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="mirror-admission")

    async def parse(self, body: bytes, parse: Callable[[bytes], T]) -> T:
        """``parse(body)``, off the loop if the body is heavy; Busy past the queue."""
        if len(body) <= self.heavy_bytes:
            return parse(body)
        return await self._off_the_loop(self._places, parse, body)

    async def encode(self, response: MirrorResponse) -> bytes:
        """``response.to_bytes()``, off the loop if it is heavy; Busy past the queue."""
        if answer_items(response) <= self.heavy_items:
            return response.to_bytes()
        return await self._off_the_loop(self._answer_places, _to_bytes, response)

    async def _off_the_loop(
        self,
        places: threading.BoundedSemaphore,
        work: Callable[[A], T],
        argument: A,
    ) -> T:
        if not places.acquire(blocking=False):
            raise Busy(
                "Mirror busy: too many large requests",
                "as many large request bodies or answers as the mirror queues are being "
                f"handled or waiting; retry in {self.retry_after_s} s",
                self.retry_after_s,
            )
        try:
            job = self._worker.submit(work, argument)
        except RuntimeError:  # the worker was shut down: the mirror is stopping
            places.release()
            raise
        job.add_done_callback(lambda _: places.release())
        return await asyncio.wrap_future(job)

    async def aclose(self) -> None:
        """Stop the worker (when the mirror stops, after its requests are answered)."""
        self._worker.shutdown(wait=False, cancel_futures=True)


def answer_items(response: MirrorResponse) -> int:
    """What makes an answer's encoding cost: its points, field names or field values."""
    if isinstance(response, MetricsResponse):
        return len(response.telemetry.values)
    if isinstance(response, FieldNamesResponse):
        return len(response.fields)
    if isinstance(response, FieldValuesResponse):
        return len(response.values)
    return 0


def _to_bytes(response: MirrorResponse) -> bytes:
    return response.to_bytes()
