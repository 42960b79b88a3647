"""PrometheusSource against a real Prometheus holding known, backfilled data."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_fixture import (
    APPS,
    BASE_MS,
    HOUR_MS,
    ODD_PATH,
    REQUEST_RATE,
    SAMPLES,
    STEP_MS,
    PrometheusServer,
    free_port,
    known,
    serve_known_data,
)

from mirror_kit import MirrorClient, start_mirror
from mirror_kit.client import build_conditions
from mirror_kit.protocol import (
    Aggregation,
    AggregationMethod,
    CompleteValue,
    FieldDescriptor,
    FieldNamesQuery,
    FieldValuePattern,
    FieldValuesQuery,
    MetricNotFoundError,
    MetricsQuery,
    MetricsRequest,
    MetricStoreConnectionError,
    RemoteMirrorError,
    TestConnectionRequest,
)
from mirror_kit.service import Limits, answer
from mirror_kit.sources import PointWindow, SyntheticSource
from mirror_kit.sources.prometheus import PrometheusConfig, PrometheusSource
from mirror_kit.sources.routing import RoutingSource
from mirror_kit.sources.stores import StoreConfig

END_MS = BASE_MS + SAMPLES * STEP_MS
TEMPERATURE = {"__name__": "node_temperature_celsius"}


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """One Prometheus with the known data for the whole session (started once)."""
    yield from serve_known_data()


@pytest.fixture
async def source(prometheus: PrometheusServer) -> AsyncIterator[PrometheusSource]:
    built = PrometheusSource.from_declaration({"url": prometheus.url, "step": "10s"})
    yield built
    await built.aclose()


def metrics_query(
    conditions: Mapping[str, Any], start: int = BASE_MS, end: int = END_MS
) -> MetricsQuery:
    return MetricsQuery(start, end, build_conditions(conditions, {}))


async def fetch(
    source: PrometheusSource,
    conditions: Mapping[str, Any],
    start: int = BASE_MS,
    end: int = END_MS,
    max_points: int = 1_000_000,
    newest_first: bool = False,
    details: Mapping[str, Any] | None = None,
) -> Any:
    window = PointWindow(start, end, max_points, newest_first)
    return await source.points(metrics_query(conditions, start, end), window, details or {})


def field_values_query(field: str, conditions: Mapping[str, Any], prefix: str | None = None):
    return FieldValuesQuery(
        FieldDescriptor(field), BASE_MS, END_MS, build_conditions(conditions, {}), prefix
    )


def values_of(options: list[Any]) -> list[Any]:
    return [(type(o).__name__, o.value) for o in options]


# --- Test Connection ---------------------------------------------------------------


async def test_connection_succeeds(source: PrometheusSource) -> None:
    await source.test_connection({})


async def test_connection_to_nothing_is_a_store_connection_error() -> None:
    down = PrometheusSource.from_declaration({"url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(MetricStoreConnectionError, match="Cannot reach Prometheus"):
        await down.test_connection({})
    response = await answer(TestConnectionRequest({}), down, Limits())
    assert response.to_json()["status"] == "FAILURE"
    assert response.to_json()["error"]["_type"] == "MetricStoreConnectionError"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield int(listener.getsockname()[1])


async def test_a_store_that_does_not_answer_times_out(silent_port: int) -> None:
    slow = PrometheusSource.from_declaration(
        {"url": f"http://127.0.0.1:{silent_port}", "timeout": 0.3}
    )
    with pytest.raises(MetricStoreConnectionError, match=r"did not answer .* within 0.3 s"):
        await slow.test_connection({})
    await slow.aclose()


async def test_credentials_never_appear_in_reprs_or_errors() -> None:
    secret, token = "pa55-w0rd-xyz", "tok-abcdef-123"
    down = PrometheusSource.from_declaration(
        {
            "url": f"http://admin:{secret}@127.0.0.1:{free_port()}",
            "bearerToken": token,
            "headers": {"X-Scope-OrgID": "tenant-secret-1"},
        }
    )
    shown = repr(down) + repr(RoutingSource({"synthetic": SyntheticSource(), "p": down}))
    with pytest.raises(MetricStoreConnectionError) as caught:
        await down.field_names(FieldNamesQuery(BASE_MS, END_MS), {})
    for text in (shown, str(caught.value), str(caught.value.to_json())):
        for hidden in (secret, token, "tenant-secret-1"):
            assert hidden not in text
    assert down.config.username == "admin" and down.config.password == secret
    assert "admin" in shown and "127.0.0.1" in shown


async def test_a_form_for_a_store_not_configured_fails_test_connection() -> None:
    router = RoutingSource({"synthetic": SyntheticSource()})
    response = await answer(TestConnectionRequest({"source": "prometheus"}), router, Limits())
    body = response.to_json()
    assert body["status"] == "FAILURE" and body["error"]["_type"] == "RemoteMirrorError"
    assert "Unknown store 'prometheus'" in body["error"]["summary"]
    assert "'synthetic' (synthetic)" in body["error"]["details"]


def test_invalid_connection_details_name_the_key() -> None:
    with pytest.raises(RemoteMirrorError, match='"url" is required'):
        PrometheusConfig.from_declaration({})
    with pytest.raises(RemoteMirrorError, match='"step"'):
        PrometheusConfig.from_declaration({"url": "http://127.0.0.1:9090", "step": "ten"})
    with pytest.raises(RemoteMirrorError, match='"nanInterpretation"'):
        PrometheusConfig.from_declaration(
            {"url": "http://127.0.0.1:9090", "nanInterpretation": "X"}
        )
    compat = PrometheusConfig.from_declaration(
        {"host": "127.0.0.1", "port": 9999, "requestTimeout": 2500, "step": "1m30s"}
    )
    assert (compat.url, compat.timeout_s, compat.step_ms) == ("http://127.0.0.1:9999", 2.5, 90_000)


# --- Field names ---------------------------------------------------------------------


async def test_field_names_are_the_special_fields_then_label_names(
    source: PrometheusSource,
) -> None:
    names = [f.field_name for f in await source.field_names(FieldNamesQuery(BASE_MS, END_MS), {})]
    assert names == [
        "__counter__",
        "__gauge__",
        "~",
        "__name__",
        "app",
        "cores",
        "host",
        "job",
        "path",
        "production",
        "region",
    ]


async def test_conditions_narrow_field_names(source: PrometheusSource) -> None:
    query = FieldNamesQuery(BASE_MS, END_MS, build_conditions({"host": "c-host"}, {}))
    names = [f.field_name for f in await source.field_names(query, {})]
    assert names[3:] == ["__name__", "cores", "host", "production", "region"]
    counter = FieldNamesQuery(
        BASE_MS, END_MS, build_conditions({"__counter__": "http_requests_total"}, {})
    )
    assert [f.field_name for f in await source.field_names(counter, {})][3:] == [
        "__name__",
        "host",
        "job",
    ]


async def test_field_names_for_nothing_are_an_empty_list(source: PrometheusSource) -> None:
    """As field values of nothing are (and as the aws-prometheus-mirror answers)."""
    query = FieldNamesQuery(BASE_MS, END_MS, build_conditions({"host": "no-such-host"}, {}))
    assert await source.field_names(query, {}) == []


async def test_an_expression_is_complete(source: PrometheusSource) -> None:
    query = FieldNamesQuery(BASE_MS, END_MS, build_conditions({"~": "up"}, {}))
    assert [f.field_name for f in await source.field_names(query, {})] == ["~"]
    assert await source.field_values(field_values_query("~", {}), {}) == []


# --- Field values --------------------------------------------------------------------


async def test_field_values_are_label_values_narrowed_by_other_conditions(
    source: PrometheusSource,
) -> None:
    hosts = await source.field_values(field_values_query("host", {}), {})
    assert values_of(hosts) == [("CompleteValue", h) for h in ("a-host", "b-host", "c-host")]
    counted = field_values_query("host", {"__gauge__": "http_requests_total", "host": "a-host"})
    assert [o.value for o in await source.field_values(counted, {})] == ["a-host", "b-host"]
    prefixed = field_values_query("host", {}, prefix="b")
    assert [o.value for o in await source.field_values(prefixed, {})] == ["b-host"]


async def test_metric_fields_list_metric_names(source: PrometheusSource) -> None:
    for field in ("__counter__", "__gauge__", "__name__"):
        options = await source.field_values(field_values_query(field, {"job": "web"}), {})
        assert [o.value for o in options] == ["http_requests_total"]
    prefixed = field_values_query("__gauge__", {}, prefix="node_")
    assert [o.value for o in await source.field_values(prefixed, {})] == [
        "node_temperature_celsius"
    ]


async def test_hierarchical_values_are_optional(prometheus: PrometheusServer) -> None:
    flat = PrometheusSource.from_declaration({"url": prometheus.url})
    tree = PrometheusSource.from_declaration({"url": prometheus.url, "hierarchicalValues": True})
    query = field_values_query("app", {})
    assert [o.value for o in await flat.field_values(query, {})] == sorted(APPS)
    assert values_of(await tree.field_values(query, {})) == [
        ("CompleteValue", "search"),
        ("FieldValuePattern", "shop.*"),
    ]
    deeper = await tree.field_values(field_values_query("app", {}, prefix="shop.*"), {})
    assert deeper == [CompleteValue("shop.cart"), CompleteValue("shop.checkout")]
    assert FieldValuePattern("shop.*") not in deeper


# --- Raw points ----------------------------------------------------------------------


async def test_raw_points_are_the_known_samples(source: PrometheusSource) -> None:
    expected = known("node_temperature_celsius", host="a-host")
    points = await fetch(source, {**TEMPERATURE, "host": "a-host"})
    assert not points.truncated
    np.testing.assert_array_equal(points.timestamps, expected.timestamps)
    np.testing.assert_array_equal(points.values, expected.values)


async def test_window_bounds_are_start_inclusive_end_exclusive(source: PrometheusSource) -> None:
    start, end = BASE_MS + 95_000, BASE_MS + 300_000  # 100 s .. 290 s on the 10 s grid
    points = await fetch(source, {**TEMPERATURE, "host": "b-host"}, start, end)
    assert points.timestamps[0] == BASE_MS + 100_000 and points.timestamps[-1] == end - STEP_MS
    assert len(points) == 20


@pytest.mark.parametrize(
    ("conditions", "host"),
    [
        ({"host": "b-host"}, "b-host"),  # StringValue
        ({"cores": 2}, "c-host"),  # DoubleValue: matched on its text form "2"
        ({"production": False}, "c-host"),  # BooleanValue: "false"
        ({"host": ["c-host", "x.y+z"]}, "c-host"),  # InSetValue: a regex of escaped values
        ({"region": "us-east", "__gauge__": "node_temperature_celsius"}, "c-host"),
    ],
)
async def test_each_condition_type_selects_its_series(
    source: PrometheusSource, conditions: dict[str, Any], host: str
) -> None:
    wanted = {**TEMPERATURE, **conditions}
    if "__gauge__" in wanted:
        del wanted["__name__"]
    points = await fetch(source, wanted)
    np.testing.assert_array_equal(
        points.values, known("node_temperature_celsius", host=host).values
    )


@pytest.mark.parametrize("path", [ODD_PATH, [ODD_PATH, "other"]])
async def test_awkward_label_values_are_quoted_and_escaped(
    source: PrometheusSource, path: str | list[str]
) -> None:
    points = await fetch(source, {"path": path})
    np.testing.assert_array_equal(points.values, np.arange(SAMPLES))
    options = await source.field_values(field_values_query("path", {"host": "a-host"}), {})
    assert [o.value for o in options] == [ODD_PATH]


async def test_set_values_are_literal_not_regular_expressions(source: PrometheusSource) -> None:
    # Unescaped, "shop.car." would be a regex matching "shop.cart".
    with pytest.raises(MetricNotFoundError):
        await fetch(source, {"__name__": "app_latency_seconds", "app": ["shop.car."]})
    points = await fetch(source, {"__name__": "app_latency_seconds", "app": ["shop.cart"]})
    np.testing.assert_array_equal(points.values, APPS["shop.cart"])


async def test_several_series_name_the_labels_that_differ(source: PrometheusSource) -> None:
    with pytest.raises(RemoteMirrorError, match="3 series") as caught:
        await fetch(source, {**TEMPERATURE, "region": ["eu-west", "us-east"]})
    details = caught.value.details
    assert "host (a-host, b-host, c-host)" in details and "region" in details
    assert "job" not in details


@pytest.mark.parametrize("metric_field", ["double", "rawValue", "host", "up"])
async def test_metric_field_selects_nothing(source: PrometheusSource, metric_field: str) -> None:
    """A sample has one value: metricField is accepted and adds no __name__ matcher."""
    wanted = {**TEMPERATURE, "host": "b-host"}
    query = MetricsQuery(BASE_MS, END_MS, build_conditions(wanted, {}), metric_field)
    points = await source.points(query, PointWindow(BASE_MS, END_MS, 10_000), {})
    np.testing.assert_array_equal(points.values, (await fetch(source, wanted)).values)


async def test_counter_function_increase_is_the_rate_times_the_window(
    prometheus: PrometheusServer,
) -> None:
    """counterFunction "increase" (the aws-prometheus-mirror's choice) vs the default rate."""
    details = {"url": prometheus.url, "step": "10s", "rateWindow": "40s"}
    rate = PrometheusSource.from_declaration(details)
    increase = PrometheusSource.from_declaration({**details, "counterFunction": "increase"})
    counter = {"__counter__": "http_requests_total", "host": "b-host"}
    start = BASE_MS + 4 * STEP_MS
    per_second = await fetch(rate, counter, start=start)
    over_window = await fetch(increase, counter, start=start)
    np.testing.assert_allclose(over_window.values, per_second.values * 40, rtol=1e-9)
    # a request's connection details may choose it too (a form written for the peer)
    asked = await fetch(rate, counter, start=start, details={"counterFunction": "increase"})
    np.testing.assert_array_equal(asked.values, over_window.values)
    await rate.aclose()
    await increase.aclose()
    with pytest.raises(RemoteMirrorError, match='"counterFunction"'):
        PrometheusConfig.from_declaration({**details, "counterFunction": "irate"})


def test_nan_is_zero_by_default_as_in_stackstate() -> None:
    """The guide's example and the aws-prometheus-mirror default to ZERO."""
    assert PrometheusConfig("http://127.0.0.1:9090").nan_interpretation.value == "ZERO"


async def test_a_counter_is_served_as_its_rate(source: PrometheusSource) -> None:
    for host, rate in REQUEST_RATE.items():
        counter = {"__counter__": "http_requests_total", "host": host}
        points = await fetch(source, counter)
        assert len(points) == SAMPLES - 1  # rate needs two samples in its window
        # Where the default window (4 steps = 40 s) is full of samples, the rate is exact.
        full = await fetch(source, counter, start=BASE_MS + 4 * STEP_MS)
        assert len(full) == SAMPLES - 4
        np.testing.assert_allclose(full.values, rate, rtol=1e-9)
        assert points.values[0] < rate  # the first window holds two samples only


async def test_an_expression_is_run_as_is(source: PrometheusSource) -> None:
    expr = 'node_temperature_celsius{host="a-host"} * 2 + 1'
    points = await fetch(source, {"~": expr})
    expected = known("node_temperature_celsius", host="a-host").values * 2 + 1
    np.testing.assert_array_equal(points.values, expected)
    with pytest.raises(RemoteMirrorError, match="takes no other conditions"):
        await fetch(source, {"~": expr, "host": "a-host"})


async def test_a_bad_expression_carries_the_prometheus_message(source: PrometheusSource) -> None:
    with pytest.raises(RemoteMirrorError, match="rejected the query") as caught:
        await fetch(source, {"~": "rate((up"})
    assert "bad_data" in caught.value.details and "parse error" in caught.value.details
    assert caught.value.http_status == 400


async def test_unknown_metric_is_not_found_but_an_empty_window_is_empty(
    source: PrometheusSource,
) -> None:
    with pytest.raises(MetricNotFoundError, match="no_such_metric"):
        await fetch(source, {"__name__": "no_such_metric"})
    before = await fetch(source, {**TEMPERATURE, "host": "a-host"}, BASE_MS - HOUR_MS, BASE_MS)
    assert len(before) == 0 and not before.truncated


async def test_max_points_keeps_the_requested_end(source: PrometheusSource) -> None:
    every = known("node_temperature_celsius", host="a-host")
    oldest = await fetch(source, {**TEMPERATURE, "host": "a-host"}, max_points=100)
    newest = await fetch(
        source, {**TEMPERATURE, "host": "a-host"}, max_points=100, newest_first=True
    )
    assert oldest.truncated and newest.truncated
    np.testing.assert_array_equal(oldest.timestamps, every.timestamps[:100])
    np.testing.assert_array_equal(newest.values, every.values[-100:])


async def test_windows_past_prometheus_points_limit_are_paged(prometheus: PrometheusServer) -> None:
    # At a 0.5 s step two hours are 14,400 points: more than the 11,000 Prometheus
    # gives per query. Each sample then stands for the 20 steps that follow it.
    fine = PrometheusSource.from_declaration({"url": prometheus.url, "step": "500ms"})
    points = await fetch(fine, {**TEMPERATURE, "host": "c-host"})
    await fine.aclose()
    expected = known("node_temperature_celsius", host="c-host")
    assert len(points) == 14_400
    np.testing.assert_array_equal(np.diff(points.timestamps), 500)
    np.testing.assert_array_equal(points.values, np.repeat(expected.values, 20))


@pytest.mark.parametrize(("nan", "count"), [("DROP", SAMPLES * 3 // 4), ("ZERO", SAMPLES)])
async def test_nan_interpretation(prometheus: PrometheusServer, nan: str, count: int) -> None:
    details = {"source": "prometheus", "url": prometheus.url, "step": 10, "nanInterpretation": nan}
    routed = routed_to(prometheus.url)
    with (
        start_mirror(routed, port=0) as mirror,
        MirrorClient(mirror.url, mirror.api_key, connection_details=details) as client,
    ):
        series = client.metrics(start=BASE_MS, end=END_MS, conditions={"__name__": "queue_ratio"})
    expected = known("queue_ratio").values
    assert len(series) == count
    wanted = expected[~np.isnan(expected)] if nan == "DROP" else np.nan_to_num(expected)
    np.testing.assert_array_equal(series.values, wanted)


# --- Through a real mirror, routed by the connection details -------------------------


def routed_to(url: str) -> RoutingSource:
    """A router with the synthetic store and one Prometheus store, "prometheus"."""
    return RoutingSource({"synthetic": SyntheticSource(), "prometheus": PrometheusSource(url)})


@pytest.fixture
def routed_client(prometheus: PrometheusServer) -> Iterator[MirrorClient]:
    routed = routed_to(prometheus.url)
    details = {"source": "prometheus", "url": prometheus.url, "step": "10s"}
    with (
        start_mirror(routed, port=0) as mirror,
        MirrorClient(mirror.url, mirror.api_key, connection_details=details) as client,
    ):
        yield client


def hourly(values: np.ndarray, reduce: Any) -> list[float]:
    per_hour = 3_600_000 // STEP_MS
    return [float(reduce(values[i : i + per_hour])) for i in range(0, len(values), per_hour)]


@pytest.mark.parametrize(
    ("method", "reduce"),
    [
        ("MAX", np.max),
        ("MIN", np.min),
        ("MEAN", np.mean),
        ("SUM", np.sum),
        ("EVENT_COUNT", len),
        ("PERCENTILE_99", lambda v: np.percentile(v, 99)),
        ("PERCENTILE_50", np.median),
    ],
)
def test_aggregated_queries_through_the_mirror(
    routed_client: MirrorClient, method: str, reduce: Any
) -> None:
    series = routed_client.metrics(
        start=BASE_MS,
        end=END_MS,
        method=method,
        bucket_ms=HOUR_MS,
        conditions={**TEMPERATURE, "host": "b-host"},
    )
    expected = known("node_temperature_celsius", host="b-host").values
    assert list(series.timestamps) == [BASE_MS, BASE_MS + HOUR_MS]
    assert list(series.bucket_ends) == [BASE_MS + HOUR_MS, BASE_MS + 2 * HOUR_MS]
    np.testing.assert_allclose(series.values, hourly(expected, reduce), rtol=1e-12)


def test_the_mirror_routes_by_connection_details(
    routed_client: MirrorClient, prometheus: PrometheusServer
) -> None:
    assert routed_client.test_connection().to_json()["status"] == "OK"
    names = [f.field_name for f in routed_client.field_names(start=BASE_MS, end=END_MS).fields]
    assert names[:4] == ["__counter__", "__gauge__", "~", "__name__"]
    raw = routed_client.metrics(
        start=BASE_MS, end=END_MS, conditions={**TEMPERATURE, "host": "a-host"}, limit=50
    )
    assert raw.is_partial and len(raw) == 50
    with MirrorClient(routed_client.url, routed_client.api_key) as plain:
        synthetic = [f.field_name for f in plain.field_names().fields]
    assert synthetic[:2] == ["host", "metric"]  # no "source": the default source


def test_a_store_down_behind_the_mirror() -> None:
    down = {"source": "prometheus"}
    with (
        start_mirror(routed_to(f"http://127.0.0.1:{free_port()}"), port=0) as mirror,
        MirrorClient(mirror.url, mirror.api_key, connection_details=down) as client,
    ):
        body = client.test_connection().to_json()
        assert body["status"] == "FAILURE"
        assert body["error"]["_type"] == "MetricStoreConnectionError"
        with pytest.raises(MetricStoreConnectionError, match="Cannot reach Prometheus"):
            client.metrics(start=BASE_MS, end=END_MS, conditions=TEMPERATURE)


def check_prometheus_mode(routed_client: MirrorClient, prometheus: PrometheusServer, **options):
    from mirror_kit.conformance import run_checks

    details = {"source": "prometheus", "url": prometheus.url, "step": "10s"}
    return run_checks(
        routed_client.url,
        api_key=routed_client.api_key,
        connection_details=details,
        start=BASE_MS,
        end=END_MS,
        **options,
    )


def test_the_conformance_checker_passes_in_prometheus_mode(
    routed_client: MirrorClient, prometheus: PrometheusServer
) -> None:
    """The checker passes against the mirror in Prometheus mode, given the stream."""
    report = check_prometheus_mode(
        routed_client, prometheus, conditions={**TEMPERATURE, "host": "a-host"}
    )
    failing = [
        (r.check, r.status.value, r.reason) for r in report.results if r.status.value != "PASS"
    ]
    assert failing == []


def test_the_checker_discovers_a_stream_on_prometheus_by_itself(
    routed_client: MirrorClient, prometheus: PrometheusServer
) -> None:
    """__counter__, __gauge__ and __name__ are alternatives: discovery picks one, never
    ANDs two (which the mirror refuses as conflicting), and narrows on until one series."""
    from mirror_kit.conformance import Status

    report = check_prometheus_mode(routed_client, prometheus, profile="strict")
    assert report.result("discovery").status is Status.PASS, report.result("discovery").reason
    named = [c for c in ("__counter__", "__gauge__", "__name__") if f"{c}=" in report.conditions]
    assert len(named) == 1, report.conditions
    assert report.with_status(Status.FAIL) == [], str(report)


# --- PromQL, pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.0, 'cores=~"2|2\\\\.0"'),  # a store may hold "2" or "2.0"
        (2.5, 'cores="2.5"'),
        (-1.0, 'cores=~"\\\\-1|\\\\-1\\\\.0"'),
    ],
)
def test_a_whole_double_matches_both_text_forms(value: float, expected: str) -> None:
    from mirror_kit.protocol import DoubleValue, EqualityCondition
    from mirror_kit.sources.prometheus import promql

    assert promql.matcher("cores", EqualityCondition("cores", DoubleValue(value))) == expected


def test_plans_take_no_metric_name_from_metric_field_and_apply_the_counter_function() -> None:
    from mirror_kit.sources.prometheus import promql

    gauge = promql.plan(build_conditions({"__gauge__": "up", "job": "x"}, {}), 60_000)
    assert gauge.expression == '{__name__="up",job="x"}'
    counter = build_conditions({"__counter__": "c_total"}, {})
    assert promql.plan(counter, 60_000).expression == 'rate({__name__="c_total"}[60000ms])'
    increase = promql.plan(counter, 60_000, "increase").expression
    assert increase == 'increase({__name__="c_total"}[60000ms])'


def query_range_calls(prometheus: PrometheusServer) -> float:
    """How many query_range requests Prometheus has answered: its own /metrics."""
    text = httpx.get(f"{prometheus.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{")
        and 'handler="/api/v1/query_range"' in line
    )


def test_the_poll_cache_answers_sliding_polls_as_prometheus_does_with_fewer_queries(
    prometheus: PrometheusServer,
) -> None:
    """Ten one-minute polls of an hour, as StackState polls a live stream, twice over
    (a second stream on the same series): the same answers with and without the cache,
    and the cached mirror asks Prometheus once per method and new minute at most."""
    declared = {"url": prometheus.url, "step": "10s"}
    answers: dict[int, list[Any]] = {}
    calls: dict[int, float] = {}
    for budget in (0, 1 << 20):
        config = StoreConfig.from_mapping(
            {"default": "p", "stores": {"p": {"kind": "prometheus", **declared,
                                              "pollCacheBytes": budget}}}
        )  # fmt: skip
        before = query_range_calls(prometheus)
        with start_mirror(config.build(), port=0) as mirror, MirrorClient(mirror.url) as client:
            got = []
            for stream in range(2):
                for poll in range(10):
                    end = BASE_MS + HOUR_MS + poll * 60_000 + stream * 7_000
                    for method in ("MEAN", "MAX", "EVENT_COUNT"):
                        series = client.metrics(
                            **TEMPERATURE, host="a-host", method=method, bucket_ms=60_000,
                            start=end - HOUR_MS, end=end,
                        )  # fmt: skip
                        got.append((series.timestamps.tolist(), series.values.tolist()))
        calls[budget] = query_range_calls(prometheus) - before
        answers[budget] = got
    assert answers[1 << 20] == answers[0]
    assert calls[0] == 2 * 10 * 3
    # Prometheus aggregates each method itself: per method one fetch of the first
    # window, then one of the new minute per poll (data three days old is settled);
    # the second stream, 7 s later, is answered from memory alone
    assert calls[1 << 20] <= 10 * 3, calls


# --- Aggregation in the store --------------------------------------------------------

METHODS = [m.value for m in AggregationMethod]


def spy_queries(source: PrometheusSource) -> list[str]:
    """The PromQL of every query_range the source sends from now on."""
    sent: list[str] = []
    get = source.api.get

    async def recording(path: str, params: Any = (), options: Any = None) -> Any:
        if path == "/api/v1/query_range":
            sent.append(dict(params)["query"])
        return await get(path, params, options)

    source.api.get = recording  # type: ignore[method-assign]
    return sent


async def windows_of(
    source: Any,
    conditions: Mapping[str, Any],
    method: str,
    size: int,
    start: int = BASE_MS,
    end: int = END_MS,
    details: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
) -> Any:
    """The aggregated telemetry the service answers from ``source``."""
    aggregation = Aggregation(AggregationMethod(method), size)
    query = MetricsQuery(start, end, build_conditions(conditions, {}), aggregation=aggregation)
    response = await answer(MetricsRequest(query, dict(details or {})), source, limits or Limits())
    return response.telemetry


def numpy_windows(
    series: Any, method: str, size: int, start: int, end: int
) -> tuple[list[int], list[float]]:
    """Independent maths: the method over the samples of each whole window of the range
    (``[s, s + size)``), empty windows 0 for SUM and EVENT_COUNT and absent otherwise."""
    stamps, values = series.timestamps, np.nan_to_num(series.values)
    first = -(-start // size) * size
    starts, out = [], []
    for s in range(first, end - size + 1, size):
        inside = values[(stamps >= s) & (stamps < s + size)]
        m = AggregationMethod(method)
        if len(inside) == 0:
            if m.zero_filled:
                starts.append(s)
                out.append(0.0)
            continue
        if m.percentile is not None:
            value = float(np.percentile(inside, m.percentile))
        elif m.value.startswith("EVENT_COUNT"):
            value = float(len(inside))
        elif m.value.startswith("SUM"):
            value = float(np.sum(inside))
        else:
            value = float({"MEAN": np.mean, "MAX": np.max, "MIN": np.min}[m.value](inside))
        starts.append(s)
        out.append(value)
    return starts, out


@pytest.fixture
async def local(prometheus: PrometheusServer) -> AsyncIterator[PrometheusSource]:
    """The same store, aggregating locally from raw points, as before #16."""
    built = PrometheusSource.from_declaration(
        {"url": prometheus.url, "step": "10s", "aggregateInStore": False}
    )
    yield built
    await built.aclose()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "size",
    [
        60_000,  # six samples a window, one exactly on each boundary
        25_000,  # 2 or 3 samples: windows cut the 10 s grid unevenly
        7 * 60_000,
        HOUR_MS,
    ],
)
async def test_aggregation_in_the_store_is_numpy_on_the_samples(
    source: PrometheusSource, local: PrometheusSource, method: str, size: int
) -> None:
    """Prometheus computes each window over exactly [s, s + size): checked against
    numpy on the backfilled samples and against the local aggregation of raw points."""
    b_host = {**TEMPERATURE, "host": "b-host"}
    start, end = BASE_MS - 35_000, END_MS  # cut windows at the start, empty ones before data
    sent = spy_queries(source)
    pushed = await windows_of(source, b_host, method, size, start, end)
    assert len(sent) == 1 and "_over_time(" in sent[0], sent  # computed by Prometheus
    starts, values = numpy_windows(known("node_temperature_celsius", host="b-host"),
                                   method, size, start, end)  # fmt: skip
    assert pushed.starts.tolist() == starts
    np.testing.assert_allclose(pushed.values, values, rtol=1e-12, atol=1e-12)
    before = await windows_of(local, b_host, method, size, start, end)
    assert before.starts.tolist() == starts and not before.is_partial and not pushed.is_partial
    np.testing.assert_allclose(pushed.values, before.values, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["EVENT_COUNT", "MAX", "MIN"])
async def test_samples_on_the_first_and_last_millisecond_belong_to_their_window(
    source: PrometheusSource, method: str
) -> None:
    """edge_gauge has samples at s and s + 59,999 ms of every minute s: each window holds
    exactly those two (a range 1 ms longer would take the previous window's last)."""
    series = known("edge_gauge")
    got = await windows_of(source, {"__name__": "edge_gauge"}, method, 60_000)
    starts, values = numpy_windows(series, method, 60_000, BASE_MS, END_MS)
    assert got.starts.tolist() == starts and len(starts) == 120
    np.testing.assert_array_equal(got.values, values)
    if method == "EVENT_COUNT":
        assert set(values) == {2.0}


@pytest.mark.parametrize("method", ["EVENT_COUNT", "SUM", "MEAN", "MAX"])
async def test_windows_past_the_data_are_empty_or_zero(
    source: PrometheusSource, method: str
) -> None:
    """Past the last sample Prometheus has no data: SUM and EVENT_COUNT windows are 0,
    the other methods give none (the raw grid would repeat the last sample for 5 min)."""
    start, end = END_MS - 10 * 60_000, END_MS + 10 * 60_000
    series = known("node_temperature_celsius", host="a-host")
    got = await windows_of(source, {**TEMPERATURE, "host": "a-host"}, method, 60_000, start, end)
    starts, values = numpy_windows(series, method, 60_000, start, end)
    assert got.starts.tolist() == starts and len(starts) == (
        20 if method in ("SUM", "EVENT_COUNT") else 10
    )
    np.testing.assert_allclose(got.values, values, rtol=1e-12)


@pytest.mark.parametrize("metric", ["queue_ratio", "dip_gauge"])
@pytest.mark.parametrize("nan", ["ZERO", "DROP"])
@pytest.mark.parametrize("method", ["MEAN", "MAX", "MIN", "EVENT_COUNT", "PERCENTILE_50"])
async def test_nan_samples_keep_the_kits_nan_rule(
    source: PrometheusSource, local: PrometheusSource, metric: str, nan: str, method: str
) -> None:
    """queue_ratio (positive) has a NaN every fourth sample, dip_gauge (negative) every
    fifth: the store's aggregate would count, skip or propagate them; the answer is the
    local one, with NaN as 0 or dropped."""
    details = {"nanInterpretation": nan}
    conditions = {"__name__": metric}
    sent = spy_queries(source)
    pushed = await windows_of(source, conditions, method, 60_000, details=details)
    before = await windows_of(local, conditions, method, 60_000, details=details)
    assert any("_over_time(" in q for q in sent) and len(before.starts) == 120
    assert pushed.starts.tolist() == before.starts.tolist()
    np.testing.assert_allclose(pushed.values, before.values, rtol=1e-12)
    if method == "MAX" and nan == "ZERO" and metric == "dip_gauge":
        assert set(before.values.tolist()) == {0.0}  # NaN as 0 is every window's max
    if method == "EVENT_COUNT" and metric == "queue_ratio":
        assert set(before.values.tolist()) == ({6.0} if nan == "ZERO" else {4.0, 5.0})


async def test_counters_and_expressions_are_aggregated_locally(
    source: PrometheusSource, local: PrometheusSource
) -> None:
    """A counter's rate and a ~ expression are grid values: not pushed down."""
    sent = spy_queries(source)
    for conditions in (
        {"__counter__": "http_requests_total", "host": "a-host"},
        {"~": 'node_temperature_celsius{host="a-host"} * 2'},
    ):
        pushed = await windows_of(source, conditions, "MEAN", 60_000)
        before = await windows_of(local, conditions, "MEAN", 60_000)
        np.testing.assert_array_equal(pushed.values, before.values)
        assert len(pushed.values) == 120
    assert not any("_over_time(" in q for q in sent), sent


async def test_several_series_and_unknown_metrics_keep_their_errors(
    source: PrometheusSource,
) -> None:
    with pytest.raises(RemoteMirrorError, match="3 series"):
        await windows_of(source, TEMPERATURE, "MAX", HOUR_MS)
    with pytest.raises(MetricNotFoundError, match="no_such_metric"):
        await windows_of(source, {"__name__": "no_such_metric"}, "MAX", HOUR_MS)
    before = await windows_of(
        source, {**TEMPERATURE, "host": "a-host"}, "MAX", HOUR_MS, BASE_MS - 5 * HOUR_MS, BASE_MS
    )
    assert len(before.starts) == 0 and not before.is_partial


async def test_the_answer_cap_cuts_windows_asked_of_the_store(source: PrometheusSource) -> None:
    """At most cap + 1 windows are asked (one more: is the answer cut?)."""
    sent = spy_queries(source)
    got = await windows_of(
        source,
        {**TEMPERATURE, "host": "a-host"},
        "SUM",
        60_000,
        limits=Limits(max_answer_points=50),
    )
    assert len(got.starts) == 50 and got.is_partial
    assert got.starts[0] == BASE_MS and got.starts[-1] == BASE_MS + 49 * 60_000
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("version", "range_ms"),
    [("2.42.0+ds", 59_999), ("v2.53.1", 59_999), ("3.1.0", 60_000), ("0.32.0", None), (7, None)],
)
def test_the_range_follows_the_stores_version(version: Any, range_ms: int | None) -> None:
    """Prometheus 2 closes [t - d, t] at both ends, 3 opens it on the left; another
    product (Thanos 0.x, say) is not asked to aggregate."""
    from mirror_kit.sources.prometheus import pushdown

    ends = pushdown.range_ends({"version": version})
    assert (None if ends is None else ends.range_ms(60_000)) == range_ms
    if ends is not None:
        expression = pushdown.over_time('{__name__="x"}', AggregationMethod.MIN, 60_000, ends, True)
        assert f"[{range_ms}ms]" in expression and "+ 0 * sum_over_time(" in expression


