"""The OpenAPI 3.1 description of the Mirror API, built from the protocol module.

The document is a plain dict, served by the mirror at ``GET /openapi.json``. Its
names and vocabularies come from the protocol classes (``type_name``, the enums,
``data_format``, ``ROUTES``, the integer bound of the readers), and its examples
are the ``to_json`` of protocol objects, so the description cannot silently drift
from what the server parses and answers; ``tests/test_openapi.py`` checks the rest
(every to_json validates, real answers validate).

Two flavours of schema, on purpose:

* **requests** are described as leniently as the server reads them: ``_type`` is
  optional (StackState versions differ), unknown members are allowed, and an
  optional member may be ``null`` (read as absent);
* **responses** are strict: ``_type`` is required and nothing else may appear, so
  that a tool checking answers against this document catches any deviation.

Unions of response objects carry an OpenAPI ``discriminator`` on ``_type``. Request
unions (condition values) cannot: ``_type`` is optional there, and when it is
absent the server infers the class from the JSON type of ``value``, exactly as
the schemas' ``oneOf`` branches do.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import numpy as np

from .protocol import (
    ROUTES,
    AggregatedMetricTelemetry,
    Aggregation,
    AggregationMethod,
    BooleanValue,
    CompleteValue,
    DoubleValue,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldNamesRequest,
    FieldNamesResponse,
    FieldType,
    FieldValuePattern,
    FieldValuesQuery,
    FieldValuesRequest,
    FieldValuesResponse,
    InSetValue,
    MetricNotFoundError,
    MetricsQuery,
    MetricsRequest,
    MetricsResponse,
    MetricStoreConnectionError,
    RawMetricTelemetry,
    RemoteMirrorError,
    StringValue,
    TestConnectionRequest,
    TestConnectionResponse,
    UnsupportedFieldTypeError,
)
from .protocol._read import MAX_ABS_MILLIS

OPENAPI_VERSION = "3.1.0"
Schema = dict[str, Any]

#: 2019-04-16T10:35:01Z, the instant of the guide's examples.
_EXAMPLE_T = 1_555_408_501_000
_EXAMPLE_HOUR = 3_600_000

_ERROR_CLASSES = (
    MetricStoreConnectionError,
    MetricNotFoundError,
    UnsupportedFieldTypeError,
    RemoteMirrorError,
)

#: The statuses a Mirror API method answers besides 200, and why (see protocol/errors.py).
ERROR_STATUSES: dict[int, str] = {
    400: "Malformed request (RemoteMirrorError naming the field) or a condition value "
    "whose type does not fit its field (UnsupportedFieldTypeError).",
    404: "The conditions select no series (MetricNotFoundError).",
    408: "The request body did not arrive within the server's body timeout.",
    413: "The request body is larger than the server's cap (1 MiB by default).",
    500: "An unexpected failure inside the mirror (RemoteMirrorError).",
    502: "The store behind the mirror cannot be reached (MetricStoreConnectionError).",
    503: "The mirror is busy: every connection is answering, or too many large request "
    "bodies or answers are queued (RemoteMirrorError, with Retry-After).",
    504: "The answer was not ready within the server's request timeout.",
}
AUTH_STATUS = 403


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    """An optional request member: the server reads ``null`` as absent."""
    return {"anyOf": [schema, {"type": "null"}]}


def _request_object(
    type_name: str, properties: dict[str, Schema], required: list[str], description: str
) -> Schema:
    """A request object: ``_type`` optional (or null), unknown members tolerated."""
    return {
        "type": "object",
        "description": description,
        "properties": {"_type": {"enum": [type_name, None]}, **properties},
        "required": required,
    }


def _response_object(type_name: str, properties: dict[str, Schema], description: str) -> Schema:
    """A response object: every member required, ``_type`` included, nothing else."""
    return {
        "type": "object",
        "description": description,
        "properties": {"_type": {"const": type_name}, **properties},
        "required": ["_type", *properties],
        "additionalProperties": False,
    }


def _union(names: list[str], description: str) -> Schema:
    return {
        "description": description,
        "oneOf": [_ref(n) for n in names],
        "discriminator": {
            "propertyName": "_type",
            "mapping": {n: f"#/components/schemas/{n}" for n in names},
        },
    }


def _millis(description: str) -> Schema:
    return {
        "type": "integer",
        "minimum": -MAX_ABS_MILLIS,
        "maximum": MAX_ABS_MILLIS,
        "description": description,
    }


def _count(description: str, minimum: int = 0) -> Schema:
    return {
        "type": "integer",
        "minimum": minimum,
        "maximum": MAX_ABS_MILLIS,
        "description": description,
    }


def _condition_value_schemas() -> dict[str, Schema]:
    values: dict[str, tuple[type, Schema]] = {
        "a string": (StringValue, {"type": "string"}),
        "a number": (DoubleValue, {"type": "number"}),
        "true or false": (BooleanValue, {"type": "boolean"}),
        "any of a list of strings (sent by real StackState versions)": (
            InSetValue,
            {"type": "array", "items": {"type": "string"}},
        ),
    }
    schemas = {
        cls.type_name: _request_object(
            cls.type_name, {"value": value}, ["value"], f"Condition value: {what}."
        )
        for what, (cls, value) in values.items()
    }
    schemas["ConditionValue"] = {
        "description": "A typed condition value. Without `_type`, the JSON type of `value` "
        "decides (string, number, boolean, list of strings).",
        "oneOf": [_ref(cls.type_name) for cls, _ in values.values()],
    }
    return schemas


def _query_common() -> dict[str, Schema]:
    return {
        "conditions": _nullable(
            {
                "type": "array",
                "items": _ref(EqualityCondition.type_name),
                "description": "Equality conditions, all of which must hold (logical AND).",
            }
        ),
        "startTime": _millis("Start of the time range, epoch milliseconds."),
        "endTime": _millis("End of the time range, epoch milliseconds."),
        "limit": _nullable(
            _count("The most results to return; StackState often sends 2147483647.")
        ),
        "latestFirst": _nullable({"type": "boolean", "description": "Newest results first."}),
    }


def _request_schemas() -> dict[str, Schema]:
    common = _query_common()
    time_range = ["startTime", "endTime"]
    details: Schema = {
        "type": "object",
        "description": "The JSON of the Mirror source form ('Connection details JSON'); "
        "its meaning is the mirror's own.",
    }
    schemas: dict[str, Schema] = {
        **_condition_value_schemas(),
        EqualityCondition.type_name: _request_object(
            EqualityCondition.type_name,
            {"key": {"type": "string"}, "value": _ref("ConditionValue")},
            ["key", "value"],
            "Holds when the field `key` equals `value`.",
        ),
        "QueryFieldDescriptor": _request_object(
            FieldDescriptor.type_name,
            {
                "fieldName": {"type": "string"},
                "fieldType": _ref("FieldType"),
                "classified": _nullable({"type": "boolean"}),
            },
            ["fieldName"],
            "The field whose values are asked (a FieldDescriptor; fieldType defaults to STRING).",
        ),
        Aggregation.type_name: _request_object(
            Aggregation.type_name,
            {
                "method": _ref("AggregationMethod"),
                "bucketSizeMillis": _count("Width of the tumbling windows, ms.", minimum=1),
            },
            ["method", "bucketSizeMillis"],
            "Aggregate the points in fixed windows of bucketSizeMillis.",
        ),
        FieldNamesQuery.type_name: _request_object(
            FieldNamesQuery.type_name, common, time_range, "Which field names to offer."
        ),
        FieldValuesQuery.type_name: _request_object(
            FieldValuesQuery.type_name,
            {
                **common,
                "field": _ref("QueryFieldDescriptor"),
                "fieldValuePrefix": _nullable(
                    {"type": "string", "description": "What the user typed so far."}
                ),
                "offset": _nullable(_count("Values to skip (paging).")),
            },
            ["field", *time_range],
            "Which values of a field to offer.",
        ),
        MetricsQuery.type_name: _request_object(
            MetricsQuery.type_name,
            {
                **common,
                "metricField": _nullable(
                    {"type": "string", "description": "Which field holds the metric value."}
                ),
                "aggregation": _nullable(_ref(Aggregation.type_name)),
            },
            time_range,
            "A metric stream: raw points, or aggregated when `aggregation` is given.",
        ),
        TestConnectionRequest.type_name: _request_object(
            TestConnectionRequest.type_name,
            {"connectionDetails": details},
            ["connectionDetails"],
            "Can the mirror reach its store?",
        ),
    }
    for cls in (FieldNamesRequest, FieldValuesRequest, MetricsRequest):
        schemas[cls.type_name] = _request_object(
            cls.type_name,
            {"connectionDetails": details, "query": _ref(cls.query_type.type_name)},
            ["connectionDetails", "query"],
            f"The body of POST {cls.path}.",
        )
    return schemas


def _points(columns: tuple[str, ...]) -> Schema:
    items = [{"type": "number"} if name == "value" else {"type": "integer"} for name in columns]
    return {
        "type": "array",
        "description": "Points in time order (newest first with latestFirst); "
        f"each is [{', '.join(columns)}].",
        "items": {
            "type": "array",
            "prefixItems": items,
            "items": False,
            "minItems": len(columns),
        },
    }


def _telemetry(cls: Any, description: str) -> Schema:
    return _response_object(
        cls.type_name,
        {
            "points": _points(cls.data_format),
            "dataFormat": {"const": list(cls.data_format)},
            "isPartial": {"type": "boolean", "description": "The answer was cut (limit, cap)."},
        },
        description,
    )


def _error_schemas() -> dict[str, Schema]:
    text = {"type": "string"}
    members: dict[type, dict[str, Schema]] = {
        MetricStoreConnectionError: {"details": text},
        MetricNotFoundError: {"metric": text, "details": text},
        UnsupportedFieldTypeError: {"mirrorType": text},
        RemoteMirrorError: {"summary": text, "details": text},
    }
    schemas = {
        cls.type_name: {
            **_response_object(cls.type_name, members[cls], (cls.__doc__ or "").strip()),
            "examples": [_error_example(cls)],
        }
        for cls in _ERROR_CLASSES
    }
    schemas["MirrorError"] = _union(
        [cls.type_name for cls in _ERROR_CLASSES], "The body of a failed request."
    )
    return schemas


def _error_example(cls: type) -> dict[str, Any]:
    if cls is MetricNotFoundError:
        return MetricNotFoundError("service_request_seconds").to_json()
    if cls is UnsupportedFieldTypeError:
        return UnsupportedFieldTypeError(FieldType.BOOLEAN.value).to_json()
    if cls is RemoteMirrorError:
        return RemoteMirrorError("Invalid request: query.startTime is missing").to_json()
    return MetricStoreConnectionError().to_json()


def _response_schemas() -> dict[str, Schema]:
    boolean = {"type": "boolean"}
    return {
        FieldDescriptor.type_name: _response_object(
            FieldDescriptor.type_name,
            {
                "fieldName": {"type": "string"},
                "fieldType": _ref("FieldType"),
                "classified": boolean,
            },
            "A field: its name, type, and whether its values need care when shown.",
        ),
        CompleteValue.type_name: _response_object(
            CompleteValue.type_name,
            {"value": {"type": "string"}},
            (CompleteValue.__doc__ or "").strip(),
        ),
        FieldValuePattern.type_name: _response_object(
            FieldValuePattern.type_name,
            {"value": {"type": "string"}},
            (FieldValuePattern.__doc__ or "").strip(),
        ),
        "FieldValueOption": _union(
            [CompleteValue.type_name, FieldValuePattern.type_name], "A value to offer."
        ),
        TestConnectionResponse.type_name: _test_connection_response(),
        FieldNamesResponse.type_name: _response_object(
            FieldNamesResponse.type_name,
            {
                "fields": {"type": "array", "items": _ref(FieldDescriptor.type_name)},
                "isPartial": boolean,
            },
            "The field names to offer next.",
        ),
        FieldValuesResponse.type_name: _response_object(
            FieldValuesResponse.type_name,
            {"values": {"type": "array", "items": _ref("FieldValueOption")}, "isPartial": boolean},
            "The values to offer; isPartial when more exist than were returned.",
        ),
        RawMetricTelemetry.type_name: _telemetry(RawMetricTelemetry, "Raw points."),
        AggregatedMetricTelemetry.type_name: _telemetry(
            AggregatedMetricTelemetry, "One point per non-empty bucket."
        ),
        "MetricTelemetry": _union(
            [RawMetricTelemetry.type_name, AggregatedMetricTelemetry.type_name],
            "Raw for a query without aggregation, aggregated otherwise.",
        ),
        MetricsResponse.type_name: _response_object(
            MetricsResponse.type_name, {"telemetry": _ref("MetricTelemetry")}, "A metric stream."
        ),
        **_error_schemas(),
    }


def _test_connection_response() -> Schema:
    schema = _response_object(
        TestConnectionResponse.type_name,
        {"status": {"enum": ["OK", "FAILURE"]}, "error": _ref("MirrorError")},
        "OK, or FAILURE with the error (usually MetricStoreConnectionError).",
    )
    schema["required"] = ["_type", "status"]
    schema["if"] = {"properties": {"status": {"const": "FAILURE"}}}
    schema["then"] = {"required": ["error"]}
    schema["else"] = {"not": {"required": ["error"]}}
    return schema


def _enum_schemas() -> dict[str, Schema]:
    return {
        "FieldType": {
            "enum": [t.value for t in FieldType],
            "description": "DOUBLE appears in one example of the guide; it means NUMBER.",
        },
        "AggregationMethod": {
            "enum": [m.value for m in AggregationMethod],
            "description": "EVENT_COUNT is the number of points in the bucket.",
        },
    }


def _examples() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per route: an example request and answer, rendered by the protocol classes."""
    host = (EqualityCondition("host", StringValue("a-host")),)
    start, end = _EXAMPLE_T, _EXAMPLE_T + _EXAMPLE_HOUR
    metric = MetricsQuery(
        start,
        end,
        host,
        limit=2_147_483_647,
        aggregation=Aggregation(AggregationMethod.MAX, 600_000),
    )
    field = FieldDescriptor("metric")
    telemetry = AggregatedMetricTelemetry(
        np.array([41.5]),
        np.array([start], dtype=np.int64),
        np.array([start + 600_000], dtype=np.int64),
    )
    return {
        TestConnectionRequest.path: (
            TestConnectionRequest({}).to_json(),
            TestConnectionResponse().to_json(),
        ),
        FieldNamesRequest.path: (
            FieldNamesRequest(FieldNamesQuery(start, end, host, 2_147_483_647), {}).to_json(),
            FieldNamesResponse(
                (FieldDescriptor("metric"), FieldDescriptor("cores", FieldType.NUMBER))
            ).to_json(),
        ),
        FieldValuesRequest.path: (
            FieldValuesRequest(FieldValuesQuery(field, start, end, host, "cpu", 100), {}).to_json(),
            FieldValuesResponse((CompleteValue("mem.used"), FieldValuePattern("cpu.*"))).to_json(),
        ),
        MetricsRequest.path: (
            MetricsRequest(metric, {}).to_json(),
            MetricsResponse(telemetry).to_json(),
        ),
    }


