"""Strict validators and lenient readers for answer bodies (parsed JSON). Pure, no I/O.

Each protocol property is *validated* by exactly one check, strictly, on the raw
JSON. The structure (members, their types, enums, point widths) is the protocol's
own declaration: the body is read into the answer's wire type (``structure``), so
the checker and the mirror cannot disagree on it. What a wire type forgives -- an
absent ``_type`` or ``isPartial`` -- and the semantics (order, windows, ranges,
values) are checked by hand here. Every other check *reads* answers leniently with
the readers below, so that one defect makes one check fail, not ten.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from ..protocol import (
    AggregatedMetricTelemetry,
    CompleteValue,
    FieldDescriptor,
    FieldNamesResponse,
    FieldType,
    FieldValuePattern,
    FieldValuesResponse,
    MetricsQuery,
    MetricsResponse,
    RawMetricTelemetry,
    RemoteMirrorError,
    TestConnectionResponse,
)
from ..protocol._wire import describe
from ..protocol.errors import ERRORS
from ..protocol.values import typed_scalar
from .report import Level

COMPLETE, PATTERN = CompleteValue.type_name, FieldValuePattern.type_name
#: A raw timestamp this close outside the range is rounding (a mirror working in
#: seconds), a note; further out it is data StackState did not ask for.
ROUNDING_MS = 1000


@dataclass(frozen=True)
class Problem:
    level: Level
    message: str


def fail(message: str) -> Problem:
    """StackState breaks on this."""
    return Problem(Level.BREAKS, message)


def data(message: str) -> Problem:
    """StackState shows wrong or incomplete data (or a rule it does not enforce is broken)."""
    return Problem(Level.DATA, message)


def warn(message: str) -> Problem:
    """A quality note."""
    return Problem(Level.QUALITY, message)


def structure(body: Any, wire: Any) -> list[Problem]:
    """The body read as its wire type: a FAIL naming the first member that is wrong."""
    if not isinstance(body, dict):
        return [fail("the answer is not a JSON object")]
    try:
        msgspec.convert(body, wire)
    except msgspec.ValidationError as error:
        path, problem = describe(error, whole="the answer")
        return [fail(f"{path} {problem.replace('must be', 'is not', 1)}")]
    return []


def typed(body: dict[str, Any], expected: str, where: str) -> list[Problem]:
    """Every object names its class in ``_type`` (MIRROR_API.md, Transport)."""
    got = body.get("_type")
    if got == expected:
        return []
    if got is None:
        return [fail(f"{where} has no _type (expected {expected!r})")]
    return [fail(f"{where} has _type {got!r}, expected {expected!r}")]


def _flags(body: dict[str, Any], expected: str) -> list[Problem]:
    """``_type`` and (a note when absent) ``isPartial`` of a field answer."""
    problems = typed(body, expected, "the response")
    return problems + ([] if "isPartial" in body else [warn("the response has no isPartial")])


def test_connection(body: Any) -> list[Problem]:
    problems = structure(body, TestConnectionResponse.wire)
    if problems:
        return problems
    problems = typed(body, TestConnectionResponse.type_name, "the response")
    if body["status"] == "FAILURE":
        problems.append(fail(f"the mirror reports FAILURE: {body.get('error')!r:.200}"))
    return problems


def field_names(body: Any) -> list[Problem]:
    problems = structure(body, FieldNamesResponse)
    if problems:
        return problems
    problems, fields = _flags(body, FieldNamesResponse.type_name), body["fields"]
    if not fields:
        problems.append(fail("no fields offered: StackState's stream wizard has nothing to show"))
    for i, item in enumerate(fields):
        where = f"fields[{i}]"
        problems += typed(item, FieldDescriptor.type_name, where)
        if not item.get("fieldName"):
            problems.append(fail(f"{where}.fieldName is empty"))
        if item.get("fieldType") == "DOUBLE":
            problems.append(warn(f"{where}.fieldType is DOUBLE (tolerated; NUMBER is documented)"))
        if "classified" not in item:
            problems.append(warn(f"{where} has no classified flag"))
    names = Counter(f["fieldName"] for f in fields)
    twice = sorted(str(n) for n, k in names.items() if k > 1)
    if twice:
        problems.append(warn(f"fields offered more than once: {', '.join(twice)}"))
    return problems


def _fits(value: Any, kind: FieldType) -> bool:
    """A string (the documented form) that reads as a value of the field's type."""
    return kind is FieldType.STRING or typed_scalar(value, kind) is not value


def field_values(body: Any, kind: FieldType) -> list[Problem]:
    problems = structure(body, FieldValuesResponse)
    if problems:
        return problems
    problems = _flags(body, FieldValuesResponse.type_name)
    for i, (option, value) in enumerate(offers(body)):
        if option == COMPLETE and not _fits(value, kind):
            documented = "a string" if kind is FieldType.STRING else f"a {kind.value} as a string"
            problems.append(
                warn(
                    f"values[{i}] value {value!r:.60} is not {documented} (fieldType {kind.value})"
                )
            )
    return problems


