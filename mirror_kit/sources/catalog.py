"""A catalog of labelled series and the query semantics every label-based source shares.

A series is described by its labels (``host=a-host, metric=cpu.user, ...``). The
catalog turns a query's conditions into the series they select, narrows field
names, and lists field values with ``FieldValuePattern`` entries for the next level
of dotted names. The synthetic and CSV sources both stand on it.

Rules (documented in the README):

* Conditions are ANDed; an InSetValue holds when the field equals any listed value.
* A condition on a field no series has, or conditions that leave no series, raise
  MetricNotFoundError naming the conditions. A value whose type does not fit the
  field's type raises UnsupportedFieldTypeError.
* When several series are left, the *first in catalog order* is served.
* ``metricField`` is "the source field for metric values": where the store has
  several value fields (a table's value columns, ``value_fields``) it picks one, as a
  condition on the metric label; anywhere else (StackState sends ``"double"``,
  ``"rawValue"``, a condition key...) it is accepted and changes nothing.
* Field names under conditions that match nothing are an empty list, as field values
  are (an unknown field in a condition still matches nothing).
* Field values ignore conditions on the field being listed (so the wizard can offer
  the alternatives to what is already chosen).
"""

from __future__ import annotations

import sys
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..protocol import (
    CompleteValue,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldScalar,
    FieldType,
    FieldValueOption,
    FieldValuePattern,
    FieldValuesQuery,
    MetricNotFoundError,
    MetricsQuery,
    StringValue,
    UnsupportedFieldTypeError,
    describe_conditions,
)
from ..protocol.values import as_text
from .base import ConnectionDetails, Points, PointWindow, TelemetrySource


@dataclass(frozen=True)
class LabeledSeries:
    key: str
    labels: Mapping[str, FieldScalar]


def _field_type(value: FieldScalar) -> FieldType:
    if isinstance(value, bool):
        return FieldType.BOOLEAN
    if isinstance(value, (int, float)):
        return FieldType.NUMBER
    return FieldType.STRING


def hierarchical_options(values: Iterable[FieldScalar], prefix: str) -> list[FieldValueOption]:
    """Values starting with ``prefix``; dotted names deeper than one level become patterns.

    With prefix ``""``, ``cpu.user`` and ``cpu.system`` give ``cpu.*``; with prefix
    ``cpu.`` (or the pattern ``cpu.*`` itself) they are offered whole.
    """
    prefix = prefix[:-1] if prefix.endswith("*") else prefix
    options: dict[str, FieldValueOption] = {}
    for value in values:
        text = as_text(value)
        if not text.startswith(prefix):
            continue
        dot = text.find(".", len(prefix))
        if isinstance(value, str) and dot >= 0:
            pattern = text[: dot + 1] + "*"
            options.setdefault(pattern, FieldValuePattern(pattern))
        else:
            options.setdefault(text, CompleteValue(value))
    return [options[k] for k in sorted(options)]


_MemoKey = tuple[tuple[EqualityCondition, ...], "str | None"]


