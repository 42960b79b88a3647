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

from ..client import condition_value, continuation, merge_pages
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
)
from .probe import Exchange, snippet
from .report import Status

CheckFn = Callable[[Context], Finding]

#: Bounds on the requests one run sends, whatever the mirror offers.
MAX_FIELDS = 25
MAX_DISCOVERY_FIELDS = 5
MAX_PATTERN_DEPTH = 3
NO_SUCH_VALUE = "mirror-kit-conformance-no-such-value"
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
    return [(validate.Problem(p.status, prefix + p.message), exchange) for p in problems]


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
            status = Status.FAIL if descriptor.field_type is FieldType.STRING else Status.WARN
            problems.append((validate.Problem(status, f"values of {name}: {reason}"), exchange))
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
        return Finding(
            Status.FAIL,
            f"prefix {prefix!r} of {descriptor.field_name} answered {len(wrong)} values not "
            f"starting with it: {shown}",
            exchange,
        )
    if not any(_covers(k, v, value) for k, v in answered):
        return Finding(
            Status.FAIL,
            f"{value!r}, offered without a prefix, is missing for prefix {prefix!r}",
            exchange,
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
            return Finding(Status.FAIL, f"{what} answered {len(page)} values", exchange)
        if page != full[offset : offset + 1]:
            expected = full[offset][1]
            got = page[0][1] if page else "nothing"
            return Finding(Status.FAIL, f"{what} answered {got!r}, expected {expected!r}", exchange)
        more = len(full) > offset + 1
        if more and not validate.partial_flag(exchange.body):
            return Finding(
                Status.FAIL, f"{what}: isPartial is not true though values remain", exchange
            )
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


def _try(ctx: Context, conditions: list[EqualityCondition], tried: list[str]) -> Target | None:
    request = ctx.metrics_request(conditions)
    exchange = ctx.send(request)
    count = validate.point_count(exchange.body) if exchange.success else None
    tried.append(f"{describe_conditions(tuple(conditions))}: {count or exchange.outcome()}")
    if count:
        return Target(tuple(conditions), request, exchange, count)
    return None


@check("discovery", "Field Names, Field Values, Get Metric Values (the stream wizard)")
def discovery(ctx: Context) -> Finding:
    """Narrow field by field (STRING ones first) until a raw query yields points.

    Conditions the user gave (``--condition``) are used as they are instead.
    """
    tried: list[str] = []
    if ctx.options.conditions:
        ctx.target = _try(ctx, list(ctx.options.conditions), tried)
        if ctx.target is None:
            return Finding(
                Status.FAIL,
                "the conditions given yield no points in the range: " + "; ".join(tried),
                ctx.probe.exchanges[-1],
            )
        return passed(f"{tried[0]} raw points (conditions given)")
    conditions: list[EqualityCondition] = []
    ordered = sorted(ctx.fields, key=lambda f: f.field_type is not FieldType.STRING)
    for descriptor in ordered[:MAX_DISCOVERY_FIELDS]:
        value = _first_value(ctx, descriptor, conditions)
        if value is None:
            continue
        conditions.append(EqualityCondition(descriptor.field_name, condition_value(value)))
        ctx.target = _try(ctx, conditions, tried)
        if ctx.target is not None:
            break
    else:
        ctx.target = _try(ctx, [], tried)
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
        problems.append((validate.fail(message), exchange))
    count = validate.point_count(exchange.body)
    return from_problems(
        problems, f"MEAN of {ctx.options.bucket_ms} ms: {count} windows of that size, in order"
    )


@check("metrics.aggregation-methods", "Get Metric Values (aggregation methods)")
def aggregation_methods(ctx: Context) -> Finding:
    target = ctx.need_target()
    refused: list[tuple[str, Exchange, str]] = []
    for method in AggregationMethod:
        exchange = ctx.send(ctx.metrics_request(target.conditions, method))
        reason = refusal(exchange)
        kind = validate.telemetry_type(exchange.body)
        if reason is None and kind != "AggregatedMetricTelemetry":
            reason = f"telemetry _type {kind!r}"
        if reason is not None:
            refused.append((method.value, exchange, reason))
    if refused:
        names = ", ".join(name for name, _, _ in refused)
        return Finding(
            Status.FAIL,
            f"{len(refused)} of {len(AggregationMethod)} methods not accepted: {names} "
            f"(first: {refused[0][2]})",
            refused[0][1],
        )
    return passed(f"all {len(AggregationMethod)} methods answered aggregated telemetry")


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
        return Finding(
            Status.FAIL,
            f"limit {limit} answered {len(page)} {unit} ({len(full)} without a limit)",
            answer,
        )
    if not page.is_partial:
        return Finding(
            Status.FAIL,
            f"limit {limit} cut {len(full)} {unit} to {len(page)} but isPartial is false",
            answer,
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
            raise Finding(
                Status.FAIL, f"continuation page {len(pages) + 1}: {finding.reason}", exchanges[-1]
            ) from None
    return pages, exchanges


def _continuation(ctx: Context, kind: str) -> Finding:
    paged = ctx.paged.get(kind)
    if paged is None or len(paged.page) > paged.limit or not paged.page.is_partial:
        raise skipped(f"needs a limit that is honoured (see metrics.limit.{kind})")
    pages, exchanges = _follow(ctx, paged)
    if pages[-1].is_partial:
        return Finding(
            Status.FAIL,
            f"page {len(pages)} is still isPartial but the next page brings nothing new "
            f"(stalled, or more than {len(pages)} pages)",
            exchanges[-1],
        )
    for i in range(1, len(pages)):
        if not len(pages[i - 1]):
            continue
        repeated = int((pages[i].timestamps <= pages[i - 1].timestamps[-1]).sum())
        if repeated > 1:
            return Finding(
                Status.FAIL,
                f"page {i + 1} repeats {repeated} {_unit(kind)} already received "
                "(only the boundary one may repeat)",
                exchanges[i],
            )
    unit = _unit(kind)
    merged = merge_pages(pages).timestamps
    lost = np.setdiff1d(paged.full.timestamps, merged)
    extra = np.setdiff1d(merged, paged.full.timestamps)
    if len(lost) or len(extra):
        return Finding(
            Status.FAIL,
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


def _variants(ctx: Context, edit: Callable[[Any], Any], what: str) -> Finding:
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
    return _variants(ctx, strip_types, "without _type fields")


@check("requests.unknown-fields", "Transport (unknown extra fields)")
def requests_unknown_fields(ctx: Context) -> Finding:
    return _variants(ctx, add_unknown_fields, "with unknown extra fields")


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
    exchange = ctx.probe.post("/api/metric", text)
    if not exchange.answered:
        return Finding(
            Status.FAIL, f"{what}: {exchange.error}; expected a protocol error body", exchange
        )
    if not validate.is_error_body(exchange.body):
        return Finding(
            Status.FAIL,
            f"{what} answered {exchange.outcome()}: not a protocol error body",
            exchange,
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
