"""The connection cap: idle connections cannot lock clients out, and the log stays small.

A mirror process runs with a low file-descriptor limit (RLIMIT_NOFILE 256, set in
the child before it starts), so its cap is lowered to fit; the test opens far more
idle connections than that. A new client must still be served promptly, the
mirror's log must stay a few lines (before the cap, every failed ``accept()`` wrote
a traceback: 127 MB in 12 s), and when every connection is busy a newcomer gets a
503 protocol body at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import HOUR, T0
from mirror_wire import CONNECTION, METRIC, connection_body, metrics_body
from serve_process import ServeProcess
from test_metrics import scrape, value

from mirror_kit.server.lifecycle import AcceptErrors

REPO = Path(__file__).resolve().parents[1]
FILES = 256
IDLE = 600
DEADLINE_S = 30.0


def capped(*flags: str) -> ServeProcess:
    """A ``serve`` process limited to FILES open files."""
    return ServeProcess(*flags, preexec_fn=_few_files)


def _few_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILES, hard))


@pytest.fixture
def room() -> Iterator[None]:
    """Room in this process for IDLE sockets and more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(IDLE + 256, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= IDLE + 256, "raise `ulimit -n`"
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(DEADLINE_S)
        sock.connect(("127.0.0.1", port))  # the kernel completes it; the mirror may not accept
        sockets.append(sock)
    return sockets


def client_port(answer: httpx.Response) -> int:
    """The local port of the connection an answer came on."""
    return int(answer.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_idle_connections_past_the_cap_do_not_lock_clients_out(room: None) -> None:
    mirror = capped()
    sockets: list[socket.socket] = []
    stack = contextlib.ExitStack()
    try:
        # a client with a kept-alive connection, as StackState's pool keeps one
        pooled = stack.enter_context(httpx.Client(base_url=mirror.url, timeout=DEADLINE_S))
        first = pooled.post(CONNECTION, json=connection_body())
        assert first.status_code == 200
        pooled_port = client_port(first)
        for _ in range(3):  # waves of idle connections, each well past what fits
            sockets += open_idle(mirror.port, IDLE // 3)
            started = time.monotonic()
            with httpx.Client(base_url=mirror.url, timeout=DEADLINE_S) as http:
                answer = http.post(METRIC, json=metrics_body(T0, T0 + HOUR, {"host": "a-host"}))
            assert answer.status_code == 200
            assert len(answer.json()["telemetry"]["points"]) == 360
            assert time.monotonic() - started < DEADLINE_S / 2  # served, not timed out
            # its pooled connection was not the one closed: the silent ones went first
            again = pooled.post(CONNECTION, json=connection_body())
            assert again.status_code == 200 and client_port(again) == pooled_port
        closed = value(scrape(mirror.url), "mirror_kit_connection_cap_total", action="closed_idle")
        assert closed >= IDLE - 64, closed  # all but what fits of the idle ones, or more
        time.sleep(0.5)
        log = mirror.stop()
        assert "connection cap of 64 reached" in log, log[-2000:]  # 256 - 64 - 128 kept
        assert "max connections lowered from 1000 to 64" in log
        assert "Traceback" not in log, log[-2000:]
        assert len(log) < 4000, f"{len(log)} bytes of log:\n{log[-2000:]}"
    finally:
        stack.close()
        for sock in sockets:
            sock.close()
        mirror.stop()


def test_when_every_connection_is_busy_a_newcomer_gets_a_503() -> None:
    mirror = capped("--max-connections", "4", "--body-timeout", "20")
    stalled = []
    try:
        head = (
            f"POST {METRIC} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{"
        ).encode()
        for sock in open_idle(mirror.port, 4):
            sock.sendall(head)  # a body that never completes: busy for the body timeout
            stalled.append(sock)
        time.sleep(0.5)
        with httpx.Client(base_url=mirror.url, timeout=DEADLINE_S) as http:
            answer = http.post(CONNECTION, json=connection_body())
        assert answer.status_code == 503
        assert answer.headers["X-MIRROR-API-KEY"] == "api_key"
        body = json.loads(answer.content)
        assert body["_type"] == "RemoteMirrorError" and "too many connections" in body["summary"]
        for sock in stalled:
            sock.close()
        counted = scrape(mirror.url)  # room again once the stalled clients left
        assert value(counted, "mirror_kit_connection_cap_total", action="refused") == 1
    finally:
        for sock in stalled:
            sock.close()
        mirror.stop()


async def test_failed_accepts_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio reports each failed accept() through the loop's exception handler; a
    thousand of them make one log line, and other reports still reach the old handler."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context["message"]))
    errors = AcceptErrors(loop)
    failure = OSError(24, "Too many open files")
    with caplog.at_level(logging.WARNING, logger="mirror_kit.server"):
        for _ in range(1000):
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": failure}
            )
        loop.call_exception_handler({"message": "something else"})
        errors.close()  # flushes what the interval held back
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # the first at once, the other 999 at the flush
    assert "1 failed accepts" in lines[0] and "999 failed accepts" in lines[1]
    assert "Too many open files" in lines[1]
    assert seen == ["something else"]
    assert loop.get_exception_handler() is not errors  # restored
