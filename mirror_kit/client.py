"""Call any mirror exactly as StackState's Mirror plugin does.

``MirrorClient`` (blocking) and ``AsyncMirrorClient`` (awaitable) share one way to
build request bodies (``RequestBuilder``, as ``client.build``), one way to read
answers (``read_answer``) and one way to follow pages (a ``Flow``); only the
transport differs (httpx's sync and async clients). Every call is typed with what it
returns. Conditions come from plain keyword arguments::

    client.metrics(host="a-host", metric="cpu.user")                 # StringValue
    client.metrics(cores=4)                                          # DoubleValue
    client.metrics(production=True)                                  # BooleanValue
    client.metrics(host=["a-host", "b-host"])                        # InSetValue
    client.metrics(conditions={"__name__": "up"})                    # any key

Every answer's ``X-MIRROR-API-KEY`` is checked against ``api_key`` when one is
given (that is how StackState's Test Connection spots a wrong key). Protocol error
bodies come back as the ``mirror_kit.protocol`` exceptions carrying them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

import httpx
import numpy as np
from msgspec import structs

from .protocol import (
    AggregatedMetricTelemetry,
    Aggregation,
    AggregationMethod,
    BooleanValue,
    ConditionValue,
    DoubleValue,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldNamesRequest,
    FieldNamesResponse,
    FieldValuesQuery,
    FieldValuesRequest,
    FieldValuesResponse,
    InSetValue,
    MetricsQuery,
    MetricsRequest,
    MetricsResponse,
    MirrorError,
    MirrorRequest,
    MirrorResponse,
    StringValue,
    TestConnectionRequest,
    TestConnectionResponse,
)
from .protocol.constants import API_KEY_HEADER

HOUR_MS = 3_600_000
TimeArg = int | float | datetime | None
#: A plain Python value a condition can be written with (see ``condition_value``).
PlainValue = str | float | bool | list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any]
ConditionsArg = Mapping[str, PlainValue] | Iterable[EqualityCondition] | None
R = TypeVar("R")


class MirrorClientError(Exception):
    """The mirror could not be asked, or did not answer in the protocol's terms."""


class MirrorUnreachableError(MirrorClientError):
    """No connection to the mirror (refused, timed out, wrong host)."""


class ApiKeyMismatchError(MirrorClientError):
    """The mirror's ``X-MIRROR-API-KEY`` differs from the key StackState was given."""

    def __init__(self, expected: str, received: str | None) -> None:
        super().__init__(
            f"the mirror answered with X-MIRROR-API-KEY {received!r}, expected {expected!r}"
        )
        self.expected = expected
        self.received = received


@dataclass(frozen=True)
class MetricSeries:
    """A metric answer as arrays: what StackState would plot.

    For aggregated answers ``timestamps`` are the bucket starts and ``bucket_ends``
    the bucket ends; for raw answers ``bucket_ends`` is None.
    """

    values: np.ndarray
    timestamps: np.ndarray
    bucket_ends: np.ndarray | None
    is_partial: bool
    request: MetricsRequest

    @property
    def aggregated(self) -> bool:
        return self.bucket_ends is not None

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def from_response(cls, response: MetricsResponse, request: MetricsRequest) -> MetricSeries:
        t = response.telemetry
        if isinstance(t, AggregatedMetricTelemetry):
            return cls(t.values, t.starts, t.ends, t.is_partial, request)
        return cls(t.values, t.timestamps, None, t.is_partial, request)


