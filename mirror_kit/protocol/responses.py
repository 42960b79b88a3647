"""The four response bodies, rendered exactly as MIRROR_API.md shows them.

Metric points are held as numpy arrays (values float64, timestamps int64 epoch ms)
so that sources and the aggregation never build per-point Python objects.
``to_json`` gives the body as Python values (``[[value, timestamp], ...]`` lists);
``to_bytes`` gives the same body as the JSON bytes the server sends, rendering the
points straight from the arrays (``encoding.points_json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import orjson

from . import _read as read
from .encoding import encode, points_json
from .errors import MetricStoreConnectionError, MirrorError, invalid
from .values import (
    CompleteValue,
    FieldDescriptor,
    FieldType,
    FieldValueOption,
    field_value_option_from_json,
    typed_scalar,
)

JsonObject = dict[str, Any]


class _Body:
    """``to_bytes``: the JSON bytes of ``to_json``, as the server sends them."""

    def to_json(self) -> JsonObject:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return encode(self.to_json())


@dataclass(frozen=True)
class TestConnectionResponse(_Body):
    error: MirrorError | None = None

    type_name: ClassVar[str] = "TestConnectionResponse"
    __test__: ClassVar[bool] = False  # not a pytest test class

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> JsonObject:
        if self.error is None:
            return {"status": "OK", "_type": self.type_name}
        return {"status": "FAILURE", "error": self.error.to_json(), "_type": self.type_name}

    @classmethod
    def from_json(cls, body: Any) -> TestConnectionResponse:
        body = read.obj(body, "response")
        read.check_type(body, cls.type_name, "")
        status = body.get("status")
        if status == "OK":
            return cls()
        if status == "FAILURE":
            error = body.get("error")
            if isinstance(error, dict):
                return cls(MirrorError.from_json(error))
            return cls(MetricStoreConnectionError("FAILURE without an error body"))
        raise invalid("status", "must be OK or FAILURE")


@dataclass(frozen=True)
class FieldNamesResponse(_Body):
    fields: tuple[FieldDescriptor, ...]
    is_partial: bool = False

    type_name: ClassVar[str] = "FieldNamesResponse"

    def to_json(self) -> JsonObject:
        return {
            "fields": [f.to_json() for f in self.fields],
            "isPartial": self.is_partial,
            "_type": self.type_name,
        }

    @classmethod
    def from_json(cls, body: Any) -> FieldNamesResponse:
        body = read.obj(body, "response")
        read.check_type(body, cls.type_name, "")
        items = read.array(read.member(body, "fields", ""), "fields")
        return cls(
            tuple(FieldDescriptor.from_json(f, f"fields[{i}]") for i, f in enumerate(items)),
            read.boolean(body, "isPartial", ""),
        )


@dataclass(frozen=True)
class FieldValuesResponse(_Body):
    values: tuple[FieldValueOption, ...]
    is_partial: bool = False

    type_name: ClassVar[str] = "FieldValuesResponse"

    def typed(self, field_type: FieldType) -> FieldValuesResponse:
        """The values read as ``field_type`` (the wire carries strings: ``"4"`` -> 4.0)."""
        values = tuple(
            CompleteValue(typed_scalar(v.value, field_type)) if isinstance(v, CompleteValue) else v
            for v in self.values
        )
        return FieldValuesResponse(values, self.is_partial)

    def to_json(self) -> JsonObject:
        return {
            "values": [v.to_json() for v in self.values],
            "isPartial": self.is_partial,
            "_type": self.type_name,
        }

    @classmethod
    def from_json(cls, body: Any) -> FieldValuesResponse:
        body = read.obj(body, "response")
        read.check_type(body, cls.type_name, "")
        items = read.array(read.member(body, "values", ""), "values")
        return cls(
            tuple(field_value_option_from_json(v, f"values[{i}]") for i, v in enumerate(items)),
            read.boolean(body, "isPartial", ""),
        )


def _points_array(body: JsonObject, width: int) -> np.ndarray:
    points = read.array(read.member(body, "points", "telemetry"), "telemetry.points")
    if not points:
        return np.empty((0, width), dtype=np.float64)
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise invalid("telemetry.points", "must be a list of number lists") from None
    if array.ndim != 2 or array.shape[1] != width:
        raise invalid("telemetry.points", f"must hold points of {width} numbers")
    return array


class _Telemetry:
    """The telemetry body around its points, as Python lists or as rendered JSON."""

    type_name: ClassVar[str]
    data_format: ClassVar[tuple[str, ...]]
    is_partial: bool

    def columns(self) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def to_json(self) -> JsonObject:
        rows = zip(*(column.tolist() for column in self.columns()), strict=True)
        return self._body(list(map(list, rows)))

    def to_wire(self) -> JsonObject:
        """The body with its points as an ``orjson.Fragment``: for ``encode`` only."""
        return self._body(orjson.Fragment(points_json(*self.columns())))

    def _body(self, points: Any) -> JsonObject:
        return {
            "points": points,
            "dataFormat": list(self.data_format),
            "isPartial": self.is_partial,
            "_type": self.type_name,
        }


@dataclass(frozen=True)
class RawMetricTelemetry(_Telemetry):
    """Points ``[value, timestamp]`` in time order (or newest first with latestFirst)."""

    values: np.ndarray
    timestamps: np.ndarray
    is_partial: bool = False

    type_name: ClassVar[str] = "RawMetricTelemetry"
    data_format: ClassVar[tuple[str, ...]] = ("value", "timestamp")

    def columns(self) -> tuple[np.ndarray, ...]:
        """The points' columns, in ``data_format`` order."""
        return (self.values, self.timestamps)

    @classmethod
    def from_json(cls, body: JsonObject) -> RawMetricTelemetry:
        array = _points_array(body, 2)
        order = _columns(body, cls.data_format)
        return cls(
            array[:, order[0]].copy(),
            array[:, order[1]].astype(np.int64),
            read.boolean(body, "isPartial", "telemetry"),
        )


