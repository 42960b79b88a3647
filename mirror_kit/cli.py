"""``python -m mirror_kit``: serve a mirror from the command line.

``serve`` is a drop-in for the tutorial's ``python3 mirror_server.py``: port 7007,
API key ``api_key``; it prints what to paste into StackState's Mirror source form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from .conformance import command as check_command
from .server import (
    DEFAULT_API_KEY,
    DEFAULT_PORT,
    MirrorRunner,
    ServerSettings,
    create_app,
    workers,
)
from .server.lifecycle import ACCEPT_BURST
from .service import Limits
from .simulate import command as simulate_command
from .sources import StoreConfig
from .sources.stores import STORE_SETTINGS

ALL_INTERFACES = "0.0.0.0"

#: (flag, ServerSettings field, help) of the timeouts, all in seconds.
TIMEOUT_FLAGS = (
    ("--request-timeout", "request_timeout_s", "seconds a source may take to answer (504)"),
    ("--keepalive-timeout", "keepalive_timeout_s", "seconds an idle connection is kept"),
    ("--body-timeout", "body_timeout_s", "seconds a request body may take to arrive (408)"),
    ("--send-timeout", "send_timeout_s", "seconds an answer may take to be read (then aborted)"),
)


#: (flag, ServerSettings field, environment variable, help) of flags the environment sets.
ENV_FLAGS = (
    (
        "--max-connections",
        "max_connections",
        "MIRROR_KIT_MAX_CONNECTIONS",
        "open connections; past it the oldest idle ones are closed, or new ones get a 503 "
        "(lowered to what ulimit -n allows)",
    ),
    (
        "--stop-grace",
        "stop_grace_s",
        "MIRROR_KIT_STOP_GRACE",
        "seconds requests in progress or queued get to be answered on SIGTERM/Ctrl-C",
    ),
)


def form_values(host: str, port: int, api_key: str, secret: str | None = None) -> str:
    """The Mirror source form values for this mirror, as the banner shows them."""
    token = "" if secret is None else f"/{secret}"
    local = f"http://{'127.0.0.1' if host == ALL_INTERFACES else host}:{port}{token}"
    lines = [
        f"mirror-kit serving the Mirror API on {local}",
        "",
        "StackState -> Settings -> Telemetry Sources -> Mirror sources -> add:",
        "  Name:                     Mirror server",
        f"  Mirror URL:               http://host.docker.internal:{port}{token}"
        "   (StackState in Docker on this machine)",
        f"                            {local}   (StackState on this machine, not in Docker)",
        f"                            https://<your-tunnel>{token}   (StackState elsewhere)",
        f"  Api Key:                  {api_key}",
        "  Connection details JSON:  {}",
    ]
    if host not in (ALL_INTERFACES, "::"):
        lines += [
            "",
            f"Bound to {host} only: StackState in Docker on Linux cannot reach it (Docker",
            "Desktop forwards host.docker.internal to loopback and can). --bind-all binds",
            "every interface: anyone who can reach this machine can then read the data.",
        ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mirror_kit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a mirror (synthetic data by default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument(
        "--bind-all", action="store_true", help=f"bind all interfaces ({ALL_INTERFACES})"
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (7007)")
    serve.add_argument("--api-key", default=DEFAULT_API_KEY, help="API key (api_key)")
    serve.add_argument(
        "--max-points",
        type=int,
        default=Limits().max_points,
        help="raw points computed per metric request, past it answers are cut (isPartial)",
    )
    serve.add_argument(
        "--max-answer-points",
        type=int,
        default=Limits().max_answer_points,
        help="points (or buckets) one answer carries, past it answers are cut (isPartial)",
    )
    serve.add_argument(
        "--max-body", type=int, default=ServerSettings().max_body_bytes, help="bytes per request"
    )
    defaults = ServerSettings()
    for flag, field, meaning in TIMEOUT_FLAGS:
        serve.add_argument(flag, type=float, default=getattr(defaults, field), help=meaning)
    for flag, field, variable, meaning in ENV_FLAGS:
        kind = type(getattr(defaults, field))
        default = kind(os.environ.get(variable) or getattr(defaults, field))
        serve.add_argument(flag, type=kind, default=default, help=f"{meaning} (env {variable})")
    serve.add_argument(
        "--auth-secret",
        default=os.environ.get("MIRROR_KIT_AUTH_SECRET"),
        help="require this shared secret as a path token (Mirror URL http://host:port/SECRET)"
        " or X-Mirror-Auth header; off by default (env MIRROR_KIT_AUTH_SECRET)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serve from N processes under gunicorn (needs mirror-kit[deploy])",
    )
    stores = serve.add_argument_group(
        "stores",
        "The stores this mirror may reach: only these, whatever a request's connection "
        'details say. {} selects the default; {"source": "NAME"} or a store\'s "url" '
        "selects another (docs/sources.md).",
    )
    for setting in STORE_SETTINGS:
        stores.add_argument(
            setting.flag,
            dest=setting.dest,
            metavar=setting.metavar,
            default=os.environ.get(setting.env) or None,
            help=f"{setting.help} (env {setting.env})",
        )
    check = commands.add_parser(
        "check", help="check any mirror as StackState would (exit 0 when nothing FAILs)"
    )
    check_command.add_arguments(check)
    simulate = commands.add_parser(
        "simulate", help="poll any mirror as StackState does (exit 0 when all went well)"
    )
    simulate_command.add_arguments(simulate)
    return parser


def serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C. The banner is printed only once the port is bound."""
    host = ALL_INTERFACES if args.bind_all else args.host
    try:
        settings = ServerSettings(
            api_key=args.api_key,
            max_body_bytes=args.max_body,
            request_timeout_s=args.request_timeout,
            keepalive_timeout_s=args.keepalive_timeout,
            body_timeout_s=args.body_timeout,
            send_timeout_s=args.send_timeout,
            auth_secret=args.auth_secret,
            limits=Limits(args.max_points, args.max_answer_points),
            max_connections=args.max_connections,
            stop_grace_s=args.stop_grace,
        )
        stores = _store_config(args)
        source = stores.build()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    banner = form_values(host, args.port, args.api_key, args.auth_secret)
    if args.workers > 1:
        return workers.run(
            settings,
            host=host,
            port=args.port,
            workers=args.workers,
            banner=banner,
            source_factory=stores.build,
        )
    try:
        asyncio.run(_serve(create_app(source, settings), host, args.port, banner))
    except KeyboardInterrupt:
        print("\nStopped.", flush=True)
    except OSError as error:
        print(
            f"error: cannot listen on {host}:{args.port}: {error.strerror or error}. "
            "Is another program using the port? Choose another with --port.",
            file=sys.stderr,
        )
        return 1
    return 0


def _store_config(args: argparse.Namespace) -> StoreConfig:
    """The stores the flags (and the environment, their defaults) declare."""
    return StoreConfig.from_settings({s.dest: getattr(args, s.dest) for s in STORE_SETTINGS})


async def _serve(app: web.Application, host: str, port: int, banner: str) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (MirrorRunner.cleanup)."""
    runner = MirrorRunner(app)
    await runner.setup()
    # The objects made at start-up live for ever: keep them out of the collector's
    # full passes, which otherwise add ~15 ms pauses to answers (bench/README.md).
    gc.freeze()
    try:
        await web.TCPSite(runner, host, port, backlog=ACCEPT_BURST).start()
        print(banner, "\nPress Ctrl-C to stop.", sep="\n", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            # Ctrl-C, and what `docker stop`, systemd and Kubernetes send: both stop
            # gracefully, in this task (not by cancelling it)
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("\nStopping: answering the requests received...", flush=True)
    finally:
        await runner.cleanup()
    print("Stopped.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "check":
        return check_command.run(args)
    if args.command == "simulate":
        return simulate_command.run(args)
    return 2  # pragma: no cover (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
