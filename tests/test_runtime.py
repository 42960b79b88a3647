"""The background-thread runtime: what a notebook user relies on when starting a mirror.

Acceptance of "The mirror inside the notebook": start/stop, restart on the same
port, a clear error for a port another program holds, clean shutdown (thread,
loop, port), the registry, the request log, and synchronous calls from inside a
running event loop or from another thread (a notebook cell, a widget callback).
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import HOUR, T0
from mirror_wire import CONNECTION, connection_body

from mirror_kit import (
    MirrorClient,
    PortInUseError,
    RunningMirror,
    ServerSettings,
    SyntheticSource,
    running_mirrors,
    start_mirror,
    stop_all,
)
from mirror_kit import runtime as runtime_module
from mirror_kit.protocol import MetricNotFoundError
from mirror_kit.protocol.constants import API_KEY_HEADER
from mirror_kit.sources import ConnectionDetails

#: Bound on every wait for another thread: a deadlock fails the test instead of hanging it.
JOIN_TIMEOUT_S = 20.0


def mirror_threads() -> set[threading.Thread]:
    """The live threads the runtime names ``mirror-kit:<port>``."""
    return {t for t in threading.enumerate() if t.name.startswith("mirror-kit:")}


def listening_socket() -> socket.socket:
    """A plain listener on a free loopback port: "another program" holding a port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def can_listen_on(port: int) -> bool:
    """Whether a fresh listener can take ``port`` (SO_REUSEADDR, as every server sets it,
    so only a socket still *listening* there makes this fail, not TIME_WAIT leftovers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def run_in_thread(target: Callable[[], Any]) -> Any:
    """Run ``target`` in a new thread, bounded by JOIN_TIMEOUT_S; return or re-raise."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["value"] = target()
        except BaseException as error:  # handed back to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=body, name="test-caller", daemon=True)
    thread.start()
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), "the call did not return: deadlock"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty registry, so stop_all() here cannot stop mirrors other tests hold."""
    monkeypatch.setattr(runtime_module, "_registry", {})
    yield
    for mirror in list(runtime_module._registry.values()):
        mirror.stop()


def test_start_serves_and_stop_releases_everything() -> None:
    before = mirror_threads()
    mirror = start_mirror(port=0)
    try:
        assert mirror.running
        assert mirror.port != 0
        with MirrorClient(mirror.url, api_key=mirror.api_key) as client:
            assert client.test_connection().ok
    finally:
        mirror.stop()
    assert not mirror.running
    assert mirror_threads() <= before, "a mirror-kit thread outlived stop()"
    assert mirror._loop.is_closed()
    assert can_listen_on(mirror.port)
    assert mirror not in running_mirrors()


def test_context_manager_stops_on_exit() -> None:
    with start_mirror(port=0) as mirror:
        assert mirror.running
        with MirrorClient(mirror.url) as client:
            assert client.test_connection().ok
    assert not mirror.running
    assert mirror._loop.is_closed()
    assert can_listen_on(mirror.port)


def test_stop_twice_is_harmless() -> None:
    mirror = start_mirror(port=0)
    mirror.stop()
    mirror.stop()
    assert not mirror.running
    assert mirror._loop.is_closed()


def test_restart_on_own_port_replaces_the_old_mirror() -> None:
    first = start_mirror(port=0, api_key="first")
    second = start_mirror(port=first.port, api_key="second")
    try:
        assert not first.running
        assert first._loop.is_closed()
        assert second.running and second.port == first.port
        with MirrorClient(second.url, api_key="second") as client:
            assert client.test_connection().ok
        assert second in running_mirrors()
        assert first not in running_mirrors()
    finally:
        second.stop()


def test_port_held_by_another_program_raises_port_in_use() -> None:
    before = mirror_threads()
    with listening_socket() as holder:
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            start_mirror(port=port)
    message = str(caught.value)
    assert str(port) in message
    assert "port=0" in message
    assert mirror_threads() <= before, "a failed start left its thread running"
    assert all(m.port != port for m in running_mirrors())


def test_running_mirrors_and_stop_all(isolated_registry: None) -> None:
    first, second = start_mirror(port=0), start_mirror(port=0)
    assert set(running_mirrors()) == {first, second}
    stop_all()
    assert running_mirrors() == []
    assert not first.running and not second.running
    assert first._loop.is_closed() and second._loop.is_closed()


def test_attributes_url_api_key_source() -> None:
    source = SyntheticSource()
    with start_mirror(source, port=0, api_key="s3cret") as mirror:
        assert mirror.url == f"http://127.0.0.1:{mirror.port}"
        assert mirror.api_key == "s3cret"
        assert mirror.source is source
        assert "running" in repr(mirror)
        with MirrorClient(mirror.url, api_key="s3cret") as client:
            assert client.test_connection().ok
    assert "stopped" in repr(mirror)


def test_request_log_shows_the_requests_made(mirror: RunningMirror, client: MirrorClient) -> None:
    client.test_connection()
    client.metrics(host="a-host", metric="cpu.user", start=T0, end=T0 + HOUR)
    with pytest.raises(MetricNotFoundError, match="host=nowhere"):
        client.metrics(host="nowhere", start=T0, end=T0 + HOUR)
    entries = mirror.requests()
    assert [e.method for e in entries] == ["connection", "metric", "metric"]
    assert [e.status for e in entries] == [200, 200, 404]
    assert entries[1].points == 360
    assert "host=a-host" in entries[1].summary
    assert "host=nowhere" in entries[2].summary
    assert mirror.requests(last=1) == entries[-1:]


def test_sync_call_inside_a_running_event_loop_does_not_deadlock(mirror: RunningMirror) -> None:
    """A notebook cell runs on the kernel's running loop; a blocking call there must work."""

    async def cell() -> bool:
        asyncio.get_running_loop()  # we are inside a running loop, like a kernel cell
        with MirrorClient(mirror.url, api_key=mirror.api_key) as client:
            return client.test_connection().ok

    assert run_in_thread(lambda: asyncio.run(cell())) is True
    assert mirror.requests()[-1].method == "connection"


