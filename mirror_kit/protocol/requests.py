"""The four request bodies StackState's Mirror plugin sends, parsed and rendered.

``from_json`` is what the server uses (lenient about ``_type`` and unknown fields,
strict about types, naming the field that is wrong); ``to_json`` is what the client
sends, shaped exactly as StackState shapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from . import _read as read
from .constants import CONNECTION_PATH, FIELD_NAMES_PATH, FIELD_VALUES_PATH, METRICS_PATH
from .errors import invalid
from .values import (
    EqualityCondition,
    FieldDescriptor,
    conditions_from_json,
    describe_conditions,
)

JsonObject = dict[str, Any]


class AggregationMethod(str, Enum):
    MEAN = "MEAN"
    PERCENTILE_25 = "PERCENTILE_25"
    PERCENTILE_50 = "PERCENTILE_50"
    PERCENTILE_75 = "PERCENTILE_75"
    PERCENTILE_90 = "PERCENTILE_90"
    PERCENTILE_95 = "PERCENTILE_95"
    PERCENTILE_98 = "PERCENTILE_98"
    PERCENTILE_99 = "PERCENTILE_99"
    MAX = "MAX"
    MIN = "MIN"
    SUM = "SUM"
    EVENT_COUNT = "EVENT_COUNT"
    #: From StackState 4.3 on: "missing values from a data source won't be filled with
    #: zeros" -- so plain SUM and EVENT_COUNT are the zero-filled ones.
    SUM_NO_ZEROS = "SUM_NO_ZEROS"
    EVENT_COUNT_NO_ZEROS = "EVENT_COUNT_NO_ZEROS"

    @property
    def zero_filled(self) -> bool:
        """Whether a window without data gives 0 (SUM, EVENT_COUNT) rather than no point."""
        return self in (AggregationMethod.SUM, AggregationMethod.EVENT_COUNT)

    @property
    def percentile(self) -> float | None:
        """25.0 for PERCENTILE_25 and so on; None for the other methods."""
        prefix = "PERCENTILE_"
        return float(self.value[len(prefix) :]) if self.value.startswith(prefix) else None


@dataclass(frozen=True)
class Aggregation:
    method: AggregationMethod
    bucket_size_millis: int

    type_name: ClassVar[str] = "Aggregation"

    @classmethod
    def from_json(cls, body: Any, path: str) -> Aggregation:
        body = read.obj(body, path)
        read.check_type(body, cls.type_name, path)
        raw_method = read.member(body, "method", path)
        try:
            method = AggregationMethod(raw_method)
        except ValueError:
            names = ", ".join(m.value for m in AggregationMethod)
            raise invalid(f"{path}.method", f"must be one of {names}") from None
        size = read.integer(read.member(body, "bucketSizeMillis", path), f"{path}.bucketSizeMillis")
        if size <= 0:
            raise invalid(f"{path}.bucketSizeMillis", "must be positive")
        return cls(method, size)

    def to_json(self) -> JsonObject:
        return {
            "method": self.method.value,
            "bucketSizeMillis": self.bucket_size_millis,
            "_type": self.type_name,
        }


def _time_range(body: JsonObject, path: str) -> tuple[int, int]:
    start = read.integer(read.member(body, "startTime", path), f"{path}.startTime")
    end = read.integer(read.member(body, "endTime", path), f"{path}.endTime")
    return start, end


def _limit(body: JsonObject, path: str) -> int | None:
    return read.non_negative(read.optional_integer(body, "limit", path), f"{path}.limit")


def _common_json(query: Any) -> JsonObject:
    """The fields every query type shares, as StackState renders them."""
    body: JsonObject = {
        "_type": query.type_name,
        "conditions": [c.to_json() for c in query.conditions],
        "startTime": query.start_time,
        "endTime": query.end_time,
        "latestFirst": query.latest_first,
    }
    if query.limit is not None:
        body["limit"] = query.limit
    return body


@dataclass(frozen=True)
class FieldNamesQuery:
    start_time: int
    end_time: int
    conditions: tuple[EqualityCondition, ...] = ()
    limit: int | None = None
    latest_first: bool = False

    type_name: ClassVar[str] = "FieldNamesQuery"

    @classmethod
    def from_json(cls, body: Any, path: str = "query") -> FieldNamesQuery:
        body = read.obj(body, path)
        read.check_type(body, cls.type_name, path)
        start, end = _time_range(body, path)
        return cls(
            start,
            end,
            conditions_from_json(body, path),
            _limit(body, path),
            read.boolean(body, "latestFirst", path),
        )

    def to_json(self) -> JsonObject:
        return _common_json(self)


@dataclass(frozen=True)
class FieldValuesQuery:
    field: FieldDescriptor
    start_time: int
    end_time: int
    conditions: tuple[EqualityCondition, ...] = ()
    field_value_prefix: str | None = None
    limit: int | None = None
    offset: int = 0
    latest_first: bool = False

    type_name: ClassVar[str] = "FieldValuesQuery"

    @classmethod
    def from_json(cls, body: Any, path: str = "query") -> FieldValuesQuery:
        body = read.obj(body, path)
        read.check_type(body, cls.type_name, path)
        start, end = _time_range(body, path)
        offset = read.non_negative(read.optional_integer(body, "offset", path), f"{path}.offset")
        return cls(
            FieldDescriptor.from_json(read.member(body, "field", path), f"{path}.field"),
            start,
            end,
            conditions_from_json(body, path),
            read.optional_string(body, "fieldValuePrefix", path),
            _limit(body, path),
            offset or 0,
            read.boolean(body, "latestFirst", path),
        )

    def to_json(self) -> JsonObject:
        body = _common_json(self)
        body["field"] = self.field.to_json()
        body["offset"] = self.offset
        if self.field_value_prefix is not None:
            body["fieldValuePrefix"] = self.field_value_prefix
        return body


@dataclass(frozen=True)
class MetricsQuery:
    start_time: int
    end_time: int
    conditions: tuple[EqualityCondition, ...] = ()
    metric_field: str | None = None
    limit: int | None = None
    aggregation: Aggregation | None = None
    latest_first: bool = False

    type_name: ClassVar[str] = "MetricsQuery"

    @classmethod
    def from_json(cls, body: Any, path: str = "query") -> MetricsQuery:
        body = read.obj(body, path)
        read.check_type(body, cls.type_name, path)
        start, end = _time_range(body, path)
        raw_aggregation = body.get("aggregation")
        return cls(
            start,
            end,
            conditions_from_json(body, path),
            read.optional_string(body, "metricField", path),
            _limit(body, path),
            None
            if raw_aggregation is None
            else Aggregation.from_json(raw_aggregation, f"{path}.aggregation"),
            read.boolean(body, "latestFirst", path),
        )

    def to_json(self) -> JsonObject:
        body = _common_json(self)
        if self.metric_field is not None:
            body["metricField"] = self.metric_field
        if self.aggregation is not None:
            body["aggregation"] = self.aggregation.to_json()
        return body


def _connection_details(body: JsonObject) -> JsonObject:
    return read.obj(read.member(body, "connectionDetails", ""), "connectionDetails")


@dataclass(frozen=True)
class TestConnectionRequest:
    connection_details: JsonObject = field(default_factory=dict)

    type_name: ClassVar[str] = "TestConnectionRequest"
    path: ClassVar[str] = CONNECTION_PATH
    __test__: ClassVar[bool] = False  # not a pytest test class

    @classmethod
    def from_json(cls, body: Any) -> TestConnectionRequest:
        body = read.obj(body, "request body")
        read.check_type(body, cls.type_name, "")
        return cls(_connection_details(body))

    def to_json(self) -> JsonObject:
        return {"_type": self.type_name, "connectionDetails": self.connection_details}

    def summary(self) -> str:
        return "test connection"


@dataclass(frozen=True)
class _QueryRequest:
    """A request carrying connection details and a query of the class's query type."""

    query: Any
    connection_details: JsonObject = field(default_factory=dict)

    type_name: ClassVar[str] = ""
    query_type: ClassVar[Any] = None

    @classmethod
    def from_json(cls, body: Any) -> Any:
        body = read.obj(body, "request body")
        read.check_type(body, cls.type_name, "")
        details = _connection_details(body)
        return cls(cls.query_type.from_json(read.member(body, "query", "")), details)

    def to_json(self) -> JsonObject:
        return {
            "_type": self.type_name,
            "connectionDetails": self.connection_details,
            "query": self.query.to_json(),
        }


