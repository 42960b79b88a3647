"""CsvSource / DataFrameSource: a user's own table served like the synthetic catalog."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import HOUR, T0

from mirror_kit.client import build_conditions
from mirror_kit.protocol import (
    Aggregation,
    AggregationMethod,
    FieldDescriptor,
    FieldNamesQuery,
    FieldType,
    FieldValuePattern,
    FieldValuesQuery,
    MetricNotFoundError,
    MetricsQuery,
    MetricsRequest,
    UnsupportedFieldTypeError,
)
from mirror_kit.service import Limits, answer
from mirror_kit.sources import PointWindow
from mirror_kit.sources.tabular import (
    CsvSource,
    DataFrameSource,
    TabularSource,
    parse_timestamps,
    sample_csv_path,
)

MINUTE = 60_000


def sample_rows() -> list[dict[str, str]]:
    with sample_csv_path().open(newline="") as handle:
        return list(csv.DictReader(handle))


async def points(source: TabularSource, start: int, end: int, max_points: int = 10**6, **kw: Any):
    query = MetricsQuery(start, end, build_conditions(None, kw))
    return await source.points(query, PointWindow(start, end, max_points), {})


def test_the_shipped_sample_is_small_and_deterministic() -> None:
    rows = sample_rows()
    assert len(rows) == 300 and {r["host"] for r in rows} == {"a-host", "b-host", "c-host"}
    source = CsvSource.sample()
    assert len(source) == 9  # 3 hosts x 3 value columns
    assert source.value_columns == ["cpu.user", "cpu.system", "mem.used"]


async def test_field_names_and_inferred_types() -> None:
    fields = await CsvSource.sample().field_names(FieldNamesQuery(T0, T0 + HOUR), {})
    assert fields == [
        FieldDescriptor("host", FieldType.STRING),
        FieldDescriptor("region", FieldType.STRING),
        FieldDescriptor("production", FieldType.BOOLEAN),
        FieldDescriptor("metric", FieldType.STRING),
    ]


async def test_values_are_the_file_rows() -> None:
    rows = [r for r in sample_rows() if r["host"] == "c-host"]
    got = await points(CsvSource.sample(), T0, T0 + 2 * HOUR, host="c-host", metric="cpu.system")
    assert len(got) == 100 and not got.truncated
    np.testing.assert_array_equal(got.values, [float(r["cpu.system"]) for r in rows])
    np.testing.assert_array_equal(got.timestamps, T0 + MINUTE * np.arange(100))


async def test_conditions_behave_like_the_synthetic_catalog() -> None:
    source = CsvSource.sample()
    cut = await points(source, T0, T0 + HOUR, production=False, metric="mem.used")
    assert cut.values[0] == 2304.0  # c-host is the only non-production host
    either = await points(source, T0, T0 + HOUR, host=["b-host", "c-host"], metric="mem.used")
    assert either.values[0] == 2176.0  # several series left: the first in file order
    with pytest.raises(MetricNotFoundError):
        await points(source, T0, T0 + HOUR, host="z-host")
    with pytest.raises(MetricNotFoundError, match="No field named 'cores'"):
        await points(source, T0, T0 + HOUR, cores=4)
    with pytest.raises(UnsupportedFieldTypeError):
        await points(source, T0, T0 + HOUR, production=1.0)
    with pytest.raises(MetricNotFoundError):  # strings match by text: "yes" is no boolean
        await points(source, T0, T0 + HOUR, production="yes")


async def test_metric_names_are_offered_hierarchically() -> None:
    source = CsvSource.sample()
    query = FieldValuesQuery(FieldDescriptor("metric"), T0, T0 + HOUR)
    options = await source.field_values(query, {})
    assert [(type(o).__name__, o.value) for o in options] == [
        ("FieldValuePattern", "cpu.*"),
        ("FieldValuePattern", "mem.*"),
    ]
    deeper = FieldValuesQuery(FieldDescriptor("metric"), T0, T0 + HOUR, field_value_prefix="cpu.*")
    assert [o.value for o in await source.field_values(deeper, {})] == ["cpu.system", "cpu.user"]
    assert FieldValuePattern("cpu.*") in options


async def test_the_window_and_max_points_cut_like_other_sources() -> None:
    source = CsvSource.sample()
    inside = await points(source, T0 + 90_000, T0 + 5 * MINUTE, host="a-host", metric="cpu.user")
    np.testing.assert_array_equal(inside.timestamps, T0 + MINUTE * np.arange(2, 5))
    query = MetricsQuery(T0, T0 + HOUR, build_conditions({"host": "a-host"}, {}))
    newest = await source.points(query, PointWindow(T0, T0 + HOUR, 10, newest_first=True), {})
    assert newest.truncated and newest.timestamps[0] == T0 + 50 * MINUTE


async def test_aggregation_is_the_services_with_aligned_windows() -> None:
    rows = [float(r["cpu.user"]) for r in sample_rows() if r["host"] == "b-host"]
    query = MetricsQuery(
        T0 + 7 * MINUTE,
        T0 + 100 * MINUTE,
        build_conditions({"host": "b-host", "metric": "cpu.user"}, {}),
        aggregation=Aggregation(AggregationMethod.MEAN, 30 * MINUTE),
    )
    response = await answer(MetricsRequest(query, {}), CsvSource.sample(), Limits())
    telemetry = response.telemetry
    assert list(telemetry.starts) == [T0 + 30 * MINUTE, T0 + 60 * MINUTE]  # whole windows
    np.testing.assert_allclose(telemetry.values, [np.mean(rows[30:60]), np.mean(rows[60:90])])
    cut = {"edgeBuckets": "partial"}
    response = await answer(MetricsRequest(query, cut), CsvSource.sample(), Limits())
    telemetry = response.telemetry
    assert list(telemetry.starts) == [T0, T0 + 30 * MINUTE, T0 + 60 * MINUTE, T0 + 90 * MINUTE]
    expected = [np.mean(rows[7:30]), np.mean(rows[30:60]), np.mean(rows[60:90])]
    np.testing.assert_allclose(telemetry.values[:3], expected, rtol=1e-12)


async def test_metric_field_selects_a_value_column() -> None:
    """A table has several value fields: metricField names the one to serve."""
    source = CsvSource.sample()
    conditions = build_conditions({"host": "b-host"}, {})
    by_column = {}
    for field in ("cpu.user", "mem.used", None, "double"):
        query = MetricsQuery(T0, T0 + HOUR, conditions, metric_field=field)
        by_column[field] = await source.points(query, PointWindow(T0, T0 + HOUR, 10_000), {})
    rows = [r for r in sample_rows() if r["host"] == "b-host"]
    assert by_column["mem.used"].values[0] == float(rows[0]["mem.used"])
    assert by_column["cpu.user"].values[0] == float(rows[0]["cpu.user"])
    # not a value column: the conditions alone choose (the first series, cpu.user)
    np.testing.assert_array_equal(by_column["double"].values, by_column[None].values)
    np.testing.assert_array_equal(by_column[None].values, by_column["cpu.user"].values)


def test_timestamps_in_iso_epoch_seconds_and_epoch_millis_agree() -> None:
    iso = parse_timestamps(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"], "t")
    naive = parse_timestamps(["2026-01-01T00:00:00"], "t")
    seconds = parse_timestamps(["1767225600", "1767225600.5"], "t")
    millis = parse_timestamps([1_767_225_600_000, 1_767_225_600_500], "t")
    moments = parse_timestamps([datetime(2026, 1, 1, tzinfo=timezone.utc)], "t")
    assert list(iso) == [T0, T0] and list(naive) == [T0] and list(moments) == [T0]
    assert list(seconds) == list(millis) == [T0, T0 + 500]
    with pytest.raises(ValueError, match="row 2: t 'soon' is not ISO 8601"):
        parse_timestamps(["2026-01-01", "soon"], "t")


class FakeFrame:
    """What DataFrameSource needs of a pandas DataFrame (pandas is not a dependency)."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self.columns = columns

    def to_dict(self, orient: str) -> dict[str, list[Any]]:
        assert orient == "list"
        return self.columns


