"""The wire format classes: lenient where StackState versions differ, strict on types.

These are unit tests of ``mirror_kit.protocol`` alone (no HTTP): parsing the bodies
StackState sends (with and without ``_type``, with unknown fields), naming the
offending field when one is wrong, and rendering bodies exactly as MIRROR_API.md
shows them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import HOUR, T0
from mirror_wire import (
    AGGREGATION_METHODS,
    add_unknown_fields,
    assert_aggregated_shape,
    assert_error,
    assert_field_names_shape,
    assert_field_values_shape,
    assert_raw_shape,
    connection_body,
    field_names_body,
    field_values_body,
    metrics_body,
    strip_types,
    with_query,
)

from mirror_kit.protocol import (
    AggregatedMetricTelemetry,
    Aggregation,
    AggregationMethod,
    BooleanValue,
    CompleteValue,
    DoubleValue,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesRequest,
    FieldNamesResponse,
    FieldType,
    FieldValuePattern,
    FieldValuesRequest,
    FieldValuesResponse,
    InSetValue,
    MetricNotFoundError,
    MetricsRequest,
    MetricsResponse,
    MetricStoreConnectionError,
    MirrorError,
    RawMetricTelemetry,
    RemoteMirrorError,
    StringValue,
    TestConnectionRequest,
    TestConnectionResponse,
    UnsupportedFieldTypeError,
)
from mirror_kit.protocol.values import text_forms

WHERE = {"host": "a-host", "cores": 4, "production": True, "region": ["eu-west", "us-east"]}
EXPECTED_CONDITIONS = (
    EqualityCondition("host", StringValue("a-host")),
    EqualityCondition("cores", DoubleValue(4.0)),
    EqualityCondition("production", BooleanValue(True)),
    EqualityCondition("region", InSetValue(frozenset({"eu-west", "us-east"}))),
)


def variants(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The body as StackState sends it, without any ``_type``, and with unknown fields."""
    return [body, strip_types(body), add_unknown_fields(body)]


# --- requests: parsing -------------------------------------------------------------


@pytest.mark.parametrize("index", range(3), ids=["typed", "untyped", "unknown-fields"])
def test_metrics_request_parses_every_variant(index: int) -> None:
    body = metrics_body(T0, T0 + HOUR, WHERE, method="PERCENTILE_95", bucket_ms=60_000, limit=7)
    request = MetricsRequest.from_json(variants(body)[index])
    q = request.query
    assert (q.start_time, q.end_time, q.limit, q.latest_first) == (T0, T0 + HOUR, 7, False)
    assert q.conditions == EXPECTED_CONDITIONS
    assert q.aggregation == Aggregation(AggregationMethod.PERCENTILE_95, 60_000)


@pytest.mark.parametrize("index", range(3), ids=["typed", "untyped", "unknown-fields"])
def test_field_values_request_parses_every_variant(index: int) -> None:
    body = field_values_body(
        "cores", T0, T0 + HOUR, field_type="NUMBER", where=WHERE, prefix="4", offset=2, limit=3
    )
    q = FieldValuesRequest.from_json(variants(body)[index]).query
    assert q.field == FieldDescriptor("cores", FieldType.NUMBER, False)
    assert (q.field_value_prefix, q.offset, q.limit) == ("4", 2, 3)
    assert q.conditions == EXPECTED_CONDITIONS


@pytest.mark.parametrize("index", range(3), ids=["typed", "untyped", "unknown-fields"])
def test_field_names_and_connection_requests_parse_every_variant(index: int) -> None:
    names = FieldNamesRequest.from_json(variants(field_names_body(T0, T0 + 1, WHERE, 5))[index])
    assert names.query.conditions == EXPECTED_CONDITIONS and names.query.limit == 5
    details = {"host": "prometheus.local.com", "port": 9900, "nan_interpretation": "ZERO"}
    body = {**connection_body(), "connectionDetails": details}
    assert TestConnectionRequest.from_json(variants(body)[index]).connection_details["port"] == 9900


