"""The mirror's own telemetry: Prometheus metrics about what it serves (no HTTP here).

The metric objects live in prometheus_client's default registry; the server's
``GET /metrics`` (server/metrics.py) renders them with :func:`exposition`. Every
label value comes from a small set the mirror fixes, never from a request: the
method from the route table, the status as a class or a status the mirror itself
chose, the store from the operator's configured names, error types from the
protocol's four. So a hostile caller can add to the counts but never grow the
registry.

Which store a request reached is carried by :data:`STORE`, a context variable the
router sets when it selects a store (sources/routing.py): the store client and
the poll cache count under that name without knowing it themselves.

Under ``--workers N`` every worker is a separate process with its own counters.
:func:`across_processes` (used by server/workers.py in gunicorn's arbiter, before
it forks) turns on prometheus_client's multiprocess mode in a private temporary
directory; each worker then writes its values to files there, and
:func:`exposition` sums every worker's files, so ``/metrics`` counts the same
whichever worker answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from .protocol import (
    FieldNamesResponse,
    FieldValuesResponse,
    MetricsResponse,
    MetricStoreConnectionError,
    MirrorError,
    RawMetricTelemetry,
    TestConnectionResponse,
)

#: The environment variable prometheus_client's multiprocess mode reads.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The store label when no router named one (a mirror serving a single source).
UNROUTED = "default"
#: The configured name of the store the current request selected (set by the router).
STORE: ContextVar[str] = ContextVar("mirror_kit_store", default=UNROUTED)

#: Seconds; up to StackState's 15 s UI request timeout, past which it gave up anyway.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
)  # fmt: skip

REQUESTS = Counter(
    "mirror_kit_requests",
    "HTTP requests answered, by route (method) and status class",
    ["method", "status"],
)
REQUEST_SECONDS = Histogram(
    "mirror_kit_request_duration_seconds",
    "Time from a request's arrival to its answer, by route (method) and status class",
    ["method", "status"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "mirror_kit_requests_in_flight",
    "Requests being answered now, by route (method)",
    ["method"],
    multiprocess_mode="livesum",  # the live workers' sum: a dead worker's share is dropped
)
ERRORS = Counter(
    "mirror_kit_errors",
    "Error answers, by protocol error type and HTTP status",
    ["type", "status"],
)
CONNECTION_CAP = Counter(
    "mirror_kit_connection_cap",
    "Connections past the cap (--max-connections): idle ones closed to make room "
    "(closed_idle), new ones answered 503 because every connection was busy (refused)",
    ["action"],
)
POINTS = Counter(
    "mirror_kit_points_served",
    "Metric points answered (raw points or aggregated buckets)",
    ["kind"],
)
PARTIAL = Counter(
    "mirror_kit_partial_answers",
    "Answers marked isPartial (a limit, the answer cap or the work cap cut them)",
    ["method"],
)
STORE_REQUESTS = Counter(
    "mirror_kit_store_requests",
    "HTTP requests the mirror sent to a store, by store and outcome",
    ["store", "outcome"],
)
STORE_ERRORS = Counter(
    "mirror_kit_store_errors",
    "Mirror API requests (Test Connection included) failed by their store, by kind",
    ["store", "error"],
)
POLL_CACHE = Counter(
    "mirror_kit_poll_cache_lookups",
    "Poll-cache lookups: hit (memory only), partial_hit (only the newest part "
    "fetched), miss (the whole window fetched)",
    ["store", "result"],
)
POLL_CACHE_EVICTIONS = Counter(
    "mirror_kit_poll_cache_evictions",
    "Series runs the poll cache dropped to stay within its byte budget",
    ["store"],
)

#: The protocol's error types; anything else in an error body counts as "other".
ERROR_TYPES = frozenset(
    {
        "RemoteMirrorError",
        "MetricNotFoundError",
        "UnsupportedFieldTypeError",
        "MetricStoreConnectionError",
    }
)
#: Route path (the secret prefix removed) -> method label; any other path is "other".
METHOD_LABELS = {
    "/api/connection": "connection",
    "/api/field/name": "field/name",
    "/api/field/value": "field/value",
    "/api/metric": "metric",
    "/healthz": "healthz",
    "/readyz": "readyz",
    "/metrics": "metrics",
    "/openapi.json": "openapi",
}
OTHER = "other"


def status_class(status: int) -> str:
    """``"2xx"`` ... ``"5xx"`` (anything outside 100-599: ``"other"``)."""
    return f"{status // 100}xx" if 100 <= status < 600 else OTHER


def error_status(status: int) -> str:
    """The status as a label: one of the 200 error statuses, never anything else."""
    return str(status) if 400 <= status < 600 else OTHER


def error_type(kind: Any) -> str:
    return kind if isinstance(kind, str) and kind in ERROR_TYPES else OTHER


# --- what services and stores count (one line at each place) ------------------------

R = TypeVar("R")


def store_failure(error: MirrorError) -> str | None:
    """What kind of store failure ``error`` is (None: it is not one)."""
    if isinstance(error, MetricStoreConnectionError):
        return "unreachable"
    status = getattr(error, "http_status", 0)
    if status == 504:
        return "timeout"
    if status == 502:
        return "bad_answer"
    return None


def counted_answer(
    answer: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Decorates ``service.answer``: counts points served, partial answers and the
    requests a store failed (Test Connection's FAILURE answers included)."""

    @functools.wraps(answer)
    async def counted(request: Any, *args: Any, **kwargs: Any) -> R:
        try:
            response = await answer(request, *args, **kwargs)
        except MirrorError as error:
            _count_store_failure(error)
            raise
        _count_response(response)
        return response

    return counted


