"""Replay a user's own table (a CSV file or a DataFrame) through the mirror.

One format, "wide": one row per timestamp and label combination::

    timestamp,host,region,production,cpu.user,mem.used
    2026-01-01T00:00:00Z,a-host,eu-west,true,35.0,2048

* the **timestamp** column (``timestamp`` if present, else ``time``, else the first
  column, or ``time_column=``) holds ISO 8601 (``Z``/offset; naive means UTC),
  epoch seconds, or epoch milliseconds (a numeric column whose largest magnitude
  is at least 1e11 is read as milliseconds, otherwise as seconds);
* **value** columns hold numbers; each becomes one series per label combination,
  with the label ``metric`` set to the column's name (so ``cpu.user`` and
  ``cpu.system`` are offered as the pattern ``cpu.*``); a query's ``metricField``
  naming a value column selects that column (other ``metricField``s change nothing);
* **label** columns become fields, typed BOOLEAN (all ``true``/``false``), NUMBER
  (all numbers) or STRING.

Without ``value_columns``/``label_columns`` a column is a value column when every
non-empty cell is a number, and a label otherwise; pass them to decide yourself
(a numeric label such as ``cores`` needs ``label_columns``). Empty cells are
skipped: an empty value is no point, an empty label is no label for that row.
The table stands on SeriesCatalog, so conditions, field names and values behave
exactly as for the synthetic source.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol import (
    FieldScalar,
)
from .base import ConnectionDetails, Points, PointWindow
from .catalog import CatalogSource, LabeledSeries, SeriesCatalog

METRIC_LABEL = "metric"
#: Epoch values at least this large are milliseconds (1e11 s is the year 5138).
MILLIS_THRESHOLD = 1e11
TIME_COLUMN_NAMES = ("timestamp", "time")
Columns = Mapping[str, Sequence[Any]]


def sample_csv_path() -> Path:
    """The CSV shipped with the kit: three hosts, three metrics, 100 minutes each."""
    return Path(str(resources.files("mirror_kit") / "data" / "sample.csv"))


def _empty(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, str):
        return not cell.strip()
    return isinstance(cell, (float, np.floating)) and math.isnan(cell)


def _number(cell: Any) -> float | None:
    """The cell as a float, or None when it is not a number (booleans are not)."""
    if isinstance(cell, (bool, np.bool_)):
        return None
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return float(cell)
    if isinstance(cell, str):
        try:
            return float(cell)
        except ValueError:
            return None
    return None


def _boolean(cell: Any) -> bool | None:
    if isinstance(cell, (bool, np.bool_)):
        return bool(cell)
    if isinstance(cell, str) and cell.strip().lower() in ("true", "false"):
        return cell.strip().lower() == "true"
    return None


def _label_parser(cells: Sequence[Any]) -> Callable[[Any], FieldScalar]:
    """How to read a label column's cells: as BOOLEAN, NUMBER or STRING, by content."""
    present = [c for c in cells if not _empty(c)]
    if present and all(_boolean(c) is not None for c in present):
        return lambda c: bool(_boolean(c))
    if present and all(_number(c) is not None for c in present):
        return lambda c: float(_number(c) or 0.0)
    return lambda c: str(c).strip()


def _value(cell: Any, column: str, row: int) -> float | None:
    """A value cell as a float; None when empty; ValueError naming the cell otherwise."""
    if _empty(cell):
        return None
    number = _number(cell)
    if number is None:
        raise ValueError(f"row {row + 1}: value column {column!r} holds {cell!r}, not a number")
    return number


def _is_value_column(cells: Sequence[Any]) -> bool:
    present = [c for c in cells if not _empty(c)]
    return bool(present) and all(_number(c) is not None for c in present)


