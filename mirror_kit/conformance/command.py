"""``python -m mirror_kit check URL``: the conformance suite from the command line.

Prints one line per check and exits 0 only when no check FAILs, so it fits CI:
start your mirror, run ``python -m mirror_kit check http://127.0.0.1:7007 --api-key K``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from .report import Profile
from .runner import run_checks


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, like {} or {"host": "x"}')
    return value


def _instant(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 time (UTC unless it names a zone)."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _condition(text: str) -> tuple[str, str]:
    field, equals, value = text.partition("=")
    if not equals or not field:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE")
    return field, value


def add_mirror_arguments(parser: argparse.ArgumentParser) -> None:
    """The mirror to talk to, as StackState's Mirror source form names it (check, simulate)."""
    parser.add_argument("url", help="the mirror's base URL, e.g. http://127.0.0.1:7007")
    parser.add_argument("--api-key", help="the Api Key StackState is given for this mirror")
    parser.add_argument(
        "--connection-details",
        type=_json_object,
        default={},
        metavar="JSON",
        help="the Connection details JSON of StackState's Mirror source form ({})",
    )


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
    parser.add_argument("--start", type=_instant, help="range start (epoch ms or ISO 8601)")
    parser.add_argument("--end", type=_instant, help="range end (epoch ms or ISO 8601; now)")
    parser.add_argument("--bucket-ms", type=int, help="window of the aggregated checks")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (10)")
    parser.add_argument(
        "--condition",
        action="append",
        type=_condition,
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
