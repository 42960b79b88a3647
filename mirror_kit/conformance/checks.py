"""The checks, in the order they run, each naming the part of MIRROR_API.md it verifies.

Checks learn what to query from the mirror itself, as StackState's stream wizard
does: field names, then their values, then the conditions that yield data
(``discovery``). Each property is validated strictly by one check only; the others
read answers leniently (see ``validate``), so a defect shows up once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..client import MetricSeries, condition_value, continuation, merge_pages
from ..protocol import (
    AggregationMethod,
    EqualityCondition,
    FieldDescriptor,
    FieldType,
    InSetValue,
    MetricsRequest,
    describe_conditions,
)
from ..protocol.values import as_text
from . import validate
from .context import (
    Context,
    Finding,
    Paged,
    Target,
    from_problems,
    passed,
    refusal,
    require_accepted,
    skipped,
    wrong_data,
)
from .probe import Exchange, snippet
from .report import Level, Status

CheckFn = Callable[[Context], Finding]

#: Bounds on the requests one run sends, whatever the mirror offers.
MAX_FIELDS = 25
MAX_DISCOVERY_FIELDS = 5
MAX_PATTERN_DEPTH = 3
NO_SUCH_VALUE = "mirror-kit-conformance-no-such-value"
#: Fields that each name the metric (a Prometheus mirror's): one is picked, never two.
METRIC_ALTERNATIVES = frozenset({"__name__", "__counter__", "__gauge__"})
#: Fields whose value is typed rather than picked (a raw PromQL expression).
TYPED_FIELDS = frozenset({"~"})
EXTRA_FIELD = "unknownFieldFromTheConformanceChecker"


@dataclass(frozen=True)
class Check:
    id: str
    spec: str
    run: CheckFn
    #: Runs after all others (it looks at every answer received).
    final: bool = False


CHECKS: list[Check] = []


def check(check_id: str, spec: str, *, final: bool = False) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        CHECKS.append(Check(check_id, f"MIRROR_API.md § {spec}", fn, final))
        return fn

    return register


def _with(problems: list[validate.Problem], exchange: Exchange, prefix: str = "") -> list[Any]:
    return [(validate.Problem(p.level, prefix + p.message), exchange) for p in problems]


# Transport and Test Connection


@check("reachability", "Transport")
def reachability(ctx: Context) -> Finding:
    """The mirror answers HTTP at all; if not, every other check is skipped."""
    exchange = ctx.send(ctx.test_connection_request())
    ctx.connection = exchange
    if not exchange.answered:
        ctx.unreachable = True
        return Finding(Status.FAIL, f"no answer to Test Connection: {exchange.error}", exchange)
    return passed(f"Test Connection answered HTTP {exchange.status}")


@check("test-connection", "Test Connection")
def test_connection(ctx: Context) -> Finding:
    exchange = ctx.connection
    assert exchange is not None
    if not exchange.success or not exchange.is_json:
        return Finding(Status.FAIL, f"answered {exchange.outcome()}", exchange)
    problems = validate.test_connection(exchange.body)
    return from_problems(_with(problems, exchange), "status OK, a TestConnectionResponse")


# Field Names and Field Values


@check("field-names", "Field Names")
def field_names(ctx: Context) -> Finding:
    exchange = ctx.send(ctx.field_names_request())
    if not exchange.success or not exchange.is_json:
        raise Finding(Status.FAIL, f"answered {exchange.outcome()}", exchange)
    ctx.field_names_body = exchange.body
    ctx.fields = validate.descriptors(exchange.body)
    shown = ", ".join(f"{f.field_name} {f.field_type.value}" for f in ctx.fields[:8])
    more = f" and {len(ctx.fields) - 8} more" if len(ctx.fields) > 8 else ""
    problems = validate.field_names(exchange.body)
    return from_problems(_with(problems, exchange), f"{len(ctx.fields)} fields: {shown}{more}")


def _need_fields(ctx: Context) -> list[FieldDescriptor]:
    if not ctx.fields:
        raise skipped("no well-formed field names to ask about (see field-names)")
    return ctx.fields[:MAX_FIELDS]


@check("field-values", "Field Values")
def field_values(ctx: Context) -> Finding:
    """Values of every offered field (STRING ones must answer; others may refuse)."""
    problems: list[Any] = []
    for descriptor in _need_fields(ctx):
        name = descriptor.field_name
        exchange = ctx.send(ctx.field_values_request(descriptor))
        reason = refusal(exchange)
        if reason is not None:
            level = Level.BREAKS if descriptor.field_type is FieldType.STRING else Level.QUALITY
            problems.append((validate.Problem(level, f"values of {name}: {reason}"), exchange))
            continue
        ctx.offers[name] = validate.offers(exchange.body)
        found = validate.field_values(exchange.body, descriptor.field_type)
        problems += _with(found, exchange, f"values of {name}: ")
    counts = ", ".join(f"{k} ({len(v)})" for k, v in list(ctx.offers.items())[:8])
    return from_problems(problems, f"well-formed values for {len(ctx.offers)} fields: {counts}")


def _string_fields(ctx: Context) -> Iterator[tuple[FieldDescriptor, list[validate.Offer]]]:
    for descriptor in _need_fields(ctx):
        if descriptor.field_type is FieldType.STRING and descriptor.field_name in ctx.offers:
            yield descriptor, ctx.offers[descriptor.field_name]


def _stem(kind: str, value: Any) -> str:
    text = str(value)
    return text[:-1] if kind == validate.PATTERN and text.endswith("*") else text


def _covers(kind: str, offered: Any, value: str) -> bool:
    """The offer is ``value`` itself, or a pattern the user would pick to reach it."""
    return value.startswith(_stem(kind, offered)) if kind == validate.PATTERN else offered == value


@check("field-values.prefix", "Field Values (fieldValuePrefix)")
def field_values_prefix(ctx: Context) -> Finding:
    """Ask with the first letter of an offered value: all answers start with it, it is there."""
    picked = next(
        (
            (d, kind, value)
            for d, offered in _string_fields(ctx)
            for kind, value in offered
            if isinstance(value, str) and value
        ),
        None,
    )
    if picked is None:
        raise skipped("no STRING field offers a string value to take a prefix from")
    descriptor, _, value = picked
    prefix = value[0]
    exchange = ctx.send(ctx.field_values_request(descriptor, prefix))
    require_accepted(exchange, f"values of {descriptor.field_name} with prefix {prefix!r}")
    answered = validate.offers(exchange.body)
    wrong = [v for _, v in answered if not str(v).startswith(prefix)]
    if any(not str(v).lower().startswith(prefix.lower()) for v in wrong):
        shown = ", ".join(snippet(str(v), 40) for v in wrong[:3])
        return wrong_data(
            f"prefix {prefix!r} of {descriptor.field_name} answered {len(wrong)} values not "
            f"starting with it: {shown}",
            exchange,
        )
    if not any(_covers(k, v, value) for k, v in answered):
        return wrong_data(
            f"{value!r}, offered without a prefix, is missing for prefix {prefix!r}", exchange
        )
    if wrong:
        return Finding(Status.WARN, f"prefix {prefix!r} matched case-insensitively", exchange)
    return passed(
        f"prefix {prefix!r} of {descriptor.field_name}: {len(answered)} values, all matching"
    )


@check("field-values.paging", "Field Values (limit, offset, isPartial)")
def field_values_paging(ctx: Context) -> Finding:
    """Pages of one value (offset 0 and 1) are the first two of the whole list."""
    picked = next(((d, o) for d, o in _string_fields(ctx) if len(o) >= 2), None)
    if picked is None:
        raise skipped("no STRING field offers two values to page through")
    descriptor, full = picked
    for offset in (0, 1):
        request = ctx.field_values_request(descriptor, offset=offset, limit=1)
        exchange = ctx.send(request)
        what = f"values of {descriptor.field_name} offset {offset} limit 1"
        require_accepted(exchange, what)
        page = validate.offers(exchange.body)
        if len(page) > 1:
            return wrong_data(f"{what} answered {len(page)} values", exchange)
        if page != full[offset : offset + 1]:
            expected = full[offset][1]
            got = page[0][1] if page else "nothing"
            return wrong_data(f"{what} answered {got!r}, expected {expected!r}", exchange)
        more = len(full) > offset + 1
        if more and not validate.partial_flag(exchange.body):
            return wrong_data(f"{what}: isPartial is not true though values remain", exchange)
    return passed(
        f"{descriptor.field_name}: offset 0 and 1 with limit 1 give the first two of "
        f"{len(full)} values, isPartial true"
    )


# Discovery: what the stream wizard would do.


def _first_value(
    ctx: Context, descriptor: FieldDescriptor, conditions: list[EqualityCondition]
) -> Any:
    """The first complete value of a field under conditions, following patterns down."""
    prefix: str | None = None
    for _ in range(MAX_PATTERN_DEPTH + 1):
        cached = ctx.offers.get(descriptor.field_name)
        if prefix is None and not conditions and cached is not None:
            offered = cached
        else:
            request = ctx.field_values_request(descriptor, prefix, conditions=conditions)
            offered = validate.offers(ctx.send(request).body)
        complete = [v for k, v in offered if k == validate.COMPLETE and validate.scalar(v)]
        if complete:
            return complete[0]
        patterns = [v for k, v in offered if k == validate.PATTERN and isinstance(v, str)]
        if not patterns or _stem(validate.PATTERN, patterns[0]) == prefix:
            return None
        prefix = _stem(validate.PATTERN, patterns[0])
    return None


def _try(
    ctx: Context, conditions: list[EqualityCondition], tried: list[str]
) -> tuple[Target | None, bool]:
    """The target these conditions give, if any; and whether they select nothing at all
    (then no further condition can help: conditions are ANDed)."""
    request = ctx.metrics_request(conditions)
    exchange = ctx.send(request)
    count = validate.point_count(exchange.body) if exchange.success else None
    tried.append(f"{describe_conditions(tuple(conditions))}: {count or exchange.outcome()}")
    if count:
        return Target(tuple(conditions), request, exchange, count), False
    body = exchange.body if isinstance(exchange.body, dict) else {}
    nothing = count == 0 or exchange.status == 404 or body.get("_type") == "MetricNotFoundError"
    return None, nothing


@check("discovery", "Field Names, Field Values, Get Metric Values (the stream wizard)")
def discovery(ctx: Context) -> Finding:
    """Narrow field by field (STRING ones first) until a raw query yields points.

    As a user in the wizard would: a condition that selects nothing is taken back; of
    the fields that each name the metric (``__name__``, ``__counter__``, ``__gauge__``
    on Prometheus mirrors) one is picked, never two; a field whose value is typed (``~``,
    a PromQL expression) is not picked. Conditions the user gave (``--condition``) are
    used as they are instead.
    """
    tried: list[str] = []
    if ctx.options.conditions:
        ctx.target, _ = _try(ctx, list(ctx.options.conditions), tried)
        if ctx.target is None:
            return Finding(
                Status.FAIL,
                "the conditions given yield no points in the range: " + "; ".join(tried),
                ctx.probe.exchanges[-1],
            )
        return passed(f"{tried[0]} raw points (conditions given)")
    conditions: list[EqualityCondition] = []
    metric_named = False
    ordered = sorted(ctx.fields, key=lambda f: f.field_type is not FieldType.STRING)
    for descriptor in ordered:
        name = descriptor.field_name
        if name in TYPED_FIELDS or (metric_named and name in METRIC_ALTERNATIVES):
            continue
        if len(tried) >= MAX_DISCOVERY_FIELDS:
            break
        value = _first_value(ctx, descriptor, conditions)
        if value is None:
            continue
        attempt = [*conditions, EqualityCondition(name, condition_value(value))]
        ctx.target, nothing = _try(ctx, attempt, tried)
        if ctx.target is not None:
            break
        if not nothing:  # refused or several series: keep it and narrow further
            conditions = attempt
            metric_named = metric_named or name in METRIC_ALTERNATIVES
    if ctx.target is None and not conditions:
        ctx.target, _ = _try(ctx, [], tried)
    if ctx.target is None:
        return Finding(
            Status.FAIL,
            "no conditions found that yield points in the range: " + "; ".join(tried),
            ctx.probe.exchanges[-1],
        )
    t = ctx.target
    return passed(f"{describe_conditions(t.conditions)} gives {t.points} raw points")


@check("field-names.narrowing", "Field Names (conditions narrow the names)")
def field_names_narrowing(ctx: Context) -> Finding:
    target = ctx.target
    if target is None or not target.conditions:
        raise skipped("no condition to narrow with (see discovery)")
    condition = target.conditions[0]
    exchange = ctx.send(ctx.field_names_request([condition]))
    require_accepted(exchange, f"field names where {condition.describe()}")
    narrowed = validate.field_name_strings(exchange.body)
    extra = set(narrowed) - set(validate.field_name_strings(ctx.field_names_body))
    if extra:
        return Finding(
            Status.WARN,
            f"{condition.describe()} offers fields not offered without it: {sorted(extra)[:5]}",
            exchange,
        )
    return passed(f"{condition.describe()}: {len(narrowed)} fields, a subset of all")


# Get Metric Values


@check("metrics.raw", "Get Metric Values (raw)")
def metrics_raw(ctx: Context) -> Finding:
    target = ctx.need_target()
    problems = validate.telemetry(target.exchange.body, target.request.query)
    return from_problems(
        _with(problems, target.exchange),
        f"{target.points} points: RawMetricTelemetry, dataFormat, finite values, "
        "timestamps in range and in order",
    )


@check("metrics.aggregated", "Get Metric Values (aggregated)")
def metrics_aggregated(ctx: Context) -> Finding:
    target = ctx.need_target()
    request = ctx.metrics_request(target.conditions, AggregationMethod.MEAN)
    exchange = ctx.send(request)
    if not exchange.success or not exchange.is_json:
        raise Finding(Status.FAIL, f"MEAN answered {exchange.outcome()}", exchange)
    ctx.aggregated = (request, exchange)
    problems = _with(validate.telemetry(exchange.body, request.query), exchange)
    if not problems and not validate.point_count(exchange.body):
        message = f"no windows, though the raw query gave {target.points} points"
        problems.append((validate.data(message), exchange))
    count = validate.point_count(exchange.body)
    return from_problems(
        problems, f"MEAN of {ctx.options.bucket_ms} ms: {count} windows of that size, in order"
    )


@check("metrics.aggregation-methods", "Get Metric Values (aggregation methods)")
def aggregation_methods(ctx: Context) -> Finding:
    target = ctx.need_target()
    refused: list[tuple[str, Exchange, str]] = []
    for method in AggregationMethod:
        request = ctx.metrics_request(target.conditions, method)
        exchange = ctx.send(request)
        reason = refusal(exchange)
        kind = validate.telemetry_type(exchange.body)
        if reason is None and kind != "AggregatedMetricTelemetry":
            reason = f"telemetry _type {kind!r}"
        if reason is not None:
            refused.append((method.value, exchange, reason))
        else:
            ctx.by_method[method] = (request, exchange)
    if refused:
        names = ", ".join(name for name, _, _ in refused)
        return Finding(
            Status.FAIL,
            f"{len(refused)} of {len(AggregationMethod)} methods not accepted: {names} "
            f"(first: {refused[0][2]})",
            refused[0][1],
        )
    return passed(f"all {len(AggregationMethod)} methods answered aggregated telemetry")


# Values: each method's answer against the mirror's own raw answer for the range.

PERCENTILES = tuple(m for m in AggregationMethod if m.percentile is not None)


def _nothing_compared() -> Finding:
    return skipped(
        "no window of bucketSizeMillis wholly inside the range was answered with raw points "
        "in it, by every method compared (see metrics.aggregated)"
    )


#: Relative tolerance of value comparisons (sums are added in another order).
RTOL = 1e-9


@dataclass(frozen=True)
class Windows:
    """One method's answered windows, each with the raw values it should summarise."""

    method: AggregationMethod
    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray
    raw: list[np.ndarray | None]  # None: the window is not wholly inside what raw covers
    exchange: Exchange

    def compared(self) -> Iterator[tuple[int, np.ndarray]]:
        return ((i, r) for i, r in enumerate(self.raw) if r is not None)

    def where(self, i: int) -> str:
        return f"[{int(self.starts[i])}, {int(self.ends[i])})"


