"""The mirror's own telemetry: GET /metrics, GET /readyz, and counts under --workers.

Every mirror here is a real server on 127.0.0.1; the stores are tests/
misbehaving_store.py's (a Prometheus-like store that answers well, hangs, or is
not there). The registry is the process's own, shared by every mirror of the test
run, so each test compares two scrapes: what its own requests added.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from conftest import HOUR, T0, free_port
from mirror_wire import (
    CONNECTION,
    FIELD_NAMES,
    FIELD_VALUES,
    METRIC,
    connection_body,
    field_names_body,
    field_values_body,
)
from mirror_wire import metrics_body as metric_body
from misbehaving_store import MisbehavingStore, misbehaving_store
from prometheus_client.parser import text_string_to_metric_families

from mirror_kit import Limits, RunningMirror, ServerSettings, start_mirror, telemetry
from mirror_kit.protocol import MetricStoreConnectionError
from mirror_kit.server import API_KEY_HEADER
from mirror_kit.server.auth import AUTH_HEADER
from mirror_kit.server.readiness import OK, Readiness
from mirror_kit.sources import PrometheusSource, RoutingSource, SyntheticSource
from mirror_kit.sources.cache import PollCache

A_CPU = {"host": "a-host", "metric": "cpu.user"}
SECRET = "a-shared-secret-of-24-ch"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, **headers: str) -> Samples:
    """Every sample of ``url``/metrics by (name, sorted labels)."""
    answer = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return parse(answer.text)


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def added(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def requests_of(method: str, status: str) -> dict[str, str]:
    return {"method": method, "status": status}


# --- /metrics on one process ---------------------------------------------------------


def test_requests_are_counted_and_timed_by_method_and_status(mirror: RunningMirror) -> None:
    before = scrape(mirror.url)
    with httpx.Client(base_url=mirror.url, timeout=10) as http:
        for _ in range(3):
            assert http.post(METRIC, json=metric_body(T0, T0 + HOUR, A_CPU)).status_code == 200
        for _ in range(2):
            assert http.post(CONNECTION, json=connection_body()).status_code == 200
        assert http.post(METRIC, content=b"{not json").status_code == 400
        assert http.get("/no/such/path").status_code == 404
        assert http.get("/healthz").status_code == 200
    after = scrape(mirror.url)
    expected = {
        ("metric", "2xx"): 3,
        ("metric", "4xx"): 1,
        ("connection", "2xx"): 2,
        ("other", "4xx"): 1,
        ("healthz", "2xx"): 1,
        ("metrics", "2xx"): 1,  # the first scrape
    }
    for (method, status), count in expected.items():
        labels = requests_of(method, status)
        assert added(before, after, "mirror_kit_requests_total", **labels) == count, labels
        histogram = "mirror_kit_request_duration_seconds_count"
        assert added(before, after, histogram, **labels) == count, labels
        slowest = {**labels, "le": "+Inf"}
        assert (
            added(before, after, "mirror_kit_request_duration_seconds_bucket", **slowest) == count
        )
    assert (
        added(
            before, after, "mirror_kit_request_duration_seconds_sum", **requests_of("metric", "2xx")
        )
        > 0
    )
    errors = "mirror_kit_errors_total"
    assert added(before, after, errors, type="RemoteMirrorError", status="400") == 1
    assert added(before, after, errors, type="RemoteMirrorError", status="404") == 1


def test_the_metrics_answer_carries_the_api_key(mirror: RunningMirror) -> None:
    answer = httpx.get(mirror.url + "/metrics")
    assert answer.headers[API_KEY_HEADER] == mirror.api_key
    assert "# TYPE mirror_kit_requests_total counter" in answer.text
    refused = httpx.post(mirror.url + "/metrics")
    assert refused.status_code == 405 and refused.headers[API_KEY_HEADER] == mirror.api_key


def test_points_served_and_partial_answers(mirror: RunningMirror) -> None:
    before = scrape(mirror.url)
    with httpx.Client(base_url=mirror.url, timeout=10) as http:
        raw = http.post(METRIC, json=metric_body(T0, T0 + HOUR, A_CPU, limit=7)).json()
        aggregated = http.post(
            METRIC, json=metric_body(T0, T0 + HOUR, A_CPU, method="MEAN", bucket_ms=60_000)
        ).json()
        names = http.post(FIELD_NAMES, json=field_names_body(T0, T0 + HOUR, A_CPU, limit=1))
        options = http.post(FIELD_VALUES, json=field_values_body("host", T0, T0 + HOUR, limit=1))
    after = scrape(mirror.url)
    assert raw["telemetry"]["isPartial"] is True and len(raw["telemetry"]["points"]) == 7
    assert added(before, after, "mirror_kit_points_served_total", kind="raw") == 7
    buckets = len(aggregated["telemetry"]["points"])
    assert buckets == 60 and aggregated["telemetry"]["isPartial"] is False
    assert added(before, after, "mirror_kit_points_served_total", kind="aggregated") == buckets
    assert added(before, after, "mirror_kit_partial_answers_total", method="metric") == 1
    assert names.json()["isPartial"] is True
    assert added(before, after, "mirror_kit_partial_answers_total", method="field/name") == 1
    assert options.json()["isPartial"] is True
    assert added(before, after, "mirror_kit_partial_answers_total", method="field/value") == 1


def test_a_hostile_caller_cannot_grow_the_registry(mirror: RunningMirror) -> None:
    """Random paths, HTTP methods, store names and error types add counts, not series."""
    with httpx.Client(base_url=mirror.url, timeout=10) as http:

        def hostile(i: int) -> None:
            http.request(["GET", "PUT", "DELETE", "PATCH"][i % 4], f"/x{i}/{'y' * i}")
            details = {"source": f"store-{i}", "url": f"http://10.0.0.{i % 250}:9{i}"}
            http.post(METRIC, json=metric_body(T0, T0 + HOUR, A_CPU, details=details))
            http.post(METRIC, json={"_type": f"Type{i}", "query": i})

        hostile(0)
        first = set(scrape(mirror.url))
        for i in range(1, 150):
            hostile(i)
        after = scrape(mirror.url)
    assert set(after) == first
    for name, labels in after:
        shown = dict(labels)
        if "method" in shown:
            assert shown["method"] in {*telemetry.METHOD_LABELS.values(), "other"}, name
        if "store" in shown:
            assert not shown["store"].startswith("store-"), name


# --- stores, the poll cache, store errors ----------------------------------------------


@pytest.fixture(scope="module")
def store() -> Iterator[MisbehavingStore]:
    with misbehaving_store() as running:
        yield running


def stores_mirror(store: MisbehavingStore, **extra: Any) -> RunningMirror:
    """A mirror with store ``prom`` (the healthy store, behind a poll cache that keeps
    everything older than now) and ``down`` (a port nobody listens on)."""
    stores: dict[str, Any] = {
        "synthetic": SyntheticSource(),
        "prom": PollCache(PrometheusSource(store.url("ok"), timeout_s=5.0), settle_ms=0),
        "down": PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout_s=2.0),
        **extra,
    }
    limits = Limits(max_points=20_000, max_answer_points=2_000)
    return start_mirror(RoutingSource(stores), port=0, settings=ServerSettings(limits=limits))


def test_store_calls_cache_lookups_and_store_errors(store: MisbehavingStore) -> None:
    prom, down = {"source": "prom"}, {"source": "down"}
    window = metric_body(T0, T0 + HOUR, {"__name__": "m"}, details=prom)
    with stores_mirror(store) as mirror, httpx.Client(base_url=mirror.url, timeout=10) as http:
        before = scrape(mirror.url)
        asked = len(store.asked("ok"))
        for _ in range(3):  # one miss, then two answers from memory
            assert http.post(METRIC, json=window).status_code == 200
        failed = http.post(CONNECTION, json={**connection_body(), "connectionDetails": down})
        unreachable = http.post(METRIC, json=metric_body(T0, T0 + HOUR, A_CPU, details=down))
        after = scrape(mirror.url)
    store_calls = len(store.asked("ok")) - asked
    assert store_calls >= 1
    requests = "mirror_kit_store_requests_total"
    assert added(before, after, requests, store="prom", outcome="ok") == store_calls
    lookups = "mirror_kit_poll_cache_lookups_total"
    assert added(before, after, lookups, store="prom", result="miss") == 1
    assert added(before, after, lookups, store="prom", result="hit") == 2
    assert failed.json()["status"] == "FAILURE" and unreachable.status_code == 502
    assert added(before, after, requests, store="down", outcome="unreachable") == 2
    store_errors = "mirror_kit_store_errors_total"
    assert added(before, after, store_errors, store="down", error="unreachable") == 2
    errors = "mirror_kit_errors_total"
    assert added(before, after, errors, type="MetricStoreConnectionError", status="502") == 1


def test_a_store_that_hangs_counts_as_a_timeout(store: MisbehavingStore) -> None:
    hang = PrometheusSource(store.url("hang"), timeout_s=0.5)
    body = metric_body(T0, T0 + HOUR, {"__name__": "m"}, details={"source": "hang"})
    with stores_mirror(store, hang=hang) as mirror:
        before = scrape(mirror.url)
        assert httpx.post(mirror.url + METRIC, json=body, timeout=10).status_code == 502
        after = scrape(mirror.url)
    assert (
        added(before, after, "mirror_kit_store_requests_total", store="hang", outcome="timeout")
        == 1
    )


# --- /readyz -----------------------------------------------------------------------------


def test_readyz_is_200_when_every_store_answers(store: MisbehavingStore) -> None:
    with stores_mirror(store) as mirror:
        ready = httpx.get(mirror.url + "/readyz?x=1", timeout=10)
        down_only = httpx.get(mirror.url + "/readyz", timeout=10)
    assert ready.status_code == 503  # "down" is configured and does not answer
    assert ready.headers[API_KEY_HEADER] == mirror.api_key
    assert ready.json() == {
        "status": "not ready",
        "stores": {"synthetic": OK, "prom": OK, "down": "unreachable"},
    }
    assert down_only.json() == ready.json()
    assert "127.0.0.1" not in ready.text  # a status per name: no address, no error text
    sources = {"synthetic": SyntheticSource(), "prom": PrometheusSource(store.url("ok"))}
    with start_mirror(RoutingSource(sources), port=0) as healthy:
        answer = httpx.get(healthy.url + "/readyz", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "stores": {"synthetic": OK, "prom": OK}}


def test_readyz_of_a_hanging_store_answers_within_its_timeout(store: MisbehavingStore) -> None:
    with stores_mirror(store, hang=PrometheusSource(store.url("hang"), timeout_s=30)) as mirror:
        started = time.monotonic()
        answer = httpx.get(mirror.url + "/readyz", timeout=10)
        took = time.monotonic() - started
    assert answer.status_code == 503 and answer.json()["stores"]["hang"] == "timeout"
    assert took < 5  # the check's 1 s bound, not the store's 30 s timeout


def test_a_hammered_readyz_does_not_hammer_the_stores(store: MisbehavingStore) -> None:
    with stores_mirror(store) as mirror:
        asked = len(store.asked("ok"))

        async def hammer() -> list[int]:
            async with httpx.AsyncClient(base_url=mirror.url, timeout=10) as http:
                answers = await asyncio.gather(*(http.get("/readyz") for _ in range(60)))
            return [a.status_code for a in answers]

        statuses = asyncio.run(hammer())
    assert statuses == [503] * 60
    assert len(store.asked("ok")) - asked == 1  # one check, shared and then kept


async def test_readiness_checks_again_once_its_verdict_is_old() -> None:
    calls: list[str] = []
    now = [0.0]

    async def check() -> None:
        calls.append("checked")
        await asyncio.sleep(0.01)

    readiness = Readiness({"a": check}, max_age_s=5.0, clock=lambda: now[0])
    verdicts = await asyncio.gather(*(readiness.verdict() for _ in range(10)))
    assert all(v.ready for v in verdicts) and calls == ["checked"]
    now[0] = 4.9
    await readiness.verdict()
    assert len(calls) == 1
    now[0] = 5.0
    await readiness.verdict()
    assert len(calls) == 2


async def test_readiness_logs_why_once_and_answers_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]

    async def down() -> None:
        raise MetricStoreConnectionError("Cannot reach Prometheus at http://10.1.2.3:9090")

    async def broken() -> None:
        raise RuntimeError("a bug")

    readiness = Readiness({"prod": down, "odd": broken}, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="mirror_kit.server"):
        first = await readiness.verdict()
        now[0] = 10.0
        second = await readiness.verdict()
    assert first == second and not first.ready
    assert first.to_json() == {
        "status": "not ready",
        "stores": {"prod": "unreachable", "odd": "failing"},
    }
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and any("10.1.2.3" in line for line in lines)  # once per store


async def test_a_check_in_progress_stops_with_the_mirror() -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    readiness = Readiness({"slow": slow}, timeout_s=60)
    waiter = asyncio.ensure_future(readiness.verdict())
    await started.wait()
    await readiness.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter


# --- auth ------------------------------------------------------------------------------


def test_readyz_is_open_and_metrics_takes_the_secret() -> None:
    with start_mirror(port=0, settings=ServerSettings(auth_secret=SECRET)) as mirror:
        base = mirror.url
        for path in ("/readyz", f"/{SECRET}/readyz"):
            assert httpx.get(base + path).status_code == 200, path
        refused = httpx.get(base + "/metrics")
        assert refused.status_code == 403 and refused.json()["_type"] == "RemoteMirrorError"
        assert httpx.get(base + f"/{SECRET}/metrics").status_code == 200
        samples = scrape(base, **{AUTH_HEADER: SECRET})
    # the refusal was counted, and no label shows the secret
    assert value(samples, "mirror_kit_requests_total", **requests_of("metrics", "4xx")) >= 1
    assert value(samples, "mirror_kit_errors_total", type="RemoteMirrorError", status="403") >= 1
    assert not any(SECRET in v for _, labels in samples for _, v in labels)


# --- several processes -------------------------------------------------------------------


def test_two_workers_count_every_request_whichever_answers() -> None:
    """N requests spread over both workers: /metrics counts N from either worker."""
    from test_workers import _client_of, gunicorn, two_workers

    with (
        gunicorn(two_workers(port := free_port()), workers=2, port=port) as served,
        contextlib.ExitStack() as stack,
    ):
        clients = [_client_of(pid, served, stack) for pid in served.workers]
        before = [parse(c.get("/metrics").text) for c in clients]
        sent = {0: 5, 1: 8}
        for index, count in sent.items():
            for _ in range(count):
                answer = clients[index].post(METRIC, json=metric_body(T0, T0 + HOUR, A_CPU))
                assert answer.status_code == 200
        metric_requests = requests_of("metric", "2xx")
        # a request is counted once its answer is sent (the latency is arrival to
        # answer), so the last one may be counted just after its client has read it
        deadline = time.monotonic() + 10
        while True:
            after = [parse(c.get("/metrics").text) for c in clients]
            counts = [value(a, "mirror_kit_requests_total", **metric_requests) for a in after]
            if min(counts) >= sum(sent.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    for one_worker, later in zip(before, after, strict=True):
        assert value(one_worker, "mirror_kit_requests_total", **metric_requests) == 0
        assert value(later, "mirror_kit_requests_total", **metric_requests) == sum(sent.values())
        assert value(later, "mirror_kit_points_served_total", kind="raw") == 13 * 360
    # both scrapes of "after" saw the first scrape of each worker
    assert value(after[0], "mirror_kit_requests_total", **requests_of("metrics", "2xx")) >= 2


MULTIPROCESS_SCRIPT = """
import json, os, sys
from types import SimpleNamespace
from mirror_kit import telemetry
with telemetry.across_processes() as directory:
    assert os.environ[telemetry.MULTIPROC_ENV] == directory
    telemetry.IN_FLIGHT.labels("metric").inc()
    telemetry.REQUESTS.labels("metric", "2xx").inc()
    files = sorted(os.listdir(directory))
    telemetry.process_exited(None, SimpleNamespace(pid=os.getpid()))
    left = sorted(os.listdir(directory))
