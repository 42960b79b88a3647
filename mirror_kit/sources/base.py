"""The TelemetrySource interface: what a mirror needs from any store.

A source answers in the store's terms (field descriptors, value options, raw points
for a time window); it knows nothing of HTTP. Paging (``limit``/``offset``), the
work cap, aggregation and rendering are done once, for every source, by
``mirror_kit.service``. Methods are ``async`` because real stores are reached
over the network; ``connection_details`` is the JSON the user typed into
StackState's Mirror source form, passed through untouched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..protocol import (
    AggregationMethod,
    FieldDescriptor,
    FieldNamesQuery,
    FieldValueOption,
    FieldValuesQuery,
    MetricsQuery,
)

ConnectionDetails = Mapping[str, Any]


@dataclass(frozen=True)
class PointWindow:
    """Which raw points to return: those with ``start <= t < end``, at most ``max_points``.

    With ``newest_first`` the *newest* ``max_points`` are kept (the cut is at the old
    end); points are always returned in ascending time order.
    """

    start: int
    end: int
    max_points: int
    newest_first: bool = False


@dataclass(frozen=True)
class Points:
    """Raw points in ascending time order; ``truncated`` when the window held more."""

    timestamps: np.ndarray
    values: np.ndarray
    truncated: bool = False

    @classmethod
    def empty(cls, truncated: bool = False) -> Points:
        return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64), truncated)

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class WindowSpan:
    """Aggregated windows a store may compute itself: ``count`` windows of ``size`` ms,
    the first starting at ``first`` (a multiple of ``size``), each ``[s, s + size)``."""

    first: int
    count: int
    size: int
    method: AggregationMethod

    @property
    def end(self) -> int:
        """The end of the last window."""
        return self.first + self.count * self.size


class TelemetrySource(ABC):
    """A store the mirror translates Mirror API calls into. Implement the four methods."""

    @abstractmethod
    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        """Return when the store is reachable; raise MetricStoreConnectionError otherwise."""

    @abstractmethod
    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldDescriptor]:
        """All field names available under the query's conditions, in a stable order."""

    @abstractmethod
    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldValueOption]:
        """All options for ``query.field`` under its conditions and prefix, in a stable order.

        The service applies ``offset`` and ``limit``.
        """

    @abstractmethod
    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        """Raw points of the series the query selects, inside ``window``.

        Raise MetricNotFoundError when the conditions select nothing and
        UnsupportedFieldTypeError when a condition's value type does not fit its field.
        """

    async def windows(
        self, query: MetricsQuery, span: WindowSpan, connection_details: ConnectionDetails
    ) -> Points | None:
        """The aggregated windows of ``span`` computed by the store, or None.

        A store that can aggregate (Prometheus' ``*_over_time``) answers one point per
        window holding data, at the window's start, in time order, every value finite
        and equal to what ``mirror_kit.service`` would compute from this source's raw
        points; memory then grows with windows, not points. None (the default) means
        "not exactly": the service fetches raw points and aggregates them itself.
        """
        return None
