"""Memory bounded by budget: what hostile requests inside the limits leave behind.

Unit checks first: the request log keeps short rendered summaries within its byte
budget and never a parsed request; the catalog's selection keeps nothing of the
conditions and costs what the catalog holds, whatever the condition sets. Then a
mirror *process* is sent requests that are each within the documented limits but
built to make it hold memory (1 MiB ``connectionDetails``, unique ~900 KB
``InSetValue`` sets, clients that never read a big answer), and its RSS, read with
psutil, must stay within a fixed bound of its RSS after a warm-up. Before this was
bounded, 200 such test connections took the RSS from 58 MiB to 4.9 GiB, and 256
unique sets left 2.4 GiB.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import DAY, HOUR, T0
from mirror_wire import CONNECTION, METRIC, metrics_body
from serve_process import ServeProcess

from mirror_kit import service
from mirror_kit.protocol import (
    EqualityCondition,
    InSetValue,
    MetricsQuery,
    MetricsRequest,
    StringValue,
)
from mirror_kit.server import app as app_module
from mirror_kit.server.admission import Admission, Busy
from mirror_kit.server.requestlog import SUMMARY_CHARS, RequestLog
from mirror_kit.sources import SyntheticSource

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
A_CPU = {"host": "a-host", "metric": "cpu.user"}


# --- the request log ---------------------------------------------------------------------


class _Parsed:
    """Stands for a parsed request: big, and with a ``summary`` method."""

    def __init__(self) -> None:
        self.details = "x" * MiB

    def summary(self) -> str:
        return "test connection " + self.details


def test_the_log_keeps_no_parsed_request_alive() -> None:
    log = RequestLog()
    parsed = _Parsed()
    alive = weakref.ref(parsed)
    log.record(time.perf_counter(), "connection", "/api/connection", parsed.summary(), 200)
    del parsed
    gc.collect()
    assert alive() is None, "the log holds the parsed request"
    (entry,) = log.entries()
    assert entry.summary.startswith("test connection xxx") and entry.summary.endswith("...")
    assert len(entry.summary) == SUMMARY_CHARS


def test_the_log_stays_within_its_byte_budget() -> None:
    log = RequestLog(size=10_000, max_bytes=64 * 1024)
    for index in range(5_000):
        log.record(time.perf_counter(), "POST", "/" + "p" * 10_000, f"{index} " + "s" * 500, 404)
    assert log.size_bytes <= 64 * 1024
    entries = log.entries()
    assert 50 < len(entries) < 5_000  # dropped by bytes, not by count
    assert entries[-1].summary.startswith("4999 ")  # the newest kept
    assert all(len(e.path) <= 120 and len(e.summary) <= SUMMARY_CHARS for e in entries)
    log.clear()
    assert log.size_bytes == 0 and len(log) == 0


def test_the_log_size_still_bounds_the_count() -> None:
    log = RequestLog(size=3)
    for index in range(10):
        log.record(time.perf_counter(), "metric", "/api/metric", str(index), 200)
    assert [e.summary for e in log.entries()] == ["7", "8", "9"]
    assert 0 < log.size_bytes < 3 * 400


# --- selection by the catalog's index ---------------------------------------------------


class CountingSet(frozenset):
    """A condition set that counts how it is read, and can be watched with a weakref."""

    iterated = 0
    looked_up = 0

    def __iter__(self) -> Iterator[str]:
        type(self).iterated += 1
        return super().__iter__()

    def __contains__(self, item: object) -> bool:
        type(self).looked_up += 1
        return super().__contains__(item)


def _in_set(index: int, members: int) -> tuple[EqualityCondition, ...]:
    values = CountingSet({f"{index}-member-{m:06d}" for m in range(members)} | {"a-host"})
    return (EqualityCondition("host", InSetValue(values)),)


def test_selection_keeps_nothing_of_the_conditions() -> None:
    """Before: a memo kept every condition set under 1/8 of its 1 MiB budget."""
    catalog = SyntheticSource().catalog
    for index in range(20):
        conditions = _in_set(index, 400)  # ~30 KB: the memo used to keep these
        alive = weakref.ref(conditions[0].value.value)
        assert catalog.select(conditions, "cpu.user")[0].labels["host"] == "a-host"
        del conditions
        gc.collect()
        assert alive() is None, "the catalog keeps the condition set"


def test_a_huge_in_set_costs_what_the_catalog_holds() -> None:
    """55,000 members against a catalog with a few hosts: a look-up per host text,
    the set never iterated (before: iterated to size the memo key, ~25 ms)."""
    catalog = SyntheticSource().catalog
    hosts = {s.labels["host"] for s in catalog.series}
    CountingSet.iterated = CountingSet.looked_up = 0
    chosen = catalog.select(_in_set(0, 55_000))
    expected = [s for s in catalog.series if s.labels["host"] == "a-host"]
    assert list(chosen) == expected and expected
    assert CountingSet.iterated == 0
    assert 0 < CountingSet.looked_up <= len(hosts)


def test_a_huge_in_set_is_logged_by_its_size_without_reading_it() -> None:
    """Before: the log's summary took the five least of 55,000 members (~18 ms)."""
    log = RequestLog()
    (condition,) = _in_set(0, 55_000)
    request = MetricsRequest(MetricsQuery(T0, T0 + HOUR, conditions=(condition,)), {})
    CountingSet.iterated = 0
    log.record(time.perf_counter(), "metric", METRIC, request.summary(), 200)
    assert CountingSet.iterated == 0
    assert log.entries()[0].summary == "metric raw where host in [55001 values]"
    small = EqualityCondition("host", InSetValue(frozenset(["c", "a", "b"])))
    assert small.describe() == "host in [a, b, c]"