def _raw_series(ctx: Context) -> MetricSeries:
    target = ctx.need_target()
    try:
        raw = ctx.series(target.exchange, target.request)
    except Finding:
        raise skipped("the raw answer is unreadable (see metrics.raw)") from None
    if not np.isfinite(raw.values).all():
        # A NaN or infinite raw value is metrics.raw's finding; with it, no window's
        # count, sum or extremes can be checked against raw (one defect, one finding).
        raise skipped("the raw answer has non-finite values (see metrics.raw)")
    order = np.argsort(raw.timestamps, kind="stable")
    return MetricSeries(raw.values[order], raw.timestamps[order], None, raw.is_partial, raw.request)


def _windows(ctx: Context, method: AggregationMethod, raw: MetricSeries) -> Windows:
    """The method's windows; raw values for those wholly inside the range raw covers."""
    answered = ctx.by_method.get(method)
    if answered is None:
        raise skipped(f"no {method.value} answer to compare (see metrics.aggregation-methods)")
    request, exchange = answered
    try:
        series = ctx.series(exchange, request)
    except Finding:
        raise skipped(f"the {method.value} answer is unreadable (see metrics.aggregated)") from None
    if series.bucket_ends is None:
        raise skipped(f"the {method.value} answer has no windows (see metrics.aggregated)")
    horizon = ctx.options.end
    if raw.is_partial and len(raw):
        horizon = int(raw.timestamps[-1])  # raw was cut: compare only what it covers
    low = np.searchsorted(raw.timestamps, series.timestamps, side="left")
    high = np.searchsorted(raw.timestamps, series.bucket_ends, side="left")
    inside = (series.timestamps >= ctx.options.start) & (series.bucket_ends <= horizon)
    inside &= series.bucket_ends - series.timestamps == ctx.options.bucket_ms  # see aggregated
    groups = [
        raw.values[lo:hi] if keep else None for lo, hi, keep in zip(low, high, inside, strict=True)
    ]
    return Windows(method, series.timestamps, series.bucket_ends, series.values, groups, exchange)


