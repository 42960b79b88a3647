"""Serving and stopping a mirror: aiohttp's AppRunner, plus what it leaves out.

``MirrorRunner`` is an ``aiohttp.web.AppRunner`` (so ``python -m mirror_kit serve``,
the notebook's ``start_mirror`` and each gunicorn worker start, serve and clean up
the aiohttp way) that adds:

* **a connection cap** (``max_connections``): a new connection past it first closes
  *idle* connections -- those that never completed a request first, then the
  oldest kept alive after an answer; if every
  connection is busy answering, the newcomer gets a 503 protocol body at once. So
  idle connections cannot lock anybody out, and the process never runs out of file
  descriptors for its clients: the cap is lowered to what ``ulimit -n`` allows.
* **accept errors logged once per interval** (asyncio reports each failed
  ``accept()`` through the loop's exception handler, with a traceback);
* **a graceful stop**: aiohttp's cleanup stops listening, then closes every
  connection with no request in progress -- including those whose request has
  arrived but not been read yet -- and waits for the rest (``shutdown_timeout``).
  ``cleanup`` first lets every request already sent be read (the kernel's accept
  queue and unread socket buffers, checked with FIONREAD), so it is answered too.

aiohttp has no hook for any of these: the cap wraps the protocol factory the sites
listen with (``runner.server``), the rest run around ``AppRunner.cleanup``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import struct
from collections import Counter
from typing import Any

from aiohttp import web

from ..protocol import RemoteMirrorError
from ..protocol.encoding import encode
from ..telemetry import CONNECTION_CAP
from .app import CONNECTIONS, SETTINGS, Connections
from .tally import LOG_INTERVAL_S, Tally

try:  # not on Windows: there the stop waits a fixed moment instead
    import fcntl
    import resource
    import termios
except ImportError:  # pragma: no cover - depends on the platform
    fcntl = resource = termios = None  # type: ignore[assignment]

log = logging.getLogger("mirror_kit.server")

#: File descriptors kept for everything but client connections (listeners, stores, logs).
FD_RESERVE = 64
#: Connections asyncio accepts in one go before any reaches the cap (the sites'
#: ``backlog``: 128 here and in aiohttp's gunicorn worker); their descriptors are
#: taken before the cap can close others, so the cap leaves room for them too.
ACCEPT_BURST = 128
#: At most this long is spent letting requests already sent be read before stopping.
SETTLE_MAX_S = 1.0
_ACCEPT_ERROR = "socket.accept() out of system resource"


class ConnectionGate:
    """The protocol factory the sites listen with: aiohttp's Server behind the cap."""

    def __init__(
        self, server: web.Server, connections: Connections, cap: int, api_key: str
    ) -> None:
        self.server = server
        self.cap = cap
        self._connections = connections
        self._refusal = _refusal_bytes(api_key)
        self._tally = Tally(self._describe, LOG_INTERVAL_S)

    @property
    def requests_count(self) -> int:  # gunicorn's worker reads it off ``runner.server``
        return self.server.requests_count

    def __call__(self) -> asyncio.BaseProtocol:
        live = self.server.connections
        if len(live) < self.cap:
            return self.server()
        open_now = [h for h in live if h.transport is not None]  # closing ones are gone
        over = len(open_now) - self.cap + 1
        if over <= 0:
            return self.server()
        busy, served = self._connections.busy, self._connections.served
        idle = [h for h in open_now if h not in busy]  # oldest first
        idle.sort(key=served.__contains__)  # stable: those that never asked go first
        idle = idle[:over]
        for handler in idle:
            handler.force_close()
        if idle:
            self._tally.add("closed idle", len(idle))
            CONNECTION_CAP.labels("closed_idle").inc(len(idle))
        if len(idle) < over:
            self._tally.add("refused")
            CONNECTION_CAP.labels("refused").inc()
            return _Refusal(self._refusal)
        return self.server()

    def _describe(self, counts: Counter[str]) -> str:
        return (
            f"connection cap of {self.cap} reached: closed {counts['closed idle']} idle "
            f"connections, refused {counts['refused']} new ones with 503 "
            f"(in the last {LOG_INTERVAL_S:g} s or less; --max-connections)"
        )

    def close(self) -> None:
        self._tally.close()


