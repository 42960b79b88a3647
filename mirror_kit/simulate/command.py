"""``python -m mirror_kit simulate URL``: StackState's polling, against any mirror.

Defaults are StackState's own (200 live streams polled every 60 s, 20 monitors,
the 15 s UI timeout) over one simulated hour; ``--speed 60`` runs that hour in a
minute. Exit code 0 when StackState would have been content: no errors, nothing
it gave up on, no two polls that contradict each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import fields
from typing import TextIO

from ..arguments import add_mirror_arguments, condition, instant
from .model import Clock, LoadModel
from .runner import Progress, simulate

#: flag -> (LoadModel field, type, help)
MODEL_FLAGS: dict[str, tuple[str, type, str]] = {
    "--streams": ("live_streams", int, "live streams polled"),
    "--poll-interval": ("poll_interval_s", float, "seconds between polls of a stream"),
    "--stream-method": ("stream_method", str, "aggregation a live stream asks for"),
    "--max-events": ("max_events_per_poll", int, "limit of one poll"),
    "--monitors": ("monitors", int, "monitors (1-minute mean over 5 minutes)"),
    "--wizards": ("wizard_sessions", int, "stream-wizard sessions over the run"),
    "--ui-timeout": ("ui_timeout_s", float, "seconds before StackState gives up on the UI"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = {f.name: f.default for f in fields(LoadModel)}
    add_mirror_arguments(parser)
    for flag, (name, kind, meaning) in MODEL_FLAGS.items():
        parser.add_argument(
            flag, type=kind, default=defaults[name], help=f"{meaning} ({defaults[name]})"
        )
    parser.add_argument("--duration", type=float, default=3600.0, help="simulated seconds (3600)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (1; 60: an hour in a minute)",
    )
    parser.add_argument(
        "--start", type=instant, default=None, help="simulated start, epoch ms or ISO 8601 (now)"
    )
    parser.add_argument(
        "--condition",
        type=condition,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="the series every stream asks for (repeatable); default: discovered",
    )
    parser.add_argument("--json", metavar="REPORT.json", help="also write the report as JSON")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    try:
        model = LoadModel(
            **{
                name: getattr(args, flag[2:].replace("-", "_"))
                for flag, (name, _, _) in MODEL_FLAGS.items()
            }
        )
        start = args.start if args.start is not None else int(time.time() * 1000)
        clock = Clock(start_ms=start, duration_s=args.duration, speed=args.speed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    series = [dict(args.condition)] if args.condition else None
    bar = _ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    report = asyncio.run(
        simulate(
            args.url,
            model=model,
            clock=clock,
            api_key=args.api_key,
            connection_details=args.connection_details,
            series=series,
            on_progress=bar,
        )
    )
    print("\n".join(report.lines()), file=out or sys.stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report.to_json(), handle, indent=2)
    return 0 if report.ok else 1


class _ProgressBar:
    """One line on a terminal, rewritten: simulated time, requests, errors."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream, self.width = stream, width

    def __call__(self, progress: Progress) -> None:
        done = int(progress.fraction * self.width)
        report = progress.report
        errors = sum(k.errors for k in report.kinds.values())
        self.stream.write(
            f"\r[{'#' * done}{'.' * (self.width - done)}] {progress.simulated_s:7.0f}"
            f"/{progress.duration_s:g} s simulated, {report.requests} requests, "
            f"{errors} errors"
        )
        if progress.fraction >= 1:
            self.stream.write("\n")
        self.stream.flush()
