"""Aggregation in Prometheus: the PromQL that computes the kit's windows in the store.

An aggregated query of a gauge asks ``query_range`` for one ``*_over_time`` value per
window instead of every raw point, so the mirror receives (and holds) one number
per window. Each window ``[s, s + size)`` is evaluated at ``s + size - 1`` ms over a
range that covers exactly that window:

* Prometheus 2.x selects ``[t - range, t]``, closed at both ends: range ``size - 1`` ms;
* Prometheus 3.x selects ``(t - range, t]``, open on the left: range ``size`` ms.

Which one the store is comes from ``/api/v1/status/buildinfo``; a store that does not
say (another product, no buildinfo) is not asked to aggregate.

The values must be those ``mirror_kit.service`` computes from the raw points, so:

* only a plain selector is pushed down (``__name__``/``__gauge__``): a counter's
  ``rate()`` and a ``~`` expression are evaluated on the ``step`` grid, which
  ``*_over_time`` over samples is not; those keep local aggregation;
* the raw points are NaN-as-0 (or NaN dropped) and never infinite, which a store
  aggregate over NaN or ±Inf samples is not. Where a non-finite sample changes the
  answer without showing, the query carries a guard, ``+ 0 * sum_over_time(...)``,
  which makes the window's value NaN; any non-finite window sends the whole query
  back to local aggregation (``exact``). No guard is needed where the value shows
  it itself: MEAN and SUM (one non-finite sample makes them non-finite), MAX (which
  skips NaN and -Inf as the kit drops them, and shows +Inf; with NaN as 0 a NaN can
  only matter to a negative maximum, which is then aggregated locally) and MIN with
  NaN dropped (the same, mirrored);
* percentiles: ``quantile_over_time(φ)`` interpolates between the order statistics
  around ``φ·(n-1)``, numpy's "linear" (Hyndman & Fan 7), the kit's definition
  (the two formulas round differently: they agree to a few ulp).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

import numpy as np

from ...protocol import AggregationMethod

_OVER_TIME = {
    AggregationMethod.MEAN: "avg_over_time",
    AggregationMethod.MAX: "max_over_time",
    AggregationMethod.MIN: "min_over_time",
    AggregationMethod.SUM: "sum_over_time",
    AggregationMethod.SUM_NO_ZEROS: "sum_over_time",
    AggregationMethod.EVENT_COUNT: "count_over_time",
    AggregationMethod.EVENT_COUNT_NO_ZEROS: "count_over_time",
}
#: Methods whose store value shows every non-finite sample that would change it.
_UNGUARDED = frozenset(
    {
        AggregationMethod.MEAN,
        AggregationMethod.SUM,
        AggregationMethod.SUM_NO_ZEROS,
        AggregationMethod.MAX,
    }
)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


class RangeEnds(str, Enum):
    """How a store's range selector ``[d]`` evaluated at ``t`` bounds its samples."""

    CLOSED = "closed"  # [t - d, t]: Prometheus 2.x
    LEFT_OPEN = "left-open"  # (t - d, t]: Prometheus 3.x

    def range_ms(self, size: int) -> int:
        """The range that selects exactly the samples of ``[t - size + 1, t]``."""
        return size - 1 if self is RangeEnds.CLOSED else size


def range_ends(buildinfo: Any) -> RangeEnds | None:
    """The range semantics of the Prometheus that answered this buildinfo ``data``;
    None when it is not a Prometheus version the kit knows (2.x or 3.x)."""
    version = buildinfo.get("version") if isinstance(buildinfo, dict) else None
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        return None
    major = int(match.group(1))
    return {2: RangeEnds.CLOSED, 3: RangeEnds.LEFT_OPEN}.get(major)


def guarded(method: AggregationMethod, nan_as_zero: bool) -> bool:
    """Whether the method's store value needs the guard to show non-finite samples."""
    if method is AggregationMethod.MIN:
        return nan_as_zero
    return method not in _UNGUARDED


def exact(values: np.ndarray, method: AggregationMethod, nan_as_zero: bool) -> bool:
    """Whether the store's window values are the kit's (else: aggregate locally)."""
    if not np.isfinite(values).all():
        return False
    if method is AggregationMethod.MAX and nan_as_zero:
        return bool((values >= 0).all())  # a NaN served as 0 cannot raise these
    return True


def over_time(
    selector: str, method: AggregationMethod, size: int, ends: RangeEnds, nan_as_zero: bool
) -> str:
    """The PromQL giving, at ``s + size - 1``, the method's value over ``[s, s + size)``
    (non-finite where a non-finite sample would make it differ from the kit's)."""
    if size < 2:
        raise ValueError("a window of 1 ms is a raw point: nothing to aggregate")
    ranged = f"{selector}[{ends.range_ms(size)}ms]"
    percentile = method.percentile
    if percentile is not None:
        value = f"quantile_over_time({percentile / 100!r}, {ranged})"
    else:
        value = f"{_OVER_TIME[method]}({ranged})"
    if not guarded(method, nan_as_zero):
        return value
    return f"{value} + 0 * sum_over_time({ranged})"
