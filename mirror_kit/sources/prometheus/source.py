"""PrometheusSource: a TelemetrySource answering from a real Prometheus.

Field names are Prometheus label names (``/api/v1/labels``), field values are
label values (``/api/v1/label/<name>/values``), both narrowed by ``match[]``
selectors built from the conditions. Raw points come from ``query_range`` on an
epoch-aligned grid of ``step`` (set it to the scrape interval: then each point is
one sample). Aggregated windows of a gauge are computed by Prometheus itself
(``windows``, see ``pushdown``), in the same epoch-aligned windows as for every
other source; where that cannot give the kit's numbers exactly, by
``mirror_kit.service`` from the raw points.

Every answer is checked before it is used (``label_list``, ``parse_matrix``): a
store answering string timestamps, pairs that are not pairs, a ``result`` that is
not a list, more points than the page asked for, or more label values than the
store's ``maxFieldValues`` gets a 502 RemoteMirrorError, never a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
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
    MirrorError,
    RemoteMirrorError,
)
from ..base import ConnectionDetails, Points, PointWindow, TelemetrySource, WindowSpan
from ..catalog import hierarchical_options
from . import promql, pushdown
from .api import Params, PrometheusApi, garbage
from .config import NanInterpretation, PrometheusConfig, QueryOptions

#: Prometheus refuses a query_range that would give one series more points than this.
MAX_POINTS_PER_QUERY = 11_000
#: Timestamps past this many seconds (the year 5138) are not Prometheus'.
MAX_EPOCH_S = 1e11
T = TypeVar("T")
LabelSet = frozenset[tuple[str, str]]
_BUILDINFO = "/api/v1/status/buildinfo"
_UNASKED: Any = object()


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

    The operator declares it (``from_declaration``, or directly with a URL); each
    request's connection details may tune how data is read (``config.options``:
    step, rate window, NaN handling, allowed headers) but never where or as whom the
    mirror connects. One connection pool serves every request.
    """

    def __init__(self, config: PrometheusConfig | str, **options: Any) -> None:
        self.config = (
            config if isinstance(config, PrometheusConfig) else PrometheusConfig(config, **options)
        )
        self.api = PrometheusApi(self.config)
        #: the store's range semantics, from its buildinfo, once known (None: do not
        #: push aggregation down)
        self._ends: pushdown.RangeEnds | None = _UNASKED

    @classmethod
    def from_declaration(cls, declaration: ConnectionDetails) -> PrometheusSource:
        return cls(PrometheusConfig.from_declaration(declaration))

    @property
    def url(self) -> str:
        """The base URL connection details may name to select this store."""
        return self.config.url

    def __repr__(self) -> str:
        return f"PrometheusSource({self.config!r})"

    async def aclose(self) -> None:
        await self.api.aclose()

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        """Ask ``/api/v1/status/buildinfo`` (``/-/healthy`` where that is missing)."""
        options = self.config.options(connection_details)
        path = _BUILDINFO
        answer = await self.api.get(path, (), options)
        if answer.status == 404:
            path = "/-/healthy"
            answer = await self.api.get(path, (), options)
            if answer.ok:
                return
        self.api.read(path, answer)

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> list[FieldDescriptor]:
        """The special fields, then Prometheus' label names under the conditions."""
        options = self.config.options(connection_details)
        if promql.expression_condition(query.conditions) is not None:
            return [FieldDescriptor(promql.EXPRESSION)]
        match = promql.selector(query.conditions)
        params = self._range_params(query.start_time, query.end_time, match)
        labels = await self._labels("/api/v1/labels", params, options)
        if match is not None and not labels:
            return []  # conditions that match nothing: no names, as for field values
        specials = [FieldDescriptor(name) for name in promql.SPECIAL_FIELDS]
        return specials + [FieldDescriptor(name) for name in labels]

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> list[FieldValueOption]:
        """Label values under the other conditions, filtered by the typed prefix."""
        options = self.config.options(connection_details)
        name = query.field.field_name
        if name == promql.EXPRESSION:
            return []  # a PromQL expression is typed, not picked
        label = promql.NAME if name in promql.METRIC_FIELDS else name
        others = [c for c in query.conditions if not _narrows_label(c, label)]
        params = self._range_params(query.start_time, query.end_time, promql.selector(others))
        try:
            path = f"/api/v1/label/{quote(label, safe='')}/values"
        except UnicodeError:  # a lone surrogate: no URL can carry it
            raise RemoteMirrorError(
                "Invalid request: the field name is not valid Unicode"
            ) from None
        values = await self._labels(path, params, options)
        return _options(values, query.field_value_prefix or "", options.hierarchical_values)

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        options = self.config.options(connection_details)
        plan = promql.plan(query.conditions, options.rate_window_ms, options.counter_function)
        grid, truncated = window_grid(window, options.step_ms)
        if grid is None:
            return Points.empty(truncated)
        pages = await self._pages(plan.expression, grid, options)
        label_sets = _label_sets(pages)
        if len(label_sets) > 1:
            raise _several_series(plan, label_sets)
        if not label_sets:
            await self._raise_if_missing(plan, options)
            return Points.empty(truncated)
        timestamps, values = _joined(pages)
        inside = (timestamps >= window.start) & (timestamps < window.end)
        timestamps, values = timestamps[inside], values[inside]
        if options.nan_interpretation is NanInterpretation.ZERO:
            values = np.where(np.isnan(values), 0.0, values)
        return Points(timestamps, values, truncated)

    async def windows(
        self, query: MetricsQuery, span: WindowSpan, connection_details: ConnectionDetails
    ) -> Points | None:
        """The windows as Prometheus aggregates them (``pushdown``): one ``query_range``
        at step = window, evaluated at each window's last millisecond; None where the
        answer could differ from the kit's own aggregation of the raw points."""
        options = self.config.options(connection_details)
        if not self.config.aggregate_in_store or span.size <= options.step_ms:
            return None  # asked not to, or no more than one raw point a window
        plan = promql.plan(query.conditions, options.rate_window_ms, options.counter_function)
        if plan.selector is None or plan.expression != plan.selector:
            return None  # a counter's rate, a ~ expression: grid values, aggregated here
        ends = await self._range_ends(options)
        if ends is None:
            return None
        zero = options.nan_interpretation is NanInterpretation.ZERO
        expression = pushdown.over_time(plan.selector, span.method, span.size, ends, zero)
        grid = Grid(span.first + span.size - 1, span.end - 1, span.size)
        try:
            pages = await self._pages(expression, grid, options)
        except RemoteMirrorError as error:
            if error.http_status == 400:  # e.g. series alike but for their name:
                return None  # the raw path tells which
            raise
        label_sets = _label_sets(pages)
        if len(label_sets) > 1:
            return None  # several series: the raw path's error names them
        if not label_sets:
            await self._raise_if_missing(plan, options)
            return Points.empty()
        ends_ms, values = _joined(pages)
        if not pushdown.exact(values, span.method, zero):
            return None  # a NaN or infinite sample: the kit's NaN rule applies, locally
        if np.any((ends_ms - grid.first) % span.size):
            raise garbage("/api/v1/query_range", "a value off the evaluation grid")
        return Points(ends_ms - (span.size - 1), values)

    async def _range_ends(self, options: QueryOptions) -> pushdown.RangeEnds | None:
        """The store's range semantics from its buildinfo, asked once (again after an
        error other than "no buildinfo here")."""
        if self._ends is not _UNASKED:
            return self._ends
        answer = await self.api.get(_BUILDINFO, (), options)
        try:
            ends = pushdown.range_ends(self.api.read(_BUILDINFO, answer))
        except MirrorError:
            ends = None
            if answer.status != 404:
                return None
        self._ends = ends
        return ends

    async def _pages(self, expression: str, grid: Grid, options: QueryOptions) -> list[Page]:
        """``expression`` on ``grid``, one query_range per 11,000 steps, some at once."""
        return await _bounded(
            [self._query_range(expression, s, e, grid.step, options) for s, e in grid.chunks()],
            self.config.concurrency,
        )

    async def _raise_if_missing(self, plan: promql.QueryPlan, options: QueryOptions) -> None:
        """MetricNotFoundError when the plan's selector matches no series at all."""
        if plan.selector is not None and not await self._exists(plan.selector, options):
            raise MetricNotFoundError(
                plan.description, f"Prometheus has no series for {plan.expression}."
            )

    def _range_params(self, start: int, end: int, match: str | None) -> list[tuple[str, str]]:
        params = [("start", _seconds(start)), ("end", _seconds(max(start, end)))]
        return params + ([("match[]", match)] if match is not None else [])

    async def _labels(self, path: str, params: Params, options: QueryOptions) -> list[str]:
        shape = partial(label_list, path=path, cap=self.config.max_field_values)
        return await self.api.data(path, params, options, shape)

    async def _query_range(
        self, expression: str, start: int, end: int, step: int, options: QueryOptions
    ) -> Page:
        params: Params = [
            ("query", expression),
            ("start", _seconds(start)),
            ("end", _seconds(end)),
            ("step", _seconds(step)),
        ]
        path = "/api/v1/query_range"
        count = (end - start) // step + 1
        shape: Callable[[Any], Page] = partial(
            parse_matrix, path=path, first_ms=start, last_ms=end, max_points=count
        )
        return await self.api.data(path, params, options, shape)

    async def _exists(self, selector: str, options: QueryOptions) -> bool:
        path = "/api/v1/series"
        params = [("match[]", selector), ("limit", "1")]
        return await self.api.data(path, params, options, partial(_non_empty_list, path=path))


