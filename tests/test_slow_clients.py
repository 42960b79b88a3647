"""Slow and broken clients: the mirror keeps serving others and lets go of them.

Raw sockets to 127.0.0.1 play the bad clients: a body that stops short of its
Content-Length, request headers that never end, a client that never reads a
large answer, and a thousand idle keep-alive connections. Each test runs a
mirror with short timeouts, checks that a well-behaved client is served while
the bad one hangs on, then that the mirror closes the bad connection (observed
from the client side, and from the mirror's own socket table with psutil).
The waits are bounded (a deadline far above the configured timeouts); no test
asserts how fast anything happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest
from conftest import DAY, HOUR, T0
from mirror_wire import CONNECTION, METRIC, connection_body, metrics_body

from mirror_kit import Limits, RunningMirror, ServerSettings, start_mirror
from mirror_kit.server import API_KEY_HEADER

SHORT = 0.5  # seconds: every timeout under test
DEADLINE_S = 30.0  # how long a test waits for something that should take ~SHORT
A_CPU = {"host": "a-host", "metric": "cpu.user"}
IDLE_CONNECTIONS = 1000


@pytest.fixture
def strict() -> Iterator[RunningMirror]:
    """A mirror with short keep-alive, body and send timeouts, and a cap high enough
    for answers of tens of megabytes (larger than any socket buffer)."""
    settings = ServerSettings(
        keepalive_timeout_s=SHORT,
        body_timeout_s=SHORT,
        send_timeout_s=SHORT,
        limits=Limits(max_points=2_000_000, max_answer_points=2_000_000),
    )
    with start_mirror(port=0, settings=settings) as mirror:
        yield mirror


def connect(mirror: RunningMirror, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connect, so the advertised window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(DEADLINE_S)
    sock.connect(("127.0.0.1", mirror.port))
    return sock


def request_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def served_meanwhile(mirror: RunningMirror) -> None:
    """A well-behaved client gets its answers while the bad one hangs on."""
    with httpx.Client(base_url=mirror.url, timeout=DEADLINE_S) as http:
        assert http.post(CONNECTION, json=connection_body()).status_code == 200
        answer = http.post(METRIC, json=metrics_body(T0, T0 + HOUR, A_CPU))
        assert answer.status_code == 200
        assert len(answer.json()["telemetry"]["points"]) == 360


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the mirror sends until it closes the connection (bounded wait)."""
    received = b""
    deadline = time.monotonic() + DEADLINE_S
    with contextlib.suppress(ConnectionResetError):
        while time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return received
            received += chunk
    raise AssertionError(f"the mirror kept the connection open; received {received[:200]!r}")


def mirror_connections(mirror: RunningMirror) -> list[int]:
    """Remote ports of the mirror's established connections (it runs in this process)."""
    return [
        c.raddr.port
        for c in psutil.Process().net_connections(kind="tcp")
        if c.laddr and c.laddr.port == mirror.port and c.raddr and c.status == "ESTABLISHED"
    ]


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_body_shorter_than_its_content_length_times_out(strict: RunningMirror) -> None:
    sock = connect(strict)
    body = json.dumps(connection_body()).encode()
    sock.sendall(request_head(CONNECTION, len(body) + 1000) + body)  # 1000 bytes never come
    served_meanwhile(strict)
    answer = read_until_closed(sock)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert f"{API_KEY_HEADER}: {strict.api_key}".lower().encode() in head.lower()
    assert json.loads(payload)["_type"] == "RemoteMirrorError"
    port = sock.getsockname()[1]
    assert eventually(lambda: port not in mirror_connections(strict))
    sock.close()
    assert [e.status for e in strict.requests() if e.method == "connection"][-1] == 408


def test_request_headers_that_never_end_are_cut_off(strict: RunningMirror) -> None:
    sock = connect(strict)
    sock.sendall(b"POST /api/metric HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
    served_meanwhile(strict)
    assert read_until_closed(sock) == b""  # no request, so no answer: just closed
    port = sock.getsockname()[1]
    assert eventually(lambda: port not in mirror_connections(strict))
    sock.close()


def test_a_client_that_never_reads_its_answer_is_let_go(
    strict: RunningMirror, caplog: pytest.LogCaptureFixture
) -> None:
    query = metrics_body(T0, T0 + 30 * DAY, A_CPU)  # 259,200 points, ~9 MB of JSON
    body = json.dumps(query).encode()
    sock = connect(strict, receive_buffer=4096)
    sock.sendall(request_head(METRIC, len(body)) + body)
    port = sock.getsockname()[1]

    def undelivered() -> bool:
        return any("answer not delivered" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="mirror_kit.server"):
        assert eventually(undelivered)
    assert strict.requests()[-1].points == 259_200
    served_meanwhile(strict)
    assert eventually(lambda: port not in mirror_connections(strict))
    sock.close()


@pytest.fixture
def many_sockets() -> Iterator[None]:
    """Room for 1,000 connections, both ends in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * IDLE_CONNECTIONS + 512
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted, "raise `ulimit -n`"
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _one_keep_alive_request(sock: socket.socket) -> None:
    body = json.dumps(connection_body()).encode()
    sock.sendall(request_head(CONNECTION, len(body)) + body)
    answer = b""
    while not answer.endswith(b'"TestConnectionResponse"}'):
        chunk = sock.recv(4096)
        assert chunk, "closed before answering"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


def _open_idle(mirror: RunningMirror) -> list[socket.socket]:
    """IDLE_CONNECTIONS connections; every tenth has served a request (sent at once,
    well within a short keep-alive timeout), the others none."""
    sockets = []
    for index in range(IDLE_CONNECTIONS):
        sockets.append(connect(mirror))
        if index % 10 == 0:
            _one_keep_alive_request(sockets[-1])
    return sockets


def test_a_thousand_idle_connections_do_not_stop_the_mirror(many_sockets: None) -> None:
    with start_mirror(port=0, settings=ServerSettings(keepalive_timeout_s=120.0)) as mirror:
        sockets = _open_idle(mirror)
        try:
            assert eventually(lambda: len(mirror_connections(mirror)) == IDLE_CONNECTIONS)
            served_meanwhile(mirror)
            _one_keep_alive_request(sockets[-1])  # an idle connection is still usable
        finally:
            for sock in sockets:
                sock.close()


def test_idle_connections_are_closed_after_the_keep_alive_timeout(
    strict: RunningMirror, many_sockets: None
) -> None:
    sockets = _open_idle(strict)
    try:
        assert all(read_until_closed(s) == b"" for s in sockets)
        assert eventually(lambda: mirror_connections(strict) == [])
        served_meanwhile(strict)
    finally:
        for sock in sockets:
            sock.close()
