"""The Mirror API wire format: typed requests, responses and errors. Pure, no I/O.

Names follow the protocol (``MetricsQuery``, ``FieldDescriptor``...); every class
has ``from_json`` and ``to_json`` (requests also ``from_bytes``), all derived from one
msgspec declaration per object (``_wire.Wire``). See ``shared/MIRROR_API.md``.
"""

from .errors import (
    MetricNotFoundError,
    MetricStoreConnectionError,
    MirrorError,
    RemoteMirrorError,
    UnsupportedFieldTypeError,
)
from .requests import (
    Aggregation,
    AggregationMethod,
    FieldNamesQuery,
    FieldNamesRequest,
    FieldValuesQuery,
    FieldValuesRequest,
    MetricsQuery,
    MetricsRequest,
    MirrorRequest,
    TestConnectionRequest,
)
from .responses import (
    AggregatedMetricTelemetry,
    FieldNamesResponse,
    FieldValuesResponse,
    MetricsResponse,
    MetricTelemetry,
    MirrorResponse,
    RawMetricTelemetry,
    TestConnectionResponse,
)
from .values import (
    BooleanValue,
    CompleteValue,
    ConditionValue,
    DoubleValue,
    EqualityCondition,
    FieldDescriptor,
    FieldScalar,
    FieldType,
    FieldValueOption,
    FieldValuePattern,
    InSetValue,
    StringValue,
    describe_conditions,
)

#: The four methods: URL path → request class.
ROUTES: dict[str, type] = {
    cls.path: cls
    for cls in (TestConnectionRequest, FieldNamesRequest, FieldValuesRequest, MetricsRequest)
}

__all__ = [
    "ROUTES",
    "AggregatedMetricTelemetry",
    "Aggregation",
    "AggregationMethod",
    "BooleanValue",
    "CompleteValue",
    "ConditionValue",
    "DoubleValue",
    "EqualityCondition",
    "FieldDescriptor",
    "FieldNamesQuery",
    "FieldNamesRequest",
    "FieldNamesResponse",
    "FieldScalar",
    "FieldType",
    "FieldValueOption",
    "FieldValuePattern",
    "FieldValuesQuery",
    "FieldValuesRequest",
    "FieldValuesResponse",
    "InSetValue",
    "MetricNotFoundError",
    "MetricStoreConnectionError",
    "MetricTelemetry",
    "MetricsQuery",
    "MetricsRequest",
    "MetricsResponse",
    "MirrorError",
    "MirrorRequest",
    "MirrorResponse",
    "RawMetricTelemetry",
    "RemoteMirrorError",
    "StringValue",
    "TestConnectionRequest",
    "TestConnectionResponse",
    "UnsupportedFieldTypeError",
    "describe_conditions",
]