def telemetry(body: Any, query: MetricsQuery) -> list[Problem]:
    """A MetricsResponse for ``query``: types, dataFormat, finite numbers, range and order."""
    kind = AggregatedMetricTelemetry if query.aggregation is not None else RawMetricTelemetry
    problems = structure(body, MetricsResponse.wire)
    if problems:
        return problems
    t = body["telemetry"]
    problems = typed(body, MetricsResponse.type_name, "the response")
    problems += typed(t, kind.type_name, "telemetry")
    if not isinstance(t.get("isPartial"), bool):
        problems.append(fail(f"telemetry.isPartial is {t.get('isPartial')!r}, expected a boolean"))
    fmt, expected = t["dataFormat"], kind.data_format
    columns = kind.float_columns(t["points"], fmt)
    if columns is None:
        return [*problems, fail(f"telemetry.dataFormat is {fmt!r:.80}, expected {list(expected)}")]
    not_numbers = _numbers(columns[0], np.column_stack(columns[1:]))
    if not_numbers:
        return problems + not_numbers
    if query.aggregation is not None:
        size = query.aggregation.bucket_size_millis
        return problems + _windows(columns[1], columns[2], size, query)
    return problems + _instants(columns[1], query)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numbers(values: np.ndarray, stamps: np.ndarray) -> list[Problem]:
    problems = []
    bad = ~np.isfinite(values)
    if bad.any():
        i = _first(bad)
        problems.append(fail(f"{int(bad.sum())} values are not finite (point {i}: {values[i]})"))
    bad_time = ~(np.isfinite(stamps) & (np.floor(stamps) == stamps)).all(axis=1)
    if bad_time.any():
        i = _first(bad_time)
        problems.append(
            fail(f"{int(bad_time.sum())} timestamps are not integer epoch ms (point {i})")
        )
    return problems


def _instants(stamps: np.ndarray, q: MetricsQuery) -> list[Problem]:
    problems = []
    outside = (stamps < q.start_time) | (stamps > q.end_time)
    if outside.any():
        i = _first(outside)
        off = max(q.start_time - stamps.min(), stamps.max() - q.end_time)
        found = data if off >= ROUNDING_MS else warn
        problems.append(
            found(
                f"{int(outside.sum())} timestamps outside [{q.start_time}, {q.end_time}] "
                f"(point {i}: {int(stamps[i])}; up to {int(off)} ms out"
                + (", seconds rounding?)" if off < ROUNDING_MS else ")")
            )
        )
    step = np.diff(stamps)
    if (step < 0).any():
        i = _first(step < 0) + 1
        problems.append(
            data(f"not in time order: point {i} ({int(stamps[i])}) is older than {i - 1}")
        )
    elif (step == 0).any():
        problems.append(warn(f"{int((step == 0).sum())} timestamps occur twice"))
    return problems


def _windows(starts: np.ndarray, ends: np.ndarray, size: int, q: MetricsQuery) -> list[Problem]:
    problems = []
    wrong = (ends - starts) != size
    if wrong.any():
        i = _first(wrong)
        problems.append(
            data(
                f"{int(wrong.sum())} of {len(starts)} windows are not bucketSizeMillis={size} "
                f"long (point {i}: {int(ends[i] - starts[i])} ms)"
            )
        )
    outside = (ends <= q.start_time) | (starts > q.end_time)
    if outside.any():
        i = _first(outside)
        problems.append(
            data(
                f"{int(outside.sum())} windows outside [{q.start_time}, {q.end_time}] "
                f"(point {i}: [{int(starts[i])}, {int(ends[i])}])"
            )
        )
    if (np.diff(starts) <= 0).any():
        i = _first(np.diff(starts) <= 0) + 1
        problems.append(data(f"windows not in time order: point {i} starts before {i - 1} ends"))
    elif (starts[1:] < ends[:-1]).any():
        i = _first(starts[1:] < ends[:-1]) + 1
        problems.append(data(f"windows overlap: point {i} starts before point {i - 1} ends"))
    return problems


def is_error_body(body: Any) -> bool:
    """One of the four protocol error bodies (MIRROR_API.md, Errors)."""
    return isinstance(body, dict) and body.get("_type") in ERRORS


# Lenient readers: what the other checks (and discovery) need, forgiving everything else.


def _items(body: Any, member: str) -> list[Any]:
    items = body.get(member) if isinstance(body, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def descriptors(body: Any) -> list[FieldDescriptor]:
    """The well-formed field descriptors of a FieldNamesResponse (others are skipped)."""
    out = []
    for item in _items(body, "fields"):
        try:
            out.append(FieldDescriptor.from_json(item))
        except RemoteMirrorError:
            continue
    return out


def field_name_strings(body: Any) -> list[str]:
    return [f["fieldName"] for f in _items(body, "fields") if "fieldName" in f]


Offer = tuple[str, Any]


def offers(body: Any) -> list[Offer]:
    """``(kind, value)`` pairs of a FieldValuesResponse; kind is CompleteValue or a pattern."""
    return [
        (PATTERN if v.get("_type") == PATTERN else COMPLETE, v["value"])
        for v in _items(body, "values")
        if "value" in v
    ]


def scalar(value: Any) -> bool:
    """A value a condition can hold: a string, a finite number or a boolean."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def point_count(body: Any) -> int | None:
    t = body.get("telemetry") if isinstance(body, dict) else None
    points = t.get("points") if isinstance(t, dict) else None
    return len(points) if isinstance(points, list) else None


def telemetry_type(body: Any) -> str | None:
    t = body.get("telemetry") if isinstance(body, dict) else None
    return t.get("_type") if isinstance(t, dict) else None


def partial_flag(body: Any) -> bool:
    return isinstance(body, dict) and body.get("isPartial") is True
