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

from abc import abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol import (
    CompleteValue,
    DoubleValue,
    EqualityCondition,
    FieldDescriptor,
    FieldNamesQuery,
    FieldScalar,
    FieldType,
    FieldValueOption,
    FieldValuePattern,
    FieldValuesQuery,
    InSetValue,
    MetricNotFoundError,
    MetricsQuery,
    StringValue,
    UnsupportedFieldTypeError,
    describe_conditions,
)
from ..protocol.values import as_text, text_forms
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
            options.setdefault(text, CompleteValue(text))  # on the wire always text
    return [options[k] for k in sorted(options)]


#: Positions (in catalog order) of the series a condition holds for.
Positions = frozenset[int]
_NOWHERE: Positions = frozenset()


class FieldIndex:
    """Where each value of one field is, built once: text forms and numbers to positions.

    Selection looks conditions up here instead of testing every series: a
    ``StringValue`` or ``InSetValue`` matches by text form (``text_forms``), a
    ``DoubleValue`` by number, anything else by testing the field's distinct values.
    So a request's work is bounded by the catalog, never by what the caller sent: an
    ``InSetValue`` of 55,000 members costs as many set look-ups as the field has text
    forms (when that is fewer), and the set is never copied, hashed or kept.
    """

    def __init__(self) -> None:
        self.by_text: dict[str, Positions] = {}
        self.by_number: dict[float, Positions] = {}
        #: Distinct values, told apart by type too (``True == 1.0`` in Python).
        self.by_value: dict[tuple[type, FieldScalar], Positions] = {}
        self._adding: tuple[dict[Any, set[int]], ...] = ({}, {}, {})

    def add(self, value: FieldScalar, position: int) -> None:
        by_text, by_number, by_value = self._adding
        for form in text_forms(value):
            by_text.setdefault(form, set()).add(position)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            by_number.setdefault(value, set()).add(position)
        by_value.setdefault((type(value), value), set()).add(position)

    def freeze(self) -> None:
        """The position sets made frozensets (shared with callers, never changed)."""
        frozen = ({k: frozenset(v) for k, v in table.items()} for table in self._adding)
        self.by_text, self.by_number, self.by_value = frozen
        self._adding = ({}, {}, {})

    def positions(self, condition: EqualityCondition) -> Positions:
        """Where ``condition`` holds: what ``condition.matches`` says of each value."""
        value = condition.value
        if isinstance(value, StringValue):
            return self.by_text.get(value.value, _NOWHERE)
        if isinstance(value, InSetValue):
            return self._in_set(value.value)
        if isinstance(value, DoubleValue):
            return self.by_number.get(value.value, _NOWHERE)
        return _union(p for (_, v), p in self.by_value.items() if condition.matches(v))

    def _in_set(self, members: Collection[str]) -> Positions:
        if not isinstance(members, (set, frozenset)):
            members = frozenset(members)
        texts = self.by_text
        if len(members) < len(texts):
            return _union(texts[m] for m in members if m in texts)
        return _union(p for text, p in texts.items() if text in members)


def _union(parts: Iterable[Positions]) -> Positions:
    return frozenset().union(*parts)


class SeriesCatalog:
    """An immutable list of labelled series with the fields their labels define."""

    def __init__(
        self,
        series: Sequence[LabeledSeries],
        metric_label: str = "metric",
        value_fields: Iterable[str] = (),
    ) -> None:
        self.series = tuple(series)
        self.metric_label = metric_label
        #: The store's value fields ``metricField`` chooses among (a table's columns).
        self.value_fields = frozenset(value_fields)
        fields: dict[str, FieldDescriptor] = {}
        index: dict[str, FieldIndex] = {}
        for position, s in enumerate(self.series):
            for name, value in s.labels.items():
                fields.setdefault(name, FieldDescriptor(name, _field_type(value)))
                index.setdefault(name, FieldIndex()).add(value, position)
        for field_index in index.values():
            field_index.freeze()
        self.fields = fields
        self._index = index

    def select(
        self, conditions: Sequence[EqualityCondition], metric_field: str | None = None
    ) -> tuple[LabeledSeries, ...]:
        """The series all conditions hold for, in catalog order; never empty.

        Each condition is looked up in its field's index (FieldIndex) and the
        positions intersected: the work is bounded by the catalog, whatever the
        conditions hold, and nothing of them is kept after the call.
        """
        conditions = tuple(conditions)
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
        if not conditions:
            return self.series
        found = sorted((self._index[c.key].positions(c) for c in conditions), key=len)
        chosen = found[0].intersection(*found[1:])
        if not chosen:
            raise MetricNotFoundError(
                describe_conditions(conditions), "No series matches these conditions."
            )
        series = self.series
        return tuple(series[position] for position in sorted(chosen))

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
