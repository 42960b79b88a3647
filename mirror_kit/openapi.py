"""The OpenAPI 3.1 description of the Mirror API, derived from the wire types.

The document is a plain dict, served by the mirror at ``GET /openapi.json``. Its
schemas are msgspec's JSON Schema of the protocol's wire types (``protocol._wire``),
so the description cannot drift from what the server parses and answers; its
examples are the ``to_json`` of protocol objects; ``tests/test_openapi.py`` checks
the rest (every to_json validates, real answers validate).

Two flavours of schema, on purpose, made from the one declaration:

* **requests** are described as leniently as the server reads them: ``_type`` is
  optional (StackState versions differ), unknown members are allowed, and an
  optional member may be ``null`` (read as absent);
* **responses** are strict: every member is required, ``_type`` included, and
  nothing else may appear, so that a tool checking answers against this document
  catches any deviation.

Unions of response objects carry an OpenAPI ``discriminator`` on ``_type``. Request
unions (condition values) cannot: ``_type`` is optional there, and when it is
absent the server infers the class from the JSON type of ``value``, exactly as
the schemas' ``oneOf`` branches do.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np

from . import __version__
from .protocol import (
    ROUTES,
    AggregatedMetricTelemetry,
    Aggregation,
    AggregationMethod,
    CompleteValue,
    ConditionValue,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldNamesRequest,
    FieldNamesResponse,
    FieldType,
    FieldValueOption,
    FieldValuePattern,
    FieldValuesQuery,
    FieldValuesRequest,
    FieldValuesResponse,
    MetricsQuery,
    MetricsRequest,
    MetricsResponse,
    RawMetricTelemetry,
    StringValue,
    TestConnectionRequest,
    TestConnectionResponse,
)
from .protocol._wire import MAX_ABS_MILLIS, Millis
from .protocol.errors import ERROR_BODY, ERRORS

OPENAPI_VERSION = "3.1.0"
Schema = dict[str, Any]
_REF = "#/components/schemas/{name}"

#: 2019-04-16T10:35:01Z, the instant of the guide's examples.
_EXAMPLE_T = 1_555_408_501_000
_EXAMPLE_HOUR = 3_600_000

#: The statuses a Mirror API method answers besides 200, and why (see protocol/errors.py).
ERROR_STATUSES: dict[int, str] = {
    400: "Malformed request (RemoteMirrorError naming the field) or a condition value "
    "whose type does not fit its field (UnsupportedFieldTypeError).",
    404: "The conditions select no series (MetricNotFoundError).",
    408: "The request body did not arrive within the server's body timeout.",
    413: "The request body is larger than the server's cap (256 KiB by default).",
    500: "An unexpected failure inside the mirror (RemoteMirrorError).",
    502: "The store behind the mirror cannot be reached (MetricStoreConnectionError).",
    503: "The mirror is busy: every connection is answering, or too many large request "
    "bodies or answers are queued (RemoteMirrorError, with Retry-After).",
    504: "The answer was not ready within the server's request timeout.",
}
AUTH_STATUS = 403


_millis = {"type": "integer", "minimum": -MAX_ABS_MILLIS, "maximum": MAX_ABS_MILLIS}


def _ref(name: str) -> Schema:
    return {"$ref": _REF.format(name=name)}


def _schemas(types: list[Any], unions: dict[str, tuple[Any, str]]) -> dict[str, Schema]:
    """msgspec's components of ``types``; each of ``unions`` a named, described ``oneOf``."""
    kinds = [union for union, _ in unions.values()]
    inline, schemas = msgspec.json.schema_components([*types, *kinds], ref_template=_REF)
    for enum in (FieldType, AggregationMethod):  # in the protocol's order, not sorted
        if enum.__name__ in schemas:
            schemas[enum.__name__]["enum"] = [member.value for member in enum]
    text = json.dumps(schemas)  # epoch ms: an integral float reads as an integer too
    text = text.replace(json.dumps(msgspec.json.schema(Millis)), json.dumps(_millis))
    for (name, (_, description)), schema in zip(unions.items(), inline[len(types) :], strict=True):
        text = text.replace(json.dumps(schema), json.dumps(_ref(name)))  # refer, not inline
        schemas[name] = {"description": description, "oneOf": schema["anyOf"]}
        schemas[name]["discriminator"] = schema["discriminator"]
    return {**json.loads(text), **{name: schemas[name] for name in unions}}