class SelectionMemo:
    """The latest selections, least recently used dropped first, within ``max_bytes``.

    Bounded in bytes, not entries: a key is what the caller sent (one condition set
    may be a 1 MiB ``InSetValue``), a value may hold every series. A selection
    costing more than an eighth of the budget is not kept at all, so one hostile
    request can neither fill the memo nor flush it. functools.lru_cache and
    cachetools count entries or the value only; the key's size is what matters here.
    Thread-safe: notebooks call sources from their own threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self._entries: OrderedDict[_MemoKey, tuple[tuple[LabeledSeries, ...], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _MemoKey) -> tuple[LabeledSeries, ...] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: _MemoKey, chosen: tuple[LabeledSeries, ...]) -> None:
        cost = _key_bytes(key) + sys.getsizeof(chosen)
        if cost > self.max_bytes // 8:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self.size_bytes -= previous[1]
            self._entries[key] = (chosen, cost)
            self.size_bytes += cost
            while self.size_bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.size_bytes -= dropped

    def __len__(self) -> int:
        return len(self._entries)


#: What a condition or a key tuple costs besides its strings (objects, tuple slots).
_CONDITION_BYTES = 200


def _key_bytes(key: _MemoKey) -> int:
    """About what a memo key holds in memory: its strings and the objects around them."""
    conditions, metric_field = key
    total = sys.getsizeof(conditions) + sys.getsizeof(metric_field)
    for condition in conditions:
        total += _CONDITION_BYTES + sys.getsizeof(condition.key)
        value = condition.value.value
        if isinstance(value, frozenset):
            total += sys.getsizeof(value) + sum(map(sys.getsizeof, value))
        else:
            total += sys.getsizeof(value)
    return total


class SeriesCatalog:
    """An immutable list of labelled series with the fields their labels define."""

    def __init__(
        self,
        series: Sequence[LabeledSeries],
        metric_label: str = "metric",
        value_fields: Iterable[str] = (),
        memo_bytes: int = 1 << 20,
    ) -> None:
        self.series = tuple(series)
        self.metric_label = metric_label
        #: The store's value fields ``metricField`` chooses among (a table's columns).
        self.value_fields = frozenset(value_fields)
        fields: dict[str, FieldDescriptor] = {}
        for s in self.series:
            for name, value in s.labels.items():
                fields.setdefault(name, FieldDescriptor(name, _field_type(value)))
        self.fields = fields
        self._memo = SelectionMemo(memo_bytes)

    def select(
        self, conditions: Sequence[EqualityCondition], metric_field: str | None = None
    ) -> tuple[LabeledSeries, ...]:
        """The series all conditions hold for, in catalog order; never empty.

        Remembered within a byte budget (SelectionMemo): StackState asks for the same
        streams again and again, and the labels never change.
        """
        key = (tuple(conditions), metric_field)
        chosen = self._memo.get(key)
        if chosen is None:
            chosen = self._find(*key)
            self._memo.put(key, chosen)
        return chosen

    def _find(
        self, conditions: tuple[EqualityCondition, ...], metric_field: str | None
    ) -> tuple[LabeledSeries, ...]:
        if metric_field in self.value_fields:
            conditions += (EqualityCondition(self.metric_label, StringValue(metric_field)),)
        for condition in conditions:
            field = self.fields.get(condition.key)
            if field is None:
                raise MetricNotFoundError(
                    describe_conditions(conditions),
                    f"No field named {condition.key!r}; fields are {', '.join(self.fields)}.",
                )
            condition.check_type(field.field_type)
        chosen = tuple(s for s in self.series if _holds(s, conditions))
        if not chosen:
            raise MetricNotFoundError(
                describe_conditions(conditions), "No series matches these conditions."
            )
        return chosen

    def field_names(self, conditions: Sequence[EqualityCondition]) -> list[FieldDescriptor]:
        """Names on the series the conditions select; none when they select nothing."""
        try:
            chosen = self.select(conditions)
        except MetricNotFoundError:
            return []
        present = {name for s in chosen for name in s.labels}
        return [f for name, f in self.fields.items() if name in present]

    def field_values(self, query: FieldValuesQuery) -> list[FieldValueOption]:
        name = query.field.field_name
        field = self.fields.get(name)
        if field is None:
            raise MetricNotFoundError(name, f"No field named {name!r}.")
        if field.field_type.kind is not query.field.field_type.kind:
            raise UnsupportedFieldTypeError(query.field.field_type.value)
        others = [c for c in query.conditions if c.key != name]
        try:
            chosen = self.select(others)
        except MetricNotFoundError:
            return []
        values = {s.labels[name] for s in chosen if name in s.labels}
        return hierarchical_options(values, query.field_value_prefix or "")


def _holds(series: LabeledSeries, conditions: Sequence[EqualityCondition]) -> bool:
    return all(c.key in series.labels and c.matches(series.labels[c.key]) for c in conditions)


class CatalogSource(TelemetrySource):
    """A source whose series are a SeriesCatalog: only ``series_points`` is left to write.

    Field names, field values and the choice of series follow the catalog's rules;
    the store is always reachable (it is in memory or generated).
    """

    catalog: SeriesCatalog

    @abstractmethod
    def series_points(self, series: LabeledSeries, window: PointWindow) -> Points:
        """Raw points of one series inside the window (see TelemetrySource.points)."""

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        return None

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> list[FieldDescriptor]:
        return self.catalog.field_names(query.conditions)

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> list[FieldValueOption]:
        return self.catalog.field_values(query)

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        series = self.catalog.select(query.conditions, query.metric_field)[0]
        return self.series_points(series, window)
