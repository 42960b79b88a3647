"""Run the load model against any mirror, over HTTP, as StackState's Mirror plugin would.

Every simulated client is one asyncio task: a live stream or a monitor sleeps until
its next poll is due on the simulated clock, asks, records the answer, and sleeps
again; a poll that is still running when the next one is due makes that one late
(one poll per stream at a time, as a poller does). Windows end at the poll's
*scheduled* simulated time, so two runs of the same model ask the same questions
and their answers can be compared (with and without a cache, say).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ..client import AsyncMirrorClient, MetricSeries, MirrorClientError
from ..protocol import CompleteValue, FieldType, FieldValuePattern, MirrorError
from .model import Clock, LoadModel
from .report import PollResult, Report

Conditions = Mapping[str, Any]


@dataclass(frozen=True)
class Progress:
    """How far a run is, handed to ``on_progress`` about every ``progress_every_s``."""

    simulated_s: float
    duration_s: float
    report: Report
    #: real seconds since the load began; times the clock's speed, it runs past
    #: ``duration_s`` when the mirror is too slow for the schedule (polls are late)
    real_s: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.simulated_s / self.duration_s)


ProgressCallback = Callable[[Progress], None]
#: one of the client's calls, taking the client and the query's keywords
Call = Callable[..., Awaitable[Any]]


async def simulate(
    url: str,
    *,
    model: LoadModel,
    clock: Clock,
    api_key: str | None = None,
    connection_details: Mapping[str, Any] | None = None,
    series: Sequence[Conditions] | None = None,
    on_progress: ProgressCallback | None = None,
    progress_every_s: float = 0.5,
) -> Report:
    """Simulate StackState polling the mirror at ``url``; return what it saw.

    ``series`` are the condition sets the streams and monitors ask for (cycled);
    by default they are discovered as the stream wizard finds them.
    """
    ui = AsyncMirrorClient(
        url, api_key, connection_details=connection_details, timeout=model.ui_timeout_s
    )
    server = AsyncMirrorClient(
        url, api_key, connection_details=connection_details, timeout=model.server_timeout_s
    )
    run = _Run(model, clock, ui, server)
    try:
        chosen: list[Conditions] = list(series or await discover_series(ui, clock.start_ms))
        if not chosen:  # nothing discovered: every stream asks without conditions
            chosen = [{}]
        run.report.series = len(chosen)
        await run.all(chosen, on_progress, progress_every_s)
    finally:
        await ui.aclose()
        await server.aclose()
    return run.report


async def discover_series(
    client: AsyncMirrorClient, end_ms: int, most: int = 1000
) -> list[dict[str, Any]]:
    """Condition sets for up to ``most`` series, found as the stream wizard finds them:
    the values of the first text field, then of the next text field under each."""
    fields = await _text_fields(client, end_ms, {})
    if not fields:
        return []
    found: list[dict[str, Any]] = []
    for first in await _complete_values(client, fields[0], end_ms, {}):
        chosen = {fields[0]: first}
        deeper = [f for f in await _text_fields(client, end_ms, chosen) if f not in chosen]
        if not deeper:
            found.append(chosen)
        for second in await _complete_values(client, deeper[0], end_ms, chosen) if deeper else ():
            found.append({**chosen, deeper[0]: second})
        if len(found) >= most:
            break
    return found[:most]


async def _text_fields(client: AsyncMirrorClient, end_ms: int, chosen: Conditions) -> list[str]:
    answer = await client.field_names(end=end_ms, conditions=chosen)
    return [f.field_name for f in answer.fields if f.field_type is FieldType.STRING]


async def _complete_values(
    client: AsyncMirrorClient, field: str, end_ms: int, chosen: Conditions, most_asks: int = 20
) -> list[str]:
    """Whole values of ``field``, following patterns (``cpu.*``) as a user refining would."""
    found: list[str] = []
    prefixes: list[str | None] = [None]
    while prefixes and most_asks > 0:
        most_asks -= 1
        answer = await client.field_values(
            field, prefix=prefixes.pop(0), end=end_ms, conditions=chosen
        )
        for option in answer.values:
            if isinstance(option, CompleteValue):
                found.append(str(option.value))
            else:
                prefixes.append(str(option.value))
    return found


def refining_prefix(answer: Any, value: str) -> str | None:
    """The pattern a user picks on the way to ``value``, if the answer offers one."""
    for option in answer.values:
        text = str(option.value)
        if isinstance(option, FieldValuePattern) and value.startswith(text.rstrip("*")):
            return text
    return None


class _Run:
    """The tasks of one simulation, sharing its clock, clients and report."""

    def __init__(
        self, model: LoadModel, clock: Clock, ui: AsyncMirrorClient, server: AsyncMirrorClient
    ) -> None:
        self.model, self.clock, self.ui, self.server = model, clock, ui, server
        self.report = Report(simulated_s=clock.duration_s)
        self.started = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    async def all(
        self,
        series: list[Conditions],
        on_progress: ProgressCallback | None,
        every_s: float,
    ) -> None:
        m = self.model
        self.started = time.perf_counter()
        tasks = [
            *(
                self._poller(
                    "live stream",
                    i,
                    m.live_streams,
                    series,
                    m.poll_interval_s,
                    m.stream_window_ms,
                    m.stream_method,
                    m.stream_bucket_ms,
                    self.ui,
                )
                for i in range(m.live_streams)
            ),
            *(
                self._poller(
                    "monitor",
                    i,
                    m.monitors,
                    series,
                    m.monitor_interval_s,
                    m.monitor_window_ms,
                    "MEAN",
                    m.monitor_bucket_ms,
                    self.server,
                )
                for i in range(m.monitors)
            ),
            *(self._wizard(i, series) for i in range(m.wizard_sessions)),
        ]
        ticker = asyncio.ensure_future(self._tick(on_progress, every_s))
        try:
            await asyncio.gather(*tasks)
        finally:
            ticker.cancel()
            self.report.real_s = self.elapsed()
        if on_progress is not None:
            duration = self.clock.duration_s
            on_progress(Progress(duration, duration, self.report, self.report.real_s))

    async def _tick(self, on_progress: ProgressCallback | None, every_s: float) -> None:
        while on_progress is not None:
            await asyncio.sleep(every_s)
            elapsed = self.elapsed()
            simulated = min(self.clock.duration_s, elapsed * self.clock.speed)
            on_progress(Progress(simulated, self.clock.duration_s, self.report, elapsed))

    async def _until(self, simulated_s: float) -> None:
        delay = self.clock.real_s(simulated_s) - self.elapsed()
        if delay > 0:
            await asyncio.sleep(delay)

    def _end_ms(self, simulated_s: float) -> int:
        return self.clock.start_ms + int(simulated_s * 1000)

    async def _poller(
        self,
        kind: str,
        index: int,
        count: int,
        series: list[Conditions],
        interval_s: float,
        window_ms: int,
        method: str,
        bucket_ms: int,
        client: AsyncMirrorClient,
    ) -> None:
        """One live stream or monitor: polls spread over the interval, windows sliding."""
        conditions = series[index % len(series)]
        name = f"{kind} {index}"
        previous: PollResult | None = None
        due = interval_s * index / max(count, 1)
        while due < self.clock.duration_s:
            await self._until(due)
            end = self._end_ms(due)
            answer = await self._ask(
                kind,
                _metrics,
                client,
                start=end - window_ms,
                end=end,
                method=method,
                bucket_ms=bucket_ms,
                limit=self.model.max_events_per_poll,
                conditions=conditions,
            )
            if answer is not None:
                self.report.remember(f"{name} @{end}", answer.timestamps, answer.values)
            if answer is not None and len(answer):
                current = PollResult(answer.timestamps, answer.values)
                if previous is not None:
                    self.report.consistency.compare(name, previous, current)
                previous = current
            due += interval_s

    async def _wizard(self, index: int, series: list[Conditions]) -> None:
        """One stream-wizard session: field names, values, refinement, then the series."""
        due = self.clock.duration_s * (index + 0.5) / self.model.wizard_sessions
        await self._until(due)
        end = self._end_ms(due)
        chosen: dict[str, Any] = {}
        for key, value in series[index % len(series)].items():
            fields = await self._ask(
                "wizard field names", _field_names, self.ui, end=end, conditions=chosen
            )
            if fields is None:
                return
            ask = {"field": key, "end": end, "conditions": chosen}
            values = await self._ask("wizard field values", _field_values, self.ui, **ask)
            prefix = None if values is None else refining_prefix(values, str(value))
            if prefix is not None:  # the user picks the pattern, then the value
                values = await self._ask(
                    "wizard field values", _field_values, self.ui, prefix=prefix, **ask
                )
            if values is None:
                return
            chosen[key] = value
        await self._ask(
            "wizard metrics",
            _metrics,
            self.ui,
            start=end - self.model.wizard_window_ms,
            end=end,
            conditions=chosen,
            fetch_all=True,
        )

    async def _ask(self, kind: str, call: Call, client: AsyncMirrorClient, **query: Any) -> Any:
        """One request, timed and recorded under ``kind``; None when it failed."""
        stats = self.report.stats(kind)
        deadline = self.model.ui_timeout_s if client is self.ui else self.model.server_timeout_s
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(call(client, **query), deadline)
        except asyncio.TimeoutError:
            stats.add(deadline * 1000, gave_up=True, error=f"no answer within {deadline:g} s")
            return None
        except (MirrorError, MirrorClientError, httpx.HTTPError) as error:
            stats.add(_ms_since(started), error=f"{type(error).__name__}: {error}")
            return None
        points = len(answer) if isinstance(answer, MetricSeries) else 0
        stats.add(_ms_since(started), points=points)
        return answer


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _field_names(client: AsyncMirrorClient, **query: Any) -> Any:
    return await client.field_names(**query)


async def _field_values(client: AsyncMirrorClient, *, field: str, **query: Any) -> Any:
    return await client.field_values(field, **query)


async def _metrics(client: AsyncMirrorClient, **query: Any) -> Any:
    return await client.metrics(**query)
