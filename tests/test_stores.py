"""Stores are the operator's: declared at start, selected by details, every answer checked.

The Prometheus-like stores here misbehave on purpose (tests/misbehaving_store.py):
garbage, bombs, hangs, huge answers, headers echoed back. Each answer the mirror
gives must be a protocol body with ``X-MIRROR-API-KEY`` (400 for what the caller
did, 502/504 for what the store did), without an ERROR log line, and without the
store's text beyond one short, redacted line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from conftest import HOUR, T0, free_port
from misbehaving_store import BEHAVIOURS, MisbehavingStore, huge_matrix, misbehaving_store

from mirror_kit import RunningMirror, start_mirror
from mirror_kit.client import build_conditions
from mirror_kit.protocol import (
    FieldDescriptor,
    FieldNamesQuery,
    FieldNamesRequest,
    FieldValuesQuery,
    FieldValuesRequest,
    MetricsQuery,
    MetricsRequest,
    TestConnectionRequest,
)
from mirror_kit.server import workers
from mirror_kit.sources import CsvStore, PrometheusSource, StoreConfig, SyntheticSource
from mirror_kit.sources.prometheus import PrometheusConfig
from mirror_kit.sources.routing import RoutingSource

API_KEY_HEADER = "X-MIRROR-API-KEY"
PASSWORD, TOKEN, TENANT = "pa55-w0rd-xyz", "tok-abcdef-123", "tenant-secret-1"


@pytest.fixture(scope="module")
def store() -> Iterator[MisbehavingStore]:
    huge_matrix()  # built once here (seconds on a busy machine), not inside a request
    with misbehaving_store() as running:
        yield running


def every_mode(store: MisbehavingStore) -> dict[str, Any]:
    """One Prometheus store per behaviour, named after it (1 s timeout)."""
    stores: dict[str, Any] = {"synthetic": SyntheticSource()}
    for mode in BEHAVIOURS:
        # within the mirror's own 12 s request timeout, as Prometheus' 10 s default is
        timeout = 1.0 if mode in ("hang", "trickle") else 10.0
        stores[mode] = PrometheusSource(store.url(mode), timeout_s=timeout, step_ms=60_000)
    stores["echo-basic"] = PrometheusSource(
        store.url("echo") + "/basic",
        username="admin",
        password=PASSWORD,
        headers=(("X-Scope-OrgID", TENANT),),
    )
    stores["echo-bearer"] = PrometheusSource(store.url("echo") + "/bearer", bearer_token=TOKEN)
    stores["tenant"] = PrometheusSource(
        PrometheusConfig(store.url("ok") + "/tenant", allow_headers=frozenset({"X-Tenant"}))
    )
    return stores


@pytest.fixture(scope="module")
def mirror(store: MisbehavingStore) -> Iterator[RunningMirror]:
    with start_mirror(RoutingSource(every_mode(store)), port=0) as running:
        yield running


@pytest.fixture
def http(mirror: RunningMirror) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mirror.url, timeout=30.0) as client:
        yield client


def metrics(details: dict[str, Any], conditions: dict[str, Any] | None = None) -> Any:
    query = MetricsQuery(T0, T0 + HOUR, build_conditions(conditions or {"__name__": "m"}, {}))
    return MetricsRequest(query, details)


def field_names(details: dict[str, Any]) -> Any:
    return FieldNamesRequest(FieldNamesQuery(T0, T0 + HOUR), details)


def field_values(details: dict[str, Any], field: str = "__name__") -> Any:
    return FieldValuesRequest(FieldValuesQuery(FieldDescriptor(field), T0, T0 + HOUR), details)


def post(http: httpx.Client, request: Any) -> httpx.Response:
    answer = http.post(request.path, content=json.dumps(request.to_json()))
    assert answer.headers[API_KEY_HEADER] == "api_key"
    return answer


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert body["_type"] in ("RemoteMirrorError", "MetricStoreConnectionError"), body
    return body


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged == [], [r.getMessage() for r in logged]


# --- 1. the caller never chooses where the mirror connects ------------------------


@pytest.mark.parametrize(
    "details",
    [
        {"source": "prometheus", "url": "{ok}/any/path?"},
        {"url": "{ok}/any/path?"},
        {"url": "{ok}", "headers": {"X-Evil": "1"}},
        {"host": "127.0.0.1", "port": "{port}"},
        {"source": "prometheus", "url": "{ok}", "step": "10s"},
    ],
)
def test_the_default_mirror_reaches_no_store(
    store: MisbehavingStore, details: dict[str, Any], no_errors_logged: None
) -> None:
    filled = json.loads(
        json.dumps(details).replace("{ok}", store.url("ok")).replace('"{port}"', str(store.port))
    )
    before = len(store.requests)
    with (
        start_mirror(StoreConfig().build(), port=0) as mirror,
        httpx.Client(base_url=mirror.url) as http,
    ):
        for request in (field_names(filled), metrics(filled), field_values(filled)):
            answer = post(http, request)
            assert answer.status_code == 400
            assert "'synthetic' (synthetic)" in error_of(answer)["details"]
        tested = post(http, TestConnectionRequest(filled)).json()
    assert tested["status"] == "FAILURE"  # never a false OK for another mirror's form
    assert tested["error"]["_type"] == "RemoteMirrorError"
    assert len(store.requests) == before  # nothing was contacted


def test_a_configured_store_is_reached_by_name_or_url(
    store: MisbehavingStore, http: httpx.Client
) -> None:
    for details in ({"source": "ok"}, {"url": store.url("ok")}, {"url": store.url("ok") + "/"}):
        answer = post(http, field_values(details))
        assert answer.status_code == 200, answer.text
        assert [v["value"] for v in answer.json()["values"]] == ["m"]
        assert post(http, TestConnectionRequest(details)).json()["status"] == "OK"


def test_headers_only_where_the_operator_allowed_them(
    store: MisbehavingStore, http: httpx.Client
) -> None:
    refused = post(http, field_names({"source": "ok", "headers": {"X-Tenant": "a"}}))
    assert refused.status_code == 400 and "operator allows none" in error_of(refused)["details"]
    wrong = post(http, field_names({"source": "tenant", "headers": {"Host": "elsewhere"}}))
    assert wrong.status_code == 400 and "x-tenant" in error_of(wrong)["details"]
    for key in ("basicAuth", "bearerToken", "verifyTls", "maxAnswerBytes"):
        answer = post(http, field_names({"source": "ok", key: {"username": "x"}}))
        assert answer.status_code == 400 and key in error_of(answer)["details"]
    allowed = post(http, field_names({"source": "tenant", "headers": {"X-Tenant": "team-a"}}))
    assert allowed.status_code == 200
    assert store.asked("ok")[-1][2].get("X-Tenant") == "team-a"


def test_details_the_store_does_not_read_do_not_change_the_answer(http: httpx.Client) -> None:
    answers = {post(http, field_values({"source": "ok", "nonce": i})).content for i in range(5)}
    assert len(answers) == 1


def test_deeply_nested_connection_details_are_a_400(http: httpx.Client) -> None:
    for depth in (990, 5_000):
        body = field_names({}).to_json()
        text = json.dumps(body).replace(
            '"connectionDetails": {}',
            '"connectionDetails": {"x": ' + "[" * depth + "]" * depth + "}",
        )
        answer = http.post("/api/field/name", content=text)
        assert answer.status_code == 400, answer.text
        assert answer.headers[API_KEY_HEADER] == "api_key"
        assert answer.json()["_type"] == "RemoteMirrorError"


# --- 4. every store failure a 502 protocol body -----------------------------------

GARBAGE = [
    "string-timestamps",
    "unpaired",
    "ragged",
    "value-not-number",
    "huge-timestamp",
    "metric-not-object",
    "result-int",
    "result-dict",
    "deep",
    "not-json",
    "error-200",
    "brotli",
    "bad-gzip",
    "bomb",
    "huge-matrix",
]


@pytest.mark.parametrize("mode", GARBAGE)
def test_store_garbage_is_a_502_protocol_body(
    http: httpx.Client, mode: str, no_errors_logged: None
) -> None:
    answer = post(http, metrics({"source": mode}))
    assert answer.status_code == 502, answer.text
    error_of(answer)
    assert "secret internal page" not in answer.text  # no store text beyond a status line
    assert len(answer.content) < 1_000


@pytest.mark.parametrize(("mode", "request_of"), [
    ("labels-not-strings", field_names),
    ("many-labels", field_values),
    ("deep", field_values),
])  # fmt: skip
def test_field_answers_are_checked_and_capped(
    http: httpx.Client, mode: str, request_of: Any, no_errors_logged: None
) -> None:
    answer = post(http, request_of({"source": mode}))
    assert answer.status_code == 502, answer.text
    if mode == "many-labels":
        assert "maxFieldValues (100,000)" in error_of(answer)["details"]


def test_a_gzip_bomb_is_cut_at_the_byte_cap(http: httpx.Client) -> None:
    answer = post(http, metrics({"source": "bomb"}))
    assert answer.status_code == 502
    assert "more than 8,388,608 bytes" in error_of(answer)["details"]
    fine = post(http, field_values({"source": "ok-gzip"}))  # gzip itself is fine
    assert fine.status_code == 200 and fine.json()["values"][0]["value"] == "m"


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_store_that_stalls_is_a_502_within_its_timeout(http: httpx.Client, mode: str) -> None:
    began = time.monotonic()
    answer = post(http, metrics({"source": mode}))
    assert answer.status_code == 502
    assert error_of(answer)["_type"] == "MetricStoreConnectionError"
    assert "within 1 s" in answer.json()["details"]
    assert time.monotonic() - began < 20  # not the 30 s request timeout, nor for ever


def test_several_series_and_valid_answers(http: httpx.Client) -> None:
    several = post(http, metrics({"source": "several-series"}))
    assert several.status_code == 400 and "3 series" in several.json()["summary"]
    ok = post(http, metrics({"source": "ok"}))
    assert ok.status_code == 200
    assert {point[0] for point in ok.json()["telemetry"]["points"]} == {1.5}


# --- 5. redaction in every form ---------------------------------------------------


def test_an_upstream_echo_shows_no_credential_in_any_form(http: httpx.Client) -> None:
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    for name in ("echo-basic", "echo-bearer"):
        answer = post(http, metrics({"source": name}))
        assert answer.status_code == 502
        for hidden in (PASSWORD, basic, TOKEN, TENANT, "query=", "step="):
            assert hidden not in answer.text
        assert "***" in answer.text  # the echoed line is shown, redacted
        assert len(error_of(answer)["details"]) < 300


def test_redaction_forms() -> None:
    config = PrometheusConfig(f"http://admin:{PASSWORD}@127.0.0.1:9/p?key=abc")
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    text = (
        f"Authorization: Basic {basic} Bearer xyz.123 token=qq "
        f"http://u:v@h:1/x?api_key=zzz {PASSWORD}"
    )
    shown = config.redact(text)
    for hidden in (basic, "xyz.123", "qq", "u:v", "zzz", PASSWORD):
        assert hidden not in shown
    assert "key=abc" not in repr(config) and PASSWORD not in repr(config)


# --- configuration: flags, environment and a file make one StoreConfig -------------


def test_a_toml_or_json_file_declares_the_stores(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("timestamp,host,v\n2026-01-01T00:00:00Z,h,1\n")
    toml = tmp_path / "stores.toml"
    toml.write_text(
        'default = "prod"\n[stores.prod]\nkind = "prometheus"\nurl = "http://127.0.0.1:9"\n'
        f'step = "10s"\nallowHeaders = ["X-Scope-OrgID"]\n[stores.data]\nkind = "csv"\n'
        f"file = {json.dumps(str(csv))}\n"
    )
    as_json = tmp_path / "stores.json"
    as_json.write_text(json.dumps({
        "default": "prod",
        "stores": {
            "prod": {"kind": "prometheus", "url": "http://127.0.0.1:9", "step": "10s",
                     "allowHeaders": ["X-Scope-OrgID"]},
            "data": {"kind": "csv", "file": str(csv)},
        },
    }))  # fmt: skip
    for path in (toml, as_json):
        config = StoreConfig.from_file(path)
        routed = config.build()
        assert routed.names == ["prod", "data", "synthetic"]
        assert routed.select({}) is routed.stores["prod"]
        assert routed.select({"url": "http://127.0.0.1:9/"}) is routed.stores["prod"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"stores": {"x": {"kind": "mysql"}}}, '"kind" must be one of'),
        ({"stores": {"x": {"kind": "prometheus"}}}, '"url" is required'),
        ({"stores": {"x": {"kind": "prometheus", "url": "http://h:99999"}}}, "outside 1-65535"),
        ({"stores": {"x": {"kind": "csv", "file": "/nonexistent.csv"}}}, "is not a file"),
        ({"stores": {"synthetic": {"kind": "synthetic"}}}, "built-in"),
        ({"default": "nope"}, "default store 'nope'"),
        ({"store": {}}, "unknown key 'store'"),
    ],
)
def test_a_wrong_declaration_stops_the_start(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        StoreConfig.from_mapping(data).build()


def test_flags_and_environment_are_one_declaration(tmp_path: Path) -> None:
    environ = {"MIRROR_KIT_PROMETHEUS_URL": "http://127.0.0.1:9", "MIRROR_KIT_SOURCE": "prometheus"}
    from_env = StoreConfig.from_env(environ)
    assert from_env == StoreConfig.from_settings(
        {"prometheus_url": "http://127.0.0.1:9", "source": "prometheus"}
    )
    routed = from_env.build()
    assert routed.default_name == "prometheus" and routed.names == ["prometheus", "synthetic"]
    assert set(workers.STORE_ENVIRONMENT) == {
        "MIRROR_KIT_STORES", "MIRROR_KIT_SOURCE", "MIRROR_KIT_PROMETHEUS_URL",
        "MIRROR_KIT_CSV", "MIRROR_KIT_CSV_DIR",
    }  # fmt: skip


async def test_gunicorns_app_factory_reads_the_store_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIRROR_KIT_PROMETHEUS_URL", "http://127.0.0.1:9")
    app = (await workers.app_factory()).app  # the factory returns a MirrorRunner
    from mirror_kit.server.app import SOURCE

    assert app[SOURCE].names == ["synthetic", "prometheus"]  # type: ignore[attr-defined]
    await app[SOURCE].aclose()  # type: ignore[attr-defined]


def test_one_http_client_per_store_is_reused(
    store: MisbehavingStore, mirror: RunningMirror
) -> None:
    with httpx.Client(base_url=mirror.url) as http:
        for i in range(5):
            assert post(http, field_values({"source": "ok", "nonce": i})).status_code == 200
    routed = mirror.source
    source = routed.stores["ok"]._source  # type: ignore[attr-defined]
    client = source.api._client
    with httpx.Client(base_url=mirror.url) as http:
        post(http, field_values({"url": store.url("ok")}))
    assert source.api._client is client and not client.is_closed


# --- CSV stores: parsed off the loop, once per file version, never showing a path ----

CSV_HEADER = "timestamp,host,cpu\n"


def write_csv(path: Path, value: float, rows: int = 3) -> None:
    lines = [f"{(T0 // 1000) + 60 * i},a-host,{value}" for i in range(rows)]
    path.write_text(CSV_HEADER + "\n".join(lines) + "\n")


class CountingCsvStore(CsvStore):
    """Records each parse and the thread it ran on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: list[str] = []

    def _read(self, *args: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        return super()._read(*args)


def csv_values(http: httpx.Client, details: dict[str, Any]) -> httpx.Response:
    return post(http, metrics(details, {"host": "a-host", "metric": "cpu"}))


def test_a_csv_file_is_parsed_once_off_the_loop_and_reloaded_when_it_changes(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data.csv"
    write_csv(data, 1.0)
    csv_store = CountingCsvStore(directory=tmp_path)
    routed = RoutingSource({"synthetic": SyntheticSource(), "csv": csv_store})
    details = {"source": "csv", "file": "data.csv"}
    with start_mirror(routed, port=0) as mirror, httpx.Client(base_url=mirror.url) as http:
        for nonce in range(5):  # details the store does not read select the same parse
            answer = csv_values(http, {**details, "nonce": nonce})
            assert [p[0] for p in answer.json()["telemetry"]["points"]] == [1.0] * 3
        assert len(csv_store.threads) == 1 and csv_store.threads[0].startswith("mirror-kit-csv")
        write_csv(data, 2.0)  # same size, new modification time
        os.utime(data, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
        assert [p[0] for p in csv_values(http, details).json()["telemetry"]["points"]] == [2.0] * 3
        write_csv(data, 3.5, rows=4)  # a new size
        assert len(csv_values(http, details).json()["telemetry"]["points"]) == 4
        assert len(csv_store.threads) == 3 and len(csv_store.cached) == 1
        data.unlink()
        gone = csv_values(http, details)
        tested = post(http, TestConnectionRequest(details)).json()
    assert gone.status_code == 502 and error_of(gone)["_type"] == "MetricStoreConnectionError"
    assert "'data.csv' of store 'csv' is gone" in gone.json()["details"]
    assert tested["status"] == "FAILURE"
    assert str(tmp_path) not in gone.text


async def test_concurrent_requests_share_one_parse(tmp_path: Path) -> None:
    write_csv(tmp_path / "x.csv", 1.0, rows=2_000)
    csv_store = CountingCsvStore(directory=tmp_path)
    sources = await asyncio.gather(*(csv_store.source({"file": "x.csv"}) for _ in range(20)))
    assert len({id(s) for s in sources}) == 1 and len(csv_store.threads) == 1
    await csv_store.aclose()


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (CSV_HEADER + "1,a-host," + "9" * 140_000 + "\n", 502, "field larger than field limit"),
        (CSV_HEADER + "1,a-host\n", 502, "line 2: 2 cells, the header has 3"),
        (b"timestamp,host,cpu\n1,\xff\xfe,1\n", 502, "not UTF-8"),
        (CSV_HEADER + "not-a-time,a-host,1\n", 502, "is not ISO 8601"),
    ],
)
def test_a_broken_csv_is_a_clear_502_without_paths(
    tmp_path: Path, content: str | bytes, status: int, words: str, no_errors_logged: None
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content.encode() if isinstance(content, str) else content)
    routed = RoutingSource({"synthetic": SyntheticSource(), "csv": CsvStore(directory=tmp_path)})
    with start_mirror(routed, port=0) as mirror, httpx.Client(base_url=mirror.url) as http:
        answer = post(http, field_names({"source": "csv", "file": "bad.csv"}))
    assert answer.status_code == status, answer.text
    assert words in answer.text and str(tmp_path) not in answer.text
    assert "/tmp" not in answer.text


def test_caller_options_and_caps(tmp_path: Path) -> None:
    write_csv(tmp_path / "ok.csv", 1.0)
    (tmp_path / "big.csv").write_text(CSV_HEADER + "1,a-host,1\n" * 2_000)
    csv_store = CsvStore(directory=tmp_path, max_file_bytes=10_000, cache_size=1)
    routed = RoutingSource({"synthetic": SyntheticSource(), "csv": csv_store})
    with start_mirror(routed, port=0) as mirror, httpx.Client(base_url=mirror.url) as http:
        wrong = post(http, field_names({"source": "csv", "file": "ok.csv", "timeColumn": "nope"}))
        typed = post(http, field_names({"source": "csv", "file": "ok.csv", "labelColumns": 3}))
        big = post(http, field_names({"source": "csv", "file": "big.csv"}))
        missing = post(http, field_names({"source": "csv", "file": "none.csv"}))
        nameless = post(http, field_names({"source": "csv"}))
        fine = post(http, field_names({"source": "csv", "file": "ok.csv"}))
        kept = (len(csv_store.cached), len(csv_store._parsed))
    assert wrong.status_code == 400 and "no time column 'nope'" in wrong.text
    assert typed.status_code == 400 and '"labelColumns" must be' in typed.json()["details"]
    assert big.status_code == 502 and "maxFileBytes" in big.text
    assert missing.status_code == 400 and "not a file of store 'csv'" in missing.text
    assert nameless.status_code == 400 and '"file" must name' in nameless.json()["details"]
    assert fine.status_code == 200
    assert kept == (1, 1)  # cache_size=1: the failed parse was dropped for the good one


def test_csv_parses_are_bounded_in_bytes(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv", "c.csv"):
        write_csv(tmp_path / name, 1.0, rows=100)
    size = (tmp_path / "a.csv").stat().st_size
    csv_store = CsvStore(directory=tmp_path, cache_bytes=2 * size)

    loop = asyncio.new_event_loop()
    try:
        for name in ("a.csv", "b.csv", "c.csv"):
            loop.run_until_complete(csv_store.source({"file": name}))
        assert [s.name for s in csv_store.cached] == ["b.csv", "c.csv"]
    finally:
        loop.run_until_complete(csv_store.aclose())
        loop.close()


# --- memory: a mirror process under hostile store answers inside every limit -------

HOSTILE = {  # store -> the request that meets its hostility
    "big-but-in-limit": field_values,
    "bomb": metrics,
    "huge-matrix": metrics,
    "deep": metrics,
    "many-labels": field_values,
    "ragged": metrics,
}


def _serve_process(config: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mirror_kit", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--stores", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the mirror did not start")


def test_rss_of_a_mirror_process_stays_bounded(store: MisbehavingStore, tmp_path: Path) -> None:
    declared = {name: {"kind": "prometheus", "url": store.url(name), "timeout": 30}
                for name in HOSTILE}  # fmt: skip
    config = tmp_path / "stores.json"
    config.write_text(json.dumps({"stores": declared}))
    port = free_port()
    process = _serve_process(config, port)
    memory = psutil.Process(process.pid)

    def one_round(http: httpx.Client) -> list[int]:
        jobs = [(name, request_of) for name, request_of in HOSTILE.items()] * 2
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda job: post(http, job[1]({"source": job[0]})).status_code,
                                 jobs))  # fmt: skip

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            started = memory.memory_info().rss
            statuses = one_round(http)
            warm = memory.memory_info().rss
            for _ in range(4):
                one_round(http)
            end = memory.memory_info().rss
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    mib = 1 << 20
    print(f"\nmirror RSS: {started / mib:.0f} MiB at start, {warm / mib:.0f} MiB after one "
          f"round of 12 hostile answers, {end / mib:.0f} MiB after five")  # fmt: skip
    assert sorted(set(statuses)) == [200, 502]
    assert end - warm < 64 * mib  # no growth across rounds: nothing kept
    assert end - started < 256 * mib  # the 1 GiB bomb and the 60 MB matrix were not held
    assert b"Traceback" not in errors


async def test_parses_queued_by_varying_column_choices_are_bounded(tmp_path: Path) -> None:
    write_csv(tmp_path / "x.csv", 1.0, rows=20_000)
    csv_store = CsvStore(directory=tmp_path)
    choices = [{"file": "x.csv", "valueColumns": ["cpu"], "labelColumns": ["host"] * n}
               for n in range(1, 9)]  # fmt: skip
    answers = await asyncio.gather(
        *(csv_store.source(details) for details in choices), return_exceptions=True
    )
    busy = [a for a in answers if isinstance(a, Exception) and "busy" in str(a)]
    assert len(busy) == len(choices) - 2 and all(a.http_status == 502 for a in busy)
    assert len(csv_store._parsing) == 0  # finished jobs are forgotten
    await csv_store.aclose()
