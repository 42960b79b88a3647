"""What a source offers to be reshaped while it serves: the notebook's shaping panel.

The panel depends on this small Protocol, not on a class: ``SyntheticSource``
satisfies it, and any source of your own can. A source that wraps others (the
``RoutingSource`` that ``serve`` puts in front of every store) is no Shapeable
itself, since whether it can be shaped depends on its stores; it says which of its
sources can be through ``shapeable()`` (an ``ExposesShaping``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..protocol import FieldScalar

if TYPE_CHECKING:
    from .synthetic import SeriesShape

Labels = Mapping[str, FieldScalar]


@runtime_checkable
class Shapeable(Protocol):
    """A source whose series have a SeriesShape that can be changed while it serves.

    ``match`` selects series by labels (all given labels equal); no series matching
    is a KeyError. ``set_shape`` must be safe to call from any thread while requests
    are answered, and raises ValueError (changing nothing) for invalid changes.
    """

    def series_labels(self) -> Sequence[Labels]:
        """The labels of every series, in the order the source lists them."""
        ...

    def shape(self, match: Labels | None = None) -> SeriesShape:
        """The shape of the first series matching ``match``."""
        ...

    def set_shape(self, match: Labels | None = None, **changes: Any) -> int:
        """Change every series matching ``match``; returns how many changed."""
        ...


@runtime_checkable
class ExposesShaping(Protocol):
    """A source standing for others, which knows which of them can be shaped."""

    def shapeable(self) -> Shapeable | None:
        """The Shapeable behind this source, or None when there is none."""
        ...


def shaping_of(source: object) -> Shapeable | None:
    """What changes the series ``source`` serves: the source itself when it is a
    Shapeable, what it exposes when it stands for others, else None."""
    if isinstance(source, Shapeable):
        return source
    if isinstance(source, ExposesShaping):
        return source.shapeable()
    return None