async def test_a_dataframe_or_a_mapping_of_columns() -> None:
    columns = {
        "time": [T0, T0, T0 + MINUTE, T0 + MINUTE],
        "host": ["a", "b", "a", "b"],
        "cores": [4, 8, 4, 8],
        "up": [True, True, False, True],
        "load": [1.5, 2.5, float("nan"), 3.5],
    }
    for table in (FakeFrame(columns), columns):
        source = DataFrameSource(table, label_columns=["host", "cores", "up"])
        types = {f.field_name: f.field_type for f in source.catalog.fields.values()}
        assert types == {
            "host": FieldType.STRING,
            "cores": FieldType.NUMBER,
            "up": FieldType.BOOLEAN,
            "metric": FieldType.STRING,
        }
        b = await points(source, T0, T0 + HOUR, cores=8)
        assert list(b.values) == [2.5, 3.5]
        with pytest.raises(MetricNotFoundError):  # its only value is NaN: no series
            await points(source, T0, T0 + HOUR, host="a", up=False)
        a_up = await points(source, T0, T0 + HOUR, host="a", up=True)
        assert list(a_up.values) == [1.5]


def test_inferred_columns_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "when,host,disk,reads\n1767225600,a,,10\n1767225660,a,sda,\n1767225720,a,sda,12\n"
    )
    source = CsvSource(path, time_column="when")
    assert (source.label_columns, source.value_columns) == (["host", "disk"], ["reads"])
    keys = [s.key for s in source.catalog.series]
    assert keys == ["host=a/reads", "host=a,disk=sda/reads"]  # empty label: no label


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("timestamp,host,metric,value\n0,a,cpu,1\n", {}, "named 'metric'"),
        ("timestamp,host\n0,a\n", {}, "no value column"),
        ("timestamp,host,v\n0,a,1\n1,a\n", {}, "line 3: 2 cells"),
        ("timestamp,host,v\n0,a,x\n", {"value_columns": ["v"]}, "row 1: value column 'v'"),
        ("timestamp,v\n0,1\n", {"time_column": "t"}, "no time column 't'"),
    ],
)
def test_malformed_tables_are_explained(
    tmp_path: Path, text: str, options: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        CsvSource(path, **options)