def to_millis(value: TimeArg, default: int) -> int:
    """Epoch milliseconds from an int/float (already ms), a datetime, or None."""
    if value is None:
        return default
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def condition_value(value: object) -> ConditionValue:
    """The protocol value a plain Python value stands for."""
    if isinstance(value, bool):
        return BooleanValue(value)
    if isinstance(value, (int, float)):
        return DoubleValue(float(value))
    if isinstance(value, str):
        return StringValue(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return InSetValue(frozenset(str(v) for v in value))
    raise TypeError(f"no Mirror API value type for {value!r}")


def build_conditions(
    conditions: ConditionsArg, keywords: Mapping[str, PlainValue]
) -> tuple[EqualityCondition, ...]:
    """EqualityConditions from a mapping or list of conditions plus keyword arguments."""
    out: list[EqualityCondition] = []
    if isinstance(conditions, Mapping):
        out.extend(EqualityCondition(k, condition_value(v)) for k, v in conditions.items())
    elif conditions is not None:
        out.extend(conditions)
    out.extend(EqualityCondition(k, condition_value(v)) for k, v in keywords.items())
    return tuple(out)


class RequestBuilder:
    """The four requests, shaped as StackState sends them; ``client.build`` is one.

    Every argument but ``field`` is keyword-only: a query has many optional parts and
    a call reads better naming the ones it sets. Plain keyword arguments left over
    become conditions (see ``condition_value``)::

        client.build.metrics(start=T0, end=T0 + HOUR, limit=100, host="a-host")
    """

    def __init__(self, connection_details: Mapping[str, Any] | None = None) -> None:
        self.connection_details = dict(connection_details or {})

    @staticmethod
    def _range(start: TimeArg, end: TimeArg) -> tuple[int, int]:
        end_ms = to_millis(end, int(time.time() * 1000))
        return to_millis(start, end_ms - HOUR_MS), end_ms

    def test_connection(self) -> TestConnectionRequest:
        return TestConnectionRequest(self.connection_details)

    def field_names(
        self,
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int | None = None,
        conditions: ConditionsArg = None,
        **keywords: PlainValue,
    ) -> FieldNamesRequest:
        s, e = self._range(start, end)
        query = FieldNamesQuery(s, e, build_conditions(conditions, keywords), limit)
        return FieldNamesRequest(query, self.connection_details)

    def field_values(
        self,
        field: str | FieldDescriptor,
        *,
        prefix: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        conditions: ConditionsArg = None,
        **keywords: PlainValue,
    ) -> FieldValuesRequest:
        descriptor = field if isinstance(field, FieldDescriptor) else FieldDescriptor(field)
        s, e = self._range(start, end)
        query = FieldValuesQuery(
            descriptor, s, e, build_conditions(conditions, keywords), prefix, limit, offset
        )
        return FieldValuesRequest(query, self.connection_details)

    def metrics(
        self,
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        method: str | AggregationMethod | None = None,
        bucket_ms: int | None = None,
        limit: int | None = None,
        metric_field: str | None = None,
        latest_first: bool = False,
        conditions: ConditionsArg = None,
        **keywords: PlainValue,
    ) -> MetricsRequest:
        s, e = self._range(start, end)
        aggregation = None
        if method is not None:
            if bucket_ms is None:
                raise ValueError("an aggregated query needs bucket_ms")
            aggregation = Aggregation(AggregationMethod(method), int(bucket_ms))
        query = MetricsQuery(
            s,
            e,
            build_conditions(conditions, keywords),
            metric_field,
            limit,
            aggregation,
            latest_first,
        )
        return MetricsRequest(query, self.connection_details)


_RESPONSE_TYPES: dict[type, type[MirrorResponse]] = {
    TestConnectionRequest: TestConnectionResponse,
    FieldNamesRequest: FieldNamesResponse,
    FieldValuesRequest: FieldValuesResponse,
    MetricsRequest: MetricsResponse,
}


@overload
def read_answer(
    request: TestConnectionRequest, answer: httpx.Response, api_key: str | None
) -> TestConnectionResponse: ...
@overload
def read_answer(
    request: FieldNamesRequest, answer: httpx.Response, api_key: str | None
) -> FieldNamesResponse: ...
@overload
def read_answer(
    request: FieldValuesRequest, answer: httpx.Response, api_key: str | None
) -> FieldValuesResponse: ...
@overload
def read_answer(
    request: MetricsRequest, answer: httpx.Response, api_key: str | None
) -> MetricsResponse: ...
def read_answer(
    request: MirrorRequest, answer: httpx.Response, api_key: str | None
) -> MirrorResponse:
    """The typed response for ``request`` from an HTTP answer, or the error it carries."""
    received = answer.headers.get(API_KEY_HEADER)
    if api_key is not None and received != api_key:
        raise ApiKeyMismatchError(api_key, received)
    try:
        body = answer.json()
    except ValueError:
        raise MirrorClientError(
            f"{request.path} answered {answer.status_code} with a body that is not JSON: "
            f"{answer.text[:200]!r}"
        ) from None
    if answer.is_success:
        try:
            response = _RESPONSE_TYPES[type(request)].from_json(body)
        except MirrorError as error:
            raise MirrorClientError(f"{request.path} answered a malformed body: {error}") from None
        if isinstance(request, FieldValuesRequest) and isinstance(response, FieldValuesResponse):
            return response.typed(request.query.field.field_type)  # strings on the wire
        return response
    if isinstance(body, dict) and isinstance(body.get("_type"), str):
        raise MirrorError.from_json(body, answer.status_code)
    raise MirrorClientError(f"{request.path} answered {answer.status_code}: {answer.text[:200]}")


def _next_start(series: MetricSeries) -> int:
    return int(series.timestamps[-1])


def merge_pages(pages: list[MetricSeries]) -> MetricSeries:
    """Concatenate continued pages, dropping the boundary point each page repeats.

    A continuation starts at the last timestamp received, so it may begin with that
    very point (or bucket) again: only points newer than the previous page are kept.
    """
    first = pages[0]
    values, stamps = [first.values], [first.timestamps]
    ends = [] if first.bucket_ends is None else [first.bucket_ends]
    last = first.timestamps[-1] if len(first) else None
    for page in pages[1:]:
        keep = page.timestamps > last if last is not None else slice(None)
        values.append(page.values[keep])
        stamps.append(page.timestamps[keep])
        if page.bucket_ends is not None:
            ends.append(page.bucket_ends[keep])
        if len(stamps[-1]):
            last = stamps[-1][-1]
    bucket_ends = None if first.bucket_ends is None else np.concatenate(ends)
    return MetricSeries(
        np.concatenate(values),
        np.concatenate(stamps),
        bucket_ends,
        pages[-1].is_partial,
        pages[0].request,
    )


def continuation(request: MetricsRequest, series: MetricSeries) -> MetricsRequest | None:
    """The request for the next page, or None when there is none (or no progress)."""
    if not series.is_partial or len(series) == 0 or request.query.latest_first:
        return None
    start = _next_start(series)
    if start <= request.query.start_time and len(series) <= 1:
        return None
    return structs.replace(request, query=structs.replace(request.query, start_time=start))


#: A conversation with a mirror, free of I/O: it yields each request to send and is
#: sent back each typed response; its return value is the call's result. Both clients
#: drive the same flows, one blocking and one awaiting (the way httpx drives auth flows).
Flow = Generator[MirrorRequest, Any, R]


def one_exchange(request: MirrorRequest) -> Flow[MirrorResponse]:
    """The flow of a single request: its response is the result."""
    response = yield request
    return response


def metric_pages(request: MetricsRequest, fetch_all: bool, max_pages: int) -> Flow[MetricSeries]:
    """A metrics query, following ``isPartial`` page by page when ``fetch_all``."""
    pages = [MetricSeries.from_response((yield request), request)]
    while fetch_all and len(pages) < max_pages:
        following = continuation(request, pages[-1])
        if following is None:
            break
        request = following
        pages.append(MetricSeries.from_response((yield request), request))
    return pages[0] if len(pages) == 1 else merge_pages(pages)


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    """httpx's transport errors as MirrorUnreachableError."""
    try:
        yield
    except httpx.TransportError as error:
        raise MirrorUnreachableError(f"cannot reach {url}: {error}") from error


# What each call returns: the responses themselves (MirrorClient) or awaitables of
# them (AsyncMirrorClient). Python has no "T or Awaitable[T]" type constructor, so
# the base class is generic in the five results instead.
_Connection = TypeVar("_Connection")
_Names = TypeVar("_Names")
_Values = TypeVar("_Values")
_Metrics = TypeVar("_Metrics")
_Series = TypeVar("_Series")


class _ClientBase(Generic[_Connection, _Names, _Values, _Metrics, _Series]):
    """The calls, written once. A subclass provides ``_run``, which drives a Flow over
    its transport and returns the flow's result (MirrorClient) or an awaitable of it
    (AsyncMirrorClient); its type parameters say which."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        connection_details: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.build = RequestBuilder(connection_details)

    def _run(self, flow: Flow[Any]) -> Any:
        raise NotImplementedError

    @overload
    def send(self, request: TestConnectionRequest) -> _Connection: ...
    @overload
    def send(self, request: FieldNamesRequest) -> _Names: ...
    @overload
    def send(self, request: FieldValuesRequest) -> _Values: ...
    @overload
    def send(self, request: MetricsRequest) -> _Metrics: ...
    def send(self, request: MirrorRequest) -> _Connection | _Names | _Values | _Metrics:
        """POST a typed request (from ``self.build``); return its typed response."""
        return self._run(one_exchange(request))

    def test_connection(self) -> _Connection:
        """Test Connection, as StackState's button does; FAILURE is a response, not an error."""
        return self.send(self.build.test_connection())

    def field_names(
        self,
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int | None = None,
        conditions: ConditionsArg = None,
        **keywords: PlainValue,
    ) -> _Names:
        """Field names under the given conditions (a FieldNamesResponse)."""
        request = self.build.field_names(
            start=start, end=end, limit=limit, conditions=conditions, **keywords
        )
        return self.send(request)

    def field_values(
        self,
        field: str | FieldDescriptor,
        *,
        prefix: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        conditions: ConditionsArg = None,
        **keywords: PlainValue,
    ) -> _Values:
        """Values of ``field`` (a FieldValuesResponse); ``prefix`` is what the user typed."""
        request = self.build.field_values(
            field,
            prefix=prefix,
            offset=offset,
            limit=limit,
            start=start,
            end=end,
            conditions=conditions,
            **keywords,
        )
        return self.send(request)

    def metrics(
        self,
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        method: str | AggregationMethod | None = None,
        bucket_ms: int | None = None,
        limit: int | None = None,
        metric_field: str | None = None,
        latest_first: bool = False,
        fetch_all: bool = False,
        max_pages: int = 1000,
        conditions: ConditionsArg = None,
        **keywords: PlainValue,
    ) -> _Series:
        """A MetricSeries: raw, or aggregated when ``method`` and ``bucket_ms`` are given.

        The range defaults to the last hour. With ``fetch_all`` the client follows
        ``isPartial`` from the last timestamp received, up to ``max_pages`` requests.
        """
        request = self.build.metrics(
            start=start,
            end=end,
            method=method,
            bucket_ms=bucket_ms,
            limit=limit,
            metric_field=metric_field,
            latest_first=latest_first,
            conditions=conditions,
            **keywords,
        )
        return self._run(metric_pages(request, fetch_all, max_pages))


class MirrorClient(
    _ClientBase[
        TestConnectionResponse,
        FieldNamesResponse,
        FieldValuesResponse,
        MetricsResponse,
        MetricSeries,
    ]
):
    """A blocking client for one mirror. Safe to call from notebook cells and callbacks."""

    def __init__(self, url: str, api_key: str | None = None, **options: Any) -> None:
        super().__init__(url, api_key, **options)
        self._http = httpx.Client(base_url=self.url, timeout=self.timeout)

    def _run(self, flow: Flow[R]) -> R:
        request = next(flow)
        while True:
            with _reaching(self.url):
                answer = self._http.post(request.path, json=request.to_json())
            try:
                request = flow.send(read_answer(request, answer, self.api_key))
            except StopIteration as done:
                return done.value

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MirrorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMirrorClient(
    _ClientBase[
        Awaitable[TestConnectionResponse],
        Awaitable[FieldNamesResponse],
        Awaitable[FieldValuesResponse],
        Awaitable[MetricsResponse],
        Awaitable[MetricSeries],
    ]
):
    """The awaitable twin of MirrorClient: the same methods, awaited."""

    def __init__(self, url: str, api_key: str | None = None, **options: Any) -> None:
        super().__init__(url, api_key, **options)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=self.timeout)

    async def _run(self, flow: Flow[R]) -> R:
        request = next(flow)
        while True:
            with _reaching(self.url):
                answer = await self._http.post(request.path, json=request.to_json())
            try:
                request = flow.send(read_answer(request, answer, self.api_key))
            except StopIteration as done:
                return done.value

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMirrorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = [
    "ApiKeyMismatchError",
    "AsyncMirrorClient",
    "MetricSeries",
    "MirrorClient",
    "MirrorClientError",
    "MirrorUnreachableError",
    "RequestBuilder",
]
