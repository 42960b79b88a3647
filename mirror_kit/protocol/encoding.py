"""JSON bytes of the wire: any JSON value, and metric points straight from numpy.

A metric answer is mostly its points. Building ``[[value, timestamp], ...]`` as
Python lists costs two objects per point and dominates a raw answer (about 60 us
for 1080 points, as much again to encode them). ``points_json`` renders the same
text from the numpy columns without a Python object per point, in one of two ways;
either gives exactly the bytes of ``orjson.dumps`` of the lists:

* **interleaved** (timestamps that a float64 holds exactly, i.e. any epoch-ms time
  within 285,000 years): the columns go into one float64 array ``v0, t0, v1, t1,
  ...`` that orjson writes as one flat JSON array. orjson writes a whole float below
  1e16 as ``1764000000000.0``, so each timestamp's text ends in ``.0,``, which is as
  long as the ``],[`` that must replace it: numpy overwrites those three bytes in
  place (a middle column's ``.0`` is dropped instead). About 60 us for 1080 points.
* **slotted** (anything else): orjson writes each column alone, numpy cuts each
  text into one NUL-padded slot per item, lays the slots side by side with the
  brackets and commas of each point, and drops the padding. About 100 us.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import orjson

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_COMMA, _OPEN, _CLOSE, _DOT, _ZERO = b",[].0"
_EXACT = 2**53  # integers of smaller magnitude are exact in float64


def encode(body: Any) -> bytes:
    """``body`` (JSON values, wire types) as compact JSON bytes, sets and keys sorted.

    Text echoed from a request may hold lone surrogates (``"\\ud800"`` is valid
    JSON); msgspec refuses them, the standard library escapes them again.
    """
    try:
        return msgspec.json.encode(body, order="deterministic")
    except UnicodeEncodeError:
        return json.dumps(msgspec.to_builtins(body, order="deterministic")).encode()


def points_json(*columns: np.ndarray) -> bytes:
    """``[[c0[0], c1[0], ...], [c0[1], c1[1], ...], ...]`` as JSON bytes.

    Columns are 1-D, equally long, float64 or int64 (values, timestamps) and
    finite: JSON has no NaN, the service drops those before.
    """
    if len(columns[0]) == 0:
        return b"[]"
    if len(columns) > 1 and all(_exact_integers(c) for c in columns[1:]):
        text = _interleaved(columns)
        if text is not None:
            return text
    return _slotted(columns)


def _exact_integers(column: np.ndarray) -> bool:
    return (
        np.issubdtype(column.dtype, np.integer)
        and int(column.min()) > -_EXACT
        and int(column.max()) < _EXACT
    )


def _interleaved(columns: tuple[np.ndarray, ...]) -> bytes | None:
    """The interleaved rendering (module doc); None if orjson's text is not as expected."""
    count, width = len(columns[0]), len(columns)
    mixed = np.empty(count * width, dtype=np.float64)
    for j, column in enumerate(columns):
        mixed[j::width] = column
    text = bytearray(orjson.dumps(mixed, option=_NUMPY))
    data = np.frombuffer(text, dtype=np.uint8)
    ends = np.empty(count * width, dtype=np.intp)  # the "," or "]" after each item
    ends[:-1] = np.flatnonzero(data == _COMMA)
    ends[-1] = len(text) - 1
    whole = ends.reshape(count, width)[:, 1:]  # after the integer columns' items
    if not ((data[whole - 2] == _DOT).all() and (data[whole - 1] == _ZERO).all()):
        return None  # never seen: orjson wrote a whole float some other way
    last = whole[:, -1]
    data[last - 2] = _CLOSE  # ".0," -> "],["
    data[last - 1] = _COMMA
    data[last[:-1]] = _OPEN
    if width > 2:  # ".0," -> "," in the middle columns: NUL the ".0", then drop NULs
        middle = whole[:, :-1].reshape(-1)
        data[middle - 2] = 0
        data[middle - 1] = 0
        data = data[data != 0]
    return b"[" + data[:-3].tobytes() + b"]]"  # the last item's ".0]" -> "]]"


def _slotted(columns: tuple[np.ndarray, ...]) -> bytes:
    """The slotted rendering (module doc): for columns the interleaved one cannot take."""
    count = len(columns[0])
    slots = [_slots(np.ascontiguousarray(column)) for column in columns]
    width = sum(s.shape[1] for s in slots) + len(slots) + 2  # "[", commas, "]", ","
    rows = np.zeros((count, width), dtype=np.uint8)
    rows[:, 0] = _OPEN
    at = 1
    for slot in slots:
        rows[:, at : at + slot.shape[1]] = slot
        at += slot.shape[1]
        rows[:, at] = _COMMA
        at += 1
    rows[:, at - 1] = _CLOSE  # the last column's comma ends the point
    rows[:, at] = _COMMA  # between points
    flat = rows.reshape(-1)
    text = flat[flat != 0]  # drop the padding: JSON numbers never hold NUL
    text[-1] = _CLOSE  # the last point's comma ends the array
    return b"[" + text.tobytes()


def _slots(column: np.ndarray) -> np.ndarray:
    """(n, width) bytes: the JSON text of each item, NUL-padded to the widest."""
    text = orjson.dumps(column, option=_NUMPY)[1:]  # each item now ends at "," or "]"
    data = np.frombuffer(text, dtype=np.uint8)
    count = len(column)
    starts = np.empty(count, dtype=np.intp)
    starts[0] = 0
    starts[1:] = np.flatnonzero(data == _COMMA) + 1
    lengths = np.diff(starts, append=len(text)) - 1
    width = int(lengths.max())
    if count * (width + 1) == len(text):  # all alike (timestamps of one era): a reshape
        return data.reshape(count, width + 1)[:, :width]
    padded = np.frombuffer(text + bytes(width), dtype=np.uint8)
    windows = np.lib.stride_tricks.as_strided(padded, (len(text), width), (1, 1))
    slots = windows[starts]  # a copy: each item's text and what follows it
    slots *= np.arange(width) < lengths[:, None]  # ... cut to the item
    return slots