class _Refusal(asyncio.Protocol):
    """A connection past the cap while all are busy: a 503 protocol body, then closed."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._answer)
        transport.close()


def _refusal_bytes(api_key: str) -> bytes:
    error = RemoteMirrorError(
        "Mirror busy: too many connections",
        "every connection is answering a request; retry shortly",
        http_status=503,
    )
    body = encode(error.to_json())
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"X-MIRROR-API-KEY: {api_key}\r\nRetry-After: 1\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to what the file-descriptor limit leaves for clients."""
    if resource is None:  # pragma: no cover - Windows
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - FD_RESERVE - ACCEPT_BURST
    if soft == resource.RLIM_INFINITY or wanted <= room:
        return wanted
    allowed = max(1, room)
    log.warning(
        "max connections lowered from %d to %d: this process may open %d files "
        "(ulimit -n) and keeps %d for itself and %d for a burst of accepts",
        wanted,
        allowed,
        soft,
        FD_RESERVE,
        ACCEPT_BURST,
    )
    return allowed


class AcceptErrors:
    """The loop's exception handler: failed accepts counted, logged once per interval."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        self._tally = Tally(self._describe, LOG_INTERVAL_S)
        self._last_error = ""
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(_ACCEPT_ERROR):
            self._last_error = repr(context.get("exception"))
            self._tally.add("accept")
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _describe(self, counts: Counter[str]) -> str:
        return (
            f"{_ACCEPT_ERROR}: {counts['accept']} failed accepts in the last "
            f"{LOG_INTERVAL_S:g} s or less ({self._last_error}); asyncio retries each second"
        )

    def close(self) -> None:
        self._tally.close()
        self._loop.set_exception_handler(self._previous)


def _unread_bytes(handler: Any) -> int:
    """Bytes the client sent that the mirror has not read yet (0 when unknown)."""
    transport = handler.transport
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


async def _let_sent_requests_arrive(server: web.Server, limit_s: float) -> None:
    """Keep serving until no connection has unread bytes twice in a row, or ``limit_s``.

    The sites still listen meanwhile, so connections waiting in the kernel's accept
    queue are taken, and their requests read, before aiohttp stops listening.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    quiet = 0
    while quiet < 2 and loop.time() < deadline:
        await asyncio.sleep(0.01)
        if fcntl is None:  # pragma: no cover - Windows: no FIONREAD on sockets here
            continue
        pending = any(_unread_bytes(h) for h in server.connections)
        quiet = 0 if pending else quiet + 1


#: glibc's mallopt parameter, and the size from which allocations get their own mapping.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024


def return_freed_memory_to_the_system() -> bool:
    """Keep glibc from holding on to freed answers: big blocks always mmapped.

    glibc raises its mmap threshold to the largest block freed (up to 32 MiB), after
    which multi-megabyte answers and arrays come from the heap, whose freed space it
    rarely returns: RSS then stays at its high-water mark (+300 MiB after 40 unread
    9 MB answers, against +80 MiB with the threshold fixed). Fixing the threshold
    (what MALLOC_MMAP_THRESHOLD_ does) ties RSS to live memory. No-op off glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))
    return False


class MirrorRunner(web.AppRunner):
    """aiohttp's AppRunner with the connection cap, accept-error log and graceful stop.

    ``cleanup`` is the graceful stop: requests already sent are read, then aiohttp
    stops listening, closes idle connections and waits up to ``stop_grace_s`` for the
    requests in progress (and those read but not started) to be answered.
    """

    def __init__(self, app: web.Application) -> None:
        settings = app[SETTINGS]
        super().__init__(
            app, access_log=None, handle_signals=False, shutdown_timeout=settings.stop_grace_s
        )
        self._wanted_cap = settings.max_connections
        self._api_key = settings.api_key
        self._connections = app[CONNECTIONS]
        self._gate: ConnectionGate | None = None
        self._accept_errors: AcceptErrors | None = None

    async def setup(self) -> None:
        return_freed_memory_to_the_system()
        await super().setup()
        server = super().server
        assert server is not None
        cap = connection_cap(self._wanted_cap)
        self._gate = ConnectionGate(server, self._connections, cap, self._api_key)
        self._accept_errors = AcceptErrors(asyncio.get_running_loop())

    @property
    def server(self) -> Any:
        """The protocol factory sites listen with: the gate in front of aiohttp's Server."""
        return self._gate

    async def cleanup(self) -> None:
        server = super().server
        if server is not None:
            await _let_sent_requests_arrive(server, SETTLE_MAX_S)
        await super().cleanup()
        if self._gate is not None:
            self._gate.close()
        if self._accept_errors is not None:
            self._accept_errors.close()
            self._accept_errors = None