def _close(got: float, expected: float, scale: float | None = None) -> bool:
    return abs(got - expected) <= RTOL * max(abs(expected), scale or 0.0, 1e-300)


def _late(w: Windows, raw: MetricSeries, pick: Callable[[np.ndarray], float]) -> bool:
    """Whether the values are those of the window before each one (labelled late)."""
    size = w.ends - w.starts
    low = np.searchsorted(raw.timestamps, w.starts - size, side="left")
    high = np.searchsorted(raw.timestamps, w.starts, side="left")
    pairs = [
        (w.values[i], raw.values[lo:hi]) for i, (lo, hi) in enumerate(zip(low, high, strict=True))
    ]
    pairs = [(v, r) for v, r in pairs if len(r)]
    return bool(pairs) and all(_close(v, pick(r)) for v, r in pairs)


@check("metrics.values.extremes", "Get Metric Values (MIN, MAX: the raw extremes per window)")
def values_extremes(ctx: Context) -> Finding:
    """Each window's MIN and MAX are the extremes of exactly the raw points inside it."""
    raw = _raw_series(ctx)
    compared = 0
    for method, pick in ((AggregationMethod.MIN, np.min), (AggregationMethod.MAX, np.max)):
        w = _windows(ctx, method, raw)
        pairs = [(i, r) for i, r in w.compared() if len(r)]
        wrong = [(i, r) for i, r in pairs if not _close(w.values[i], pick(r))]
        if wrong:
            i, r = wrong[0]
            late = " — they are the previous window's: labelled one window late" * _late(
                w, raw, pick
            )
            return wrong_data(
                f"{method.value}: {len(wrong)} of {len(pairs)} windows are not the raw "
                f"{method.value.lower()} of their points (window {w.where(i)}: answered "
                f"{float(w.values[i])!r}, raw {float(pick(r))!r} of {len(r)} points){late}",
                w.exchange,
            )
        compared = len(pairs)
    if not compared:
        raise _nothing_compared()
    return passed(f"MIN and MAX of {compared} windows are the raw extremes of their points")


