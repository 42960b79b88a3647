"""The four response bodies, rendered exactly as MIRROR_API.md shows them.

Metric points are held as numpy arrays (values float64, timestamps int64 epoch ms)
so that sources and the aggregation never build per-point Python objects. Their
wire types (``wire``) declare the bodies; ``to_bytes`` renders the points straight
from the arrays into them (``encoding.points_json``), ``to_json`` as Python lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import numpy as np

from ._wire import Wire
from .encoding import encode, points_json
from .errors import ERROR_BODY, MetricStoreConnectionError, MirrorError, invalid
from .values import CompleteValue, FieldDescriptor, FieldType, FieldValueOption, typed_scalar

JsonObject = dict[str, Any]


def _wire(name: str, doc: str, fields: list[Any], **config: Any) -> Any:
    """A wire type declared from its members (for bodies a numpy or error holder renders)."""
    wire = msgspec.defstruct(name, fields, bases=(Wire,), frozen=True, **config)
    wire.__doc__ = doc
    return wire


@dataclass(frozen=True)
class TestConnectionResponse:
    error: MirrorError | None = None

    wire: ClassVar[Any] = _wire(
        "TestConnectionResponse",
        "OK, or FAILURE with the error (usually MetricStoreConnectionError).",
        [("status", Literal["OK", "FAILURE"]), ("error", ERROR_BODY | None, None)],
        omit_defaults=True,
    )
    type_name: ClassVar[str] = "TestConnectionResponse"
    __test__: ClassVar[bool] = False  # not a pytest test class

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> JsonObject:
        if self.error is None:
            return {"status": "OK", "_type": self.type_name}
        return {"status": "FAILURE", "error": self.error.to_json(), "_type": self.type_name}

    def to_bytes(self) -> bytes:
        return encode(self.to_json())

    @classmethod
    def from_json(cls, body: Any) -> TestConnectionResponse:
        """Read leniently: any error body becomes the exception it describes."""
        status = body.get("status") if isinstance(body, dict) else None
        if status == "OK":
            return cls()
        if status == "FAILURE":
            error = body.get("error")
            if isinstance(error, dict):
                return cls(MirrorError.from_json(error))
            return cls(MetricStoreConnectionError("FAILURE without an error body"))
        raise invalid("status", "must be OK or FAILURE")


class FieldNamesResponse(Wire, frozen=True):
    """The field names to offer next."""

    fields: tuple[FieldDescriptor, ...]
    is_partial: bool = False


class FieldValuesResponse(Wire, frozen=True):
    """The values to offer; isPartial when more exist than were returned."""

    values: tuple[FieldValueOption, ...]
    is_partial: bool = False

    def typed(self, field_type: FieldType) -> FieldValuesResponse:
        """The values read as ``field_type`` (the wire carries strings: ``"4"`` -> 4.0)."""
        values = tuple(
            CompleteValue(typed_scalar(v.value, field_type)) if isinstance(v, CompleteValue) else v
            for v in self.values
        )
        return FieldValuesResponse(values, self.is_partial)

    def to_json(self) -> JsonObject:
        values = [v.to_json() for v in self.values]  # a CompleteValue always as text
        return {"values": values, "isPartial": self.is_partial, "_type": self.type_name}


def _telemetry_wire(name: str, doc: str, data_format: tuple[str, ...]) -> Any:
    """The body around the points; a reader takes the columns in any order dataFormat says."""
    points = msgspec.Meta(description=f"Points in time order; each is [{', '.join(data_format)}].")
    row = tuple[(float,) * len(data_format)]  # type: ignore[misc,valid-type]
    names = Literal[data_format]  # type: ignore[valid-type]
    fmt = msgspec.Meta(extra_json_schema={"const": list(data_format)})
    partial = msgspec.Meta(description="The answer was cut (limit, cap).")
    fields = [
        ("points", Annotated[list[row], points]),  # type: ignore[valid-type]
        ("data_format", Annotated[list[names], fmt]),
        ("is_partial", Annotated[bool, partial], False),
    ]
    return _wire(name, doc, fields)


class _Telemetry:
    """The telemetry body around its points, as Python lists or as its wire type."""

    wire: ClassVar[Any]
    type_name: ClassVar[str]
    data_format: ClassVar[tuple[str, ...]]
    is_partial: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = cls.__name__
        cls.wire = _telemetry_wire(cls.__name__, cls.__doc__ or "", cls.data_format)

    def columns(self) -> tuple[np.ndarray, ...]:
        """The points' columns, in ``data_format`` order: the members before ``is_partial``."""
        return tuple(v for k, v in vars(self).items() if k != "is_partial")

    def to_json(self) -> JsonObject:
        rows = zip(*(column.tolist() for column in self.columns()), strict=True)
        return self.body(list(map(list, rows)))

    def body(self, points: Any) -> JsonObject:
        """The body around ``points`` (lists, or a ``msgspec.Raw`` of their JSON)."""
        fmt, partial = list(self.data_format), self.is_partial
        return {"points": points, "dataFormat": fmt, "isPartial": partial, "_type": self.type_name}

    @classmethod
    def float_columns(cls, points: Any, fmt: list[str]) -> list[np.ndarray] | None:
        """Rows ordered as ``fmt`` says, as float64 columns in ``data_format`` order
        (None when ``fmt`` does not name the columns of ``data_format``)."""
        if sorted(fmt) != sorted(cls.data_format):
            return None
        array = np.asarray(points, dtype=np.float64).reshape(-1, len(fmt))
        return [array[:, fmt.index(name)] for name in cls.data_format]

    @classmethod
    def from_wire(cls, wire: Any) -> Any:
        columns = cls.float_columns(wire.points, wire.data_format)
        if columns is None:
            raise invalid("telemetry.dataFormat", f"must name {', '.join(cls.data_format)}")
        ints = (c.astype(np.int64) for c in columns[1:])
        return cls(columns[0].copy(), *ints, wire.is_partial)  # type: ignore[call-arg]


