"""Prometheus' HTTP API over httpx, with its failures turned into protocol errors.

Why httpx rather than aiohttp's ClientSession: an ``httpx.AsyncClient`` may be
built outside a running event loop, it carries basic auth, timeouts and TLS
settings as plain constructor arguments, and the kit's own MirrorClient already
speaks httpx, so the kit has one HTTP-client vocabulary.

What a store answers is hostile input too (docs/hardening.md, "Stores and
connection details"):

* an answer is read as a stream and cut at ``max_answer_bytes``, counted on the
  wire *and* after decompression: the mirror inflates gzip/deflate itself, in
  bounded steps, so a 1 MB body that inflates to 1 GB costs at most the cap;
* the whole exchange has a deadline (``timeout``), not only each read, so a store
  trickling one byte at a time cannot hold a request;
* answers larger than ``INLINE_DECODE_BYTES`` are decoded (JSON, validation,
  numpy) in a worker *process*, one per mirror process, one answer at a time: JSON
  decoding holds the GIL, so a thread would still stall the event loop (a 5 MB
  answer took 0.4-0.7 s of GIL on this machine);
* no store text reaches the caller except Prometheus' own one-line error message,
  shortened and redacted; a body that is not a Prometheus answer is described by
  its HTTP status alone.

Error mapping:

=====================================  ===========================================
Prometheus / transport                 Mirror API error
=====================================  ===========================================
connection refused, DNS, TLS failure   MetricStoreConnectionError
no answer within ``timeout``           MetricStoreConnectionError
401 / 403                              MetricStoreConnectionError (check credentials)
404 (no Prometheus API at that URL)    MetricStoreConnectionError
400 / 422 ``bad_data``, ``execution``  RemoteMirrorError (HTTP 400 from the mirror)
503 ``timeout`` / ``canceled``         RemoteMirrorError (HTTP 504)
other 5xx, not JSON, malformed, large  RemoteMirrorError (HTTP 502)
=====================================  ===========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import httpx
import orjson

from ...protocol import MetricStoreConnectionError, MirrorError, RemoteMirrorError
from ...telemetry import store_call
from ..redaction import status_line
from .config import PrometheusConfig, QueryOptions

log = logging.getLogger("mirror_kit.sources.prometheus")

Params = Sequence[tuple[str, str]]
T = TypeVar("T")
#: Answers up to this size are decoded on the event loop (well under a millisecond).
INLINE_DECODE_BYTES = 256 * 1024
#: What the mirror asks for; it inflates these itself (bounded), and nothing else.
#: A store declared ``compress = false`` is asked for identity: on loopback or a LAN
#: gzip costs more than the bytes it saves (one 30-day page: 1.3 ms plain, 16.8 ms
#: gzipped on Prometheus' side).
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_PROMETHEUS_ERROR_TYPES = frozenset(
    {"timeout", "canceled", "execution", "bad_data", "internal", "unavailable", "not_found"}
)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of Prometheus: its status and its (decompressed, bounded) body."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def garbage(path: str, what: str) -> RemoteMirrorError:
    """The error for an answer that is not what Prometheus sends (HTTP 502)."""
    return RemoteMirrorError(
        "Unexpected answer from Prometheus", f"{path}: {what}", http_status=502
    )


def _phrase(status: int) -> str:
    """The standard reason phrase (never the store's own, which it may fill with text)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


class PrometheusApi:
    """One Prometheus endpoint. Keeps one httpx client (a bounded connection pool) per
    event loop, reused by every request; a client is never used from a loop it was not
    made on."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._retire_client()
            cfg = self.config
            self._client = httpx.AsyncClient(
                base_url=cfg.url,
                auth=cfg.auth,
                headers={**cfg.request_headers(), "Accept-Encoding": _encodings(cfg)},
                timeout=cfg.timeout_s,
                verify=cfg.verify_tls,
                limits=httpx.Limits(
                    max_connections=cfg.max_connections,
                    max_keepalive_connections=cfg.max_connections,
                ),
            )
            self._loop = loop
        return self._client

    def _retire_client(self) -> None:
        """Close a client left on another (still running) loop, on that loop."""
        client, loop = self._client, self._loop
        if client is None or loop is None or client.is_closed:
            return
        with contextlib.suppress(RuntimeError):  # that loop is closed: nothing to reach
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)

    async def aclose(self) -> None:
        """Close the connection pool (only possible on the loop that opened it)."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    @store_call  # counted by store and outcome (mirror_kit/telemetry.py)
    async def get(
        self, path: str, params: Params = (), options: QueryOptions | None = None
    ) -> Answer:
        """GET ``path`` within the deadline; transport failures become
        MetricStoreConnectionError, an answer past the byte cap a RemoteMirrorError."""
        cfg = self.config
        options = options or cfg.defaults()
        try:
            # asyncio.timeout, not wait_for: wait_for's future keeps a failure in a reference
            # cycle with the frames (and a store's big answer) it passed through
            async with asyncio.timeout(options.timeout_s):
                return await self._exchange(path, params, options)
        except asyncio.TimeoutError:
            raise MetricStoreConnectionError(
                f"Prometheus at {cfg.shown_url} did not answer {path} within "
                f'{options.timeout_s:g} s; the store\'s "timeout" bounds it'
            ) from None
        except UnicodeError:  # a lone surrogate in a condition: no URL can carry it
            raise RemoteMirrorError(
                "Invalid request: a condition or field holds text that is not valid Unicode"
            ) from None
        except httpx.TimeoutException as error:
            raise MetricStoreConnectionError(
                f"Prometheus at {cfg.shown_url} did not answer {path} within "
                f"{options.timeout_s:g} s ({type(error).__name__})"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as error:
            reason = status_line(str(error), cfg.redact) or type(error).__name__
            raise MetricStoreConnectionError(
                f"Cannot reach Prometheus at {cfg.shown_url}: {reason}"
            ) from None

    async def _exchange(self, path: str, params: Params, options: QueryOptions) -> Answer:
        request_headers = dict(options.headers) if options.headers else None
        async with self._http().stream(
            "GET", path, params=list(params), headers=request_headers
        ) as response:
            body = await read_bounded(response, self.config.max_answer_bytes, path)
            log.debug("GET %s -> %s (%d bytes)", path, response.status_code, len(body))
            return Answer(response.status_code, body)

    async def data(
        self,
        path: str,
        params: Params = (),
        options: QueryOptions | None = None,
        shape: Callable[[Any], T] | None = None,
    ) -> T:
        """The ``data`` of a successful API answer, checked and converted by ``shape``
        (off the event loop for a large answer); any failure as a protocol error."""
        answer = await self.get(path, params, options)
        if len(answer.body) <= INLINE_DECODE_BYTES:
            return read_answer(path, answer, self.config, shape)
        loop = asyncio.get_running_loop()
        try:
            ok, value = await loop.run_in_executor(
                _decoder(), _decode_elsewhere, path, answer, self.config, shape
            )
        except BrokenProcessPool:  # the decoder died (killed, out of memory): a new one next
            _reset_decoder()
            raise garbage(path, "the answer could not be decoded") from None
        if ok:
            return value
        body, status = value
        raise MirrorError.from_json(body, status)

    def read(self, path: str, answer: Answer, shape: Callable[[Any], T] | None = None) -> T:
        """The checked ``data`` of an answer (``shape`` converts it); raises otherwise."""
        return read_answer(path, answer, self.config, shape)


def _encodings(cfg: PrometheusConfig) -> str:
    return ACCEPT_ENCODING if cfg.compress else "identity"


_DECODER: ProcessPoolExecutor | None = None


def _decoder() -> ProcessPoolExecutor:
    """The process decoding large answers (made on first use, so after a fork)."""
    global _DECODER
    if _DECODER is None:
        context = multiprocessing.get_context("spawn")  # never fork a threaded process
        _DECODER = ProcessPoolExecutor(max_workers=1, mp_context=context)
    return _DECODER


def _reset_decoder() -> None:
    global _DECODER
    if _DECODER is not None:
        _DECODER.shutdown(wait=False, cancel_futures=True)
    _DECODER = None


def _decode_elsewhere(
    path: str, answer: Answer, cfg: PrometheusConfig, shape: Callable[[Any], T] | None
) -> tuple[bool, Any]:
    """Runs in the decoder process: (True, data) or (False, (error body, status)), so
    that a protocol error crosses the process boundary as its own body."""
    try:
        return True, read_answer(path, answer, cfg, shape)
    except MirrorError as error:
        return False, (error.to_json(), error.http_status)


def read_answer(
    path: str, answer: Answer, cfg: PrometheusConfig, shape: Callable[[Any], T] | None = None
) -> T:
    """The checked ``data`` of an answer (``shape`` converts it); raises otherwise."""
    status = answer.status
    if status in (401, 403):
        raise MetricStoreConnectionError(
            f"Prometheus at {cfg.shown_url} refused the request (HTTP {status}): "
            "check the credentials in the store's declaration"
        )
    body = _json(answer.body)
    if status == 404 and body is None:
        raise MetricStoreConnectionError(
            f"No Prometheus HTTP API at {cfg.shown_url} ({path} answered 404): "
            'check the store\'s "url"'
        )
    if body is None:
        raise RemoteMirrorError(
            f"Prometheus answered HTTP {status} ({_phrase(status)}) with a body that is "
            "not a Prometheus API answer",
            path,
            http_status=502,
        )
    if answer.ok and body.get("status") == "success":
        data: Any = body.get("data")  # no shape: the caller reads it as it is
        return shape(data) if shape is not None else data
    raise _api_error(path, status, body, cfg)


async def read_bounded(response: httpx.Response, limit: int, path: str) -> bytes:
    """The body of a streamed answer, inflated by the mirror itself: at most ``limit``
    bytes on the wire and ``limit`` bytes decompressed, else a RemoteMirrorError."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        inflater = None
    elif encoding in _WBITS:
        inflater = zlib.decompressobj(_WBITS[encoding])
    else:
        raise garbage(
            path,
            f"the answer is in a Content-Encoding the mirror did not ask for "
            f"({status_line(encoding, limit=40)})",
        )
    out = bytearray()
    wire = 0
    try:
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            if wire > limit:
                raise _too_large(path, limit)
            if inflater is None:
                out += chunk
            else:
                _inflate(inflater, chunk, out, limit, path)
            if len(out) > limit:
                raise _too_large(path, limit)
        if inflater is not None:
            out += inflater.flush()
    except zlib.error:
        raise garbage(path, f"the answer is not valid {encoding}") from None
    if len(out) > limit:
        raise _too_large(path, limit)
    return bytes(out)


def _inflate(inflater: Any, chunk: bytes, out: bytearray, limit: int, path: str) -> None:
    """Inflate ``chunk`` into ``out`` without ever producing more than the cap allows."""
    data = chunk
    while data:
        room = limit + 1 - len(out)
        if room <= 0:
            raise _too_large(path, limit)
        out += inflater.decompress(data, room)
        data = inflater.unconsumed_tail


def _too_large(path: str, limit: int) -> RemoteMirrorError:
    return RemoteMirrorError(
        "Prometheus' answer is too large",
        f"{path}: more than {limit:,} bytes (the store's maxAnswerBytes); narrow the query",
        http_status=502,
    )


def _json(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; None for anything else (orjson refuses nesting past
    1,024 levels itself, so a deep body cannot exhaust the stack)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _api_error(path: str, status: int, body: dict[str, Any], cfg: PrometheusConfig) -> MirrorError:
    """A Prometheus error answer: its ``errorType`` and one short, redacted line of its
    ``error`` (a PromQL parse error says where it is); a body of another shape is
    described by its status alone."""
    kind, message = body.get("errorType"), body.get("error")
    if kind in _PROMETHEUS_ERROR_TYPES and isinstance(message, str):
        details = f"{kind}: {status_line(message, cfg.redact)} ({path})"
    else:
        kind = None
        details = f"HTTP {status} ({_phrase(status)}) from {path}"
    if status in (400, 422):
        return RemoteMirrorError("Prometheus rejected the query", details, http_status=400)
    if kind in ("timeout", "canceled"):
        return RemoteMirrorError("Prometheus timed out on the query", details, http_status=504)
    return RemoteMirrorError(f"Prometheus failed (HTTP {status})", details, http_status=502)
