"""Serve a mirror from several processes: gunicorn with aiohttp's GunicornWebWorker.

One aiohttp process runs on one core; metric answers are CPU-bound (numpy, then JSON
encoding), so a mirror serving many StackState users gains from one process per
core. gunicorn's arbiter forks the workers and restarts one that dies; on Linux each
worker binds the port with SO_REUSEPORT, so the kernel spreads new connections over
them (one shared socket gave them all to whichever woke first). Each worker builds
its own application after the fork; the synthetic data is a pure function of its
seeds, so every worker serves the same answers. What a worker keeps in memory is its
own: the request log, and shape changes made at run time (the notebook's widgets),
which is why the notebook runs one process.

Two ways in (``pip install 'mirror-kit[deploy]'``; Linux and macOS, not Windows):

* ``run(settings, host=..., port=..., workers=N)`` -- what ``python -m mirror_kit
  serve --workers N`` calls;
* gunicorn's own command line, configured from the ``MIRROR_KIT_*`` variables
  ``serve`` reads too (``ServerSettings.from_env``, ``StoreConfig.from_env``)::

      MIRROR_KIT_API_KEY=s3cret MIRROR_KIT_STORES=/etc/mirror/stores.toml \\
          gunicorn 'mirror_kit.server.workers:app_factory' \\
          --worker-class aiohttp.GunicornWebWorker --workers 4 --bind 0.0.0.0:7007 \\
          --reuse-port
"""

from __future__ import annotations

import math
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import telemetry
from ..sources import StoreConfig, TelemetrySource
from ..sources.stores import STORE_SETTINGS
from .app import create_app
from .lifecycle import SETTLE_MAX_S, MirrorRunner
from .settings import ServerSettings

WORKER_CLASS = "aiohttp.GunicornWebWorker"
#: Whether sockets bound with SO_REUSEPORT share out connections (Linux: by a hash of
#: their addresses; elsewhere the option does not balance).
BALANCED_ACCEPT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
#: Environment variable -> store setting (the same table as ``serve``'s store flags).
STORE_ENVIRONMENT: dict[str, str] = {s.env: s.dest for s in STORE_SETTINGS}


async def app_factory() -> web.AppRunner:
    """For gunicorn's command line: the mirror and its stores, configured from the
    environment (only the synthetic store when no store variable is set).

    It returns the runner, not the app (aiohttp's worker takes either): MirrorRunner
    brings the connection cap and the graceful stop (lifecycle.py) to each worker.
    """
    settings = ServerSettings.from_env(os.environ)
    return MirrorRunner(create_app(StoreConfig.from_env().build(), settings))


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def claim_port(host: str, port: int) -> int:
    """The port every worker will bind: ``port``, or a free one for 0. OSError when
    something listens there already (each worker would fail to bind it, and gunicorn
    would boot new ones for ever); checked once, in the arbiter, before the fork."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        probe.bind((host, port))  # without SO_REUSEPORT: fails beside any listener
        return int(probe.getsockname()[1])


def gunicorn_options(
    settings: ServerSettings, host: str, port: int, workers: int
) -> dict[str, Any]:
    """gunicorn settings for ``workers`` aiohttp workers serving on host:port."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    return {
        "bind": [bind_address(host, port)],
        "workers": workers,
        "worker_class": WORKER_CLASS,
        # Overridden per connection by the app's handler_args; set for coherence.
        "keepalive": int(settings.keepalive_timeout_s),
        # The arbiter restarts a worker silent this long; a request is cut sooner.
        "timeout": int(settings.request_timeout_s) + 30,
        # SIGTERM to the arbiter: each worker lets sent requests arrive (at most
        # SETTLE_MAX_S), answers them within the grace, and is killed only after that
        "graceful_timeout": math.ceil(settings.stop_grace_s + SETTLE_MAX_S) + 5,
        "accesslog": None,  # like `serve`: the request log is the app's own
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "mirror-kit",
        # Each worker listens on a socket of its own (SO_REUSEPORT; gunicorn binds it
        # after the fork) and the kernel spreads new connections over them. On one
        # shared socket the worker that woke first accepted every queued connection:
        # a burst of kept-alive connections all went to one worker. Port 0 would give
        # each worker a port of its own, so there the arbiter binds one shared socket
        # (run() never passes 0: it claims a port first).
        "reuse_port": port != 0 and BALANCED_ACCEPT,
        "child_exit": telemetry.process_exited,  # a dead worker's live gauges go
    }


def run(
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 7007,
    workers: int = 2,
    banner: str | None = None,
    source_factory: Callable[[], TelemetrySource] | None = None,
) -> int:
    """Serve a mirror with ``workers`` processes until SIGINT/SIGTERM.

    ``source_factory`` builds each worker's source after the fork (the synthetic
    catalog when None); ``banner`` is printed once the arbiter is ready, the port
    claimed (what to paste into StackState; each worker listens a moment later).
    Returns the arbiter's exit status; OSError when the port is taken.
    """
    options = gunicorn_options(settings, host, claim_port(host, port), workers)
    application = _application(settings, options, banner, source_factory)
    with telemetry.across_processes():  # /metrics sums every worker's counts
        try:
            application.run()
        except SystemExit as done:
            return int(done.code or 0)
    return 0


def _application(
    settings: ServerSettings,
    options: dict[str, Any],
    banner: str | None,
    source_factory: Callable[[], TelemetrySource] | None,
) -> Any:
    """A gunicorn application (imported here: gunicorn is the optional ``deploy`` extra)."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # pragma: no cover - depends on the environment
        raise SystemExit("--workers needs gunicorn: pip install 'mirror-kit[deploy]'") from None

    class MirrorApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
                # one fixed path per user: two mirrors would fight over it
                self.cfg.set("control_socket_disable", True)
            if banner is not None:
                self.cfg.set("when_ready", lambda _arbiter: print(banner, flush=True))

        def load(self) -> Callable[[], Awaitable[web.AppRunner]]:
            async def runner() -> web.AppRunner:  # in each worker, after the fork
                source = None if source_factory is None else source_factory()
                return MirrorRunner(create_app(source, settings))

            return runner

    return MirrorApplication(prog="mirror-kit")
