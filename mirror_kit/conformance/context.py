"""What the checks share: the options, the probe, request builders and what was learned.

Checks run in order and later ones build on what earlier ones found (the fields
offered, the conditions that yield data, the full answers to compare pages with).
A check ends by returning, or raising, a ``Finding``; helpers here raise one when
an answer is unusable, so a check reads as its happy path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import MetricSeries, MirrorClientError, read_answer
from ..protocol import (
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
    MirrorError,
    TestConnectionRequest,
)
from . import validate
from .probe import Exchange, Probe
from .report import Level, Profile, Status

#: What StackState sends as ``limit`` when it wants everything.
NO_LIMIT = 2_147_483_647


class Finding(Exception):
    """A check's verdict; raised to end a check early, or returned at its end.

    A FAIL is of level ``breaks`` and a WARN of level ``quality`` unless ``level`` says
    otherwise; the run's profile turns the level into the status reported.
    """

    def __init__(
        self,
        status: Status,
        reason: str,
        exchange: Exchange | None = None,
        level: Level | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.exchange = exchange
        if level is None and status in (Status.FAIL, Status.WARN):
            level = Level.BREAKS if status is Status.FAIL else Level.QUALITY
        self.level = level


def wrong_data(reason: str, exchange: Exchange | None = None) -> Finding:
    """StackState shows wrong or incomplete data: FAIL when strict, WARN as StackState."""
    return Finding(Status.FAIL, reason, exchange, Level.DATA)


def passed(reason: str) -> Finding:
    return Finding(Status.PASS, reason)


def skipped(reason: str) -> Finding:
    return Finding(Status.SKIP, reason)


def from_problems(problems: Sequence[tuple[validate.Problem, Exchange | None]], ok: str) -> Finding:
    """The worst problem (with its request), counting the others; PASS with ``ok``."""
    for level in Level:  # breaks, data, quality: the worst first
        worst = [(p, ex) for p, ex in problems if p.level is level]
        if worst:
            more = len(problems) - 1
            suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
            status = Status.WARN if level is Level.QUALITY else Status.FAIL
            return Finding(status, worst[0][0].message + suffix, worst[0][1], level)
    return passed(ok)


@dataclass(frozen=True)
class Options:
    url: str
    api_key: str | None
    connection_details: dict[str, Any]
    start: int
    end: int
    timeout: float
    bucket_ms: int
    #: The stream's conditions when the user gives them; otherwise discovered.
    conditions: tuple[EqualityCondition, ...] = ()
    profile: Profile = Profile.STACKSTATE


@dataclass(frozen=True)
class Target:
    """Conditions that yield data, with the raw answer that proved it."""

    conditions: tuple[EqualityCondition, ...]
    request: MetricsRequest
    exchange: Exchange
    points: int


@dataclass(frozen=True)
class Paged:
    """A ``limit``-ed first page and the unlimited answer it is part of."""

    request: MetricsRequest
    page: MetricSeries
    limit: int
    full: MetricSeries
    exchange: Exchange


@dataclass
class Context:
    options: Options
    probe: Probe
    unreachable: bool = False
    connection: Exchange | None = None
    fields: list[FieldDescriptor] = field(default_factory=list)
    field_names_body: Any = None
    offers: dict[str, list[validate.Offer]] = field(default_factory=dict)
    target: Target | None = None
    aggregated: tuple[MetricsRequest, Exchange] | None = None
    paged: dict[str, Paged] = field(default_factory=dict)
    #: Each aggregation method's answer over the range (metrics.aggregation-methods).
    by_method: dict[AggregationMethod, tuple[MetricsRequest, Exchange]] = field(
        default_factory=dict
    )
    #: Learned about the mirror on the way, for the JSON report.
    facts: dict[str, Any] = field(default_factory=dict)

    # Requests, shaped as StackState shapes them.

    def test_connection_request(self) -> TestConnectionRequest:
        return TestConnectionRequest(self.options.connection_details)

    def field_names_request(
        self, conditions: Sequence[EqualityCondition] = ()
    ) -> FieldNamesRequest:
        o = self.options
        query = FieldNamesQuery(o.start, o.end, tuple(conditions), NO_LIMIT)
        return FieldNamesRequest(query, o.connection_details)

    def field_values_request(
        self,
        descriptor: FieldDescriptor,
        prefix: str | None = None,
        *,
        offset: int = 0,
        limit: int = NO_LIMIT,
        conditions: Sequence[EqualityCondition] = (),
    ) -> FieldValuesRequest:
        o = self.options
        others = tuple(c for c in conditions if c.key != descriptor.field_name)
        query = FieldValuesQuery(descriptor, o.start, o.end, others, prefix, limit, offset)
        return FieldValuesRequest(query, o.connection_details)

    def metrics_request(
        self,
        conditions: Sequence[EqualityCondition],
        method: AggregationMethod | None = None,
        limit: int = NO_LIMIT,
        span: tuple[int, int] | None = None,
    ) -> MetricsRequest:
        o = self.options
        aggregation = None if method is None else Aggregation(method, o.bucket_ms)
        start, end = span or (o.start, o.end)
        query = MetricsQuery(start, end, tuple(conditions), None, limit, aggregation)
        return MetricsRequest(query, o.connection_details)

    # Sending and reading.

    def send(self, request: Any) -> Exchange:
        return self.probe.post_json(request.path, request.to_json())

    def typed(self, exchange: Exchange, request: Any) -> Any:
        """The kit's typed response for an answer; a FAIL Finding when there is none."""
        if exchange.response is None:
            raise Finding(Status.FAIL, f"no answer: {exchange.error}", exchange)
        try:
            return read_answer(request, exchange.response, None)
        except MirrorError as error:
            raise Finding(
                Status.FAIL,
                f"answered HTTP {exchange.status} {type(error).__name__}: {error}",
                exchange,
            ) from None
        except MirrorClientError as error:
            raise Finding(Status.FAIL, str(error), exchange) from None

    def series(self, exchange: Exchange, request: MetricsRequest) -> MetricSeries:
        return MetricSeries.from_response(self.typed(exchange, request), request)

    def need_target(self) -> Target:
        if self.target is None:
            raise skipped("no conditions that yield data were found (see discovery)")
        return self.target


def refusal(exchange: Exchange) -> str | None:
    """Why an answer is not an acceptance (None when it is a 2xx non-error JSON object)."""
    if not exchange.success or not isinstance(exchange.body, dict):
        return exchange.outcome()
    if validate.is_error_body(exchange.body):
        return f"HTTP {exchange.status} with the error body {exchange.body.get('_type')}"
    return None


def require_accepted(exchange: Exchange, what: str) -> None:
    reason = refusal(exchange)
    if reason is not None:
        raise Finding(Status.FAIL, f"{what}: {reason}", exchange)
