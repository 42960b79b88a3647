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
    """A string; on a NUMBER or BOOLEAN field it matches the value's text forms.

    StackState's stream templates carry condition values as plain strings, and a
    ``CompleteValue`` is a string on the wire, so ``cores = "4"`` must find 4.0.
    """

    value: str
    type_name: ClassVar[str] = "StringValue"
    field_type: ClassVar[None] = None

    def accepts(self, actual: FieldScalar) -> bool:
        if isinstance(actual, str):
            return actual == self.value
        return self.value in text_forms(actual)

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
        return any(form in self.value for form in text_forms(actual))

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


def text_forms(value: FieldScalar) -> tuple[str, ...]:
    """Every text a store may hold for a value: a whole double reads ``2`` and ``2.0``.

    Stores differ (Prometheus labels, CSV cells written by another tool), so a
    ``DoubleValue 2.0`` matches both; ``as_text`` (the first form) is what is shown.
    """
    text = as_text(value)
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return (text, f"{value:.1f}") if abs(value) < 1e16 else (text, repr(value))
    return (text,)


def typed_scalar(value: Any, field_type: FieldType) -> Any:
    """A CompleteValue's text as a value of the field's type, where it reads as one.

    ``"4"`` of a NUMBER field is 4.0, ``"true"`` of a BOOLEAN field is True; anything
    else (a STRING field's values, text that is not of the type) is left as it is.
    """
    if not isinstance(value, str):
        return value
    if field_type.kind is FieldType.NUMBER:
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if field_type is FieldType.BOOLEAN and value in ("true", "false"):
        return value == "true"
    return value


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


#: Sets larger than this are described by their size alone: naming any member of a
#: set takes comparing them all (the five least, heapq: 18 ms for 55,000 members;
#: even ``min``: several ms), and the request log describes every request.
_DESCRIBED_BY_MEMBERS = 256


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
            members = self.value.value
            if len(members) > _DESCRIBED_BY_MEMBERS:  # a caller's huge set: its size only
                return f"{self.key} in [{len(members)} values]"
            shown = ", ".join(heapq.nsmallest(5, members))  # not a full sort
            more = "" if len(members) <= 5 else f", ... ({len(members)})"
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
    """A whole value of a field.

    On the wire the value is always a string, as in every example of StackState's
    guide: a NUMBER field's 4.0 is ``"4"``, a BOOLEAN's true is ``"true"`` (a
    ``StringValue`` condition with that text matches the field again).
    """

    value: FieldScalar
    type_name: ClassVar[str] = "CompleteValue"

    def to_json(self) -> dict[str, Any]:
        return {"value": as_text(self.value), "_type": self.type_name}


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
