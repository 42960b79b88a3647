"""PrometheusSource: a TelemetrySource answering from a real Prometheus.

Field names are Prometheus label names (``/api/v1/labels``), field values are
label values (``/api/v1/label/<name>/values``), both narrowed by ``match[]``
selectors built from the conditions. Raw points come from ``query_range`` on an
epoch-aligned grid of ``step`` (set it to the scrape interval: then each point is
one sample); aggregation is done by ``mirror_kit.service`` from those raw points,
with the same epoch-aligned windows as for every other source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np

from ...protocol import (
    CompleteValue,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldValueOption,
    FieldValuesQuery,
    MetricNotFoundError,
    MetricsQuery,
    RemoteMirrorError,
)
from ..base import ConnectionDetails, Points, PointWindow, TelemetrySource
from ..catalog import hierarchical_options
from . import promql
from .api import Params, PrometheusApi
from .config import NanInterpretation, PrometheusConfig

#: Prometheus refuses a query_range that would give one series more points than this.
MAX_POINTS_PER_QUERY = 11_000
T = TypeVar("T")


@dataclass(frozen=True)
class Grid:
    """The step-aligned timestamps ``first, first + step, ..., last`` to evaluate at."""

    first: int
    last: int
    step: int

    @property
    def count(self) -> int:
        return (self.last - self.first) // self.step + 1

    def chunks(self, size: int = MAX_POINTS_PER_QUERY) -> list[tuple[int, int]]:
        """(start, end) pairs, both inclusive, of at most ``size`` grid points each."""
        span = (size - 1) * self.step
        starts = range(self.first, self.last + 1, span + self.step)
        return [(s, min(s + span, self.last)) for s in starts]


def window_grid(window: PointWindow, step: int) -> tuple[Grid | None, bool]:
    """The grid points inside ``start <= t < end`` capped at ``max_points`` (the newest
    kept when ``newest_first``), and whether the cap cut any."""
    first = -(-window.start // step) * step
    last = (window.end - 1) // step * step
    if last < first or window.max_points < 1:
        return None, last >= first
    grid = Grid(first, last, step)
    if grid.count <= window.max_points:
        return grid, False
    keep = (window.max_points - 1) * step
    cut = Grid(last - keep, last, step) if window.newest_first else Grid(first, first + keep, step)
    return cut, True


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


class PrometheusSource(TelemetrySource):
    """Serves one Prometheus, configured once (see PrometheusConfig / docs/sources.md).

    Build it from the Mirror source form's connection details with ``from_details``
    (that is what RoutingSource does per distinct details), or directly with a URL.
    The connection details passed with each request are not read again.
    """

    def __init__(self, config: PrometheusConfig | str, **options: Any) -> None:
        self.config = (
            config if isinstance(config, PrometheusConfig) else PrometheusConfig(config, **options)
        )
        self.api = PrometheusApi(self.config)

    @classmethod
    def from_details(cls, details: ConnectionDetails) -> PrometheusSource:
        return cls(PrometheusConfig.from_details(details))

    def __repr__(self) -> str:
        return f"PrometheusSource({self.config!r})"

    async def aclose(self) -> None:
        await self.api.aclose()

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        """Ask ``/api/v1/status/buildinfo`` (``/-/healthy`` where that is missing)."""
        path = "/api/v1/status/buildinfo"
        response = await self.api.get(path)
        if response.status_code == 404:
            path = "/-/healthy"
            response = await self.api.get(path)
            if response.is_success:
                return
        self.api.read(path, response)

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> list[FieldDescriptor]:
        """The special fields, then Prometheus' label names under the conditions."""
        if promql.expression_condition(query.conditions) is not None:
            return [FieldDescriptor(promql.EXPRESSION)]
        match = promql.selector(query.conditions)
        params = self._range_params(query.start_time, query.end_time, match)
        labels = await self.api.data("/api/v1/labels", params) or []
        if match is not None and not labels:
            return []  # conditions that match nothing: no names, as for field values
        specials = [FieldDescriptor(name) for name in promql.SPECIAL_FIELDS]
        return specials + [FieldDescriptor(str(name)) for name in labels]

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> list[FieldValueOption]:
        """Label values under the other conditions, filtered by the typed prefix."""
        name = query.field.field_name
        if name == promql.EXPRESSION:
            return []  # a PromQL expression is typed, not picked
        label = promql.NAME if name in promql.METRIC_FIELDS else name
        others = [c for c in query.conditions if not _narrows_label(c, label)]
        params = self._range_params(query.start_time, query.end_time, promql.selector(others))
        path = f"/api/v1/label/{quote(label, safe='')}/values"
        values = [str(v) for v in await self.api.data(path, params) or []]
        return _options(values, query.field_value_prefix or "", self.config.hierarchical_values)

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        plan = promql.plan(
            query.conditions, self.config.effective_rate_window_ms, self.config.counter_function
        )
        grid, truncated = window_grid(window, self.config.step_ms)
        if grid is None:
            return Points.empty(truncated)
        answers = await _bounded(
            [self._query_range(plan.expression, s, e) for s, e in grid.chunks()],
            self.config.concurrency,
        )
        series = _merge([item for answer in answers for item in answer])
        if len(series) > 1:
            raise _several_series(plan, list(series))
        if not series:
            if plan.selector is not None and not await self._exists(plan.selector):
                raise MetricNotFoundError(
                    plan.description, f"Prometheus has no series for {plan.expression}."
                )
            return Points.empty(truncated)
        timestamps, values = next(iter(series.values()))
        inside = (timestamps >= window.start) & (timestamps < window.end)
        timestamps, values = timestamps[inside], values[inside]
        if self.config.nan_interpretation is NanInterpretation.ZERO:
            values = np.where(np.isnan(values), 0.0, values)
        return Points(timestamps, values, truncated)

    def _range_params(self, start: int, end: int, match: str | None) -> list[tuple[str, str]]:
        params = [("start", _seconds(start)), ("end", _seconds(max(start, end)))]
        return params + ([("match[]", match)] if match is not None else [])

    async def _query_range(self, expression: str, start: int, end: int) -> list[dict[str, Any]]:
        params: Params = [
            ("query", expression),
            ("start", _seconds(start)),
            ("end", _seconds(end)),
            ("step", _seconds(self.config.step_ms)),
        ]
        data = await self.api.data("/api/v1/query_range", params)
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise RemoteMirrorError(
                "Unexpected answer from Prometheus", "query_range did not answer a matrix"
            )
        return list(data.get("result") or [])

    async def _exists(self, selector: str) -> bool:
        return bool(await self.api.data("/api/v1/series", [("match[]", selector)]))