@dataclass(frozen=True)
class FieldNamesRequest(_QueryRequest):
    query: FieldNamesQuery
    type_name: ClassVar[str] = "FieldNamesRequest"
    query_type: ClassVar[Any] = FieldNamesQuery
    path: ClassVar[str] = FIELD_NAMES_PATH

    def summary(self) -> str:
        return f"field names where {describe_conditions(self.query.conditions)}"


@dataclass(frozen=True)
class FieldValuesRequest(_QueryRequest):
    query: FieldValuesQuery
    type_name: ClassVar[str] = "FieldValuesRequest"
    query_type: ClassVar[Any] = FieldValuesQuery
    path: ClassVar[str] = FIELD_VALUES_PATH

    def summary(self) -> str:
        prefix = self.query.field_value_prefix
        shown = f" prefix {prefix!r}" if prefix else ""
        return (
            f"values of {self.query.field.field_name}{shown} where "
            f"{describe_conditions(self.query.conditions)}"
        )


@dataclass(frozen=True)
class MetricsRequest(_QueryRequest):
    query: MetricsQuery
    type_name: ClassVar[str] = "MetricsRequest"
    query_type: ClassVar[Any] = MetricsQuery
    path: ClassVar[str] = METRICS_PATH

    def summary(self) -> str:
        q = self.query
        how = (
            "raw"
            if q.aggregation is None
            else f"{q.aggregation.method.value}/{q.aggregation.bucket_size_millis}ms"
        )
        return f"metric {how} where {describe_conditions(q.conditions)}"


MirrorRequest = TestConnectionRequest | FieldNamesRequest | FieldValuesRequest | MetricsRequest
