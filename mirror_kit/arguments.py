"""Command-line arguments shared by ``check`` and ``simulate``: the mirror to talk to,
instants and ``FIELD=VALUE`` conditions. Kept apart so neither command imports the
other's internals."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, like {} or {"host": "x"}')
    return value


def instant(text: str) -> int:
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


def condition(text: str) -> tuple[str, str]:
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
        type=json_object,
        default={},
        metavar="JSON",
        help="the Connection details JSON of StackState's Mirror source form ({})",
    )