@dataclass(frozen=True)
class Page:
    """One query_range answer: every label set it holds, and the points of the first."""

    label_sets: list[LabelSet]
    timestamps: np.ndarray | None = None
    values: np.ndarray | None = None


def _label_sets(pages: list[Page]) -> list[LabelSet]:
    """Every series' labels across pages, once each, in order."""
    return list(dict.fromkeys(labels for page in pages for labels in page.label_sets))


def _joined(pages: list[Page]) -> tuple[np.ndarray, np.ndarray]:
    """The first series' timestamps and values across pages, joined."""
    timestamps = np.concatenate([p.timestamps for p in pages if p.timestamps is not None])
    values = np.concatenate([p.values for p in pages if p.values is not None])
    return timestamps, values


def label_list(data: Any, path: str, cap: int) -> list[str]:
    """Label names or values as Prometheus answers them: a list of at most ``cap``
    strings (None counts as empty)."""
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise garbage(path, "expected a list of strings")
    if len(data) > cap:
        raise RemoteMirrorError(
            "Prometheus answered too many values",
            f"{path}: {len(data):,}, more than the store's maxFieldValues ({cap:,}); "
            "narrow the conditions",
            http_status=502,
        )
    return data


def _non_empty_list(data: Any, path: str) -> bool:
    if data is not None and not isinstance(data, list):
        raise garbage(path, "expected a list")
    return bool(data)


