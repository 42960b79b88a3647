"""Strict validators and lenient readers for answer bodies (parsed JSON). Pure, no I/O.

Each protocol property is *validated* by exactly one check, strictly, on the raw
JSON (so that ``_type``, ``NaN`` or a missing ``isPartial`` are visible, which the
kit's typed readers forgive). Every other check *reads* answers leniently with the
readers below, so that one defect makes one check fail, not ten.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..protocol import FieldDescriptor, FieldType, MetricsQuery
from ..protocol.values import typed_scalar
from .report import Level

ERROR_TYPES = frozenset(
    {
        "MetricStoreConnectionError",
        "MetricNotFoundError",
        "UnsupportedFieldTypeError",
        "RemoteMirrorError",
    }
)
FIELD_TYPES = frozenset({"STRING", "NUMBER", "BOOLEAN"})
RAW_FORMAT = ("value", "timestamp")
AGGREGATED_FORMAT = ("value", "startTimestamp", "endTimestamp")
COMPLETE, PATTERN = "CompleteValue", "FieldValuePattern"
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


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def typed(body: dict[str, Any], expected: str, where: str) -> list[Problem]:
    """Every object names its class in ``_type`` (MIRROR_API.md, Transport)."""
    got = body.get("_type")
    if got == expected:
        return []
    if got is None:
        return [fail(f"{where} has no _type (expected {expected!r})")]
    return [fail(f"{where} has _type {got!r}, expected {expected!r}")]


def _partial_flag(body: dict[str, Any], where: str, required: bool) -> list[Problem]:
    value = body.get("isPartial")
    if isinstance(value, bool):
        return []
    if value is None and not required:
        return [warn(f"{where} has no isPartial")]
    return [fail(f"{where}.isPartial is {value!r}, expected true or false")]


def test_connection(body: Any) -> list[Problem]:
    if not isinstance(body, dict):
        return [fail("the answer is not a JSON object")]
    problems = typed(body, "TestConnectionResponse", "the response")
    status = body.get("status")
    if status == "FAILURE":
        error = body.get("error")
        if not isinstance(error, dict) or error.get("_type") not in ERROR_TYPES:
            problems.append(fail(f"status FAILURE with a malformed error {error!r:.120}"))
        else:
            problems.append(fail(f"the mirror reports FAILURE: {error!r:.200}"))
    elif status != "OK":
        problems.append(fail(f"status is {status!r:.60}, expected 'OK' (or 'FAILURE')"))
    return problems


def descriptor(body: Any, where: str) -> list[Problem]:
    if not isinstance(body, dict):
        return [fail(f"{where} is not an object")]
    problems = typed(body, "FieldDescriptor", where)
    name = body.get("fieldName")
    if not isinstance(name, str) or not name:
        problems.append(fail(f"{where}.fieldName is {name!r:.60}, expected a non-empty string"))
    kind = body.get("fieldType")
    if kind == "DOUBLE":
        problems.append(warn(f"{where}.fieldType is DOUBLE (tolerated; NUMBER is documented)"))
    elif kind not in FIELD_TYPES:
        problems.append(fail(f"{where}.fieldType is {kind!r:.60}, not STRING/NUMBER/BOOLEAN"))
    classified = body.get("classified")
    if classified is None:
        problems.append(warn(f"{where} has no classified flag"))
    elif not isinstance(classified, bool):
        problems.append(fail(f"{where}.classified is {classified!r:.60}, expected true/false"))
    return problems


def field_names(body: Any) -> list[Problem]:
    if not isinstance(body, dict):
        return [fail("the answer is not a JSON object")]
    problems = typed(body, "FieldNamesResponse", "the response")
    problems += _partial_flag(body, "the response", required=False)
    fields = body.get("fields")
    if not isinstance(fields, list):
        return [*problems, fail(f"fields is {fields!r:.60}, expected a list")]
    if not fields:
        problems.append(fail("no fields offered: StackState's stream wizard has nothing to show"))
    for i, item in enumerate(fields):
        problems += descriptor(item, f"fields[{i}]")
    names = Counter(f.get("fieldName") for f in fields if isinstance(f, dict))
    twice = sorted(str(n) for n, k in names.items() if k > 1)
    if twice:
        problems.append(warn(f"fields offered more than once: {', '.join(twice)}"))
    return problems


def _fits(value: Any, kind: FieldType) -> bool:
    """A string (the documented form) that reads as a value of the field's type."""
    if not isinstance(value, str):
        return False
    return kind is FieldType.STRING or typed_scalar(value, kind) is not value


