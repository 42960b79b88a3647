"""Typed readers for JSON objects: each names the offending field when it fails.

StackState versions differ in which fields they send, so readers accept absent
optional fields and ignore unknown ones; but a field that is present with the
wrong type is an error that names its path (``query.startTime``), never a crash.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import invalid

#: Epoch milliseconds beyond this (about year 287,000) cannot be a real time and
#: would overflow the int64 arithmetic used downstream.
MAX_ABS_MILLIS = 2**53


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(path, "must be a JSON object")
    return value


def member(parent: dict[str, Any], key: str, path: str) -> Any:
    if key not in parent or parent[key] is None:
        raise invalid(f"{path}.{key}" if path else key, "is missing")
    return parent[key]


def check_type(body: dict[str, Any], expected: str | tuple[str, ...], path: str) -> None:
    """``_type`` may be absent; when present it must name one of the expected classes."""
    got = body.get("_type")
    names = (expected,) if isinstance(expected, str) else expected
    if got is not None and got not in names:
        raise invalid(f"{path}._type" if path else "_type", f"must be {' or '.join(names)}")


def integer(value: Any, path: str) -> int:
    """Accepts JSON integers and integral floats (``1.5e12``); bounded to sane epochs."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(path, "must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise invalid(path, "must be an integer")
        value = int(value)
    if abs(value) > MAX_ABS_MILLIS:
        raise invalid(path, f"must be between -{MAX_ABS_MILLIS} and {MAX_ABS_MILLIS}")
    return value


def optional_integer(parent: dict[str, Any], key: str, path: str) -> int | None:
    value = parent.get(key)
    return None if value is None else integer(value, f"{path}.{key}")


def non_negative(value: int | None, path: str) -> int | None:
    if value is not None and value < 0:
        raise invalid(path, "must not be negative")
    return value


def boolean(parent: dict[str, Any], key: str, path: str, default: bool = False) -> bool:
    value = parent.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{path}.{key}", "must be true or false")
    return value


def string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(path, "must be a string")
    return value


def optional_string(parent: dict[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    return None if value is None else string(value, f"{path}.{key}")


def array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(path, "must be a JSON array")
    return value