@dataclass(frozen=True)
class AggregatedMetricTelemetry(_Telemetry):
    """Points ``[value, startTimestamp, endTimestamp]``, one per non-empty bucket."""

    values: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    is_partial: bool = False

    type_name: ClassVar[str] = "AggregatedMetricTelemetry"
    data_format: ClassVar[tuple[str, ...]] = ("value", "startTimestamp", "endTimestamp")

    def columns(self) -> tuple[np.ndarray, ...]:
        """The points' columns, in ``data_format`` order."""
        return (self.values, self.starts, self.ends)

    @classmethod
    def from_json(cls, body: JsonObject) -> AggregatedMetricTelemetry:
        array = _points_array(body, 3)
        order = _columns(body, cls.data_format)
        return cls(
            array[:, order[0]].copy(),
            array[:, order[1]].astype(np.int64),
            array[:, order[2]].astype(np.int64),
            read.boolean(body, "isPartial", "telemetry"),
        )


def _columns(body: JsonObject, expected: tuple[str, ...]) -> list[int]:
    """Column index of each expected name: the points' layout is what dataFormat says."""
    data_format = read.array(read.member(body, "dataFormat", "telemetry"), "telemetry.dataFormat")
    if sorted(map(str, data_format)) != sorted(expected):
        raise invalid("telemetry.dataFormat", f"must name {', '.join(expected)}")
    return [data_format.index(name) for name in expected]


MetricTelemetry = RawMetricTelemetry | AggregatedMetricTelemetry


@dataclass(frozen=True)
class MetricsResponse(_Body):
    telemetry: MetricTelemetry

    type_name: ClassVar[str] = "MetricsResponse"

    def to_json(self) -> JsonObject:
        return {"telemetry": self.telemetry.to_json(), "_type": self.type_name}

    def to_bytes(self) -> bytes:
        return encode({"telemetry": self.telemetry.to_wire(), "_type": self.type_name})

    @classmethod
    def from_json(cls, body: Any) -> MetricsResponse:
        body = read.obj(body, "response")
        read.check_type(body, cls.type_name, "")
        telemetry = read.obj(read.member(body, "telemetry", ""), "telemetry")
        kind = telemetry.get("_type")
        if kind == AggregatedMetricTelemetry.type_name:
            return cls(AggregatedMetricTelemetry.from_json(telemetry))
        if kind == RawMetricTelemetry.type_name:
            return cls(RawMetricTelemetry.from_json(telemetry))
        raise invalid("telemetry._type", "must be RawMetricTelemetry or AggregatedMetricTelemetry")


MirrorResponse = TestConnectionResponse | FieldNamesResponse | FieldValuesResponse | MetricsResponse
