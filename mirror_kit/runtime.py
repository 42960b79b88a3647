"""Start and stop a mirror from a notebook, a script or a test.

The mirror runs on its own asyncio event loop in a background daemon thread. In
Jupyter the kernel's own loop runs the cells: a server started there would stop
serving whenever a cell makes a synchronous call to it (deadlock), and patching
asyncio (nest_asyncio) drops queued cells on ipykernel 7. A private loop in a
thread has neither problem, and behaves the same in scripts and pytest.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .server import (
    DEFAULT_PORT,
    REQUEST_LOG,
    SETTINGS,
    SOURCE,
    MirrorRunner,
    ServerSettings,
    create_app,
)
from .server.lifecycle import ACCEPT_BURST, SETTLE_MAX_S
from .server.requestlog import RequestLog, RequestLogEntry
from .sources import TelemetrySource

T = TypeVar("T")

START_TIMEOUT_S = 15.0
#: Beyond the graceful stop's own bound (the grace, and letting sent requests arrive).
STOP_MARGIN_S = 5.0


class PortInUseError(OSError):
    """The port is held by another program (not by a mirror of this process)."""


class RunningMirror:
    """A handle on a mirror serving in the background. Use ``stop()`` or ``with``."""

    def __init__(
        self,
        app: web.Application,
        runner: web.AppRunner,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        host: str,
        port: int,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = runner
        self._loop = loop
        self._thread = thread
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL to call; for an all-interfaces bind, the loopback address."""
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.app[SETTINGS].api_key

    @property
    def source(self) -> TelemetrySource:
        return self.app[SOURCE]

    @property
    def request_log(self) -> RequestLog:
        return self.app[REQUEST_LOG]

    def requests(self, last: int | None = None) -> list[RequestLogEntry]:
        """The requests received, oldest first (the newest ``last`` if given)."""
        return self.request_log.entries(last)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coroutine`` on the mirror's loop, from any other thread; its Future.

        For work that should live as long as the mirror without blocking the caller
        (a notebook's simulated StackState); stopping the mirror cancels it.
        """
        if not self.running or self._loop.is_closed():
            coroutine.close()
            raise RuntimeError(f"the mirror on port {self.port} is stopped")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def stop(self) -> None:
        """Stop gracefully (requests in progress are answered, within the settings'
        ``stop_grace_s``), release the port, stop the loop, join its thread and close
        it. Idempotent."""
        with self._lock:
            if self._loop.is_closed():
                return
            bound_s = self.app[SETTINGS].stop_grace_s + SETTLE_MAX_S + STOP_MARGIN_S
            if self._loop.is_running():
                fut = asyncio.run_coroutine_threadsafe(_shutdown(self._runner), self._loop)
                with contextlib.suppress(Exception):
                    fut.result(bound_s)
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(bound_s)
            if not self._thread.is_alive():
                self._loop.close()
        with _registry_lock:
            if _registry.get(self.port) is self:
                del _registry[self.port]

    def __enter__(self) -> RunningMirror:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RunningMirror {self.url} api_key={self.api_key!r} {state}>"


#: Mirrors this process started, by port: a restart on the same port stops the old
#: one first (whatever host name it was bound with), so re-running a cell just works.
#: Changed only under ``_registry_lock`` (re-entrant: a restart stops the old mirror,
#: which leaves the registry, while holding it).
_registry: dict[int, RunningMirror] = {}
_registry_lock = threading.RLock()


def start_mirror(
    source: TelemetrySource | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    settings: ServerSettings | None = None,
) -> RunningMirror:
    """Start a mirror in a background thread and return once it accepts connections.

    ``settings`` are those of ``serve`` (key, caps, timeouts, the connection cap and
    the graceful stop); ``api_key``, if given, replaces theirs. ``port=0`` picks a
    free port. Starting again on a port this process's mirror holds restarts it; a
    port held by another program raises PortInUseError. ``host="0.0.0.0"`` binds
    all interfaces (StackState in Docker reaches the host that way) -- anyone who
    can reach the machine can then read the data.
    """
    settings = settings or ServerSettings()
    if api_key is not None:
        settings = replace(settings, api_key=api_key)
    with _registry_lock:
        previous = _registry.get(port) if port else None
        if previous is not None:
            previous.stop()
        app = create_app(source, settings)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_serve_forever, args=(loop,), name=f"mirror-kit:{port}", daemon=True
        )
        thread.start()
        started: Future[tuple[web.AppRunner, int]] = asyncio.run_coroutine_threadsafe(
            _start(app, host, port), loop
        )
        try:
            runner, bound_port = started.result(START_TIMEOUT_S)
        except BaseException as error:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT_S)
            loop.close()
            if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    errno.EADDRINUSE,
                    f"port {port} on {host} is already in use by another program; "
                    "stop it, or pass port=0 to pick a free port",
                ) from None
            raise
        thread.name = f"mirror-kit:{bound_port}"
        mirror = RunningMirror(app, runner, loop, thread, host, bound_port)
        _registry[bound_port] = mirror
        return mirror


def running_mirrors() -> list[RunningMirror]:
    """The mirrors this process has running."""
    with _registry_lock:
        return list(_registry.values())


def stop_all() -> None:
    """Stop every mirror this process started (also run at interpreter exit)."""
    for mirror in running_mirrors():
        mirror.stop()


atexit.register(stop_all)


def _serve_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` as ``serve`` does: MirrorRunner brings the connection cap and the
    graceful stop (server/lifecycle.py)."""
    runner = MirrorRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=ACCEPT_BURST)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses: list[Any] = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port


async def _shutdown(runner: web.AppRunner) -> None:
    await runner.cleanup()
    loop = asyncio.get_running_loop()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.shutdown_asyncgens()