def test_optional_members_default() -> None:
    """limit, latestFirst, offset, prefix, conditions and metricField may all be absent."""
    body = {"connectionDetails": {}, "query": {"startTime": T0, "endTime": T0 + 1}}
    q = MetricsRequest.from_json(body).query
    assert (q.limit, q.latest_first, q.conditions, q.aggregation, q.metric_field) == (
        None,
        False,
        (),
        None,
        None,
    )
    body["query"]["field"] = {"fieldName": "host"}
    fq = FieldValuesRequest.from_json(body).query
    assert (fq.offset, fq.field_value_prefix, fq.field.field_type) == (0, None, FieldType.STRING)


def test_integral_floats_are_accepted_as_times() -> None:
    body = metrics_body(T0, T0 + HOUR)
    q = MetricsRequest.from_json(with_query(body, startTime=float(T0), endTime=1.7672292e12)).query
    assert (q.start_time, q.end_time) == (T0, 1_767_229_200_000)
    assert isinstance(q.start_time, int)


BAD_METRICS_QUERIES: list[tuple[str, dict[str, Any], str]] = [
    ("start-string", {"startTime": "yesterday"}, "query.startTime"),
    ("start-bool", {"startTime": True}, "query.startTime"),
    ("start-fraction", {"startTime": T0 + 0.5}, "query.startTime"),
    ("start-huge", {"startTime": 1e300}, "query.startTime"),
    ("end-missing", {"endTime": None}, "query.endTime"),
    ("limit-negative", {"limit": -1}, "query.limit"),
    ("limit-string", {"limit": "10"}, "query.limit"),
    ("latest-first-string", {"latestFirst": "true"}, "query.latestFirst"),
    ("conditions-object", {"conditions": {"host": "a-host"}}, "query.conditions"),
    ("condition-not-object", {"conditions": ["host=a-host"]}, "query.conditions[0]"),
    ("condition-key-missing", {"conditions": [{"value": {"value": "x"}}]}, "key"),
    (
        "double-not-number",
        {"conditions": [{"key": "cores", "value": {"value": "4", "_type": "DoubleValue"}}]},
        "query.conditions[0].value.value",
    ),
    (
        "boolean-not-bool",
        {"conditions": [{"key": "p", "value": {"value": 1, "_type": "BooleanValue"}}]},
        "query.conditions[0].value.value",
    ),
    (
        "inset-not-strings",
        {"conditions": [{"key": "h", "value": {"value": [1, 2], "_type": "InSetValue"}}]},
        "query.conditions[0].value.value[0]",
    ),
    (
        "unknown-value-type",
        {"conditions": [{"key": "h", "value": {"value": "x", "_type": "RegexValue"}}]},
        "query.conditions[0].value._type",
    ),
    (
        "bucket-zero",
        {"aggregation": {"method": "MAX", "bucketSizeMillis": 0}},
        "query.aggregation.bucketSizeMillis",
    ),
    (
        "method-unknown",
        {"aggregation": {"method": "MEDIAN", "bucketSizeMillis": 1000}},
        "query.aggregation.method",
    ),
    ("metric-field-number", {"metricField": 3}, "query.metricField"),
    ("wrong-query-type", {"_type": "FieldNamesQuery"}, "query._type"),
]


@pytest.mark.parametrize(
    ("changes", "path"),
    [(c, p) for _, c, p in BAD_METRICS_QUERIES],
    ids=[name for name, _, _ in BAD_METRICS_QUERIES],
)
def test_malformed_query_names_the_field(changes: dict[str, Any], path: str) -> None:
    body = with_query(metrics_body(T0, T0 + HOUR), **changes)
    with pytest.raises(RemoteMirrorError) as caught:
        MetricsRequest.from_json(body)
    assert path in caught.value.summary
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ([], "request body"),
        ({"query": {"startTime": 0, "endTime": 1}}, "connectionDetails"),
        ({"connectionDetails": {}}, "query"),
        ({"connectionDetails": [], "query": {"startTime": 0, "endTime": 1}}, "connectionDetails"),
        ({"_type": "FieldNamesRequest", "connectionDetails": {}, "query": {}}, "query.startTime"),
    ],
    ids=["not-object", "no-details", "no-query", "details-list", "no-start"],
)
def test_malformed_request_names_the_member(body: Any, path: str) -> None:
    with pytest.raises(RemoteMirrorError) as caught:
        FieldNamesRequest.from_json(body)
    assert path in caught.value.summary


def test_wrong_request_type_is_rejected() -> None:
    body = {**metrics_body(T0, T0 + 1), "_type": "FieldNamesRequest"}
    with pytest.raises(RemoteMirrorError, match="_type"):
        MetricsRequest.from_json(body)