print(json.dumps([files, left, os.path.exists(directory), telemetry.MULTIPROC_ENV in os.environ]))
"""


def test_a_dead_workers_live_gauges_go_and_the_directory_is_removed() -> None:
    out = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT], capture_output=True, text=True, check=True
    )
    files, left, directory_left, variable_left = json.loads(out.stdout)
    assert any(f.startswith("gauge_livesum_") for f in files)
    assert any(f.startswith("counter_") for f in files)
    assert not any(f.startswith("gauge_livesum_") for f in left)
    assert any(f.startswith("counter_") for f in left)  # counts stay: totals never go back
    assert directory_left is False and variable_left is False


def test_a_worker_that_exits_leaves_the_others_counts_and_directory() -> None:
    """A worker stopped on its own (SIGTERM: gunicorn boots another) must not take the
    shared metrics directory with it. It did: gunicorn ends a worker with
    ``sys.exit`` inside ``run()``'s ``with across_processes()``, whose clean-up then
    removed the directory under the live workers (a FileNotFoundError traceback on
    their next new label, and every count gone)."""
    from test_workers import _wait_for_workers, gunicorn, two_workers

    with gunicorn(two_workers(port := free_port()), workers=2, port=port) as served:
        url = served.url
        for _ in range(6):
            assert (
                httpx.post(url + METRIC, json=metric_body(T0, T0 + HOUR, A_CPU)).status_code == 200
            )
        metric_requests = requests_of("metric", "2xx")
        deadline = time.monotonic() + 10
        while value(scrape(url), "mirror_kit_requests_total", **metric_requests) < 6:
            assert time.monotonic() < deadline, "the six requests were never counted"
            time.sleep(0.05)
        stopped = psutil.Process(served.workers[0])
        stopped.terminate()
        stopped.wait(30)  # psutil.TimeoutExpired if the worker does not exit
        _wait_for_workers(served.process, served.log, 2, served.port)
        # a label set no worker has used yet: each worker makes its files for it now
        for _ in range(4):
            assert (
                httpx.post(url + FIELD_NAMES, json=field_names_body(T0, T0 + HOUR, {})).status_code
                == 200
            )
        after = scrape(url)
        log = served.log.read_text(errors="replace")
    assert value(after, "mirror_kit_requests_total", **metric_requests) >= 6
    assert value(after, "mirror_kit_requests_total", **requests_of("field/name", "2xx")) >= 3
    assert "Traceback" not in log, log
