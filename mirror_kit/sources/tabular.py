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

``CsvStore`` serves CSV files as a store the operator configures: one file, or
the files of one directory picked by ``{"file": "x.csv"}``; it parses off the
event loop, re-reads a file when it changes, and never shows a server path.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol import FieldScalar, MetricStoreConnectionError, MirrorError, RemoteMirrorError
from .base import ConnectionDetails, Points, PointWindow
from .catalog import CatalogSource, LabeledSeries, SeriesCatalog
from .redaction import hide_paths
from .routing import FILE_KEY, Store, close_quietly

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
    """A CSV file (read with the stdlib csv module; UTF-8, header row first).

    Errors name the file as ``name`` (its file name by default), never its path.
    """

    def __init__(self, path: str | Path, *, name: str | None = None, **options: Any) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
                if not header:
                    raise ValueError(f"{self.name}: no header row")
                rows = [row for row in reader if any(cell.strip() for cell in row)]
            except csv.Error as error:
                raise ValueError(f"{self.name}, line {reader.line_num}: {error}") from None
        for number, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise ValueError(
                    f"{self.name}, line {number}: {len(row)} cells, the header has {len(header)}"
                )
        super().__init__(
            {name: [row[i] for row in rows] for i, name in enumerate(header)}, **options
        )

    @classmethod
    def sample(cls) -> CsvSource:
        """The CSV shipped with the kit (mirror_kit/data/sample.csv)."""
        return cls(sample_csv_path())

    def __repr__(self) -> str:
        return f"CsvSource({self.name!r}, series={len(self)})"


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


#: Largest CSV file a store parses (parsing holds about ten times its size, briefly).
DEFAULT_MAX_FILE_BYTES = 16 << 20
#: Parses a store queues at most (a caller varying column choices cannot queue more).
MAX_PENDING_PARSES = 2
#: Parsed tables a directory store keeps (least recently used dropped first) ...
DEFAULT_CACHE_SIZE = 8
#: ... and the file bytes they may stand for together.
DEFAULT_CACHE_BYTES = 64 << 20
_OPTION_KEYS = (
    ("timeColumn", "time_column"),
    ("labelColumns", "label_columns"),
    ("valueColumns", "value_columns"),
)


@dataclass(frozen=True)
class _Parsed:
    """A parse of one file version: its source, or the error it gave."""

    signature: tuple[int, int]  # (mtime_ns, size): a change of either re-reads the file
    size: int
    source: CsvSource | None = None
    error: MirrorError | None = None