@check("metrics.values.order", "Get Metric Values (MIN <= P25 <= ... <= P99 <= MAX, MEAN)")
def values_order(ctx: Context) -> Finding:
    """Per window: MIN <= PERCENTILE_25 <= ... <= PERCENTILE_99 <= MAX, MEAN within."""
    raw = _raw_series(ctx)
    ladder = (AggregationMethod.MIN, *PERCENTILES, AggregationMethod.MAX)
    answers = {m: _windows(ctx, m, raw) for m in (*ladder, AggregationMethod.MEAN)}
    by_start = {
        m: {int(w.starts[i]): float(w.values[i]) for i, _ in w.compared()}
        for m, w in answers.items()
    }
    starts = sorted(set.intersection(*(set(v) for v in by_start.values())))
    if not starts:
        raise _nothing_compared()
    low, high = by_start[AggregationMethod.MIN], by_start[AggregationMethod.MAX]
    for start in starts:
        column = [by_start[m][start] for m in ladder]
        slack = RTOL * max(abs(low[start]), abs(high[start]), 1e-300)
        steps = zip(ladder, ladder[1:], column, column[1:], strict=False)
        for a, b, x, y in steps:
            if x > y + slack:
                return wrong_data(
                    f"window starting {start}: {a.value} {x!r} > {b.value} {y!r}",
                    answers[b].exchange,
                )
        mean = by_start[AggregationMethod.MEAN][start]
        if not low[start] - slack <= mean <= high[start] + slack:
            return wrong_data(
                f"window starting {start}: MEAN {mean!r} outside [MIN {low[start]!r}, "
                f"MAX {high[start]!r}]",
                answers[AggregationMethod.MEAN].exchange,
            )
    spread = answers[AggregationMethod.MIN]
    varied = {int(spread.starts[i]) for i, r in spread.compared() if len(r) and r.min() != r.max()}
    same = [s for s in starts if s in varied and len({by_start[m][s] for m in by_start}) == 1]
    if same:
        return wrong_data(
            f"every method answered the same value in {len(same)} of {len(varied)} windows "
            f"whose raw points differ (an instant sample, not an aggregate?)",
            answers[AggregationMethod.MEAN].exchange,
        )
    return passed(f"{len(starts)} windows: MIN <= P25 <= ... <= P99 <= MAX, MEAN within")