async def test_a_store_without_buildinfo_aggregates_locally(
    source: PrometheusSource, local: PrometheusSource
) -> None:
    sent = spy_queries(source)
    source._ends = None  # what a 404 from /api/v1/status/buildinfo leaves
    got = await windows_of(source, {**TEMPERATURE, "host": "c-host"}, "MEAN", HOUR_MS)
    before = await windows_of(local, {**TEMPERATURE, "host": "c-host"}, "MEAN", HOUR_MS)
    np.testing.assert_array_equal(got.values, before.values)
    assert not any("_over_time(" in q for q in sent)


@pytest.mark.parametrize(
    ("url", "declared", "gzip"),
    [
        ("http://127.0.0.1:9090", None, True),  # gzip unless declared otherwise
        ("http://127.0.0.1:9090", False, False),  # the operator decides
        ("https://prometheus.example.com", True, True),
    ],
)
async def test_answers_are_compressed_unless_declared_otherwise(
    url: str, declared: bool | None, gzip: bool
) -> None:
    declaration: dict[str, Any] = {"url": url}
    if declared is not None:
        declaration["compress"] = declared
    store = PrometheusSource.from_declaration(declaration)
    assert store.config.compress is gzip
    asked = store.api._http().headers["Accept-Encoding"]
    assert asked == ("gzip, deflate" if gzip else "identity")
    await store.aclose()
    with pytest.raises(RemoteMirrorError, match='"compress"'):
        PrometheusConfig.from_declaration({"url": url, "compress": "no"})
    with pytest.raises(RemoteMirrorError, match='"compress"'):
        PrometheusConfig("http://127.0.0.1:9090").options({"compress": False})