def _request_schemas() -> dict[str, Schema]:
    """Lenient (module doc); the query's field is a QueryFieldDescriptor (fieldType optional)."""
    condition = "A typed condition value. Without `_type`, the JSON type of `value` decides."
    schemas = _schemas(list(ROUTES.values()), {"ConditionValue": (ConditionValue, condition)})
    del schemas["ConditionValue"]["discriminator"]
    for schema in schemas.values():
        if "properties" not in schema:
            continue
        schema["required"] = [m for m in schema["required"] if m != "_type"]
        members = schema["properties"]
        for name, member in members.items():
            if name not in schema["required"] and member.get("default", 0) is not None:
                members[name] = {"anyOf": [member, {"type": "null"}]}  # null reads as absent
    del schemas["InSetValue"]["properties"]["value"]["uniqueItems"]  # a repeat is harmless
    query_field = _REF.format(name="QueryFieldDescriptor")
    text = json.dumps(schemas).replace(_REF.format(name="FieldDescriptor"), query_field)
    schemas = json.loads(text)
    schemas["QueryFieldDescriptor"] = schemas.pop("FieldDescriptor")
    return schemas


def _response_schemas() -> dict[str, Schema]:
    """Strict (module doc): every member required, nothing else allowed."""
    telemetry = RawMetricTelemetry.wire | AggregatedMetricTelemetry.wire
    unions = {
        "MirrorError": (ERROR_BODY, "The body of a failed request."),
        "MetricTelemetry": (telemetry, "Raw for a query without aggregation, else aggregated."),
        "FieldValueOption": (FieldValueOption, "A value to offer."),
    }
    wires = [TestConnectionResponse.wire, FieldNamesResponse, FieldValuesResponse]
    schemas = _schemas([*wires, MetricsResponse.wire], unions)
    for name, schema in schemas.items():
        if "properties" in schema:
            schema["properties"]["_type"] = {"const": name}
            schema["required"] = list(schema["properties"])
            schema["additionalProperties"] = False
    for cls in (RawMetricTelemetry, AggregatedMetricTelemetry):
        point = schemas[cls.type_name]["properties"]["points"]["items"]
        point["prefixItems"] = [{"type": "integer"} for _ in cls.data_format]
        point["prefixItems"][cls.data_format.index("value")] = {"type": "number"}
    for name, arguments in _ERROR_EXAMPLES.items():
        schemas[name]["examples"] = [ERRORS[name](*arguments).to_json()]
    test = schemas[TestConnectionResponse.type_name]
    test["properties"]["error"] = _ref("MirrorError")
    test["required"] = ["_type", "status"]
    test["if"] = {"properties": {"status": {"const": "FAILURE"}}}
    test["then"] = {"required": ["error"]}
    test["else"] = {"not": {"required": ["error"]}}
    return schemas


_ERROR_EXAMPLES: dict[str, tuple[str, ...]] = {
    "MetricStoreConnectionError": (),
    "MetricNotFoundError": ("service_request_seconds",),
    "UnsupportedFieldTypeError": (FieldType.BOOLEAN.value,),
    "RemoteMirrorError": ("Invalid request: query.startTime is missing",),
}