def field_values(body: Any, kind: FieldType) -> list[Problem]:
    if not isinstance(body, dict):
        return [fail("the answer is not a JSON object")]
    problems = typed(body, "FieldValuesResponse", "the response")
    problems += _partial_flag(body, "the response", required=False)
    values = body.get("values")
    if not isinstance(values, list):
        return [*problems, fail(f"values is {values!r:.60}, expected a list")]
    for i, item in enumerate(values):
        where = f"values[{i}]"
        if not isinstance(item, dict) or "value" not in item:
            problems.append(fail(f"{where} is {item!r:.60}, expected an object with a value"))
            continue
        option, value = item.get("_type"), item["value"]
        if option not in (COMPLETE, PATTERN):
            problems.append(fail(f"{where}._type is {option!r:.60}, expected {COMPLETE}/{PATTERN}"))
        elif option == PATTERN and not isinstance(value, str):
            problems.append(fail(f"{where} is a {PATTERN} whose value {value!r:.60} is no string"))
        elif option == COMPLETE and not _fits(value, kind):
            documented = "a string" if kind is FieldType.STRING else f"a {kind.value} as a string"
            problems.append(
                warn(f"{where} value {value!r:.60} is not {documented} (fieldType {kind.value})")
            )
    return problems


def telemetry(body: Any, query: MetricsQuery) -> list[Problem]:
    """A MetricsResponse for ``query``: types, dataFormat, finite numbers, range and order."""
    if not isinstance(body, dict):
        return [fail("the answer is not a JSON object")]
    aggregated = query.aggregation is not None
    kind = "AggregatedMetricTelemetry" if aggregated else "RawMetricTelemetry"
    expected = AGGREGATED_FORMAT if aggregated else RAW_FORMAT
    problems = typed(body, "MetricsResponse", "the response")
    t = body.get("telemetry")
    if not isinstance(t, dict):
        return [*problems, fail(f"telemetry is {t!r:.60}, expected an object")]
    problems += typed(t, kind, "telemetry")
    problems += _partial_flag(t, "telemetry", required=True)
    fmt = t.get("dataFormat")
    if not isinstance(fmt, list) or sorted(map(str, fmt)) != sorted(expected):
        return [*problems, fail(f"telemetry.dataFormat is {fmt!r:.80}, expected {list(expected)}")]
    array, shape_problems = _points(t.get("points"), len(fmt))
    if array is None:
        return problems + shape_problems
    columns = [fmt.index(name) for name in expected]
    not_numbers = _numbers(array[:, columns[0]], array[:, columns[1:]])
    if not_numbers:
        return problems + not_numbers
    if aggregated:
        assert query.aggregation is not None
        size = query.aggregation.bucket_size_millis
        return problems + _windows(array[:, columns[1]], array[:, columns[2]], size, query)
    return problems + _instants(array[:, columns[1]], query)


def _points(points: Any, width: int) -> tuple[np.ndarray | None, list[Problem]]:
    if not isinstance(points, list):
        return None, [fail(f"telemetry.points is {points!r:.60}, expected a list")]
    for i, point in enumerate(points):
        if not isinstance(point, list) or len(point) != width:
            return None, [fail(f"point {i} is {point!r:.80}: dataFormat names {width} numbers")]
        if not all(is_number(x) for x in point):
            return None, [fail(f"point {i} is {point!r:.80}: it holds something not a number")]
    return np.array(points, dtype=np.float64).reshape(len(points), width), []


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
    return isinstance(body, dict) and body.get("_type") in ERROR_TYPES


# Lenient readers: what the other checks (and discovery) need, forgiving everything else.


def descriptors(body: Any) -> list[FieldDescriptor]:
    """The well-formed field descriptors of a FieldNamesResponse (others are skipped)."""
    fields = body.get("fields") if isinstance(body, dict) else None
    out = []
    for item in fields if isinstance(fields, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("fieldName"), str):
            continue
        try:
            kind = FieldType(item.get("fieldType", "STRING"))
        except ValueError:
            continue
        out.append(FieldDescriptor(item["fieldName"], kind, item.get("classified") is True))
    return out


def field_name_strings(body: Any) -> list[str]:
    fields = body.get("fields") if isinstance(body, dict) else None
    items = fields if isinstance(fields, list) else []
    return [f["fieldName"] for f in items if isinstance(f, dict) and "fieldName" in f]


Offer = tuple[str, Any]


def offers(body: Any) -> list[Offer]:
    """``(kind, value)`` pairs of a FieldValuesResponse; kind is CompleteValue or a pattern."""
    values = body.get("values") if isinstance(body, dict) else None
    items = values if isinstance(values, list) else []
    return [
        (PATTERN if v.get("_type") == PATTERN else COMPLETE, v["value"])
        for v in items
        if isinstance(v, dict) and "value" in v
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