def test_untyped_values_are_inferred_from_json() -> None:
    """Without ``_type`` a value's JSON type says which protocol value it is."""
    raw = [
        {"key": "a", "value": {"value": "x"}},
        {"key": "b", "value": {"value": 2}},
        {"key": "c", "value": {"value": False}},
        {"key": "d", "value": {"value": ["x", "y"]}},
    ]
    body = with_query(metrics_body(T0, T0 + 1), conditions=raw)
    values = [c.value for c in MetricsRequest.from_json(body).query.conditions]
    assert values == [
        StringValue("x"),
        DoubleValue(2.0),
        BooleanValue(False),
        InSetValue(frozenset({"x", "y"})),
    ]


# --- requests: rendering (what the client sends) ------------------------------------


def test_requests_render_as_stackstate_sends_them() -> None:
    """to_json of a parsed StackState body gives that body back, ``_type`` on every object."""
    bodies = [
        (MetricsRequest, metrics_body(T0, T0 + HOUR, WHERE, method="MAX", bucket_ms=60_000)),
        (MetricsRequest, metrics_body(T0, T0 + HOUR, WHERE, latest_first=True)),
        (FieldNamesRequest, field_names_body(T0, T0 + HOUR, WHERE)),
        (
            FieldValuesRequest,
            field_values_body("host", T0, T0 + HOUR, where=WHERE, prefix="a", offset=1),
        ),
        (TestConnectionRequest, connection_body()),
    ]
    for cls, body in bodies:
        assert cls.from_json(body).to_json() == body


# --- conditions and fields ------------------------------------------------------------


def test_condition_values_match_by_type() -> None:
    assert StringValue("4").accepts("4") and not StringValue("4.0").accepts("4")
    assert StringValue("4").accepts(4.0) and StringValue("4.0").accepts(4.0)
    assert StringValue("true").accepts(True) and not StringValue("1").accepts(True)
    assert DoubleValue(4.0).accepts(4.0) and not DoubleValue(1.0).accepts(True)
    assert BooleanValue(True).accepts(True) and not BooleanValue(True).accepts(1.0)
    in_set = InSetValue(frozenset({"a-host", "4", "true"}))
    assert in_set.accepts("a-host") and in_set.accepts(4.0) and in_set.accepts(True)
    assert not in_set.accepts("b-host") and not in_set.accepts(False)
    assert InSetValue(frozenset({"2.0"})).accepts(2.0)
    assert not InSetValue(frozenset({"2.5"})).accepts(2.0)


@pytest.mark.parametrize(
    ("value", "forms"),
    [
        (2.0, ("2", "2.0")),
        (2.5, ("2.5",)),
        (-0.0, ("0", "-0.0")),
        (1e20, ("100000000000000000000", "1e+20")),
        ("x", ("x",)),
        (True, ("true",)),
    ],
)
def test_text_forms_of_a_value(value: object, forms: tuple[str, ...]) -> None:
    """DoubleValue 2.0 may be stored as "2" or "2.0": both forms are matched."""
    assert text_forms(value) == forms  # type: ignore[arg-type]


def test_complete_values_are_strings_on_the_wire() -> None:
    """Every CompleteValue in StackState's guide is a string, NUMBER fields' too."""
    assert CompleteValue(4.0).to_json() == {"value": "4", "_type": "CompleteValue"}
    assert CompleteValue(2.5).to_json()["value"] == "2.5"
    assert CompleteValue(True).to_json()["value"] == "true"
    assert CompleteValue("a-host").to_json()["value"] == "a-host"


def test_type_check_treats_double_as_number() -> None:
    EqualityCondition("cores", DoubleValue(1.0)).check_type(FieldType.DOUBLE)
    EqualityCondition("host", InSetValue(frozenset({"x"}))).check_type(FieldType.NUMBER)
    with pytest.raises(UnsupportedFieldTypeError):
        EqualityCondition("host", DoubleValue(1.0)).check_type(FieldType.STRING)
    EqualityCondition("production", StringValue("true")).check_type(FieldType.BOOLEAN)
    with pytest.raises(UnsupportedFieldTypeError):
        EqualityCondition("production", DoubleValue(1.0)).check_type(FieldType.BOOLEAN)


