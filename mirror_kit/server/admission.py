"""Admission of heavy requests: parsed off the event loop, one at a time, a few queued.

StackState's requests are small (its own mirrors' fixtures are under 1 KB), but
anyone who can reach the port may send bodies up to the body cap: a 1 MiB
``InSetValue`` of 55,000 members costs tens of milliseconds of JSON decoding and
validation, and on the event loop every other client waits for it. So a body
larger than ``heavy_bytes`` (after its Content-Encoding is undone) is parsed in
the admission's one worker thread: the loop keeps serving meanwhile (the parser's
Python code gives the GIL back every switch interval, 5 ms; one C call -- a JSON
decode -- holds it at most as long as a body within the cap takes). One heavy
parse runs at a time, so a small request competes with at most one of them for
the GIL; ``max_waiting`` more may wait their turn (each holds its body, so this
bounds their memory too). Past that a heavy request gets a 503 ``RemoteMirrorError``
"Mirror busy" with ``Retry-After`` at once, before any parsing.

Small bodies are parsed where they arrive, on the loop: handing them to a thread
would cost more than parsing them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from ..protocol import RemoteMirrorError

T = TypeVar("T")

#: Bodies larger than this are parsed off the loop (real requests: under 1 KB).
HEAVY_BODY_BYTES = 32 * 1024
#: Heavy requests that may wait while one is parsed; more get a 503.
MAX_WAITING = 4
#: What a 503 asks the client to wait, in seconds.
RETRY_AFTER_S = 1


class Busy(RemoteMirrorError):
    """A 503 for a heavy request past the queue; ``retry_after_s`` for its header."""

    def __init__(self, summary: str, details: str, retry_after_s: int) -> None:
        super().__init__(summary, details, http_status=503)
        self.retry_after_s = retry_after_s


class Admission:
    """Parses bodies: small ones at once, heavy ones in one worker thread, bounded."""

    def __init__(
        self,
        heavy_bytes: int = HEAVY_BODY_BYTES,
        max_waiting: int = MAX_WAITING,
        retry_after_s: int = RETRY_AFTER_S,
    ) -> None:
        if heavy_bytes < 0 or max_waiting < 0:
            raise ValueError("heavy_bytes and max_waiting must be at least 0")
        self.heavy_bytes = heavy_bytes
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        # Taken when a heavy body is handed to the worker, given back when the worker
        # is done with it (not when its request gives up waiting): the bodies held
        # are bounded even when clients leave.
        self._places = threading.BoundedSemaphore(1 + max_waiting)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="mirror-admission")

    async def parse(self, body: bytes, parse: Callable[[bytes], T]) -> T:
        """``parse(body)``, off the loop if the body is heavy; Busy past the queue."""
        if len(body) <= self.heavy_bytes:
            return parse(body)
        if not self._places.acquire(blocking=False):
            raise Busy(
                "Mirror busy: too many large requests",
                f"{self.max_waiting + 1} requests over {self.heavy_bytes} bytes are being "
                f"parsed or waiting; retry in {self.retry_after_s} s",
                self.retry_after_s,
            )
        try:
            job = self._worker.submit(parse, body)
        except RuntimeError:  # the worker was shut down: the mirror is stopping
            self._places.release()
            raise
        job.add_done_callback(self._release)
        return await asyncio.wrap_future(job)

    def _release(self, job: Future[object]) -> None:
        self._places.release()

    async def aclose(self) -> None:
        """Stop the worker (when the mirror stops, after its requests are answered)."""
        self._worker.shutdown(wait=False, cancel_futures=True)