class CsvStore(Store):
    """CSV files as a store: one ``file``, or the files of a ``directory`` picked by
    ``{"file": "x.csv"}`` in the connection details (``file`` is then the one served
    without it). Only files inside ``directory`` can be named, symlinks included.

    Each file is parsed on the store's own worker thread, one at a time, never on the
    event loop; concurrent requests for one file share one parse, and at most
    MAX_PENDING_PARSES parses wait (past that a request gets a 502 "busy"). A parse is kept
    until the file's modification time or size changes, then the file is read again;
    a file gone is a MetricStoreConnectionError. Caller-chosen ``timeColumn``,
    ``labelColumns`` and ``valueColumns`` are part of what selects a parse; every
    other key of the details is ignored.
    """

    kind = "csv"

    def __init__(
        self,
        file: str | Path | None = None,
        directory: str | Path | None = None,
        *,
        name: str = "csv",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        **options: Any,
    ) -> None:
        if file is None and directory is None:
            raise ValueError(f"CSV store {name!r} needs a file or a directory")
        if min(max_file_bytes, cache_size, cache_bytes) < 1:
            raise ValueError("max_file_bytes, cache_size and cache_bytes must be positive")
        self.name = name
        self.root = None if directory is None else Path(directory).resolve()
        if self.root is not None and not self.root.is_dir():
            raise ValueError(f"CSV store {name!r}: {directory} is not a directory")
        self.file = None if file is None else self._resolve(str(file))
        if self.file is not None and not self.file.is_file():
            raise ValueError(f"CSV store {name!r}: {file} is not a file")
        self.takes_files = self.root is not None
        self.max_file_bytes, self.cache_size, self.cache_bytes = (
            max_file_bytes,
            cache_size,
            cache_bytes,
        )
        self.options = options
        self._parsed: OrderedDict[Any, _Parsed] = OrderedDict()
        self._parsing: dict[Any, asyncio.Future[_Parsed]] = {}
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"mirror-kit-csv-{name}")

    def _resolve(self, name: str) -> Path:
        path = Path(name)
        if self.root is None or path.is_absolute():
            return path.resolve()
        return (self.root / path).resolve()

    def _target(self, details: ConnectionDetails) -> tuple[Path, str, dict[str, Any]]:
        """(path, name shown in errors, parse options) for a request; 400 when the
        details name a file outside the directory or malformed options."""
        name = details.get(FILE_KEY)
        if name is None:
            if self.file is None:
                raise RemoteMirrorError(
                    "Invalid connection details",
                    f'"{FILE_KEY}" must name a CSV file of store {self.name!r}',
                )
            path = self.file
            shown = path.name
        else:
            if not isinstance(name, str) or not name or len(name) > 255 or "\0" in name:
                raise RemoteMirrorError(
                    "Invalid connection details", f'"{FILE_KEY}" must be a file name'
                )
            path, shown = self._resolve(name), name
            assert self.root is not None  # takes_files: the router let "file" through
            known = any(key[0] == str(path) for key in self._parsed)  # gone: say so below
            if not path.is_relative_to(self.root) or not (known or path.is_file()):
                raise RemoteMirrorError(
                    "Invalid connection details",
                    f'"{FILE_KEY}" {name!r} is not a file of store {self.name!r}',
                )
        return path, shown, {**self.options, **_parse_options(details)}

    async def source(self, connection_details: ConnectionDetails) -> CsvSource:
        path, shown, options = self._target(connection_details)
        key = (str(path), tuple(sorted((k, _hashable(v)) for k, v in options.items())))
        signature = self._signature(path, shown)
        parsed = self._parsed.get(key)
        if parsed is None or parsed.signature != signature:
            parsed = await self._parse(key, signature, path, shown, options)
        else:
            self._parsed.move_to_end(key)
        if parsed.error is not None:
            raise parsed.error
        assert parsed.source is not None
        return parsed.source

    def _signature(self, path: Path, shown: str) -> tuple[int, int]:
        try:
            stat = path.stat()
        except OSError:
            raise MetricStoreConnectionError(
                f"The CSV file {shown!r} of store {self.name!r} is gone"
            ) from None
        if stat.st_size > self.max_file_bytes:
            raise RemoteMirrorError(
                f"The CSV file {shown!r} is too large",
                f"{stat.st_size:,} bytes, more than store {self.name!r} reads "
                f"({self.max_file_bytes:,}, its maxFileBytes)",
                http_status=502,
            )
        return stat.st_mtime_ns, stat.st_size

    async def _parse(
        self, key: Any, signature: tuple[int, int], path: Path, shown: str, options: Any
    ) -> _Parsed:
        """Parse on the worker thread; requests for one file version share the parse."""
        job = (key, signature)
        future = self._parsing.get(job)
        if future is None:
            if len(self._parsing) >= MAX_PENDING_PARSES:
                raise RemoteMirrorError(
                    f"CSV store {self.name!r} is busy reading other files",
                    "try again in a moment",
                    http_status=502,
                )
            future = asyncio.wrap_future(
                self._worker.submit(self._read, signature, path, shown, options)
            )
            self._parsing[job] = future
            # On the loop, not the worker thread: requests already queued behind this one
            # still find the job; the parse is kept even if every waiting request gave up.
            future.add_done_callback(functools.partial(self._finish, key, job))
        return await asyncio.shield(future)

    def _finish(self, key: Any, job: Any, done: asyncio.Future[_Parsed]) -> None:
        """A parse ended: keep its result, then forget the job (in that order)."""
        if not done.cancelled() and done.exception() is None:
            parsed = done.result()
            current = self._parsed.get(key)
            if current is None or current.signature != parsed.signature:
                self._keep(key, parsed, current)
        self._parsing.pop(job, None)

    def _read(
        self, signature: tuple[int, int], path: Path, shown: str, options: dict[str, Any]
    ) -> _Parsed:
        """Runs on the worker thread: the parse, or the protocol error it is."""
        try:
            source = CsvSource(path, name=shown, **options)
        except FileNotFoundError:
            error: MirrorError = MetricStoreConnectionError(
                f"The CSV file {shown!r} of store {self.name!r} is gone"
            )
        except UnicodeDecodeError:
            error = self._unreadable(shown, "it is not UTF-8 text")
        except OSError as failure:
            error = self._unreadable(shown, failure.strerror or type(failure).__name__)
        except (ValueError, TypeError) as failure:
            reason = hide_paths(str(failure))
            # the caller's column choices do not fit the file: the caller's fault (400)
            caller = any(key in options and key not in self.options for _, key in _OPTION_KEYS)
            error = RemoteMirrorError(
                f"Invalid CSV for store {self.name!r}", reason, http_status=400 if caller else 502
            )
        else:
            return _Parsed(signature, signature[1], source=source)
        return _Parsed(signature, signature[1], error=error)

    def _unreadable(self, shown: str, reason: str) -> MirrorError:
        return RemoteMirrorError(
            f"The CSV file {shown!r} of store {self.name!r} cannot be read",
            hide_paths(reason),
            http_status=502,
        )

    def _keep(self, key: Any, parsed: _Parsed, replaced: _Parsed | None) -> None:
        """Cache a parse, dropping the least recently used past the count or byte bound."""
        self._parsed[key] = parsed
        self._parsed.move_to_end(key)
        dropped = [] if replaced is None else [replaced]
        while len(self._parsed) > 1 and (
            len(self._parsed) > self.cache_size
            or sum(p.size for p in self._parsed.values()) > self.cache_bytes
        ):
            dropped.append(self._parsed.popitem(last=False)[1])
        for old in dropped:
            if old.source is not None and hasattr(old.source, "aclose"):
                asyncio.get_running_loop().create_task(close_quietly(old.source))

    @property
    def cached(self) -> list[CsvSource]:
        """The parsed tables kept, least recently used first."""
        return [p.source for p in self._parsed.values() if p.source is not None]

    async def aclose(self) -> None:
        self._parsed.clear()
        self._worker.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        served = "a directory" if self.root is not None else "one file"
        return f"<CsvStore {self.name!r}: {served}, {len(self._parsed)} parsed>"


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _parse_options(details: ConnectionDetails) -> dict[str, Any]:
    """The caller's column choices, type-checked (400 naming the key)."""
    out: dict[str, Any] = {}
    for key, option in _OPTION_KEYS:
        value = details.get(key)
        if value is None:
            continue
        ok = (
            isinstance(value, str)
            if key == "timeColumn"
            else (isinstance(value, list) and all(isinstance(v, str) for v in value))
        )
        if not ok or len(str(value)) > 4096:
            kind = "a column name" if key == "timeColumn" else "a list of column names"
            raise RemoteMirrorError("Invalid connection details", f'"{key}" must be {kind}')
        out[option] = value
    return out


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