def test_field_descriptor_rejects_unknown_type() -> None:
    with pytest.raises(RemoteMirrorError, match=r"field\.fieldType"):
        FieldDescriptor.from_json({"fieldName": "x", "fieldType": "DATE"})


def test_percentile_of_each_method() -> None:
    assert [m.value for m in AggregationMethod] == list(AGGREGATION_METHODS)
    assert AggregationMethod.PERCENTILE_98.percentile == 98.0
    assert AggregationMethod.MEAN.percentile is None
    assert AggregationMethod.EVENT_COUNT.percentile is None


# --- responses -------------------------------------------------------------------------


def test_responses_render_exactly() -> None:
    assert TestConnectionResponse().to_json() == {"status": "OK", "_type": "TestConnectionResponse"}
    failed = TestConnectionResponse(MetricStoreConnectionError("down")).to_json()
    assert failed == {
        "status": "FAILURE",
        "error": {"_type": "MetricStoreConnectionError", "details": "down"},
        "_type": "TestConnectionResponse",
    }
    names = FieldNamesResponse((FieldDescriptor("host"),), True).to_json()
    assert_field_names_shape(names)
    assert names["isPartial"] is True
    values = FieldValuesResponse((CompleteValue("a-host"), FieldValuePattern("cpu.*"))).to_json()
    assert_field_values_shape(values)
    assert values["values"] == [
        {"value": "a-host", "_type": "CompleteValue"},
        {"value": "cpu.*", "_type": "FieldValuePattern"},
    ]


def test_metric_responses_render_exactly() -> None:
    raw = MetricsResponse(
        RawMetricTelemetry(np.array([1.0, 2.5]), np.array([T0, T0 + 10], dtype=np.int64))
    ).to_json()
    assert_raw_shape(raw)
    assert raw["telemetry"]["points"] == [[1.0, T0], [2.5, T0 + 10]]
    starts = np.array([T0], dtype=np.int64)
    aggregated = MetricsResponse(
        AggregatedMetricTelemetry(np.array([3.0]), starts, starts + 60_000, True)
    ).to_json()
    assert_aggregated_shape(aggregated)
    assert aggregated["telemetry"]["points"] == [[3.0, T0, T0 + 60_000]]
    assert aggregated["telemetry"]["isPartial"] is True


def test_metric_response_columns_follow_data_format() -> None:
    """A mirror may order point members differently; dataFormat says where each is."""
    body = {
        "telemetry": {
            "points": [[T0, 7.5, T0 + 10]],
            "dataFormat": ["startTimestamp", "value", "endTimestamp"],
            "isPartial": False,
            "_type": "AggregatedMetricTelemetry",
        },
        "_type": "MetricsResponse",
    }
    telemetry = MetricsResponse.from_json(body).telemetry
    assert isinstance(telemetry, AggregatedMetricTelemetry)
    assert (telemetry.values[0], telemetry.starts[0], telemetry.ends[0]) == (7.5, T0, T0 + 10)


# --- errors ----------------------------------------------------------------------------


def test_error_bodies_are_exact_and_round_trip() -> None:
    errors: list[MirrorError] = [
        MetricStoreConnectionError(),
        MetricNotFoundError("service_request_seconds"),
        UnsupportedFieldTypeError("BOOLEAN"),
        RemoteMirrorError("Invalid request", "startTime must be an integer"),
    ]
    for error in errors:
        body = error.to_json()
        assert_error(body, type(error).type_name)
        again = MirrorError.from_json(body, error.http_status)
        assert type(again) is type(error) and again.to_json() == body
    assert MetricNotFoundError("m").to_json() == {
        "_type": "MetricNotFoundError",
        "metric": "m",
        "details": "Metric is not configured.",
    }
    assert MetricStoreConnectionError().to_json()["details"] == (
        "Unable to connect to remote metrics store."
    )
    assert UnsupportedFieldTypeError("BOOLEAN").to_json() == {
        "_type": "UnsupportedFieldTypeError",
        "mirrorType": "BOOLEAN",
    }


def test_unknown_error_body_becomes_remote_mirror_error() -> None:
    error = MirrorError.from_json({"_type": "SomethingNew", "summary": "s"}, 503)
    assert isinstance(error, RemoteMirrorError) and error.http_status == 503