COUNTS = (AggregationMethod.EVENT_COUNT, AggregationMethod.EVENT_COUNT_NO_ZEROS)
SUMS = (AggregationMethod.SUM, AggregationMethod.SUM_NO_ZEROS)


@check("metrics.values.count-sum", "Get Metric Values (EVENT_COUNT, SUM: the raw count and sum)")
def values_count_sum(ctx: Context) -> Finding:
    """EVENT_COUNT and SUM (and their _NO_ZEROS forms) per window against raw; every raw
    point inside the answered windows' span falls in a window; an empty window is 0 or absent."""
    raw = _raw_series(ctx)
    compared = 0
    for method in (*COUNTS, *SUMS):
        w = _windows(ctx, method, raw)
        for i, r in w.compared():
            expected = float(len(r)) if method in COUNTS else float(np.sum(r))
            scale = float(np.abs(r).sum()) if len(r) else 0.0
            if not _close(w.values[i], expected, scale):
                what = "count" if method in COUNTS else "sum"
                return wrong_data(
                    f"{method.value}: window {w.where(i)} answered {float(w.values[i])!r}, the raw "
                    f"{what} of its {len(r)} points is {expected!r}",
                    w.exchange,
                )
            compared += 1
        inside = [i for i, r in w.compared()]
        if method is AggregationMethod.EVENT_COUNT and inside:
            first, last = w.starts[inside[0]], w.ends[inside[-1]]
            span = (raw.timestamps >= first) & (raw.timestamps < last)
            counted = sum(len(r) for r in (w.raw[i] for i in inside) if r is not None)
            if int(span.sum()) != counted:
                return wrong_data(
                    f"{int(span.sum()) - counted} raw points in [{int(first)}, {int(last)}) "
                    "fall in no answered window",
                    w.exchange,
                )
    if not compared:
        raise _nothing_compared()
    return passed(f"EVENT_COUNT and SUM (and _NO_ZEROS) of {compared // 4} windows match raw")