def _datetime_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def parse_timestamps(cells: Sequence[Any], column: str) -> np.ndarray:
    """Epoch ms for a timestamp column; ValueError naming the first bad row."""
    numbers = [_number(c) for c in cells]
    numeric = [abs(n) for n in numbers if n is not None]
    scale = 1.0 if numeric and max(numeric) >= MILLIS_THRESHOLD else 1000.0
    out = np.empty(len(cells), dtype=np.int64)
    for row, (cell, number) in enumerate(zip(cells, numbers, strict=True)):
        if number is not None:
            out[row] = round(number * scale)
        elif isinstance(cell, datetime):
            out[row] = _datetime_ms(cell)
        elif isinstance(cell, np.datetime64):
            out[row] = int(cell.astype("datetime64[ms]").astype(np.int64))
        elif isinstance(cell, str) and cell.strip():
            text = cell.strip()
            try:
                out[row] = _datetime_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
            except ValueError:
                raise ValueError(
                    f"row {row + 1}: {column} {text!r} is not ISO 8601, epoch s or epoch ms"
                ) from None
        else:
            raise ValueError(f"row {row + 1}: {column} is empty")
    return out


class TabularSource(CatalogSource):
    """Series built from a table of columns (see the module docstring for the format)."""

    def __init__(
        self,
        columns: Columns,
        *,
        time_column: str | None = None,
        label_columns: Sequence[str] | None = None,
        value_columns: Sequence[str] | None = None,
    ) -> None:
        columns = {str(k): list(v) for k, v in columns.items()}
        lengths = {len(v) for v in columns.values()}
        if not columns or len(lengths) != 1:
            raise ValueError("a table needs columns of equal length")
        self.time_column = _time_column(columns, time_column)
        labels, values = _classify(columns, self.time_column, label_columns, value_columns)
        self.label_columns, self.value_columns = labels, values
        timestamps = parse_timestamps(columns[self.time_column], self.time_column)
        built = _build_series(columns, timestamps, labels, values)
        if not built:
            raise ValueError("the table holds no value: every value cell is empty")
        self.catalog = SeriesCatalog([s for s, _, _ in built], METRIC_LABEL, values)
        self._data = {s.key: (t, v) for s, t, v in built}

    def __len__(self) -> int:
        """The number of series."""
        return len(self._data)

    def series_points(self, series: LabeledSeries, window: PointWindow) -> Points:
        timestamps, values = self._data[series.key]
        first = int(np.searchsorted(timestamps, window.start, side="left"))
        end = int(np.searchsorted(timestamps, window.end, side="left"))
        keep = max(window.max_points, 0)
        truncated = end - first > keep
        if truncated:
            first, end = (end - keep, end) if window.newest_first else (first, first + keep)
        return Points(timestamps[first:end], values[first:end], truncated)


class CsvSource(TabularSource):
    """A CSV file (read with the stdlib csv module; UTF-8, header row first)."""

    def __init__(self, path: str | Path, **options: Any) -> None:
        self.path = Path(path)
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise ValueError(f"{self.path}: no header row")
            rows = [row for row in reader if any(cell.strip() for cell in row)]
        for number, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise ValueError(
                    f"{self.path}, line {number}: {len(row)} cells, the header has {len(header)}"
                )
        super().__init__(
            {name: [row[i] for row in rows] for i, name in enumerate(header)}, **options
        )

    @classmethod
    def sample(cls) -> CsvSource:
        """The CSV shipped with the kit (mirror_kit/data/sample.csv)."""
        return cls(sample_csv_path())

    def __repr__(self) -> str:
        return f"CsvSource({str(self.path)!r}, series={len(self)})"


class DataFrameSource(TabularSource):
    """A pandas DataFrame (anything with ``.to_dict("list")``) or a mapping of columns.

    pandas is not a dependency of the kit: the frame is read through ``to_dict``.
    """

    def __init__(self, frame: Any, **options: Any) -> None:
        to_dict = getattr(frame, "to_dict", None)
        if callable(to_dict) and not isinstance(frame, Mapping):
            columns = to_dict("list")
        elif isinstance(frame, Mapping):
            columns = frame
        else:
            raise TypeError("expected a DataFrame (with .to_dict('list')) or a mapping of columns")
        super().__init__(columns, **options)


