"""Mirror API conditions as PromQL: label matchers, selectors and the query to run.

Every Prometheus label is a STRING field. Conditions become matchers:

* ``StringValue`` -> ``label="value"``
* ``DoubleValue`` / ``BooleanValue`` -> ``label="<text form>"`` (``4``, ``2.5``, ``true``)
* ``InSetValue`` -> ``label=~"a|b"``, each value ``re.escape``d

Three extra fields, as in StackState's own Prometheus mirror:

* ``__counter__ = X`` -> ``rate(X{...}[rateWindow])`` (a counter, served as a per-second rate)
* ``__gauge__ = X`` -> ``X{...}`` (the same as ``__name__ = X``)
* ``~ = expr`` -> ``expr`` as is; it takes no other condition
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ...protocol import (
    EqualityCondition,
    InSetValue,
    MetricNotFoundError,
    RemoteMirrorError,
    StringValue,
    UnsupportedFieldTypeError,
    describe_conditions,
)
from ...protocol.values import as_text
from ..catalog import VALUE_FIELDS

NAME = "__name__"
COUNTER = "__counter__"
GAUGE = "__gauge__"
EXPRESSION = "~"
#: Fields offered on top of Prometheus' own label names, in this order.
SPECIAL_FIELDS = (COUNTER, GAUGE, EXPRESSION)
#: Special fields that name a metric: they narrow like ``__name__``.
METRIC_FIELDS = frozenset({NAME, COUNTER, GAUGE})


def quote(text: str) -> str:
    """A PromQL double-quoted string literal holding ``text`` exactly."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def matcher(label: str, condition: EqualityCondition) -> str:
    """The label matcher a condition stands for."""
    value = condition.value
    if isinstance(value, InSetValue):
        if not value.value:
            raise MetricNotFoundError(condition.describe(), "An empty set selects no series.")
        pattern = "|".join(re.escape(v) for v in sorted(value.value))
        return f"{label}=~{quote(pattern)}"
    return f"{label}={quote(as_text(value.value))}"


def _label_of(key: str) -> str:
    return NAME if key in METRIC_FIELDS else key


def selector(conditions: Sequence[EqualityCondition]) -> str | None:
    """``{a="b",...}`` for the conditions (``__counter__``/``__gauge__`` as ``__name__``);
    None without any. ``~`` conditions are skipped: an expression cannot narrow labels."""
    matchers = [matcher(_label_of(c.key), c) for c in conditions if c.key != EXPRESSION]
    return "{" + ",".join(matchers) + "}" if matchers else None


def expression_condition(conditions: Sequence[EqualityCondition]) -> EqualityCondition | None:
    return next((c for c in conditions if c.key == EXPRESSION), None)


@dataclass(frozen=True)
class QueryPlan:
    """What to ask query_range, and the plain selector behind it (None for ``~``).

    The selector is used to tell "no such series" (MetricNotFoundError) from "no
    samples in this window" (an empty answer).
    """

    expression: str
    selector: str | None
    description: str


def plan(
    conditions: Sequence[EqualityCondition], metric_field: str | None, rate_window_ms: int
) -> QueryPlan:
    """The PromQL a metrics query runs; raises for combinations that mean nothing."""
    conditions = tuple(conditions)
    described = describe_conditions(conditions)
    tilde = expression_condition(conditions)
    if tilde is not None:
        return _expression_plan(tilde, conditions, described)
    kinds = {c.key for c in conditions} & {COUNTER, GAUGE}
    if len(kinds) > 1:
        raise RemoteMirrorError(
            "Conflicting conditions", f"{described}: choose either {COUNTER} or {GAUGE}"
        )
    if not kinds and metric_field is not None and metric_field not in VALUE_FIELDS:
        conditions += (EqualityCondition(NAME, StringValue(metric_field)),)
    chosen = selector(conditions)
    if chosen is None:
        raise RemoteMirrorError(
            "A Prometheus query needs conditions",
            f"choose a metric with {NAME}, {GAUGE} or {COUNTER} (or a PromQL expression "
            f"with {EXPRESSION}), then labels to narrow it",
        )
    if COUNTER in kinds:
        return QueryPlan(f"rate({chosen}[{rate_window_ms}ms])", chosen, described)
    return QueryPlan(chosen, chosen, described)


def _expression_plan(
    tilde: EqualityCondition, conditions: tuple[EqualityCondition, ...], described: str
) -> QueryPlan:
    if not isinstance(tilde.value, StringValue):
        raise UnsupportedFieldTypeError(type(tilde.value).__name__.removesuffix("Value").upper())
    others = [c for c in conditions if c is not tilde]
    if others:
        raise RemoteMirrorError(
            f"A {EXPRESSION} query takes no other conditions",
            f"put label matchers inside the PromQL expression instead of "
            f"{describe_conditions(tuple(others))}",
        )
    if not tilde.value.value.strip():
        raise RemoteMirrorError(f"Empty {EXPRESSION} expression", "type a PromQL expression")
    return QueryPlan(tilde.value.value, None, described)