#: Per request class: the schema of its 200 answer.
_ANSWERS = {
    TestConnectionRequest.type_name: TestConnectionResponse.type_name,
    FieldNamesRequest.type_name: FieldNamesResponse.type_name,
    FieldValuesRequest.type_name: FieldValuesResponse.type_name,
    MetricsRequest.type_name: MetricsResponse.type_name,
}
_SUMMARIES = {
    TestConnectionRequest.type_name: ("testConnection", "Test Connection"),
    FieldNamesRequest.type_name: ("fieldNames", "Field Names"),
    FieldValuesRequest.type_name: ("fieldValues", "Field Values"),
    MetricsRequest.type_name: ("metrics", "Get Metric Values"),
}


def _answer(description: str, schema: Schema, api_key_header: str) -> Schema:
    return {
        "description": description,
        "headers": {api_key_header: {"$ref": "#/components/headers/MirrorApiKey"}},
        "content": {"application/json": {"schema": schema}},
    }


def _operation(
    request_type: Any, api_key_header: str, auth: bool, example: tuple[Schema, Schema]
) -> Schema:
    operation_id, summary = _SUMMARIES[request_type.type_name]
    answer = _answer("The answer.", _ref(_ANSWERS[request_type.type_name]), api_key_header)
    answer["content"]["application/json"]["example"] = example[1]
    statuses = dict(ERROR_STATUSES)
    if auth:
        statuses[AUTH_STATUS] = "The request does not carry the mirror's shared secret."
    responses: dict[str, Schema] = {"200": answer}
    for status, why in sorted(statuses.items()):
        responses[str(status)] = _answer(why, _ref("MirrorError"), api_key_header)
    responses["default"] = _answer("Any other failure.", _ref("MirrorError"), api_key_header)
    return {
        "operationId": operation_id,
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref(request_type.type_name),
                    "example": example[0],
                }
            },
        },
        "responses": responses,
    }


