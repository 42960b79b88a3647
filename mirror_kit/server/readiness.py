"""Readiness: whether every configured store answers, checked rarely and briefly.

``/healthz`` says the process serves (liveness); ``/readyz`` says whether it can
serve *data*: each configured store's Test Connection, all at once, each cut at
``timeout_s``. A probe, a load balancer and a curious caller may ask it many times a
second, so a result is kept ``max_age_s`` and concurrent asks share the check in
progress: the stores see at most one check per ``max_age_s`` per process.

/readyz is open like /healthz (server/auth.py), so its answer says no more than a
short status per store name -- never a store's URL or its error text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ..protocol import MetricStoreConnectionError, MirrorError
from ..sources import RoutingSource, TelemetrySource
from ..sources.routing import SOURCE_KEY
from ..telemetry import UNROUTED

log = logging.getLogger("mirror_kit.server")

OK = "ok"

#: A store's check: return when it answers, raise otherwise.
Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Verdict:
    """The status of each store, and whether all of them answer."""

    stores: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return all(status == OK for status in self.stores.values())

    def to_json(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "not ready", "stores": dict(self.stores)}


def store_checks(source: TelemetrySource) -> dict[str, Check]:
    """One check per configured store: the router's stores by name, else the source."""
    if isinstance(source, RoutingSource):
        return {name: _test_connection(source, {SOURCE_KEY: name}) for name in source.stores}
    return {UNROUTED: _test_connection(source, {})}


def _test_connection(source: TelemetrySource, details: Mapping[str, str]) -> Check:
    async def check() -> None:
        await source.test_connection(details)

    return check


class Readiness:
    """Checks the stores at most once per ``max_age_s``, each within ``timeout_s``."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        timeout_s: float = 1.0,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = dict(checks)
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._verdict: Verdict | None = None
        self._checked_at = float("-inf")
        self._running: asyncio.Task[Verdict] | None = None

    async def verdict(self) -> Verdict:
        """The latest verdict, checked again if it is older than ``max_age_s``."""
        if self._verdict is not None and self.clock() - self._checked_at < self.max_age_s:
            return self._verdict
        if self._running is None:  # one check at a time; everyone else awaits it
            self._running = asyncio.ensure_future(self._check_all())
            self._running.add_done_callback(self._finished)
        return await asyncio.shield(self._running)  # a caller leaving stops no check

    async def close(self) -> None:
        """Stop a check in progress (the mirror is stopping: nobody waits for it)."""
        running = self._running
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    def _finished(self, task: asyncio.Task[Verdict]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._verdict, self._checked_at = task.result(), self.clock()

    async def _check_all(self) -> Verdict:
        names = list(self.checks)
        results = await asyncio.gather(*(self._status(self.checks[n]) for n in names))
        before = self._verdict.stores if self._verdict is not None else {}
        for name, (status, reason) in zip(names, results, strict=True):
            if status != OK and before.get(name) != status:  # the operator's log has why
                log.warning("store %r is not ready (%s): %s", name, status, reason)
        return Verdict({name: status for name, (status, _) in zip(names, results, strict=True)})

    async def _status(self, check: Check) -> tuple[str, str]:
        """(status, why) of one store; ``why`` goes to the log, never to the answer."""
        try:
            await asyncio.wait_for(check(), self.timeout_s)
        except asyncio.TimeoutError:
            return "timeout", f"no answer within {self.timeout_s:g} s"
        except MetricStoreConnectionError as error:
            return "unreachable", str(error)
        except MirrorError as error:
            # a caller's error (a CSV directory with no default file wants a "file"):
            # the store answered; a 5xx is a store that answers badly
            failing = getattr(error, "http_status", 500) >= 500
            return ("failing" if failing else OK), str(error)
        except Exception as error:  # a source's own bug: not ready
            return "failing", repr(error)
        return OK, ""