@dataclass(frozen=True)
class RawMetricTelemetry(_Telemetry):
    """Points ``[value, timestamp]`` in time order."""

    values: np.ndarray
    timestamps: np.ndarray
    is_partial: bool = False

    data_format: ClassVar[tuple[str, ...]] = ("value", "timestamp")


@dataclass(frozen=True)
class AggregatedMetricTelemetry(_Telemetry):
    """Points ``[value, startTimestamp, endTimestamp]``, one per non-empty bucket."""

    values: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    is_partial: bool = False

    data_format: ClassVar[tuple[str, ...]] = ("value", "startTimestamp", "endTimestamp")


MetricTelemetry = RawMetricTelemetry | AggregatedMetricTelemetry
_TELEMETRY = {t.wire: t for t in (RawMetricTelemetry, AggregatedMetricTelemetry)}


@dataclass(frozen=True)
class MetricsResponse:
    telemetry: MetricTelemetry

    wire: ClassVar[Any] = _wire(
        "MetricsResponse",
        "A metric stream.",
        [("telemetry", RawMetricTelemetry.wire | AggregatedMetricTelemetry.wire)],
    )
    type_name: ClassVar[str] = "MetricsResponse"

    def to_json(self) -> JsonObject:
        return {"telemetry": self.telemetry.to_json(), "_type": self.type_name}

    def to_bytes(self) -> bytes:
        points = msgspec.Raw(points_json(*self.telemetry.columns()))
        return encode({"telemetry": self.telemetry.body(points), "_type": self.type_name})

    @classmethod
    def from_json(cls, body: Any) -> MetricsResponse:
        telemetry = cls.wire.from_json(body).telemetry
        return cls(_TELEMETRY[type(telemetry)].from_wire(telemetry))


MirrorResponse = TestConnectionResponse | FieldNamesResponse | FieldValuesResponse | MetricsResponse