def csv_factory(directory: str | Path) -> Callable[[ConnectionDetails], CsvSource]:
    """A RoutingSource factory serving CSV files of one directory, chosen per request.

    Connection details: ``{"source": "csv", "file": "sample.csv"}`` plus optional
    ``timeColumn``, ``labelColumns``, ``valueColumns``. Only files inside
    ``directory`` can be named: the form's user cannot read anything else.
    """
    root = Path(directory).resolve()

    def build(details: ConnectionDetails) -> CsvSource:
        name = details.get("file")
        if not isinstance(name, str) or not name:
            raise ValueError('"file" must name a CSV file of the mirror\'s data directory')
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ValueError(f'"file" {name!r} is not a file of the mirror\'s data directory')
        return CsvSource(
            path,
            time_column=details.get("timeColumn"),
            label_columns=details.get("labelColumns"),
            value_columns=details.get("valueColumns"),
        )

    return build


def _time_column(columns: Mapping[str, Sequence[Any]], chosen: str | None) -> str:
    if chosen is not None:
        if chosen not in columns:
            raise ValueError(f"no time column {chosen!r}; columns are {', '.join(columns)}")
        return chosen
    return next((n for n in TIME_COLUMN_NAMES if n in columns), next(iter(columns)))


def _classify(
    columns: Mapping[str, Sequence[Any]],
    time_column: str,
    label_columns: Sequence[str] | None,
    value_columns: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """(label columns, value columns): as given, or inferred from the cells."""
    rest = [n for n in columns if n != time_column]
    for name in [*(label_columns or ()), *(value_columns or ())]:
        if name not in rest:
            raise ValueError(f"no column {name!r} besides the time column")
    if value_columns is not None:
        values = list(value_columns)
    elif label_columns is not None:
        values = [n for n in rest if n not in label_columns]
    else:
        values = [n for n in rest if _is_value_column(columns[n])]
    labels = list(label_columns) if label_columns is not None else []
    labels += [n for n in rest if n not in values and n not in labels]
    if not values:
        raise ValueError("no value column: no column holds only numbers")
    if METRIC_LABEL in labels:
        raise ValueError(
            f"a label column is named {METRIC_LABEL!r}, the label each value column's name "
            "gets: rename it (the format is wide: one column per metric)"
        )
    return labels, values


def _build_series(
    columns: Mapping[str, Sequence[Any]],
    timestamps: np.ndarray,
    label_columns: list[str],
    value_columns: list[str],
) -> list[tuple[LabeledSeries, np.ndarray, np.ndarray]]:
    """One series per (label combination, value column), points sorted by time."""
    parsers = {n: _label_parser(columns[n]) for n in label_columns}
    groups: dict[tuple[tuple[str, FieldScalar], ...], list[int]] = {}
    for row in range(len(timestamps)):
        key = tuple(
            (n, parsers[n](columns[n][row])) for n in label_columns if not _empty(columns[n][row])
        )
        groups.setdefault(key, []).append(row)
    out = []
    for labels, rows in groups.items():
        for metric in value_columns:
            kept = [(timestamps[r], _value(columns[metric][r], metric, r)) for r in rows]
            kept = [(t, v) for t, v in kept if v is not None and not math.isnan(v)]
            if not kept:
                continue
            kept.sort(key=lambda p: p[0])
            name = ",".join(f"{k}={v}" for k, v in labels)
            series = LabeledSeries(f"{name}/{metric}", {**dict(labels), METRIC_LABEL: metric})
            t = np.fromiter((p[0] for p in kept), dtype=np.int64, count=len(kept))
            v = np.fromiter((p[1] for p in kept), dtype=np.float64, count=len(kept))
            out.append((series, t, v))
    return out