def test_a_small_in_set_is_read_member_by_member() -> None:
    catalog = SyntheticSource().catalog
    CountingSet.iterated = CountingSet.looked_up = 0
    condition = EqualityCondition("host", InSetValue(CountingSet({"c-host", "z-host"})))
    chosen = catalog.select((condition, EqualityCondition("metric", StringValue("mem.used"))))
    assert [s.key for s in chosen] == ["c-host/mem.used"]
    assert CountingSet.iterated == 1 and CountingSet.looked_up == 0


# --- admission: heavy work off the loop, bounded --------------------------------------


async def test_small_bodies_are_parsed_on_the_loop_and_heavy_ones_in_the_worker() -> None:
    admission = Admission(heavy_bytes=1000)
    try:
        here = threading.get_ident()
        assert await admission.parse(b"x" * 1000, lambda _: threading.get_ident()) == here
        there = await admission.parse(b"x" * 1001, lambda _: threading.get_ident())
        assert there != here
    finally:
        await admission.aclose()


async def test_heavy_work_past_the_queue_is_busy_and_the_queued_are_answered() -> None:
    admission = Admission(heavy_bytes=0, max_waiting=1)
    gate = threading.Event()

    def slow(body: bytes) -> bytes:
        assert gate.wait(10)
        return body.upper()

    try:
        running = asyncio.ensure_future(admission.parse(b"a", slow))
        waiting = asyncio.ensure_future(admission.parse(b"b", slow))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy) as refused:
            await admission.parse(b"c", slow)
        assert refused.value.http_status == 503 and refused.value.retry_after_s == 1
        assert "Mirror busy" in refused.value.summary
        running.cancel()  # its client left, but the worker still holds its body:
        await asyncio.sleep(0.05)  # its place is given back only when the worker is done
        with pytest.raises(Busy):
            await admission.parse(b"d", slow)
        waiting.cancel()  # not started: dropped from the queue, its place given back
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(admission.parse(b"e", slow))
        await asyncio.sleep(0.05)
        gate.set()
        assert await queued == b"E"  # queued behind the running one, then answered
        assert await admission.parse(b"f", slow) == b"F"  # every place given back
    finally:
        gate.set()
        await admission.aclose()


async def test_heavy_answers_are_encoded_off_the_loop_byte_for_byte() -> None:
    source = SyntheticSource()
    request = MetricsRequest(MetricsQuery(T0, T0 + 7 * DAY, conditions=_where(A_CPU)), {})
    response = await service.answer(request, source, service.Limits())
    assert len(response.telemetry.values) == 50_000
    admission = Admission()
    try:
        assert await admission.encode(response) == response.to_bytes()
    finally:
        await admission.aclose()


def _where(where: dict[str, str]) -> tuple[EqualityCondition, ...]:
    return tuple(EqualityCondition(k, StringValue(v)) for k, v in where.items())


