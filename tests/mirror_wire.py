"""Request bodies shaped as StackState sends them, and exact checks of response bodies.

The tests speak raw JSON on purpose: they must catch a mirror whose typed classes
agree with each other but not with the wire format in ``shared/MIRROR_API.md``.
So bodies are built here by hand from that document, never with the package's
own ``to_json``, and answers are checked key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

CONNECTION = "/api/connection"
FIELD_NAMES = "/api/field/name"
FIELD_VALUES = "/api/field/value"
METRIC = "/api/metric"
API_PATHS = (CONNECTION, FIELD_NAMES, FIELD_VALUES, METRIC)

#: What StackState sends as ``limit`` when it wants everything.
STACKSTATE_LIMIT = 2_147_483_647

AGGREGATION_METHODS = (
    "MEAN",
    "PERCENTILE_25",
    "PERCENTILE_50",
    "PERCENTILE_75",
    "PERCENTILE_90",
    "PERCENTILE_95",
    "PERCENTILE_98",
    "PERCENTILE_99",
    "MAX",
    "MIN",
    "SUM",
    "EVENT_COUNT",
    "SUM_NO_ZEROS",
    "EVENT_COUNT_NO_ZEROS",
)

Json = dict[str, Any]
Where = Mapping[str, Any]


def typed_value(value: Any) -> Json:
    """The protocol value object for a plain value (StringValue, DoubleValue...)."""
    if isinstance(value, bool):
        return {"value": value, "_type": "BooleanValue"}
    if isinstance(value, (int, float)):
        return {"value": float(value), "_type": "DoubleValue"}
    if isinstance(value, (list, tuple)):
        return {"value": list(value), "_type": "InSetValue"}
    return {"value": value, "_type": "StringValue"}


def conditions(where: Where | None) -> list[Json]:
    return [
        {"key": key, "value": typed_value(value), "_type": "EqualityCondition"}
        for key, value in (where or {}).items()
    ]


def connection_body() -> Json:
    return {"_type": "TestConnectionRequest", "connectionDetails": {}}


def field_names_body(
    start: int, end: int, where: Where | None = None, limit: int | None = STACKSTATE_LIMIT
) -> Json:
    query: Json = {
        "_type": "FieldNamesQuery",
        "conditions": conditions(where),
        "startTime": start,
        "endTime": end,
        "latestFirst": False,
    }
    if limit is not None:
        query["limit"] = limit
    return {"_type": "FieldNamesRequest", "connectionDetails": {}, "query": query}


def field_values_body(
    field: str,
    start: int,
    end: int,
    *,
    field_type: str = "STRING",
    where: Where | None = None,
    prefix: str | None = None,
    offset: int | None = None,
    limit: int | None = STACKSTATE_LIMIT,
) -> Json:
    query: Json = {
        "_type": "FieldValuesQuery",
        "conditions": conditions(where),
        "field": {
            "_type": "FieldDescriptor",
            "fieldName": field,
            "fieldType": field_type,
            "classified": False,
        },
        "startTime": start,
        "endTime": end,
        "latestFirst": False,
    }
    if prefix is not None:
        query["fieldValuePrefix"] = prefix
    if offset is not None:
        query["offset"] = offset
    if limit is not None:
        query["limit"] = limit
    return {"_type": "FieldValuesRequest", "connectionDetails": {}, "query": query}


def metrics_body(
    start: int,
    end: int,
    where: Where | None = None,
    *,
    method: str | None = None,
    bucket_ms: int | None = None,
    limit: int | None = STACKSTATE_LIMIT,
    latest_first: bool = False,
    details: Json | None = None,
) -> Json:
    """A Get Metric Values body; aggregated when ``method`` is given."""
    query: Json = {
        "_type": "MetricsQuery",
        "conditions": conditions(where),
        "startTime": start,
        "endTime": end,
        "latestFirst": latest_first,
    }
    if limit is not None:
        query["limit"] = limit
    if method is not None:
        query["aggregation"] = {
            "method": method,
            "bucketSizeMillis": bucket_ms,
            "_type": "Aggregation",
        }
    return {"_type": "MetricsRequest", "connectionDetails": details or {}, "query": query}


def strip_types(body: Any) -> Any:
    """The same body with every ``_type`` removed, at every depth."""
    if isinstance(body, dict):
        return {k: strip_types(v) for k, v in body.items() if k != "_type"}
    if isinstance(body, list):
        return [strip_types(v) for v in body]
    return body


def add_unknown_fields(body: Any) -> Any:
    """The same body with an unknown field added to every object (a newer StackState)."""
    if isinstance(body, dict):
        out = {k: add_unknown_fields(v) for k, v in body.items()}
        out["someFutureField"] = {"nested": [1, "two", None]}
        return out
    if isinstance(body, list):
        return [add_unknown_fields(v) for v in body]
    return body


def with_query(body: Json, **changes: Any) -> Json:
    """A copy of a request body with query members replaced (None removes one)."""
    query = {k: v for k, v in {**body["query"], **changes}.items() if v is not None}
    return {**body, "query": query}


# --- response shapes -------------------------------------------------------------


def assert_connection_ok(body: Json) -> None:
    assert body == {"status": "OK", "_type": "TestConnectionResponse"}


def assert_field_names_shape(body: Json) -> None:
    assert set(body) == {"fields", "isPartial", "_type"}
    assert body["_type"] == "FieldNamesResponse"
    assert isinstance(body["isPartial"], bool)
    for field in body["fields"]:
        assert set(field) == {"_type", "fieldName", "fieldType", "classified"}
        assert field["_type"] == "FieldDescriptor"
        assert isinstance(field["fieldName"], str)
        assert field["fieldType"] in ("STRING", "NUMBER", "BOOLEAN", "DOUBLE")
        assert isinstance(field["classified"], bool)


def assert_field_values_shape(body: Json) -> None:
    assert set(body) == {"values", "isPartial", "_type"}
    assert body["_type"] == "FieldValuesResponse"
    assert isinstance(body["isPartial"], bool)
    for option in body["values"]:
        assert set(option) == {"value", "_type"}
        assert option["_type"] in ("CompleteValue", "FieldValuePattern")
        if option["_type"] == "FieldValuePattern":
            assert isinstance(option["value"], str) and option["value"].endswith("*")


def assert_raw_shape(body: Json) -> None:
    assert set(body) == {"telemetry", "_type"} and body["_type"] == "MetricsResponse"
    telemetry = body["telemetry"]
    assert set(telemetry) == {"points", "dataFormat", "isPartial", "_type"}
    assert telemetry["_type"] == "RawMetricTelemetry"
    assert telemetry["dataFormat"] == ["value", "timestamp"]
    assert isinstance(telemetry["isPartial"], bool)
    for value, timestamp in telemetry["points"]:
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert isinstance(timestamp, int) and not isinstance(timestamp, bool)


def assert_aggregated_shape(body: Json) -> None:
    assert set(body) == {"telemetry", "_type"} and body["_type"] == "MetricsResponse"
    telemetry = body["telemetry"]
    assert set(telemetry) == {"points", "dataFormat", "isPartial", "_type"}
    assert telemetry["_type"] == "AggregatedMetricTelemetry"
    assert telemetry["dataFormat"] == ["value", "startTimestamp", "endTimestamp"]
    assert isinstance(telemetry["isPartial"], bool)
    for value, start, end in telemetry["points"]:
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert isinstance(start, int) and isinstance(end, int) and start < end


def assert_error(body: Json, type_name: str) -> None:
    """An error body of the protocol: exactly the members MIRROR_API.md lists."""
    members = {
        "MetricStoreConnectionError": {"_type", "details"},
        "MetricNotFoundError": {"_type", "metric", "details"},
        "UnsupportedFieldTypeError": {"_type", "mirrorType"},
        "RemoteMirrorError": {"_type", "summary", "details"},
    }[type_name]
    assert body.get("_type") == type_name, body
    assert set(body) == members, body
    assert all(isinstance(body[k], str) and body[k] for k in members), body


# --- reading answers ---------------------------------------------------------------


def raw_arrays(body: Json) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, values) of a raw answer."""
    points = body["telemetry"]["points"]
    if not points:
        return np.empty(0, dtype=np.int64), np.empty(0)
    return (
        np.array([p[1] for p in points], dtype=np.int64),
        np.array([p[0] for p in points], dtype=np.float64),
    )


def aggregated_arrays(body: Json) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, values) of an aggregated answer."""
    points = body["telemetry"]["points"]
    if not points:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    return (
        np.array([p[1] for p in points], dtype=np.int64),
        np.array([p[2] for p in points], dtype=np.int64),
        np.array([p[0] for p in points], dtype=np.float64),
    )


def option_values(body: Json) -> list[tuple[str, Any]]:
    """Field value options as (``_type``, value) pairs, in the order served."""
    return [(o["_type"], o["value"]) for o in body["values"]]
