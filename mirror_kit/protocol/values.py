"""Fields, typed values and equality conditions: the vocabulary of every query."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from . import _read as read
from .errors import UnsupportedFieldTypeError, invalid


class FieldType(str, Enum):
    """A field's type. ``DOUBLE`` appears in one example of the guide; it means NUMBER."""

    STRING = "STRING"
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    DOUBLE = "DOUBLE"

    @property
    def kind(self) -> FieldType:
        """The type to compare by: DOUBLE and NUMBER are one kind."""
        return FieldType.NUMBER if self is FieldType.DOUBLE else self


@dataclass(frozen=True)
class FieldDescriptor:
    field_name: str
    field_type: FieldType = FieldType.STRING
    classified: bool = False

    type_name: ClassVar[str] = "FieldDescriptor"

    @classmethod
    def from_json(cls, body: Any, path: str = "field") -> FieldDescriptor:
        body = read.obj(body, path)
        read.check_type(body, cls.type_name, path)
        name = read.string(read.member(body, "fieldName", path), f"{path}.fieldName")
        raw_type = body.get("fieldType", FieldType.STRING.value)
        try:
            field_type = FieldType(raw_type)
        except ValueError:
            raise invalid(
                f"{path}.fieldType", f"must be one of {', '.join(t.value for t in FieldType)}"
            ) from None
        return cls(name, field_type, read.boolean(body, "classified", path))

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": self.type_name,
            "fieldName": self.field_name,
            "fieldType": self.field_type.value,
            "classified": self.classified,
        }


FieldScalar = str | float | bool


@dataclass(frozen=True)
class StringValue:
    value: str
    type_name: ClassVar[str] = "StringValue"
    field_type: ClassVar[FieldType] = FieldType.STRING

    def accepts(self, actual: FieldScalar) -> bool:
        return actual == self.value

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "_type": self.type_name}


@dataclass(frozen=True)
class DoubleValue:
    value: float
    type_name: ClassVar[str] = "DoubleValue"
    field_type: ClassVar[FieldType] = FieldType.NUMBER

    def accepts(self, actual: FieldScalar) -> bool:
        return not isinstance(actual, bool) and actual == self.value

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "_type": self.type_name}


@dataclass(frozen=True)
class BooleanValue:
    value: bool
    type_name: ClassVar[str] = "BooleanValue"
    field_type: ClassVar[FieldType] = FieldType.BOOLEAN

    def accepts(self, actual: FieldScalar) -> bool:
        return actual is self.value

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "_type": self.type_name}


@dataclass(frozen=True)
class InSetValue:
    """Any of a list of strings. Matches fields of any type by their text form."""

    value: frozenset[str]
    type_name: ClassVar[str] = "InSetValue"
    field_type: ClassVar[None] = None

    def accepts(self, actual: FieldScalar) -> bool:
        return as_text(actual) in self.value

    def to_json(self) -> dict[str, Any]:
        return {"value": sorted(self.value), "_type": self.type_name}


ConditionValue = StringValue | DoubleValue | BooleanValue | InSetValue


def as_text(value: FieldScalar) -> str:
    """How a field value reads as text: ``true``, ``4``, ``2.5``, ``a-host``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _finite(number: float) -> bool:
    """Whether a JSON number is a finite double; an integer past 1.8e308 is not."""
    try:
        return math.isfinite(number)
    except OverflowError:  # math.isfinite(10**400) converts to float, and cannot
        return False


def _value_from_json(body: Any, path: str) -> ConditionValue:
    body = read.obj(body, path)
    raw = body.get("value")
    kind = body.get("_type")
    if kind is None:  # untyped: infer from the JSON value itself
        kind = {bool: "BooleanValue", str: "StringValue", list: "InSetValue"}.get(
            type(raw), "DoubleValue"
        )
    vpath = f"{path}.value"
    if kind == "StringValue":
        return StringValue(read.string(raw, vpath))
    if kind == "BooleanValue":
        if not isinstance(raw, bool):
            raise invalid(vpath, "must be true or false")
        return BooleanValue(raw)
    if kind == "DoubleValue":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not _finite(raw):
            raise invalid(vpath, "must be a finite number")
        return DoubleValue(float(raw))
    if kind == "InSetValue":
        items = read.array(raw, vpath)
        return InSetValue(frozenset(read.string(x, f"{vpath}[{i}]") for i, x in enumerate(items)))
    raise invalid(f"{path}._type", "must be StringValue, DoubleValue, BooleanValue or InSetValue")


@dataclass(frozen=True)
class EqualityCondition:
    key: str
    value: ConditionValue

    type_name: ClassVar[str] = "EqualityCondition"

    @classmethod
    def from_json(cls, body: Any, path: str) -> EqualityCondition:
        body = read.obj(body, path)
        read.check_type(body, cls.type_name, path)
        key = read.string(read.member(body, "key", path), f"{path}.key")
        return cls(key, _value_from_json(read.member(body, "value", path), f"{path}.value"))

    def check_type(self, field_type: FieldType) -> None:
        """Raise UnsupportedFieldTypeError when the value cannot be a value of the field."""
        wanted = self.value.field_type
        if wanted is not None and wanted is not field_type.kind:
            raise UnsupportedFieldTypeError(wanted.value)

    def matches(self, actual: FieldScalar) -> bool:
        return self.value.accepts(actual)

    def describe(self) -> str:
        if isinstance(self.value, InSetValue):
            shown = ", ".join(heapq.nsmallest(5, self.value.value))  # not a full sort
            more = "" if len(self.value.value) <= 5 else f", ... ({len(self.value.value)})"
            return f"{self.key} in [{shown}{more}]"
        return f"{self.key}={as_text(self.value.value)}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value.to_json(), "_type": self.type_name}


def conditions_from_json(parent: dict[str, Any], path: str) -> tuple[EqualityCondition, ...]:
    raw = parent.get("conditions")
    if raw is None:
        return ()
    items = read.array(raw, f"{path}.conditions")
    return tuple(
        EqualityCondition.from_json(c, f"{path}.conditions[{i}]") for i, c in enumerate(items)
    )


def describe_conditions(conditions: tuple[EqualityCondition, ...]) -> str:
    return " AND ".join(c.describe() for c in conditions) or "(no conditions)"


@dataclass(frozen=True)
class CompleteValue:
    """A whole value of a field."""

    value: FieldScalar
    type_name: ClassVar[str] = "CompleteValue"

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "_type": self.type_name}


@dataclass(frozen=True)
class FieldValuePattern:
    """A partial value (``cpu.*``) the user picks to refine; it becomes the next prefix."""

    value: str
    type_name: ClassVar[str] = "FieldValuePattern"

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "_type": self.type_name}


FieldValueOption = CompleteValue | FieldValuePattern


def field_value_option_from_json(body: Any, path: str) -> FieldValueOption:
    body = read.obj(body, path)
    if body.get("_type") == FieldValuePattern.type_name:
        return FieldValuePattern(read.string(body.get("value"), f"{path}.value"))
    return CompleteValue(body.get("value"))
