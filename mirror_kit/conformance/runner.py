"""``run_checks``: the suite against one mirror, as a Report. Blocking, loop-agnostic.

It uses only blocking HTTP (httpx's sync client), never ``asyncio.run``, so it
works the same from a script, pytest, or a notebook cell whose kernel loop is
running. A check never crashes the run: an answer the checker cannot interpret
becomes a FAIL line naming the request that produced it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import closing
from typing import Any

from ..client import HOUR_MS, TimeArg, build_conditions, to_millis
from ..protocol import describe_conditions
from .checks import CHECKS, Check
from .context import Context, Finding, Options
from .probe import Probe
from .report import CheckResult, Profile, Report, Status

#: Windows per range for the aggregated checks (five minutes in the default hour).
WINDOWS_PER_RANGE = 12


def default_bucket_ms(start: int, end: int) -> int:
    """A bucket size giving about a dozen windows, in whole seconds."""
    return max(1000, (end - start) // WINDOWS_PER_RANGE // 1000 * 1000)


def run_checks(
    url: str,
    *,
    api_key: str | None = None,
    connection_details: Mapping[str, Any] | None = None,
    start: TimeArg = None,
    end: TimeArg = None,
    timeout: float = 10.0,
    bucket_ms: int | None = None,
    conditions: Mapping[str, Any] | None = None,
    profile: Profile | str = Profile.STACKSTATE,
) -> Report:
    """Check the mirror at ``url`` as StackState would use it; see docs/conformance.md.

    The range defaults to the hour ending now. ``api_key`` is the key StackState was
    given (None: the header need only be present and constant). ``timeout`` bounds
    each request; a mirror that times out twice in a row is asked nothing more.
    ``conditions`` (``{"__name__": "up", "job": "api"}``) name the stream to query,
    as a user picks it in StackState's wizard; without them the checker discovers one.
    ``profile`` is ``stackstate`` (what StackState tolerates is a WARN) or ``strict``.
    """
    profile = Profile(profile)
    end_ms = to_millis(end, int(time.time() * 1000))
    start_ms = to_millis(start, end_ms - HOUR_MS)
    if end_ms <= start_ms:
        raise ValueError(f"the range must not be empty: start {start_ms} >= end {end_ms}")
    options = Options(
        url=url.rstrip("/"),
        api_key=api_key,
        connection_details=dict(connection_details or {}),
        start=start_ms,
        end=end_ms,
        timeout=timeout,
        bucket_ms=bucket_ms or default_bucket_ms(start_ms, end_ms),
        conditions=build_conditions(conditions, {}),
        profile=profile,
    )
    with closing(Probe(options.url, timeout)) as probe:
        ctx = Context(options, probe)
        ordered = [c for c in CHECKS if not c.final] + [c for c in CHECKS if c.final]
        by_id = {c.id: _run(ctx, c) for c in ordered}
    return Report(
        url=options.url,
        start_time=start_ms,
        end_time=end_ms,
        results=tuple(by_id[c.id] for c in CHECKS),
        conditions=describe_conditions(ctx.target.conditions) if ctx.target else "",
        facts=_facts(ctx),
        profile=profile,
    )


def _run(ctx: Context, check: Check) -> CheckResult:
    if ctx.unreachable:
        finding = Finding(Status.SKIP, "the mirror is unreachable (see reachability)")
    else:
        try:
            finding = check.run(ctx)
        except Finding as raised:
            finding = raised
        except Exception as error:  # an answer shaped beyond what the checks foresee
            last = ctx.probe.exchanges[-1] if ctx.probe.exchanges else None
            finding = Finding(
                Status.FAIL, f"the checker could not interpret an answer: {error!r}", last
            )
    level = finding.level
    return CheckResult(
        check.id,
        finding.status if level is None else ctx.options.profile.status(level),
        finding.reason,
        check.spec,
        finding.exchange.describe() if finding.exchange is not None else None,
        level,
    )


def _facts(ctx: Context) -> dict[str, Any]:
    """What was learned about the mirror, for the JSON report."""
    return {
        "fields": [f"{f.field_name}:{f.field_type.value}" for f in ctx.fields],
        "rawPoints": ctx.target.points if ctx.target else None,
        "bucketSizeMillis": ctx.options.bucket_ms,
        "requests": len(ctx.probe.exchanges),
        "timeoutSeconds": ctx.options.timeout,
        **ctx.facts,
    }