@check("metrics.edge-buckets", "Get Metric Values (windows cut by startTime or endTime)")
def edge_buckets(ctx: Context) -> Finding:
    """Reports the edge-bucket policy: a live stream's range ends "now", so a window cut by
    endTime changes value from poll to poll (StackState re-polls every >= 60 s)."""
    target = ctx.need_target()
    size = ctx.options.bucket_ms
    start, end = ctx.options.start + size // 2, ctx.options.end - size // 2
    if end - start < 2 * size:
        raise skipped("the range is too short to cut a window at each end")
    request = ctx.metrics_request(target.conditions, AggregationMethod.MEAN, span=(start, end))
    exchange = ctx.send(request)
    require_accepted(exchange, f"MEAN over [{start}, {end})")
    series = ctx.series(exchange, request)
    if series.bucket_ends is None or not len(series):
        raise skipped("no windows answered for a range cut at both ends")
    late = bool(series.bucket_ends[-1] > end)
    early = bool(series.timestamps[0] < start)
    ctx.facts["edgeBuckets"] = {"firstCut": early, "lastCut": late}
    if late:
        return Finding(
            Status.WARN,
            f"emits the window cut by endTime ([{int(series.timestamps[-1])}, "
            f"{int(series.bucket_ends[-1])}) past {end}): its value changes from poll to poll"
            + ("; also the window cut by startTime" if early else ""),
            exchange,
        )
    first = "cut by startTime too" if early else "only windows starting at or after startTime"
    return passed(f"only windows ending by endTime ({first})")


def _full(ctx: Context, kind: str) -> tuple[MetricsRequest, Exchange]:
    target = ctx.need_target()
    if kind == "raw":
        return target.request, target.exchange
    if ctx.aggregated is None:
        raise skipped("no aggregated answer to compare with (see metrics.aggregated)")
    return ctx.aggregated


def _unit(kind: str) -> str:
    return "points" if kind == "raw" else "windows"


