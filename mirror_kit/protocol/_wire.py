"""The base of every wire type, and how a body becomes one (or a protocol error).

Each protocol object is declared once, as a msgspec ``Struct`` (``Wire``): its fields
in snake case, camelCase on the wire, ``_type`` its class name. From that declaration
msgspec parses (naming the path of a wrong field), renders, and writes the JSON Schema
the OpenAPI document is built from.

StackState versions differ, so parsing is lenient where the protocol is: unknown
members are ignored, ``_type`` may be absent (a condition value's is then inferred
from its JSON value), and an optional member may be ``null`` (read as absent).
``from_bytes`` decodes the usual body in one step and falls back, for bodies that
need the leniency or that msgspec cannot read (UTF-16/32, lone surrogates), to
``loads`` and ``from_json``.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import msgspec
import orjson

from .encoding import encode
from .errors import RemoteMirrorError, invalid

T = TypeVar("T", bound="Wire")

#: Epoch milliseconds beyond this (about year 287,000) cannot be a real time and
#: would overflow the int64 arithmetic used downstream.
MAX_ABS_MILLIS = 2**53
_BOUND = msgspec.Meta(ge=-MAX_ABS_MILLIS, le=MAX_ABS_MILLIS)
if TYPE_CHECKING:  # what code reads: ``Wire`` makes an integral float an int
    Millis = int
else:  #: Epoch ms on the wire: an integer, or an integral float (``1.5e12``).
    Millis = Annotated[int, _BOUND] | Annotated[float, _BOUND]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_ABS_MILLIS)]

_DECODER = json.JSONDecoder(parse_constant=lambda name: _refuse(name))
_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_FIELD = re.compile(r"(?:Object missing required field )?`(?P<name>\w+)`(?P<rest>.*)", re.DOTALL)
_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}
_WORDS |= {"object": "a JSON object", "array": "a JSON array", "int | float": "an integer"}


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class Wire(msgspec.Struct, frozen=True, rename="camel", tag_field="_type", tag=True):
    """A protocol object: ``from_json``/``from_bytes`` parse, ``to_json``/``to_bytes`` render."""

    type_name: ClassVar[str]
    #: How an error of a body parsed on its own names the body (``field.fieldType``).
    json_path: ClassVar[str] = ""
    #: The ``Millis`` members: an integral float is made an int.
    _integers: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = cls.__name__

    def __post_init__(self) -> None:
        for name in self._integers:
            value = getattr(self, name)
            if isinstance(value, float):
                if not value.is_integer():
                    wire = self.__struct_encode_fields__[self.__struct_fields__.index(name)]
                    raise ValueError(f"`{wire}` must be an integer")
                msgspec.structs.force_setattr(self, name, int(value))

    @classmethod
    def from_json(cls: type[T], body: Any) -> T:
        """Parse a body already read as JSON (dicts and lists), leniently (module doc)."""
        try:
            try:
                return msgspec.convert(lenient(body), cls)
            except UnicodeEncodeError:  # msgspec words an error about a lone surrogate
                return msgspec.convert(lenient(_escaped(body)), cls)
        except msgspec.ValidationError as error:
            raise request_error(error, cls.json_path) from None
        except RecursionError:
            raise invalid("body", "is nested too deeply") from None

    @classmethod
    def from_bytes(cls: type[T], raw: bytes) -> T:
        """Parse a request body; one msgspec decode for the usual one (module doc)."""
        try:
            return msgspec.json.decode(raw, type=cls)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        except RecursionError:
            raise invalid("body", "is nested too deeply") from None
        return cls.from_json(loads(raw))

    def to_json(self) -> dict[str, Any]:
        return guide_order(msgspec.to_builtins(self, order="deterministic"))

    def to_bytes(self) -> bytes:
        return encode(self.to_json())


#: StackState's guide writes ``_type`` first in requests, queries and field descriptors
#: and last in the other objects (MIRROR_API.md); the kit renders them so too (JSON does
#: not order members; the tutorial shows the guide's form).
_TYPE_FIRST = ("Request", "Query", "FieldDescriptor")


def guide_order(value: Any) -> Any:
    """Rendered JSON values (tuples as lists) with ``_type`` where the guide has it."""
    if isinstance(value, (list, tuple)):
        nested = value and isinstance(value[0], (dict, list, tuple))
        return [guide_order(v) for v in value] if nested else list(value)
    if not isinstance(value, dict):
        return value
    out = {k: v if k == "connectionDetails" else guide_order(v) for k, v in value.items()}
    kind = out.get("_type")
    if isinstance(kind, str) and not kind.endswith(_TYPE_FIRST):
        out["_type"] = out.pop("_type")
    return out


def loads(raw: bytes) -> Any:
    """A body as JSON: orjson for UTF-8, the standard library for what JSON also allows.

    The standard library reads UTF-16 and UTF-32 bodies, lone surrogate escapes and
    integers past 64 bits, refuses NaN and Infinity, and words the error.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, UnicodeDecodeError) as error:
        raise RemoteMirrorError("Invalid request: body is not valid JSON", str(error)) from None
    except RecursionError:
        raise invalid("body", "is nested too deeply") from None


def lenient(body: Any) -> Any:
    """A request body as the wire types take it (module doc); the caller's is not changed.

    Null and unknown non-ASCII members are dropped, and a condition value without
    ``_type`` gets the one its JSON value implies (a string, a number, true/false, a
    list of strings).
    """
    if not isinstance(body, dict):
        return body
    # every member the protocol names is ASCII: another key is unknown, and ignored
    out = {k: v for k, v in body.items() if v is not None and str(k).isascii()}
    for key in ("query", "field", "aggregation", "telemetry", "error"):
        if isinstance(out.get(key), dict):
            out[key] = lenient(out[key])
    conditions = out.get("conditions")
    if isinstance(conditions, list):
        out["conditions"] = [_condition(c) for c in conditions]
    return out


def _escaped(value: Any) -> Any:
    """``value`` with lone surrogates in its text escaped (only to word the error)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    return value


def _condition(condition: Any) -> Any:
    if not isinstance(condition, dict):
        return condition
    out = lenient(condition)
    value = out.get("value")
    if isinstance(value, dict) and value.get("_type") is None and "value" in value:
        kind = {bool: "BooleanValue", str: "StringValue", list: "InSetValue"}
        out["value"] = {**value, "_type": kind.get(type(value["value"]), "DoubleValue")}
    return out


def describe(
    error: msgspec.ValidationError, root: str = "", whole: str = "request body"
) -> tuple[str, str]:
    """``(path, problem)`` of a msgspec error: ``("query.limit", "must be an integer >= 0")``."""
    match = _AT.fullmatch(str(error))
    assert match is not None  # the pattern matches any text
    message, path = match["message"], root + (match["path"] or "")
    field = _FIELD.fullmatch(message)
    if field:  # a missing member, or a __post_init__ check naming its member
        path = f"{path}.{field['name']}"
        message = field["rest"].strip() or "is missing"
    elif message.startswith("Expected `"):
        wanted, _, rest = message[len("Expected `") :].replace(" | null", "").partition("`")
        message = f"must be {_WORDS.get(wanted, wanted)}{rest.partition(', got')[0]}"
    elif message == "Number out of range":  # past float64: no finite double
        message = "must be a finite number"
    else:
        message = message[:1].lower() + message[1:]
    return path.lstrip(".") or whole, message


def request_error(error: msgspec.ValidationError, root: str = "") -> RemoteMirrorError:
    """The protocol's error for a malformed body: it names the wrong member's path."""
    return invalid(*describe(error, root))