def _narrows_label(condition: EqualityCondition, label: str) -> bool:
    """Whether a condition is on the label being listed (then it must not narrow it)."""
    if condition.key == promql.EXPRESSION:
        return True
    key = promql.NAME if condition.key in promql.METRIC_FIELDS else condition.key
    return key == label


def _options(values: list[str], prefix: str, hierarchical: bool) -> list[FieldValueOption]:
    if hierarchical:
        return hierarchical_options(values, prefix)
    prefix = prefix.removesuffix("*")
    return [CompleteValue(v) for v in sorted(set(values)) if v.startswith(prefix)]


async def _bounded(jobs: Sequence[Awaitable[T]], concurrency: int) -> list[T]:
    """Await all jobs, at most ``concurrency`` at a time; results in job order."""
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(run(j) for j in jobs)))


def _merge(items: list[dict[str, Any]]) -> dict[frozenset[tuple[str, str]], tuple[Any, Any]]:
    """Series by label set, each the concatenation of its chunks (ascending time)."""
    parts: dict[frozenset[tuple[str, str]], list[tuple[np.ndarray, np.ndarray]]] = {}
    for item in items:
        labels = frozenset((item.get("metric") or {}).items())
        pairs = item.get("values") or []
        if not pairs:
            continue
        table = np.asarray(pairs, dtype=object)
        stamps = np.rint(table[:, 0].astype(np.float64) * 1000).astype(np.int64)
        parts.setdefault(labels, []).append((stamps, table[:, 1].astype(np.float64)))
    return {
        labels: (np.concatenate([t for t, _ in ps]), np.concatenate([v for _, v in ps]))
        for labels, ps in parts.items()
    }


def _several_series(plan: promql.QueryPlan, label_sets: list[frozenset]) -> RemoteMirrorError:
    """The error for a query that selects more than one series: which labels differ."""
    dicts = [dict(s) for s in label_sets]
    names = sorted({k for d in dicts for k in d})
    differing = [n for n in names if len({d.get(n) for d in dicts}) > 1]
    shown = []
    for name in differing:
        values = sorted({d.get(name) or "(absent)" for d in dicts})
        more = f", ... ({len(values)})" if len(values) > 5 else ""
        shown.append(f"{name} ({', '.join(values[:5])}{more})")
    return RemoteMirrorError(
        f"The query selects {len(dicts)} series; a metric stream must select one",
        f"{plan.expression} gives series that differ in {'; '.join(shown)}. "
        f"Add a condition on {' or '.join(differing)}.",
    )
