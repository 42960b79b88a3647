"""``python -m mirror_kit``: serve a mirror from the command line.

``serve`` is a drop-in for the tutorial's ``python3 mirror_server.py``: port 7007,
API key ``api_key``; it prints what to paste into StackState's Mirror source form.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web

from .conformance import command as check_command
from .server import DEFAULT_API_KEY, DEFAULT_PORT, ServerSettings, create_app
from .service import Limits

ALL_INTERFACES = "0.0.0.0"


def form_values(host: str, port: int, api_key: str) -> str:
    """The Mirror source form values for this mirror, as the banner shows them."""
    local = f"http://{'127.0.0.1' if host == ALL_INTERFACES else host}:{port}"
    lines = [
        f"mirror-kit serving the Mirror API on {local}",
        "",
        "StackState -> Settings -> Telemetry Sources -> Mirror sources -> add:",
        "  Name:                     Mirror server",
        f"  Mirror URL:               http://host.docker.internal:{port}"
        "   (StackState in Docker on this machine)",
        f"                            {local}   (StackState on this machine, not in Docker)",
        "                            https://<your-tunnel>   (StackState elsewhere)",
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
        "--max-body", type=int, default=ServerSettings().max_body_bytes, help="bytes per request"
    )
    check = commands.add_parser(
        "check", help="check any mirror as StackState would (exit 0 when nothing FAILs)"
    )
    check_command.add_arguments(check)
    return parser


def serve(args: argparse.Namespace) -> int:
    host = ALL_INTERFACES if args.bind_all else args.host
    settings = ServerSettings(
        api_key=args.api_key, max_body_bytes=args.max_body, limits=Limits(args.max_points)
    )
    app = create_app(None, settings)

    async def banner(_: web.Application) -> None:
        print(form_values(host, args.port, args.api_key), flush=True)
        print("\nPress Ctrl-C to stop.", flush=True)

    app.on_startup.append(banner)
    web.run_app(app, host=host, port=args.port, print=None, access_log=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "check":
        return check_command.run(args)
    return 2  # pragma: no cover (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
