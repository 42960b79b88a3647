"""JSON bytes of the wire: any JSON value, and metric points from numpy columns."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import orjson

#: Points rendered per step: the Python objects of one step (about 120 bytes a point)
#: are all that exist at once, whatever the answer's size.
CHUNK = 8192


def encode(body: Any) -> bytes:
    """``body`` (JSON values, may hold a ``msgspec.Raw``) as compact JSON bytes.

    Text echoed from a request may hold lone surrogates (``"\\ud800"`` is valid
    JSON); msgspec refuses them, the standard library escapes them again.
    """
    try:
        return msgspec.json.encode(body)
    except UnicodeEncodeError:
        return json.dumps(body).encode()


def points_json(*columns: np.ndarray) -> bytes:
    """``[[c0[0], c1[0], ...], [c0[1], c1[1], ...], ...]`` as JSON bytes.

    Columns are 1-D, equally long, float64 or int64 (values, timestamps) and finite
    (JSON has no NaN: the service drops those before). orjson writes each step's rows.
    """
    steps = (
        orjson.dumps(list(zip(*(c[i : i + CHUNK].tolist() for c in columns), strict=True)))
        for i in range(0, len(columns[0]), CHUNK)
    )
    return b"[" + b",".join(step[1:-1] for step in steps) + b"]"