def _get(operation_id: str, summary: str, schema: Schema, api_key_header: str) -> Schema:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": {"200": _answer("OK", schema, api_key_header)},
        }
    }


def _version() -> str:
    try:
        return metadata.version("mirror-kit")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0"


DESCRIPTION = """\
StackState's Mirror API as served by mirror-kit: four POST methods, each taking and \
answering JSON. Every object names its class in `_type`; requests may omit it and may \
carry unknown members. Every response, errors included, carries the mirror's API key \
in the `X-MIRROR-API-KEY` header, which StackState compares with the Api Key of its \
Mirror source. Timestamps are epoch milliseconds.
"""

AUTH_DESCRIPTION = """
This mirror requires a shared secret: either the header described by the security \
scheme, or the secret as the first path segment (Mirror URL `http://host:port/<secret>`, \
so that StackState calls `/<secret>/api/metric`). The path-token variant cannot be \
expressed as an OpenAPI security scheme; it is what works with StackState as it is.
"""


def build_document(
    *,
    api_key_header: str = "X-MIRROR-API-KEY",
    auth_header: str | None = None,
) -> Schema:
    """The OpenAPI 3.1 document; ``auth_header`` set describes the shared-secret variant."""
    auth = auth_header is not None
    examples = _examples()
    paths: dict[str, Schema] = {
        path: {"post": _operation(cls, api_key_header, auth, examples[path])}
        for path, cls in ROUTES.items()
    }
    paths["/openapi.json"] = _get("openapi", "This document", {"type": "object"}, api_key_header)
    paths["/healthz"] = _get(
        "health",
        "Liveness probe (not part of the Mirror API)",
        {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]},
        api_key_header,
    )
    document: Schema = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "StackState Mirror API (mirror-kit)",
            "version": _version(),
            "description": DESCRIPTION + (AUTH_DESCRIPTION if auth else ""),
        },
        "paths": paths,
        "components": {
            "schemas": {**_enum_schemas(), **_request_schemas(), **_response_schemas()},
            "headers": {
                "MirrorApiKey": {
                    "description": "The API key configured for the mirror; StackState "
                    "compares it with the Api Key of its Mirror source.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "sharedSecret": {"type": "apiKey", "in": "header", "name": auth_header}
        }
        document["security"] = [{"sharedSecret": []}]
    return document
