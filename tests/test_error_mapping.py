"""Failures the caller causes are 400 protocol bodies, never 500s with tracebacks.

Each case is a request a hostile or broken client can send within the documented
limits: a number past what a double holds, a ``Content-Encoding`` that does not fit
the body, an encoding the mirror does not decode. Every answer must be a
``RemoteMirrorError`` body with ``X-MIRROR-API-KEY`` and status 400 (413 past the
cap), the mirror must log nothing at ERROR, and it must keep serving.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import HOUR, T0
from mirror_wire import CONNECTION, METRIC, assert_error, connection_body, metrics_body

from mirror_kit import ServerSettings, create_app
from mirror_kit.server import API_KEY_HEADER

A_CPU = {"host": "a-host", "metric": "cpu.user"}
MakeClient = Callable[..., Awaitable[TestClient]]
Json = dict[str, Any]


@pytest.fixture
async def api(aiohttp_client: MakeClient) -> TestClient:
    return await aiohttp_client(create_app(settings=ServerSettings(max_body_bytes=64 * 1024)))


async def send(
    api: TestClient, path: str, content: bytes, encoding: str | None = None
) -> tuple[int, Json]:
    headers = {"Content-Type": "application/json"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    answer = await api.post(path, data=content, headers=headers)
    assert answer.headers.get(API_KEY_HEADER) == "api_key", (answer.status, await answer.text())
    assert answer.content_type == "application/json", await answer.text()
    return answer.status, await answer.json()


def metric_json(**value: Any) -> bytes:
    body = metrics_body(T0, T0 + HOUR, A_CPU)
    body["query"]["conditions"].append(
        {"key": "host", "value": {"_type": "DoubleValue", **value}, "_type": "EqualityCondition"}
    )
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "text",
    ["1" + "0" * 400, "-1" + "0" * 400, "1e400", "-1e400", "1" + "0" * 309 + ".5"],
)
async def test_a_double_past_the_float_range_is_a_400(
    api: TestClient, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = metric_json(value=0).replace(b'"value": 0', f'"value": {text}'.encode())
    assert text.encode() in body
    with caplog.at_level(logging.ERROR):
        status, answer = await send(api, METRIC, body)
    assert status == 400, answer
    assert_error(answer, "RemoteMirrorError")
    assert "finite number" in answer["details"] or "finite number" in answer.get("message", "")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _short(value: Any) -> str | None:
    return f"{len(value)}B" if isinstance(value, bytes) else None


PLAIN = json.dumps(connection_body()).encode()


@pytest.mark.parametrize(
    ("encoding", "content", "status"),
    [
        ("gzip", PLAIN, 400),  # says gzip, is not
        ("deflate", PLAIN, 400),
        ("gzip", gzip.compress(PLAIN)[:-6], 400),  # truncated
        ("gzip", gzip.compress(PLAIN) + b"junk", 400),  # trailing bytes
        ("br", PLAIN, 400),  # not decoded by the mirror
        ("zstd", PLAIN, 400),
        ("compress", PLAIN, 400),
        ("gzip, gzip", gzip.compress(gzip.compress(PLAIN)), 400),  # stacked: not taken
        ("gzip;q=1", PLAIN, 400),
        ("gzip", gzip.compress(b"\0" * (65 * 1024)), 413),  # inflates past the cap
        ("deflate", zlib.compress(b" " * (10 << 20)), 413),  # a bomb: 10 MiB of spaces
    ],
    ids=_short,
)
async def test_a_content_encoding_that_does_not_fit_is_a_protocol_error(
    api: TestClient,
    encoding: str,
    content: bytes,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        got, answer = await send(api, CONNECTION, content, encoding)
    assert got == status, answer
    assert_error(answer, "RemoteMirrorError")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await send(api, CONNECTION, PLAIN))[0] == 200  # still serving


@pytest.mark.parametrize(
    ("encoding", "content"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("x-gzip", gzip.compress(PLAIN)),
        ("GZIP", gzip.compress(PLAIN)),
        ("deflate", zlib.compress(PLAIN)),  # RFC 9110: zlib format
        ("deflate", zlib.compress(PLAIN)[2:-4]),  # raw deflate, as some clients send it
        ("identity", PLAIN),
        ("", PLAIN),
    ],
    ids=_short,
)
async def test_supported_content_encodings_are_decoded(
    api: TestClient, encoding: str, content: bytes
) -> None:
    status, answer = await send(api, CONNECTION, content, encoding)
    assert status == 200, answer
    assert answer["_type"] == "TestConnectionResponse"
