"""The four request bodies StackState's Mirror plugin sends, parsed and rendered.

Parsing (``from_json``, ``from_bytes``: what the server uses) is lenient about
``_type``, nulls and unknown fields, strict about types, and names the field that is
wrong; ``to_json`` is what the client sends, shaped exactly as StackState shapes it
(members that are None left out).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, ClassVar

import msgspec

from ._wire import Count, Millis, Wire
from .constants import CONNECTION_PATH, FIELD_NAMES_PATH, FIELD_VALUES_PATH, METRICS_PATH
from .values import EqualityCondition, FieldDescriptor, describe_conditions

JsonObject = dict[str, Any]


class AggregationMethod(str, Enum):
    """How a window's points become one value; EVENT_COUNT is the number of points."""

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


class Aggregation(Wire, frozen=True):
    """Aggregate the points in fixed windows of bucketSizeMillis."""

    method: AggregationMethod
    bucket_size_millis: Annotated[int, msgspec.Meta(ge=1, le=2**53)]


class _Query(Wire, frozen=True):
    """A query: ``Millis`` members read an integral float as an int; None is not sent."""

    _integers = ("start_time", "end_time")

    def to_json(self) -> JsonObject:
        return {k: v for k, v in super().to_json().items() if v is not None}


class FieldNamesQuery(_Query, frozen=True):
    """Which field names to offer."""

    start_time: Millis
    end_time: Millis
    conditions: tuple[EqualityCondition, ...] = ()
    limit: Count | None = None
    latest_first: bool = False


class FieldValuesQuery(_Query, frozen=True):
    """Which values of a field to offer."""

    field: FieldDescriptor
    start_time: Millis
    end_time: Millis
    conditions: tuple[EqualityCondition, ...] = ()
    field_value_prefix: str | None = None
    limit: Count | None = None
    offset: Count = 0
    latest_first: bool = False


class MetricsQuery(_Query, frozen=True):
    """A metric stream: raw points, or aggregated when ``aggregation`` is given."""

    start_time: Millis
    end_time: Millis
    conditions: tuple[EqualityCondition, ...] = ()
    metric_field: str | None = None
    limit: Count | None = None
    aggregation: Aggregation | None = None
    latest_first: bool = False


class TestConnectionRequest(Wire, frozen=True):
    """Can the mirror reach its store?"""

    connection_details: JsonObject

    path: ClassVar[str] = CONNECTION_PATH
    __test__: ClassVar[bool] = False  # not a pytest test class

    def summary(self) -> str:
        return "test connection"


class _QueryRequest(Wire, frozen=True):
    """A request carrying a query and connection details; ``query_type`` is the query's."""

    query_type: ClassVar[Any]

    def to_json(self) -> JsonObject:
        return {**super().to_json(), "query": self.query.to_json()}  # type: ignore[attr-defined]


class FieldNamesRequest(_QueryRequest, frozen=True):
    """The body of POST /api/field/name."""

    query: FieldNamesQuery
    connection_details: JsonObject

    query_type = FieldNamesQuery
    path: ClassVar[str] = FIELD_NAMES_PATH

    def summary(self) -> str:
        return f"field names where {describe_conditions(self.query.conditions)}"


class FieldValuesRequest(_QueryRequest, frozen=True):
    """The body of POST /api/field/value."""

    query: FieldValuesQuery
    connection_details: JsonObject

    query_type = FieldValuesQuery
    path: ClassVar[str] = FIELD_VALUES_PATH

    def summary(self) -> str:
        q = self.query
        shown = f" prefix {q.field_value_prefix!r}" if q.field_value_prefix else ""
        return f"values of {q.field.field_name}{shown} where {describe_conditions(q.conditions)}"


class MetricsRequest(_QueryRequest, frozen=True):
    """The body of POST /api/metric."""

    query: MetricsQuery
    connection_details: JsonObject

    query_type = MetricsQuery
    path: ClassVar[str] = METRICS_PATH

    def summary(self) -> str:
        q, every = self.query, self.query.aggregation
        how = "raw" if every is None else f"{every.method.value}/{every.bucket_size_millis}ms"
        return f"metric {how} where {describe_conditions(q.conditions)}"


MirrorRequest = TestConnectionRequest | FieldNamesRequest | FieldValuesRequest | MetricsRequest