def parse_matrix(data: Any, path: str, first_ms: int, last_ms: int, max_points: int) -> Page:
    """A query_range answer checked and converted: every series' labels, and the first
    series' points (at most ``max_points``, ascending, inside ``[first_ms, last_ms]``).

    Only the first series' points are converted: more than one series is an error
    for a metric stream, and its message needs only their labels.
    """
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise garbage(path, "query_range did not answer a matrix")
    result = data.get("result")
    if result is None:
        return Page([])
    if not isinstance(result, list):
        raise garbage(path, '"result" is not a list')
    label_sets: list[LabelSet] = []
    first: tuple[np.ndarray, np.ndarray] | None = None
    for item in result:
        if not isinstance(item, dict):
            raise garbage(path, "a series is not an object")
        labels = _label_set(item.get("metric"), path)
        pairs = item.get("values")
        if not isinstance(pairs, list):
            raise garbage(path, 'a series\'s "values" is not a list')
        if not pairs:
            continue
        if labels not in label_sets:
            label_sets.append(labels)
        if first is None:
            first = _pairs(pairs, path, max_points)
        elif labels == label_sets[0]:
            raise garbage(path, "a series appears twice")
    if first is None:
        return Page(label_sets)
    stamps, values = first
    inside = (stamps >= first_ms) & (stamps <= last_ms)
    return Page(label_sets, stamps[inside], values[inside])


def _label_set(metric: Any, path: str) -> LabelSet:
    if metric is None:
        return frozenset()
    if not isinstance(metric, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
    ):
        raise garbage(path, 'a series\'s "metric" is not an object of strings')
    return frozenset(metric.items())


def _pairs(pairs: list[Any], path: str, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``[[seconds, "value"], ...]`` as epoch-ms and float arrays; 502 for anything else."""
    if len(pairs) > max_points:
        raise garbage(path, f"{len(pairs):,} points where at most {max_points:,} were asked")
    if not all(type(p) is list and len(p) == 2 for p in pairs):
        raise garbage(path, "a point is not a [time, value] pair")
    seconds = [p[0] for p in pairs]
    texts = [p[1] for p in pairs]
    if not all(type(t) in (int, float) for t in seconds):
        raise garbage(path, "a timestamp is not a number")
    if not all(type(v) is str for v in texts):
        raise garbage(path, "a value is not a string")
    stamps_s = np.asarray(seconds, dtype=np.float64)
    if not np.all(np.abs(stamps_s) < MAX_EPOCH_S):
        raise garbage(path, "a timestamp is out of range")
    stamps = np.rint(stamps_s * 1000).astype(np.int64)
    if len(stamps) > 1 and not np.all(np.diff(stamps) > 0):
        raise garbage(path, "timestamps are not in ascending order")
    try:
        values = np.fromiter(map(float, texts), dtype=np.float64, count=len(texts))
    except ValueError:
        raise garbage(path, "a value is not a number") from None
    return stamps, values


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


def _several_series(plan: promql.QueryPlan, label_sets: list[LabelSet]) -> RemoteMirrorError:
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
