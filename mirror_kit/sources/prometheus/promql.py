"""Mirror API conditions as PromQL: label matchers, selectors and the query to run.

Every Prometheus label is a STRING field. Conditions become matchers:

* ``StringValue`` -> ``label="value"``
* ``DoubleValue`` -> ``label="2.5"``; a whole number matches both of its text forms,
  ``label=~"2|2\\.0"`` (stores hold either)
* ``BooleanValue`` -> ``label="true"``
* ``InSetValue`` -> ``label=~"a|b"``, each value ``re.escape``d

Three extra fields, as in StackState's own Prometheus mirror:

* ``__counter__ = X`` -> ``rate(X{...}[rateWindow])``: StackState's docs say counters
  "are transformed to a rate", so the default is the per-second ``rate``;
  ``counterFunction: "increase"`` gives ``increase(X{...}[rateWindow])`` (the increase
  over the window: with ``rateWindow: "60s"`` what the aws-prometheus-mirror serves)
* ``__gauge__ = X`` -> ``X{...}`` (the same as ``__name__ = X``)
* ``~ = expr`` -> ``expr`` as is; it takes no other condition

``metricField`` ("the source field for metric values") names no metric here: a
Prometheus sample has one value, so it is accepted and selects nothing.
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
from ...protocol.values import DoubleValue, as_text, text_forms

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
    if isinstance(value, DoubleValue) and len(forms := text_forms(value.value)) > 1:
        return f"{label}=~{quote('|'.join(re.escape(f) for f in forms))}"
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
    conditions: Sequence[EqualityCondition], rate_window_ms: int, counter_function: str = "rate"
) -> QueryPlan:
    """The PromQL a metrics query runs; raises for combinations that mean nothing.

    ``counter_function`` (``rate`` or ``increase``) is applied to ``__counter__`` metrics.
    """
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
    chosen = selector(conditions)
    if chosen is None:
        raise RemoteMirrorError(
            "A Prometheus query needs conditions",
            f"choose a metric with {NAME}, {GAUGE} or {COUNTER} (or a PromQL expression "
            f"with {EXPRESSION}), then labels to narrow it",
        )
    if COUNTER in kinds:
        expression = f"{counter_function}({chosen}[{rate_window_ms}ms])"
        return QueryPlan(expression, chosen, described)
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
