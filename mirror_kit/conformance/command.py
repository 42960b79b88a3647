"""``python -m mirror_kit check URL``: the conformance suite from the command line.

Prints one line per check and exits 0 only when no check FAILs, so it fits CI:
start your mirror, run ``python -m mirror_kit check http://127.0.0.1:7007 --api-key K``.
"""

from __future__ import annotations

import argparse
import sys

from ..arguments import add_mirror_arguments, condition, instant
from .report import Profile
from .runner import run_checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_mirror_arguments(parser)
    parser.add_argument("--json", metavar="REPORT.json", help="also write the report as JSON")
    parser.add_argument("--junit", metavar="REPORT.xml", help="also write JUnit XML (for CI)")
    parser.add_argument(
        "--profile",
        choices=[p.value for p in Profile],
        default=Profile.STACKSTATE.value,
        help="stackstate (default): FAIL only what breaks StackState, WARN what shows wrong "
        "data; strict: FAIL every rule of the protocol",
    )
    parser.add_argument("--start", type=instant, help="range start (epoch ms or ISO 8601)")
    parser.add_argument("--end", type=instant, help="range end (epoch ms or ISO 8601; now)")
    parser.add_argument("--bucket-ms", type=int, help="window of the aggregated checks")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (10)")
    parser.add_argument(
        "--condition",
        action="append",
        type=condition,
        default=[],
        metavar="FIELD=VALUE",
        help="a condition of the stream to query (repeat; StringValue); default: discovered",
    )


def run(args: argparse.Namespace) -> int:
    """Run the suite; 0 when nothing FAILs, 1 otherwise."""
    try:
        report = run_checks(
            args.url,
            api_key=args.api_key,
            connection_details=args.connection_details,
            start=args.start,
            end=args.end,
            timeout=args.timeout,
            bucket_ms=args.bucket_ms,
            conditions=dict(args.condition),
            profile=args.profile,
        )
    except ValueError as error:
        print(f"mirror-kit check: {error}", file=sys.stderr)
        return 2
    print(report, flush=True)
    if args.json:
        report.write_json(args.json)
    if args.junit:
        report.write_junit(args.junit)
    return 0 if report.ok else 1