def _examples() -> dict[str, tuple[Schema, Schema]]:
    """Per route: an example request and answer, rendered by the protocol classes."""
    host = (EqualityCondition("host", StringValue("a-host")),)
    start, end, most = _EXAMPLE_T, _EXAMPLE_T + _EXAMPLE_HOUR, 2_147_483_647
    every = Aggregation(AggregationMethod.MAX, 600_000)
    window = np.array([start], dtype=np.int64)
    telemetry = AggregatedMetricTelemetry(np.array([41.5]), window, window + 600_000)
    fields = (FieldDescriptor("metric"), FieldDescriptor("cores", FieldType.NUMBER))
    names = FieldNamesQuery(start, end, host, most)
    values = FieldValuesQuery(fields[0], start, end, host, "cpu", 100)
    metrics = MetricsQuery(start, end, host, limit=most, aggregation=every)
    offers = (CompleteValue("mem.used"), FieldValuePattern("cpu.*"))
    pairs: list[tuple[Any, Any]] = [
        (TestConnectionRequest({}), TestConnectionResponse()),
        (FieldNamesRequest(names, {}), FieldNamesResponse(fields)),
        (FieldValuesRequest(values, {}), FieldValuesResponse(offers)),
        (MetricsRequest(metrics, {}), MetricsResponse(telemetry)),
    ]
    return {request.path: (request.to_json(), answer.to_json()) for request, answer in pairs}


_SUMMARIES = {
    TestConnectionRequest: "Test Connection",
    FieldNamesRequest: "Field Names",
    FieldValuesRequest: "Field Values",
    MetricsRequest: "Get Metric Values",
}
_SECRET = "The request does not carry the mirror's shared secret."


def _answer(why: str, schema: Schema, header: str, media: str = "application/json") -> Schema:
    return {
        "description": why,
        "headers": {header: {"$ref": "#/components/headers/MirrorApiKey"}},
        "content": {media: {"schema": schema}},
    }


def _errors(statuses: dict[int, str], header: str) -> dict[str, Schema]:
    """An answer per status (in order), each a MirrorError body."""
    return {
        str(s): _answer(why, _ref("MirrorError"), header) for s, why in sorted(statuses.items())
    }


def _operation(cls: Any, header: str, auth: bool, example: tuple[Schema, Schema]) -> Schema:
    name = cls.type_name.removesuffix("Request")  # its answer: <name>Response
    answer = _answer("The answer.", _ref(f"{name}Response"), header)
    answer["content"]["application/json"]["example"] = example[1]
    statuses = ERROR_STATUSES | ({AUTH_STATUS: _SECRET} if auth else {})
    responses = {"200": answer, **_errors(statuses, header)}
    responses["default"] = _answer("Any other failure.", _ref("MirrorError"), header)
    body = {"schema": _ref(cls.type_name), "example": example[0]}
    return {
        "operationId": name[0].lower() + name[1:],
        "summary": _SUMMARIES[cls],
        "requestBody": {"required": True, "content": {"application/json": body}},
        "responses": responses,
    }


def _get(operation_id: str, summary: str, schema: Schema, header: str, media: str = "") -> Schema:
    answer = _answer("OK", schema, header, media or "application/json")
    responses = {"200": answer}
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": responses,
        }
    }


def _gets(header: str, auth: bool) -> dict[str, Schema]:
    """This document, the liveness probe, /readyz (200 or 503, a status per store; open)
    and /metrics (Prometheus' text format; it takes the shared secret when one is set)."""
    alive = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
    document = _get("openapi", "This document", {"type": "object"}, header)
    health = _get("health", "Liveness probe (not part of the Mirror API)", alive, header)
    verdict = {
        "type": "object",
        "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "stores": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["status", "stores"],
    }
    ready = _get("readiness", "Readiness probe: all configured stores answer", verdict, header)
    ready["get"]["responses"]["503"] = _answer("A store does not answer.", verdict, header)
    text = {"type": "string"}
    metrics = _get("mirrorMetrics", "The mirror's own metrics", text, header, "text/plain")
    if auth:
        del metrics["get"]["security"]
        metrics["get"]["responses"] |= _errors({AUTH_STATUS: _SECRET}, header)
    return {"/openapi.json": document, "/healthz": health, "/readyz": ready, "/metrics": metrics}


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
    header = api_key_header
    paths = {
        path: {"post": _operation(cls, header, auth, examples[path])}
        for path, cls in ROUTES.items()
    }
    paths |= _gets(header, auth)  # /readyz and /metrics: server/metrics.py
    document: Schema = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "StackState Mirror API (mirror-kit)",
            "version": __version__,
            "description": DESCRIPTION + (AUTH_DESCRIPTION if auth else ""),
        },
        "paths": paths,
        "components": {
            "schemas": {**_request_schemas(), **_response_schemas()},
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
