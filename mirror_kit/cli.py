"""``python -m mirror_kit``: serve a mirror from the command line.

``serve`` is a drop-in for the tutorial's ``python3 mirror_server.py``: port 7007,
API key ``api_key``; it prints what to paste into StackState's Mirror source form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from aiohttp import web

from . import options
from .conformance import command as check_command
from .server import Listen, MirrorRunner, ServerSettings, create_app, workers
from .server.lifecycle import ACCEPT_BURST
from .server.settings import ALL_INTERFACES
from .simulate import command as simulate_command
from .sources import StoreConfig
from .sources.stores import STORE_SETTINGS

#: The options of ``serve``: one flag and one environment variable each.
SERVER_OPTIONS = options.options(ServerSettings)
LISTEN_OPTIONS = options.options(Listen)
STORE_OPTIONS = tuple(
    options.Option(s.dest, s.flag, str, None, s.help, s.metavar) for s in STORE_SETTINGS
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
    serve = commands.add_parser(
        "serve",
        help="serve a mirror (synthetic data by default)",
        description="Serve a mirror. Every flag --x-y can be set by the environment "
        "variable MIRROR_KIT_X_Y instead (a flag given wins).",
    )
    options.add_arguments(serve, LISTEN_OPTIONS + SERVER_OPTIONS)
    stores = serve.add_argument_group(
        "stores",
        "The stores this mirror may reach: only these, whatever a request's connection "
        'details say. {} selects the default; {"source": "NAME"} or a store\'s "url" '
        "selects another (docs/sources.md).",
    )
    options.add_arguments(stores, STORE_OPTIONS)
    check = commands.add_parser(
        "check", help="check any mirror as StackState would (exit 0 when nothing FAILs)"
    )
    check_command.add_arguments(check)
    simulate = commands.add_parser(
        "simulate", help="poll any mirror as StackState does (exit 0 when all went well)"
    )
    simulate_command.add_arguments(simulate)
    return parser


def serve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Serve until Ctrl-C. The banner is printed only once the port is bound (with
    workers: claimed, each worker binding it a moment later)."""
    environ = os.environ if environ is None else environ
    for name in unknown_variables(environ):
        print(f"note: {name} is no `serve` flag; ignored", file=sys.stderr)
    try:
        listen, settings, stores = configuration(args, environ)
        source = stores.build()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    host, port = listen.address, listen.port
    try:
        if listen.workers > 1:  # each worker binds the port: a free one is found first
            port = workers.claim_port(host, port)
            return workers.run(
                settings,
                host=host,
                port=port,
                workers=listen.workers,
                banner=form_values(host, port, settings.api_key, settings.auth_secret),
                source_factory=stores.build,
            )
        banner = form_values(host, port, settings.api_key, settings.auth_secret)
        asyncio.run(_serve(create_app(source, settings), host, port, banner))
    except KeyboardInterrupt:
        print("\nStopped.", flush=True)
    except OSError as error:
        print(
            f"error: cannot listen on {host}:{port}: {error.strerror or error}. "
            "Is another program using the port? Choose another with --port.",
            file=sys.stderr,
        )
        return 1
    return 0


def configuration(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[Listen, ServerSettings, StoreConfig]:
    """What ``serve`` runs with: each setting from its flag, else its variable, else
    its default. ValueError naming the variable or setting that is not valid."""
    listen = options.build(Listen, options.resolve(LISTEN_OPTIONS, args, environ))
    settings = options.build(ServerSettings, options.resolve(SERVER_OPTIONS, args, environ))
    stores = StoreConfig.from_settings(options.resolve(STORE_OPTIONS, args, environ))
    return listen, settings, stores


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``MIRROR_KIT_*`` names that are no ``serve`` setting: a misspelt one is seen."""
    known = {o.env for o in LISTEN_OPTIONS + SERVER_OPTIONS + STORE_OPTIONS}
    return sorted(n for n in environ if n.startswith(options.ENV_PREFIX) and n not in known)


async def _serve(app: web.Application, host: str, port: int, banner: str) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (MirrorRunner.cleanup)."""
    runner = MirrorRunner(app)
    await runner.setup()
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
