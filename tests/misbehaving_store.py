"""A Prometheus-like store that misbehaves, on 127.0.0.1, for tests.

One aiohttp app in a background thread serves many "stores": the first path
segment picks the behaviour, so ``http://127.0.0.1:PORT/<mode>`` is the base URL of
a Prometheus that answers in that mode (``BEHAVIOURS``). Valid modes answer the
Prometheus HTTP API paths the mirror uses (labels, label values, query_range,
series, buildinfo); the others answer garbage, bombs, hangs or huge bodies. Every
request is recorded (mode, path, headers) so a test can tell that the mirror
contacted nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from aiohttp import web

MiB = 1 << 20


@cache
def gzip_bomb(inflated_mib: int = 1024) -> bytes:
    """A valid gzip stream of ``inflated_mib`` MiB of zeros, about 1 KB per MiB.

    Built from one full-flushed deflate block repeated (identical input, reset
    dictionary: identical output), so it takes a second, not a minute, to make.
    """
    chunk = bytes(MiB)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    middle = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    last = packer.compress(chunk) + packer.flush()
    crc = 0
    for _ in range(inflated_mib):
        crc = zlib.crc32(chunk, crc)
    trailer = struct.pack("<II", crc, (inflated_mib * MiB) & 0xFFFFFFFF)
    return first + middle * (inflated_mib - 2) + last[:-8] + trailer


def success(data: Any) -> bytes:
    return orjson.dumps({"status": "success", "data": data})


def matrix(request: web.Request, series: int = 1, value: str = "1.5") -> bytes:
    """A matrix answer on the request's grid: ``series`` series of constant ``value``."""
    start, end = float(request.query["start"]), float(request.query["end"])
    step = float(request.query["step"])
    count = int((end - start) / step) + 1
    values = [[start + i * step, value] for i in range(count)]
    result = [{"metric": {"__name__": "m", "n": str(n)}, "values": values} for n in range(series)]
    return success({"resultType": "matrix", "result": result})


def valid(request: web.Request) -> bytes:
    """What a small, healthy Prometheus answers."""
    path = request.match_info["rest"]
    if path.endswith("query_range"):
        return matrix(request)
    if path.endswith("labels"):
        return success(["__name__", "n"])
    if path.endswith("values"):
        return success(["m"])
    if path.endswith("series"):
        return success([{"__name__": "m"}])
    return success({"version": "2.99.0"})


def garbage_matrix(result: Any) -> Callable[[web.Request], bytes]:
    def answer(request: web.Request) -> bytes:
        if request.match_info["rest"].endswith("query_range"):
            return success({"resultType": "matrix", "result": result})
        return valid(request)

    return answer


def deep_json(request: web.Request) -> bytes:
    return b'{"status": "success", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def echo_headers(request: web.Request) -> bytes:
    """A Prometheus-shaped error whose message echoes the request headers and URL."""
    shown = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
    message = f"cannot serve {request.url} ({shown})"
    return orjson.dumps({"status": "error", "errorType": "internal", "error": message})


@dataclass(frozen=True)
class Behaviour:
    """How one mode answers: a body maker, a status, headers; or a special action."""

    body: Callable[[web.Request], bytes] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None  # "hang", "trickle", "bomb"


