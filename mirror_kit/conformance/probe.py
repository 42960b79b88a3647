"""HTTP exchanges with a mirror under test that never raise, never hang, never flood.

The checker talks to mirrors that may be broken in any way: hang, drop the
connection, trickle bytes, answer garbage or gigabytes. Every POST here therefore
returns an ``Exchange`` (the answer, or why there is none) instead of raising; it
is bounded by a per-request deadline and a body size cap; and after two timeouts on
a path the probe sends nothing more there, so a hung mirror costs at most eight
timeouts (four paths), not one per check.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx

from ..protocol.constants import API_KEY_HEADER

#: Answers larger than this are not read to the end (a mirror must not flood StackState).
MAX_ANSWER_BYTES = 64 << 20
#: After this many timeouts on a path, that path is considered hung: nothing more is sent.
GIVE_UP_AFTER_TIMEOUTS = 2
#: Cut mirror-provided text at this length in reasons.
SNIPPET_CHARS = 160

NOT_JSON = object()


class _Cut(Exception):
    """The answer was abandoned part-way (too slow or too large)."""

    def __init__(self, reason: str, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Exchange:
    """One request and its answer (``response``) or the reason there is none (``error``)."""

    path: str
    sent: str
    response: httpx.Response | None
    error: str | None = None
    timed_out: bool = False

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    @property
    def answered(self) -> bool:
        return self.response is not None

    @property
    def success(self) -> bool:
        return self.response is not None and self.response.is_success

    @property
    def api_key(self) -> str | None:
        return None if self.response is None else self.response.headers.get(API_KEY_HEADER)

    @cached_property
    def body(self) -> Any:
        """The answer's JSON, or ``NOT_JSON``. ``NaN``/``Infinity`` (not JSON, but Python's
        json reads them) come back as floats so that the checks can report them."""
        if self.response is None:
            return NOT_JSON
        try:
            return json.loads(self.response.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return NOT_JSON

    @property
    def is_json(self) -> bool:
        return self.body is not NOT_JSON

    def describe(self) -> str:
        """The request as a line a reader can replay: ``POST /api/metric {...}``."""
        return f"POST {self.path} {self.sent}"

    def outcome(self) -> str:
        """What came back, in a few words: ``HTTP 400 {...}`` or the transport error."""
        if self.response is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.status} {snippet(self.response.text)}"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """Mirror-provided text made safe for a one-line report: no newlines, bounded."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


class Probe:
    """Sends POSTs to one mirror; records every exchange for the checks on all answers."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.exchanges: list[Exchange] = []
        self._timeouts: Counter[str] = Counter()
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def gave_up(self, path: str) -> bool:
        return self._timeouts[path] >= GIVE_UP_AFTER_TIMEOUTS

    def post_json(self, path: str, body: Any) -> Exchange:
        return self.post(path, json.dumps(body))

    def post(self, path: str, text: str) -> Exchange:
        """POST ``text`` as application/json; always returns, within about ``timeout``."""
        if self.gave_up(path):
            exchange = Exchange(
                path,
                text,
                None,
                f"not sent: {path} did not answer {GIVE_UP_AFTER_TIMEOUTS} requests "
                f"within {self.timeout:g} s",
            )
        else:
            exchange = self._send(path, text)
            self._timeouts[path] += exchange.timed_out
        self.exchanges.append(exchange)
        return exchange

    def _send(self, path: str, text: str) -> Exchange:
        deadline = time.monotonic() + self.timeout
        try:
            with self._http.stream(
                "POST",
                path,
                content=text.encode("utf-8"),
                headers={"Content-Type": "application/json"},
            ) as answer:
                return Exchange(path, text, _detached(answer, _read_bounded(answer, deadline)))
        except _Cut as cut:
            return Exchange(path, text, None, str(cut), timed_out=cut.timed_out)
        except httpx.TimeoutException as error:
            return Exchange(path, text, None, f"timed out: {error!r}", timed_out=True)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            return Exchange(path, text, None, f"{type(error).__name__}: {error}")

    def close(self) -> None:
        self._http.close()


def _read_bounded(answer: httpx.Response, deadline: float) -> bytes:
    """The body; raises _Cut when it is too slow or too large."""
    chunks: list[bytes] = []
    size = 0
    for chunk in answer.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _Cut(f"answer larger than {MAX_ANSWER_BYTES} bytes", timed_out=False)
        if time.monotonic() > deadline:
            raise _Cut("no complete answer within the timeout", timed_out=True)
    return b"".join(chunks)


def _detached(answer: httpx.Response, content: bytes) -> httpx.Response:
    """A closed-stream copy of ``answer`` holding the decoded body (for read_answer)."""
    skip = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in skip]
    return httpx.Response(
        answer.status_code, headers=headers, content=content, request=answer.request
    )