def _limit(ctx: Context, kind: str) -> Finding:
    """A limit of a third of the points: at most that many, with isPartial true."""
    request, exchange = _full(ctx, kind)
    unit = _unit(kind)
    try:
        full = ctx.series(exchange, request)
    except Finding:
        raise skipped(f"the unlimited {kind} answer is unreadable (see metrics.{kind})") from None
    if len(full) < 4:
        raise skipped(f"only {len(full)} {kind} {unit} in the range; widen it to test limit")
    limit = max(2, len(full) // 3)
    method = None if request.query.aggregation is None else request.query.aggregation.method
    limited = ctx.metrics_request(request.query.conditions, method, limit)
    answer = ctx.send(limited)
    page = ctx.series(answer, limited)
    ctx.paged[kind] = Paged(limited, page, limit, full, answer)
    if len(page) > limit:
        return wrong_data(
            f"limit {limit} answered {len(page)} {unit} ({len(full)} without a limit)", answer
        )
    if not page.is_partial:
        return wrong_data(
            f"limit {limit} cut {len(full)} {unit} to {len(page)} but isPartial is false", answer
        )
    return passed(f"limit {limit}: {len(page)} of {len(full)} {unit}, isPartial true")


@check("metrics.limit.raw", "Get Metric Values (limit, isPartial)")
def limit_raw(ctx: Context) -> Finding:
    return _limit(ctx, "raw")


@check("metrics.limit.aggregated", "Get Metric Values (limit, isPartial)")
def limit_aggregated(ctx: Context) -> Finding:
    return _limit(ctx, "aggregated")


def _follow(ctx: Context, paged: Paged) -> tuple[list[Any], list[Exchange]]:
    """Pages as StackState fetches them: again from the last timestamp, while isPartial."""
    pages, exchanges, request = [paged.page], [paged.exchange], paged.request
    most = math.ceil(len(paged.full) / max(1, paged.limit - 1)) + 3
    while len(pages) < most:
        following = continuation(request, pages[-1])
        if following is None:
            break
        request = following
        exchanges.append(ctx.send(request))
        try:
            pages.append(ctx.series(exchanges[-1], request))
        except Finding as finding:
            raise wrong_data(
                f"continuation page {len(pages) + 1}: {finding.reason}", exchanges[-1]
            ) from None
    return pages, exchanges


def _continuation(ctx: Context, kind: str) -> Finding:
    paged = ctx.paged.get(kind)
    if paged is None or len(paged.page) > paged.limit or not paged.page.is_partial:
        raise skipped(f"needs a limit that is honoured (see metrics.limit.{kind})")
    pages, exchanges = _follow(ctx, paged)
    if pages[-1].is_partial:
        return wrong_data(
            f"page {len(pages)} is still isPartial but the next page brings nothing new "
            f"(stalled, or more than {len(pages)} pages)",
            exchanges[-1],
        )
    for i in range(1, len(pages)):
        if not len(pages[i - 1]):
            continue
        repeated = int((pages[i].timestamps <= pages[i - 1].timestamps[-1]).sum())
        if repeated > 1:
            return wrong_data(
                f"page {i + 1} repeats {repeated} {_unit(kind)} already received "
                "(only the boundary one may repeat)",
                exchanges[i],
            )
    unit = _unit(kind)
    merged = merge_pages(pages).timestamps
    lost = np.setdiff1d(paged.full.timestamps, merged)
    extra = np.setdiff1d(merged, paged.full.timestamps)
    if len(lost) or len(extra):
        return wrong_data(
            f"{len(pages)} pages of limit {paged.limit} lost {len(lost)} and added {len(extra)} "
            f"of {len(paged.full)} {unit} (first lost: {lost[:2].tolist()}, "
            f"first added: {extra[:2].tolist()})",
            exchanges[-1],
        )
    return passed(
        f"{len(paged.full)} {unit} in {len(pages)} pages of limit {paged.limit}, "
        "none lost or repeated"
    )


@check("metrics.continuation.raw", "Get Metric Values (isPartial, continuation)")
def continuation_raw(ctx: Context) -> Finding:
    return _continuation(ctx, "raw")


@check("metrics.continuation.aggregated", "Get Metric Values (isPartial, continuation)")
def continuation_aggregated(ctx: Context) -> Finding:
    return _continuation(ctx, "aggregated")


@check("determinism", "Get Metric Values (a store answers the same twice)")
def determinism(ctx: Context) -> Finding:
    """WARN only: the tutorial's sample mirror returns new random values every time."""
    target = ctx.need_target()
    try:
        first = ctx.series(target.exchange, target.request)
        again_exchange = ctx.send(target.request)
        again = ctx.series(again_exchange, target.request)
    except Finding as finding:
        return Finding(Status.WARN, f"could not repeat: {finding.reason}", finding.exchange)
    if not np.array_equal(first.timestamps, again.timestamps):
        return Finding(Status.WARN, "the same raw query gave other timestamps", again_exchange)
    if not np.array_equal(first.values, again.values, equal_nan=True):
        differ = int((first.values != again.values).sum())
        return Finding(
            Status.WARN,
            f"the same raw query gave other values ({differ} of {len(first)} differ)",
            again_exchange,
        )
    return passed(f"the same raw query gave the same {len(first)} points")


# Request variants


def _samples(ctx: Context) -> list[Any]:
    """One request of each kind, as StackState would send them."""
    requests: list[Any] = [ctx.test_connection_request(), ctx.field_names_request()]
    if ctx.fields:
        requests.append(ctx.field_values_request(ctx.fields[0]))
    if ctx.target is not None:
        requests.append(ctx.target.request)
        requests.append(ctx.metrics_request(ctx.target.conditions, AggregationMethod.MAX))
    return requests


def _variants(ctx: Context, edit: Callable[[Any], Any], what: str, level: Level) -> Finding:
    refused = []
    requests = _samples(ctx)
    for request in requests:
        exchange = ctx.probe.post_json(request.path, edit(request.to_json()))
        reason = refusal(exchange)
        if reason is not None:
            refused.append((request.path, exchange, reason))
    if refused:
        paths = ", ".join(path for path, _, _ in refused)
        return Finding(
            Status.FAIL,
            f"{len(refused)} of {len(requests)} requests {what} refused ({paths}): {refused[0][2]}",
            refused[0][1],
            level,
        )
    return passed(f"all {len(requests)} requests {what} accepted")


def strip_types(body: Any) -> Any:
    """The body without any ``_type`` (older StackState versions omit them)."""
    if isinstance(body, dict):
        return {k: strip_types(v) for k, v in body.items() if k != "_type"}
    if isinstance(body, list):
        return [strip_types(v) for v in body]
    return body


def add_unknown_fields(body: Any, inside_details: bool = False) -> Any:
    """The body with an unknown field in every object (connectionDetails aside)."""
    if isinstance(body, list):
        return [add_unknown_fields(v) for v in body]
    if not isinstance(body, dict) or inside_details:
        return body
    edited = {k: add_unknown_fields(v, k == "connectionDetails") for k, v in body.items()}
    edited[EXTRA_FIELD] = {"note": "from a newer StackState", "n": 1}
    return edited


@check("requests.untyped", "Transport (_type present or absent)")
def requests_untyped(ctx: Context) -> Finding:
    """Every real StackState request carries _type: accepting bodies without is leniency."""
    return _variants(ctx, strip_types, "without _type fields", Level.DATA)


@check("requests.unknown-fields", "Transport (unknown extra fields)")
def requests_unknown_fields(ctx: Context) -> Finding:
    return _variants(ctx, add_unknown_fields, "with unknown extra fields", Level.BREAKS)


@check("requests.in-set", "Common request fields (InSetValue)")
def requests_in_set(ctx: Context) -> Finding:
    target = ctx.need_target()
    if not target.conditions:
        raise skipped("discovery needed no condition, so there is none to put in a set")
    first = target.conditions[0]
    in_set = EqualityCondition(first.key, InSetValue(frozenset({_text(first), NO_SUCH_VALUE})))
    request = ctx.metrics_request((in_set, *target.conditions[1:]))
    exchange = ctx.send(request)
    require_accepted(exchange, in_set.describe())
    count = validate.point_count(exchange.body)
    if not count:
        return Finding(
            Status.FAIL,
            f"{in_set.describe()} answered no points, though {first.describe()} gives "
            f"{target.points}",
            exchange,
        )
    return passed(f"{in_set.describe()}: {count} points")


def _text(condition: EqualityCondition) -> str:
    value = condition.value.value
    return as_text(value) if not isinstance(value, frozenset) else sorted(value)[0]


# Bad input


def _bad_input(ctx: Context, text: str, what: str) -> Finding:
    """StackState never sends such bodies: a mirror that drops them does not break it."""
    exchange = ctx.probe.post("/api/metric", text)
    if not exchange.answered:
        return wrong_data(f"{what}: {exchange.error}; expected a protocol error body", exchange)
    if not validate.is_error_body(exchange.body):
        return wrong_data(
            f"{what} answered {exchange.outcome()}: not a protocol error body", exchange
        )
    kind = exchange.body["_type"]
    if exchange.success:
        return Finding(
            Status.WARN,
            f"{what} answered {kind} with HTTP {exchange.status}, not 4xx/5xx",
            exchange,
        )
    return passed(f"{what} answered HTTP {exchange.status} {kind}")


@check("bad-input.malformed-json", "Errors")
def bad_input_malformed(ctx: Context) -> Finding:
    return _bad_input(ctx, '{"_type": "MetricsRequest", "query": {"startTime": ', "malformed JSON")


@check("bad-input.missing-query", "Errors")
def bad_input_missing_query(ctx: Context) -> Finding:
    body = {"_type": "MetricsRequest", "connectionDetails": ctx.options.connection_details}
    return _bad_input(ctx, json.dumps(body), "a MetricsRequest without query")


# The API key, on every answer received during the run.


def _keys(ctx: Context, exchanges: list[Exchange], what: str) -> Finding:
    if not exchanges:
        raise skipped(f"no {what} answer was received")
    expected = ctx.options.api_key
    if expected is None:
        missing = [e for e in exchanges if e.api_key is None]
        if missing:
            return Finding(
                Status.FAIL,
                f"{len(missing)} of {len(exchanges)} {what} answers lack X-MIRROR-API-KEY",
                missing[0],
            )
        keys = sorted({str(e.api_key) for e in exchanges})
        status = Status.WARN if len(keys) > 1 else Status.PASS
        return Finding(status, f"X-MIRROR-API-KEY {keys} on all {len(exchanges)} {what} answers")
    wrong = [e for e in exchanges if e.api_key != expected]
    if wrong:
        return Finding(
            Status.FAIL,
            f"{len(wrong)} of {len(exchanges)} {what} answers carry X-MIRROR-API-KEY "
            f"{wrong[0].api_key!r}, expected {expected!r}",
            wrong[0],
        )
    return passed(f"all {len(exchanges)} {what} answers carry X-MIRROR-API-KEY {expected!r}")


@check("api-key.success", "Transport (X-MIRROR-API-KEY)", final=True)
def api_key_success(ctx: Context) -> Finding:
    return _keys(ctx, [e for e in ctx.probe.exchanges if e.success], "successful")


@check("api-key.error", "Transport (X-MIRROR-API-KEY), Errors", final=True)
def api_key_error(ctx: Context) -> Finding:
    errors = [e for e in ctx.probe.exchanges if e.answered and (e.status or 0) >= 400]
    return _keys(ctx, errors, "error")


CHECK_IDS: tuple[str, ...] = tuple(c.id for c in CHECKS)