BEHAVIOURS: dict[str, Behaviour] = {
    "ok": Behaviour(valid),
    "ok-gzip": Behaviour(valid, action="gzip"),
    "string-timestamps": Behaviour(garbage_matrix([{"metric": {}, "values": [["1", "1"]]}])),
    "unpaired": Behaviour(garbage_matrix([{"metric": {}, "values": [[1]]}])),
    "ragged": Behaviour(garbage_matrix([{"metric": {}, "values": [[1, "1"], [2]]}])),
    "value-not-number": Behaviour(garbage_matrix([{"metric": {}, "values": [[1, "abc"]]}])),
    "huge-timestamp": Behaviour(garbage_matrix([{"metric": {}, "values": [[1e300, "1"]]}])),
    "metric-not-object": Behaviour(garbage_matrix([{"metric": [1], "values": [[1, "1"]]}])),
    "result-int": Behaviour(garbage_matrix(5)),
    "result-dict": Behaviour(garbage_matrix({"a": 1})),
    "labels-not-strings": Behaviour(lambda r: success([1, {"a": 2}])),
    "deep": Behaviour(deep_json),
    "not-json": Behaviour(lambda r: b"<html>secret internal page</html>", status=500),
    "echo": Behaviour(echo_headers, status=500),
    "error-200": Behaviour(lambda r: orjson.dumps({"status": "error"})),
    "brotli": Behaviour(valid, headers={"Content-Encoding": "br"}),
    "bad-gzip": Behaviour(lambda r: b"not gzip at all", headers={"Content-Encoding": "gzip"}),
    "bomb": Behaviour(action="bomb"),
    "hang": Behaviour(action="hang"),
    "trickle": Behaviour(action="trickle"),
    "huge-matrix": Behaviour(lambda r: huge_matrix()),
    "many-labels": Behaviour(lambda r: big_labels(300_000, 0)),
    # inside every cap, but large: ~4 MB of label values, ~3 MB of points
    "big-but-in-limit": Behaviour(
        lambda r: matrix(r) if r.match_info["rest"].endswith("query_range") else big_labels()
    ),
    # ~7 MB: under the 8 MiB cap, but 250,000 points where a page asks for fewer
    "in-cap-matrix": Behaviour(lambda r: huge_matrix(250_000)),
    "several-series": Behaviour(
        lambda r: matrix(r, series=3) if r.match_info["rest"].endswith("query_range") else valid(r)
    ),
}


@cache
def huge_matrix(points: int = 2_000_000) -> bytes:
    values = [[1_767_225_600 + i, "1.5"] for i in range(points)]
    return success({"resultType": "matrix", "result": [{"metric": {}, "values": values}]})


@cache
def big_labels(count: int = 90_000, padding: int = 30) -> bytes:
    return success([f"value-{i:08d}-{'x' * padding}" for i in range(count)])


@dataclass
class MisbehavingStore:
    """The running store: its base URL per mode, and what it was asked."""

    port: int
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def asked(self, mode: str | None = None) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if mode is None or r[0] == mode]


def _app(store: MisbehavingStore, stop: asyncio.Event) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        store.requests.append((mode, request.match_info["rest"], dict(request.headers)))
        behaviour = BEHAVIOURS.get(mode)
        if behaviour is None:
            raise web.HTTPNotFound()
        if behaviour.action == "hang":
            await stop.wait()
            return web.Response(status=503)
        if behaviour.action in ("trickle", "bomb"):
            headers = {"Content-Type": "application/json"}
            if behaviour.action == "bomb":
                headers["Content-Encoding"] = "gzip"
            response = web.StreamResponse(headers=headers)
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):  # the mirror hung up: as it should
                if behaviour.action == "bomb":
                    await response.write(gzip_bomb())
                else:
                    for _ in range(10_000):
                        await response.write(b" ")
                        await asyncio.sleep(0.05)
                await response.write_eof()
            return response
        assert behaviour.body is not None
        body = behaviour.body(request)
        headers = {"Content-Type": "application/json", **behaviour.headers}
        if behaviour.action == "gzip":
            body = zlib.compress(body, wbits=16 + zlib.MAX_WBITS)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, status=behaviour.status, headers=headers)

    app = web.Application()
    app.router.add_route("*", r"/{mode}/{rest:.*}", handle)
    return app


@contextmanager
def misbehaving_store() -> Iterator[MisbehavingStore]:
    """Serve every behaviour on one free 127.0.0.1 port until the block ends."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        runner = web.AppRunner(_app(holder["store"], stop), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        holder["port"] = runner.addresses[0][1]
        started.set()
        await stop.wait()
        await runner.cleanup()

    holder["store"] = MisbehavingStore(0)
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait(10)
    store: MisbehavingStore = holder["store"]
    store.port = holder["port"]
    try:
        yield store
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()
