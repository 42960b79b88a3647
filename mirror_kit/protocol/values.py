"""Fields, typed values and equality conditions: the vocabulary of every query."""

from __future__ import annotations

import heapq
import math
from enum import Enum
from typing import Any

from ._wire import Wire
from .errors import UnsupportedFieldTypeError


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


class FieldDescriptor(Wire, frozen=True):
    """A field: its name, type, and whether its values need care when shown."""

    field_name: str
    field_type: FieldType = FieldType.STRING
    classified: bool = False

    json_path = "field"


FieldScalar = str | float | bool


class StringValue(Wire, frozen=True):
    """A string; on a NUMBER or BOOLEAN field it matches the value's text forms.

    StackState's stream templates carry condition values as plain strings, and a
    ``CompleteValue`` is a string on the wire, so ``cores = "4"`` must find 4.0.
    """

    value: str
    field_type = None

    def accepts(self, actual: FieldScalar) -> bool:
        if isinstance(actual, str):
            return actual == self.value
        return self.value in text_forms(actual)


class DoubleValue(Wire, frozen=True):
    """A finite number (JSON has no NaN; a number past 1.8e308 is refused)."""

    value: float
    field_type = FieldType.NUMBER

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):  # msgspec reads 1e400 as inf
            raise ValueError("`value` must be a finite number")

    def accepts(self, actual: FieldScalar) -> bool:
        return not isinstance(actual, bool) and actual == self.value


class BooleanValue(Wire, frozen=True):
    """True or false."""

    value: bool
    field_type = FieldType.BOOLEAN

    def accepts(self, actual: FieldScalar) -> bool:
        return actual is self.value


class InSetValue(Wire, frozen=True):
    """Any of a list of strings (sent by real StackState versions); matches by text form."""

    value: frozenset[str]
    field_type = None

    def accepts(self, actual: FieldScalar) -> bool:
        return any(form in self.value for form in text_forms(actual))


ConditionValue = StringValue | DoubleValue | BooleanValue | InSetValue


def as_text(value: FieldScalar) -> str:
    """How a field value reads as text: ``true``, ``4``, ``2.5``, ``a-host``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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


#: Sets larger than this are described by their size alone: naming any member of a
#: set takes comparing them all (the five least, heapq: 18 ms for 55,000 members;
#: even ``min``: several ms), and the request log describes every request.
_DESCRIBED_BY_MEMBERS = 256


class EqualityCondition(Wire, frozen=True):
    """Holds when the field ``key`` equals ``value``."""

    key: str
    value: ConditionValue

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


def describe_conditions(conditions: tuple[EqualityCondition, ...]) -> str:
    return " AND ".join(c.describe() for c in conditions) or "(no conditions)"


class CompleteValue(Wire, frozen=True):
    """A whole value of a field.

    On the wire the value is always a string, as in every example of StackState's
    guide: a NUMBER field's 4.0 is ``"4"``, a BOOLEAN's true is ``"true"`` (a
    ``StringValue`` condition with that text matches the field again).
    """

    value: str

    def to_json(self) -> dict[str, Any]:
        return {"value": as_text(self.value), "_type": self.type_name}


class FieldValuePattern(Wire, frozen=True):
    """A partial value (``cpu.*``) the user picks to refine; it becomes the next prefix."""

    value: str


FieldValueOption = CompleteValue | FieldValuePattern