def test_sync_call_from_a_callback_on_another_thread(mirror: RunningMirror) -> None:
    """Widget callbacks may run on a thread that is not the one that started the mirror."""
    client = MirrorClient(mirror.url, api_key=mirror.api_key)
    results: list[int] = []

    def on_click() -> None:
        series = client.metrics(host="b-host", metric="cpu.user", start=T0, end=T0 + HOUR)
        results.append(len(series))

    try:
        run_in_thread(on_click)
    finally:
        client.close()
    assert results == [360]


# --- the settings, the connection cap and the graceful stop (as `serve` has them) -----


def test_the_settings_api_key_is_the_one_served() -> None:
    """``start_mirror(settings=...)`` used to overwrite the settings' key with
    ``api_key``'s default: the mirror sent ``api_key``."""
    with start_mirror(port=0, settings=ServerSettings(api_key="s3cret")) as mirror:
        assert mirror.api_key == "s3cret"
        answer = httpx.post(mirror.url + CONNECTION, json=connection_body())
        assert answer.headers[API_KEY_HEADER] == "s3cret"
    # an explicit api_key still replaces the settings' one
    with start_mirror(port=0, api_key="k2", settings=ServerSettings(api_key="s3cret")) as mirror:
        assert (
            httpx.post(mirror.url + CONNECTION, json=connection_body()).headers[API_KEY_HEADER]
            == "k2"
        )


def test_a_notebook_mirror_has_the_connection_cap() -> None:
    """Idle connections past ``max_connections`` are closed, so a client gets in."""
    cap, idle_count = 4, 12
    with start_mirror(port=0, settings=ServerSettings(max_connections=cap)) as mirror:
        idle = [socket.create_connection(("127.0.0.1", mirror.port)) for _ in range(idle_count)]
        try:
            with MirrorClient(mirror.url) as client:
                assert client.test_connection().ok
            closed = closed_by_peer(idle, JOIN_TIMEOUT_S, want=idle_count - cap + 1)
        finally:
            for sock in idle:
                sock.close()
    assert closed >= idle_count - cap + 1


def closed_by_peer(sockets: list[socket.socket], timeout_s: float, want: int) -> int:
    """How many of ``sockets`` the other end closed, waiting up to ``timeout_s`` for ``want``."""
    deadline = time.monotonic() + timeout_s
    closed: set[socket.socket] = set()
    while len(closed) < want and time.monotonic() < deadline:
        readable, _, _ = select.select([s for s in sockets if s not in closed], [], [], 0.1)
        for sock in readable:
            try:
                if sock.recv(1) == b"":
                    closed.add(sock)
            except ConnectionError:
                closed.add(sock)
    return len(closed)


def test_stop_answers_the_request_in_progress() -> None:
    """stop() is the graceful stop: a request being answered gets its answer."""

    class Slow(SyntheticSource):
        async def test_connection(self, connection_details: ConnectionDetails) -> None:
            started.set()
            await asyncio.sleep(0.5)

    started = threading.Event()
    mirror = start_mirror(Slow(), port=0)
    answers: list[int] = []

    def call() -> None:
        answers.append(
            httpx.post(mirror.url + CONNECTION, json=connection_body(), timeout=10).status_code
        )

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert started.wait(JOIN_TIMEOUT_S)
        mirror.stop()
    finally:
        caller.join(JOIN_TIMEOUT_S)
    assert answers == [200]
    assert can_listen_on(mirror.port)


def test_the_registry_changes_only_under_its_lock() -> None:
    """stop() used to delete its registry entry without taking the registry's lock."""
    mirror = start_mirror(port=0)
    stopper = threading.Thread(target=mirror.stop)
    with runtime_module._registry_lock:
        stopper.start()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not mirror._loop.is_closed() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mirror._loop.is_closed()
        stopper.join(0.2)  # it is waiting for the lock, the entry still in place
        assert stopper.is_alive() and runtime_module._registry.get(mirror.port) is mirror
    stopper.join(JOIN_TIMEOUT_S)
    assert mirror not in running_mirrors()