async def test_a_busy_mirror_answers_503_with_retry_after(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP: the 503 is a protocol body with the API key and Retry-After, and
    a heavy request (a 100 KB InSetValue) is answered like a small one."""
    admission = Admission(heavy_bytes=64 * 1024, max_waiting=0)
    monkeypatch.setattr(app_module, "Admission", lambda: admission)
    api = await aiohttp_client(app_module.create_app())
    members = [f"m-{m:06d}" for m in range(10_000)] + ["a-host"]
    heavy = json.dumps(metrics_body(T0, T0 + HOUR, {"host": members, "metric": "cpu.user"}))
    small = json.dumps(metrics_body(T0, T0 + HOUR, A_CPU))
    assert len(heavy) > 64 * 1024
    answered = await api.post(METRIC, data=heavy, headers={"Content-Type": "application/json"})
    expected = await api.post(METRIC, data=small, headers={"Content-Type": "application/json"})
    assert answered.status == expected.status == 200
    assert await answered.read() == await expected.read()
    gate = threading.Event()
    occupied = asyncio.ensure_future(admission.parse(b"x" * 100_000, lambda _: gate.wait(10)))
    try:
        await asyncio.sleep(0.05)
        busy = await api.post(METRIC, data=heavy, headers={"Content-Type": "application/json"})
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "1"
        assert busy.headers["X-MIRROR-API-KEY"] == "api_key"
        body = await busy.json()
        assert body["_type"] == "RemoteMirrorError" and "Mirror busy" in body["summary"]
        again = await api.post(METRIC, data=small, headers={"Content-Type": "application/json"})
        assert again.status == 200  # small requests never wait for the worker
    finally:
        gate.set()
        await occupied


# --- a mirror process under hostile requests ---------------------------------------------

#: RSS a mirror may gain over its warmed-up RSS under the hostile requests below.
RSS_BOUND = 120 * MiB


@pytest.fixture
def mirror_process() -> Iterator[ServeProcess]:
    """A mirror whose operator raised the body cap to 1 MiB, 4x the default: the
    memory bounds hold for bodies that big too."""
    served = ServeProcess("--max-body", str(MiB))
    try:
        yield served
    finally:
        served.stop()


def big_details_body(index: int) -> bytes:
    """A test connection whose connectionDetails fill most of the 1 MiB body cap."""
    return json.dumps(
        {
            "_type": "TestConnectionRequest",
            "connectionDetails": {"pad": f"{index}" + "x" * 1_000_000},
        }
    ).encode()


def unique_in_set_body(index: int) -> bytes:
    """A metric request whose InSetValue (~900 KB, unique per index) matches a-host."""
    members = [f"{index:05d}-{m:07d}" for m in range(60_000)] + ["a-host"]
    body = metrics_body(T0, T0 + HOUR, {"host": members, "metric": "cpu.user"})
    return json.dumps(body).encode()


def post_all(url: str, path: str, bodies: Iterator[bytes], busy_for_s: float = 0.0) -> None:
    """Each body answered 200; a 503 "Mirror busy" is asked again after its Retry-After,
    as a client does, for at most ``busy_for_s`` seconds per body."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for body in bodies:
            deadline = time.monotonic() + busy_for_s
            while True:
                answer = http.post(path, content=body, headers={"Content-Type": "application/json"})
                if answer.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(float(answer.headers["Retry-After"]))
            assert answer.status_code == 200, answer.text[:300]


def test_big_connection_details_leave_the_rss_bounded(mirror_process: ServeProcess) -> None:
    post_all(mirror_process.url, CONNECTION, (big_details_body(i) for i in range(10)))
    before = mirror_process.rss
    post_all(mirror_process.url, CONNECTION, (big_details_body(i) for i in range(200)))
    grown = mirror_process.rss - before
    assert grown < RSS_BOUND, f"RSS grew {grown / MiB:.0f} MiB over 200 big test connections"


def test_unique_in_set_conditions_leave_the_rss_bounded(mirror_process: ServeProcess) -> None:
    post_all(mirror_process.url, METRIC, (unique_in_set_body(i) for i in range(5)))
    before = mirror_process.rss
    post_all(mirror_process.url, METRIC, (unique_in_set_body(i) for i in range(5, 45)))
    grown = mirror_process.rss - before
    assert grown < RSS_BOUND, f"RSS grew {grown / MiB:.0f} MiB over 40 unique InSetValue sets"


def test_clients_that_never_read_leave_the_rss_bounded() -> None:
    """40 clients ask for a 30-day answer (259,200 points, ~9 MB: more than the socket
    buffers take) and never read it. The send timeout (60 s) has not passed, so only
    the budget of unsent answers bounds what they hold."""
    served = ServeProcess("--max-points", "2000000", "--max-answer-points", "300000")
    body = json.dumps(metrics_body(T0, T0 + 30 * DAY, A_CPU)).encode()
    request = (
        f"POST {METRIC} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sockets = []
    try:
        post_all(served.url, METRIC, (body for _ in range(3)))  # warm: answers work
        before = served.rss
        for _ in range(40):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", served.port))
            sock.sendall(request)
            sockets.append(sock)
        # served after all 40; while their answers are encoded (one worker, 32 places),
        # a newcomer may be told to come back after Retry-After
        post_all(served.url, METRIC, (body for _ in range(3)), busy_for_s=60)
        grown = served.rss - before
    finally:
        for sock in sockets:
            sock.close()
        log = served.stop()
    assert grown < RSS_BOUND, f"RSS grew {grown / MiB:.0f} MiB with 40 unread answers"
    assert "answer(s) aborted" in log
