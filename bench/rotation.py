"""A mixed workload of the four Mirror API methods, driven by wrk (soak and workers).

The rotation is what StackState's stream wizard and charts send, round robin, one
method after the other: Test Connection, Field Names under a host, Field Values
with a prefix, and Get Metric Values, raw or aggregated with each of the twelve
methods. Every request must answer 200; wrk counts anything else as an error.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import loadgen

from mirror_kit.protocol import (
    Aggregation,
    AggregationMethod,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldNamesRequest,
    FieldValuesQuery,
    FieldValuesRequest,
    MetricsQuery,
    MetricsRequest,
    StringValue,
    TestConnectionRequest,
)

LUA_SCRIPT = Path(__file__).with_name("rotate_requests.lua")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
HOSTS = ("a-host", "b-host", "c-host")
METRICS = ("cpu.user", "cpu.system", "mem.used", "net.bytes_in")
STACKSTATE_LIMIT = 2_147_483_647


def _where(index: int) -> tuple[EqualityCondition, ...]:
    return (
        EqualityCondition("host", StringValue(HOSTS[index % len(HOSTS)])),
        EqualityCondition("metric", StringValue(METRICS[index % len(METRICS)])),
    )


def _metric(index: int, method: AggregationMethod | None) -> MetricsRequest:
    """Raw: the last 6 hours (2,160 points). Aggregated: a day in 5-minute buckets (288)."""
    if method is None:
        query = MetricsQuery(T0 - 6 * HOUR, T0, _where(index), limit=STACKSTATE_LIMIT)
    else:
        aggregation = Aggregation(method, 5 * 60_000)
        query = MetricsQuery(
            T0 - DAY, T0, _where(index), limit=STACKSTATE_LIMIT, aggregation=aggregation
        )
    return MetricsRequest(query, {})


def rotation() -> list[tuple[str, dict[str, Any]]]:
    """(path, body) in sending order: the four methods in turn, 13 rounds."""
    methods: list[AggregationMethod | None] = [None, *AggregationMethod]
    out: list[tuple[str, dict[str, Any]]] = []
    for index, method in enumerate(methods):
        host = (EqualityCondition("host", StringValue(HOSTS[index % len(HOSTS)])),)
        field = FieldDescriptor("metric")
        requests: list[Any] = [
            TestConnectionRequest({}),
            FieldNamesRequest(FieldNamesQuery(T0 - HOUR, T0, host, STACKSTATE_LIMIT), {}),
            FieldValuesRequest(FieldValuesQuery(field, T0 - HOUR, T0, host, "cpu", 100), {}),
            _metric(index, method),
        ]
        out += [(r.path, r.to_json()) for r in requests]
    return out


def run_rotation(
    url: str, connections: int, duration_s: int, timeout_s: int = 30
) -> loadgen.LoadResult:
    """wrk: ``connections`` keep-alive connections sending the rotation for a while."""
    with tempfile.TemporaryDirectory(prefix="bench-rotation-") as tmp:
        requests_file = Path(tmp) / "requests.tsv"
        requests_file.write_text(
            "".join(f"{path}\t{json.dumps(body)}\n" for path, body in rotation())
        )
        env = {"BENCH_REQUESTS_FILE": str(requests_file)}
        return loadgen.run_script(url, LUA_SCRIPT, env, connections, duration_s, timeout_s)
