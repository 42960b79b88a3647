"""Which sources can be shaped, and through what: the Shapeable protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import T0

from mirror_kit.sources import (
    CsvStore,
    DataFrameSource,
    RoutingSource,
    SeriesShape,
    Shapeable,
    SyntheticSource,
    shaping_of,
)

TABLE = {"timestamp": [T0], "value": [1.0]}


class OwnShapeable:
    """A source of one's own that satisfies the protocol without inheriting anything."""

    def __init__(self) -> None:
        self.current = SeriesShape()

    def series_labels(self) -> list[dict[str, Any]]:
        return [{"host": "mine"}]

    def shape(self, match: Any = None) -> SeriesShape:
        return self.current

    def set_shape(self, match: Any = None, **changes: Any) -> int:
        self.current = self.current.replace(**changes)
        return 1


def test_a_synthetic_source_is_its_own_shaping() -> None:
    source = SyntheticSource()
    assert isinstance(source, Shapeable)
    assert shaping_of(source) is source
    first = source.series_labels()[0]
    assert (first["host"], first["metric"]) == ("a-host", "cpu.user")
    assert [dict(labels) for labels in source.series_labels()] == [
        dict(s.labels) for s in source.catalog.series
    ]


def test_a_router_exposes_its_default_stores_shaping_only() -> None:
    synthetic = SyntheticSource()
    routed = RoutingSource({"synthetic": synthetic, "table": DataFrameSource(TABLE)})
    assert not isinstance(routed, Shapeable)  # whether it can depends on its stores
    assert shaping_of(routed) is synthetic
    assert routed.stores["table"].shapeable() is None

    other = RoutingSource(
        {"synthetic": synthetic, "table": DataFrameSource(TABLE)}, default="table"
    )
    assert shaping_of(other) is None
    assert other.stores["synthetic"].shapeable() is synthetic


def test_a_store_built_per_request_has_no_shaping(tmp_path: Path) -> None:
    routed = RoutingSource(
        {"csv": CsvStore(directory=tmp_path), "synthetic": SyntheticSource()}, default="csv"
    )
    assert shaping_of(routed) is None


@pytest.mark.parametrize("source", [DataFrameSource(TABLE), object()])
def test_what_has_no_shape_is_none(source: object) -> None:
    assert shaping_of(source) is None


def test_a_source_of_ones_own_is_shaped_through_a_router() -> None:
    own = OwnShapeable()
    routed = RoutingSource({"own": own}, default="own")  # type: ignore[dict-item]
    found = shaping_of(routed)
    assert found is own
    assert found.set_shape(amplitude=3.0) == 1
    assert own.shape().amplitude == 3.0
