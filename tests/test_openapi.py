"""The OpenAPI document: valid OpenAPI 3.1, in sync with the protocol and the server.

Sync is checked three ways: the vocabulary (routes, aggregation methods, field
and value types) against MIRROR_API.md's lists and the protocol module; bodies
rendered by the protocol classes against the schemas; and real answers of a
running mirror, good and bad, against the schema of their path and status. A
request the schema rejects must be one the server rejects, and vice versa.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from conftest import DAY, HOUR, T0
from mirror_wire import (
    AGGREGATION_METHODS,
    API_PATHS,
    CONNECTION,
    FIELD_NAMES,
    FIELD_VALUES,
    METRIC,
    add_unknown_fields,
    connection_body,
    field_names_body,
    field_values_body,
    metrics_body,
    strip_types,
    with_query,
)
from openapi_check import DOCUMENT, answer_errors, answer_headers, schema_errors
from openapi_spec_validator import validate

from mirror_kit import RunningMirror, ServerSettings, start_mirror
from mirror_kit.openapi import build_document
from mirror_kit.protocol import (
    ROUTES,
    AggregatedMetricTelemetry,
    AggregationMethod,
    CompleteValue,
    FieldDescriptor,
    FieldNamesResponse,
    FieldType,
    FieldValuePattern,
    FieldValuesResponse,
    MetricNotFoundError,
    MetricsResponse,
    MetricStoreConnectionError,
    RawMetricTelemetry,
    RemoteMirrorError,
    TestConnectionResponse,
    UnsupportedFieldTypeError,
)
from mirror_kit.server import API_KEY_HEADER
from mirror_kit.server.auth import AUTH_HEADER

Json = dict[str, Any]
A_CPU = {"host": "a-host", "metric": "cpu.user"}
SCHEMAS = DOCUMENT["components"]["schemas"]


def test_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    validate(build_document(auth_header=AUTH_HEADER))
    assert DOCUMENT["openapi"].startswith("3.1")


def test_every_route_is_described_with_its_request_and_answer() -> None:
    assert set(ROUTES) == set(API_PATHS)
    for path, request_type in ROUTES.items():
        operation = DOCUMENT["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request_type.type_name}"}
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["$ref"].endswith(request_type.type_name.replace("Request", "Response"))
        for status, response in operation["responses"].items():
            assert list(response["headers"]) == [API_KEY_HEADER], status
        assert {"400", "404", "413", "500", "default"} <= set(operation["responses"])


def test_vocabulary_matches_the_protocol() -> None:
    assert SCHEMAS["AggregationMethod"]["enum"] == list(AGGREGATION_METHODS)
    assert SCHEMAS["AggregationMethod"]["enum"] == [m.value for m in AggregationMethod]
    assert set(SCHEMAS["FieldType"]["enum"]) == {"STRING", "NUMBER", "BOOLEAN", "DOUBLE"}
    assert SCHEMAS["FieldType"]["enum"] == [t.value for t in FieldType]
    branches = [b["$ref"].rsplit("/", 1)[1] for b in SCHEMAS["ConditionValue"]["oneOf"]]
    assert branches == ["StringValue", "DoubleValue", "BooleanValue", "InSetValue"]
    errors = SCHEMAS["MirrorError"]["discriminator"]["mapping"]
    assert set(errors) == {
        "MetricStoreConnectionError",
        "MetricNotFoundError",
        "UnsupportedFieldTypeError",
        "RemoteMirrorError",
    }
    assert set(SCHEMAS["MetricTelemetry"]["discriminator"]["mapping"]) == {
        "RawMetricTelemetry",
        "AggregatedMetricTelemetry",
    }


def test_every_response_schema_requires_its_type_and_names_it() -> None:
    for name in ("FieldNamesResponse", "FieldValuesResponse", "MetricsResponse"):
        assert "_type" in SCHEMAS[name]["required"]
        assert SCHEMAS[name]["properties"]["_type"] == {"const": name}
        assert SCHEMAS[name]["additionalProperties"] is False


def test_operation_examples_match_their_schemas() -> None:
    for path in ROUTES:
        operation = DOCUMENT["paths"][path]["post"]
        request = operation["requestBody"]["content"]["application/json"]
        answer = operation["responses"]["200"]["content"]["application/json"]
        name = request["schema"]["$ref"].rsplit("/", 1)[1]
        assert schema_errors(DOCUMENT, name, request["example"]) == []
        assert answer_errors(DOCUMENT, path, "post", 200, answer["example"]) == []


def _responses() -> list[tuple[str, Json]]:
    ts = np.array([T0, T0 + 10_000], dtype=np.int64)
    values = np.array([1.5, -2.0])
    errors = [
        MetricStoreConnectionError(),
        MetricNotFoundError("cpu"),
        UnsupportedFieldTypeError("BOOLEAN"),
        RemoteMirrorError("bad", "worse"),
    ]
    return [
        ("TestConnectionResponse", TestConnectionResponse().to_json()),
        *[("TestConnectionResponse", TestConnectionResponse(e).to_json()) for e in errors],
        *[("MirrorError", e.to_json()) for e in errors],
        (
            "FieldNamesResponse",
            FieldNamesResponse(tuple(FieldDescriptor(t.value, t) for t in FieldType)).to_json(),
        ),
        (
            "FieldValuesResponse",
            FieldValuesResponse(
                (
                    CompleteValue("a"),
                    CompleteValue(4.0),
                    CompleteValue(True),
                    FieldValuePattern("c*"),
                ),
                True,
            ).to_json(),
        ),
        ("MetricsResponse", MetricsResponse(RawMetricTelemetry(values, ts)).to_json()),
        (
            "MetricsResponse",
            MetricsResponse(AggregatedMetricTelemetry(values, ts, ts + 10_000, True)).to_json(),
        ),
    ]


@pytest.mark.parametrize(("name", "body"), _responses())
def test_protocol_classes_render_valid_responses(name: str, body: Json) -> None:
    assert schema_errors(DOCUMENT, name, body) == []


def test_schemas_reject_malformed_responses() -> None:
    raw = MetricsResponse(RawMetricTelemetry(np.array([1.0]), np.array([T0]))).to_json()
    assert schema_errors(DOCUMENT, "MetricsResponse", raw) == []
    wrong_width = {**raw, "telemetry": {**raw["telemetry"], "points": [[1.0, T0, T0]]}}
    no_type = {k: v for k, v in raw.items() if k != "_type"}
    extra = {**raw, "debug": True}
    swapped = {**raw, "telemetry": {**raw["telemetry"], "_type": "AggregatedMetricTelemetry"}}
    for bad in (wrong_width, no_type, extra, swapped):
        assert schema_errors(DOCUMENT, "MetricsResponse", bad) != []
    failure_without_error = {"status": "FAILURE", "_type": "TestConnectionResponse"}
    assert schema_errors(DOCUMENT, "TestConnectionResponse", failure_without_error) != []


def _wire_requests() -> list[tuple[str, Json]]:
    """Bodies shaped as StackState sends them (built by hand from MIRROR_API.md)."""
    bodies = [
        (CONNECTION, connection_body()),
        (FIELD_NAMES, field_names_body(T0, T0 + HOUR, {"host": "a-host"})),
        (FIELD_VALUES, field_values_body("metric", T0, T0 + HOUR, prefix="cpu", offset=0)),
        (METRIC, metrics_body(T0, T0 + HOUR, {**A_CPU, "cores": 4, "production": True})),
        (METRIC, metrics_body(T0, T0 + HOUR, {"host": ["a-host", "b-host"], "metric": "cpu.user"})),
    ]
    bodies += [
        (METRIC, metrics_body(T0, T0 + DAY, A_CPU, method=m, bucket_ms=HOUR))
        for m in AGGREGATION_METHODS
    ]
    return (
        bodies
        + [(p, strip_types(b)) for p, b in bodies[:4]]
        + [(p, add_unknown_fields(b)) for p, b in bodies[:4]]
    )


#: Bodies the server must refuse as malformed (400), each with one defect.
_BAD = [
    (METRIC, with_query(metrics_body(T0, T0 + HOUR, A_CPU), startTime="2026-01-01")),
    (METRIC, with_query(metrics_body(T0, T0 + HOUR, A_CPU), endTime=1.5)),
    (METRIC, with_query(metrics_body(T0, T0 + HOUR, A_CPU), limit=-1)),
    (METRIC, with_query(metrics_body(T0, T0 + HOUR, A_CPU), limit=2**63)),
    (METRIC, with_query(metrics_body(T0, T0 + HOUR, A_CPU), latestFirst="yes")),
    (METRIC, metrics_body(T0, T0 + HOUR, A_CPU, method="AVERAGE", bucket_ms=HOUR)),
    (METRIC, metrics_body(T0, T0 + HOUR, A_CPU, method="MAX", bucket_ms=0)),
    (
        METRIC,
        with_query(
            metrics_body(T0, T0 + HOUR),
            conditions=[{"key": "host", "value": {"value": 4, "_type": "StringValue"}}],
        ),
    ),
    (
        METRIC,
        with_query(
            metrics_body(T0, T0 + HOUR),
            conditions=[{"key": "host", "value": {"value": [1, 2], "_type": "InSetValue"}}],
        ),
    ),
    (FIELD_VALUES, with_query(field_values_body("metric", T0, T0 + HOUR), field=None)),
    (FIELD_VALUES, with_query(field_values_body("metric", T0, T0 + HOUR), offset=-3)),
    (FIELD_NAMES, {"_type": "FieldNamesRequest", "query": {"startTime": T0, "endTime": T0}}),
    (CONNECTION, {"_type": "MetricsRequest", "connectionDetails": {}}),
    (CONNECTION, {"connectionDetails": []}),
]


def _request_schema(path: str) -> str:
    return ROUTES[path].type_name


@pytest.mark.parametrize(("path", "body"), _wire_requests())
def test_stackstate_shaped_requests_match_the_request_schemas(path: str, body: Json) -> None:
    assert schema_errors(DOCUMENT, _request_schema(path), body) == []


@pytest.mark.parametrize(("path", "body"), _BAD)
def test_request_schemas_reject_what_the_server_rejects(
    mirror: RunningMirror, path: str, body: Json
) -> None:
    assert schema_errors(DOCUMENT, _request_schema(path), body) != []
    answer = httpx.post(mirror.url + path, json=body)
    assert answer.status_code == 400
    assert answer.json()["_type"] == "RemoteMirrorError"


@pytest.mark.parametrize(("path", "body"), _wire_requests())
def test_real_answers_match_the_schema_of_their_status(
    mirror: RunningMirror, path: str, body: Json
) -> None:
    answer = httpx.post(mirror.url + path, json=body)
    assert answer.status_code == 200, answer.text
    assert API_KEY_HEADER in answer_headers(DOCUMENT, path, "post", 200)
    assert answer.headers[API_KEY_HEADER] == mirror.api_key
    assert answer_errors(DOCUMENT, path, "post", 200, answer.json()) == []


def test_real_error_answers_match_the_schema_of_their_status(mirror: RunningMirror) -> None:
    cases: list[tuple[str, str, Any, int]] = [
        ("post", METRIC, metrics_body(T0, T0 + HOUR, {"host": "no-such-host"}), 404),
        ("post", METRIC, metrics_body(T0, T0 + HOUR, {"host": True}), 400),
        ("post", METRIC, {"connectionDetails": {}}, 400),
        ("post", METRIC, b"\x00" * (2 << 20), 413),
        ("get", METRIC, None, 405),
        ("post", "/api/nothing", connection_body(), 404),
    ]
    for method, path, body, status in cases:
        content = body if isinstance(body, bytes) else None
        answer = httpx.request(
            method, mirror.url + path, content=content, json=None if content else body
        )
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers[API_KEY_HEADER] == mirror.api_key
        assert answer_errors(DOCUMENT, path, method, status, answer.json()) == [], path


def test_the_mirror_serves_its_document(mirror: RunningMirror) -> None:
    answer = httpx.get(mirror.url + "/openapi.json")
    assert answer.status_code == 200
    assert answer.headers[API_KEY_HEADER] == mirror.api_key
    assert answer.json() == DOCUMENT
    assert answer_errors(DOCUMENT, "/openapi.json", "get", 200, answer.json()) == []


def test_a_mirror_with_a_secret_describes_it() -> None:
    secret = "s3cret-token-0123456789"
    with start_mirror(port=0, settings=ServerSettings(auth_secret=secret)) as mirror:
        served = httpx.get(mirror.url + "/openapi.json").json()
    validate(served)
    assert served["components"]["securitySchemes"]["sharedSecret"]["name"] == AUTH_HEADER
    assert "403" in served["paths"][METRIC]["post"]["responses"]
    assert "403" not in DOCUMENT["paths"][METRIC]["post"]["responses"]
    assert secret not in str(served)


def test_every_error_class_status_is_described() -> None:
    described = DOCUMENT["paths"][METRIC]["post"]["responses"]
    for error in (
        MetricStoreConnectionError(),
        MetricNotFoundError("m"),
        UnsupportedFieldTypeError("BOOLEAN"),
        RemoteMirrorError("s"),
    ):
        assert str(error.http_status) in described, type(error).__name__