def _count_store_failure(error: MirrorError | None) -> None:
    kind = None if error is None else store_failure(error)
    if kind is not None:
        STORE_ERRORS.labels(STORE.get(), kind).inc()


def _count_response(response: Any) -> None:
    if isinstance(response, MetricsResponse):
        series = response.telemetry
        kind = "raw" if isinstance(series, RawMetricTelemetry) else "aggregated"
        POINTS.labels(kind).inc(len(series.values))
        if series.is_partial:
            PARTIAL.labels("metric").inc()
    elif isinstance(response, TestConnectionResponse):
        _count_store_failure(response.error)
    elif isinstance(response, FieldNamesResponse) and response.is_partial:
        PARTIAL.labels("field/name").inc()
    elif isinstance(response, FieldValuesResponse) and response.is_partial:
        PARTIAL.labels("field/value").inc()


def store_call(get: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Decorates a store client's request method: counts each request by outcome --
    ok (a 2xx answer), http_4xx / http_5xx, timeout, unreachable, bad_answer (too
    large, or in an encoding the mirror did not ask for)."""

    @functools.wraps(get)
    async def counted(*args: Any, **kwargs: Any) -> R:
        try:
            answer = await get(*args, **kwargs)
        except Exception as error:
            STORE_REQUESTS.labels(STORE.get(), _failed_outcome(error)).inc()
            raise
        status = getattr(answer, "status", 200)
        outcome = "ok" if 200 <= status < 300 else f"http_{status_class(status)}"
        STORE_REQUESTS.labels(STORE.get(), outcome).inc()
        return answer

    return counted


def _failed_outcome(error: BaseException) -> str:
    cause = error.__context__  # the transport's exception, suppressed by ``from None``
    if isinstance(cause, (asyncio.TimeoutError, httpx.TimeoutException)):
        return "timeout"
    if isinstance(error, MetricStoreConnectionError):
        return "unreachable"
    return "bad_answer"


def cache_lookup(result: str) -> None:
    """A poll-cache lookup: ``hit``, ``partial_hit`` or ``miss``."""
    POLL_CACHE.labels(STORE.get(), result).inc()


def cache_eviction() -> None:
    POLL_CACHE_EVICTIONS.labels(STORE.get()).inc()


# --- exposition and several processes -----------------------------------------------


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type: this process's,
    or every worker's summed when multiprocess mode is on."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST


@contextlib.contextmanager
def across_processes() -> Iterator[str]:
    """Multiprocess mode for the processes forked inside: a private temporary
    directory (removed on exit) unless ``PROMETHEUS_MULTIPROC_DIR`` is already set.

    prometheus_client picks how it stores values when it is first imported, and the
    kit is imported long before ``serve --workers`` knows it will fork; so the value
    class is chosen again here, after the variable is set and before any value exists
    (every metric above has labels: values are made on first use, in the workers).
    """
    given = os.environ.get(MULTIPROC_ENV)
    directory = given or tempfile.mkdtemp(prefix="mirror-kit-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    previous, values.ValueClass = values.ValueClass, values.get_value_class()
    owner = os.getpid()
    try:
        yield directory
    finally:
        values.ValueClass = previous
        # gunicorn ends a worker with sys.exit, which unwinds the forked copy of this
        # block too: only the process that made the directory may remove it.
        if not given and os.getpid() == owner:
            del os.environ[MULTIPROC_ENV]
            shutil.rmtree(directory, ignore_errors=True)


def process_exited(_server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: drop a dead worker's live gauges (its counters
    stay, so totals never go back)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)
