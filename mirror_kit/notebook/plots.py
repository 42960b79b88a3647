"""Plots of what StackState receives for a stream: raw points and aggregated buckets.

Everything drawn here comes from Mirror API answers (a ``MirrorClient`` asked over
HTTP, or the ``MetricSeries`` such a client returned), so a plot shows exactly what
StackState would be given, not what the source holds internally.

Aggregated answers are drawn as steps: each bucket is a horizontal segment over its
``[start, end)`` (two points per bucket, a NaN break where buckets are not adjacent),
which is what a bucket value means -- one number for the whole window.

``StreamPlot`` owns the line artists of one axes and updates them in place
(``set_data`` + ``canvas.draw_idle()``), so one figure can follow a live stream;
``stream_figure`` returns a finished static Figure for notebook outputs (a
``StreamFigure``: it shows itself as a PNG in any kernel, whatever the backend);
``LiveStreamPlot`` wraps a StreamPlot into a widget (an ipympl canvas under
``%matplotlib widget``, otherwise a PNG image re-rendered on each update).
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..client import MetricSeries, MirrorClient, TimeArg, to_millis
from ..protocol import AggregationMethod, EqualityCondition, describe_conditions

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
#: The default time window of a plot that is given no ``start``: StackState's
#: default view is the last hour; six show a few periods of the default waves.
DEFAULT_WINDOW_MS = 6 * HOUR_MS
DEFAULT_BUCKET_MS = 10 * MINUTE_MS
DEFAULT_FIGSIZE = (8.0, 3.0)
#: Resolution of a figure shown as a cell's value (IPython's inline backend uses 100 too).
PNG_DPI = 100
#: Resolution of the PNGs redrawn into an ``ipywidgets.Image`` (a panel's live plot).
WIDGET_DPI = 80
#: The units of the kit's own data: the synthetic catalog and ``data/sample.csv``.
#: The Mirror API carries no unit; a plot of other data takes ``unit=``.
UNITS = {"cpu.user": "%", "cpu.system": "%", "mem.used": "MiB", "net.bytes_in": "bytes/s"}


def local_tz() -> tzinfo:
    """The machine's local timezone, as the user's StackState UI would show times."""
    tz = datetime.now().astimezone().tzinfo
    assert tz is not None
    return tz


def tz_name(tz: tzinfo) -> str:
    """A short name for axis labels (``UTC``, ``CET``, ``Europe/Amsterdam``)."""
    return getattr(tz, "key", None) or tz.tzname(datetime.now(tz)) or str(tz)


def to_datenums(timestamps_ms: np.ndarray) -> np.ndarray:
    """Matplotlib date numbers (UTC-based floats) for epoch-millisecond timestamps."""
    ms = np.asarray(timestamps_ms, dtype=np.int64)
    return np.asarray(mdates.date2num(ms.astype("datetime64[ms]")), dtype=np.float64)


def step_xy(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Epoch-ms x and y of bucket steps: ``(start, v), (end, v)`` per bucket.

    Where a bucket does not begin at the previous one's end (an empty window gives no
    bucket), a NaN point breaks the line so no slope is drawn across the gap.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    x = np.column_stack((starts, ends)).ravel()
    y = np.repeat(values, 2)
    gaps = np.flatnonzero(starts[1:] != ends[:-1]) + 1
    if len(gaps):
        x = np.insert(x, 2 * gaps, np.nan)
        y = np.insert(y, 2 * gaps, np.nan)
    return x, y


def _datenums_with_nan(ms: np.ndarray) -> np.ndarray:
    out = np.full(len(ms), np.nan)
    finite = np.isfinite(ms)
    out[finite] = to_datenums(ms[finite].astype(np.int64))
    return out


@dataclass(frozen=True)
class StreamData:
    """One stream as StackState receives it: raw points and aggregated answers."""

    raw: MetricSeries | None
    aggregated: Mapping[str, MetricSeries] = field(default_factory=dict)
    bucket_ms: int | None = None
    conditions: tuple[EqualityCondition, ...] = ()

    @property
    def title(self) -> str:
        return describe_conditions(self.conditions)

    @property
    def metric(self) -> str | None:
        """The value of a ``metric`` condition, for the y label."""
        for c in self.conditions:
            if c.key == "metric" and isinstance(c.value.value, str):
                return c.value.value
        return None


def y_label(metric: str | None, unit: str | None = None) -> str:
    """``cpu.user (%)``: the metric and its unit (known for the kit's own data)."""
    unit = unit if unit is not None else UNITS.get(metric or "")
    name = metric or "value"
    return f"{name} ({unit})" if unit else name


def _method_name(method: str | AggregationMethod) -> str:
    return AggregationMethod(method).value


def fetch_stream(
    client: MirrorClient,
    *,
    start: TimeArg = None,
    end: TimeArg = None,
    methods: Sequence[str | AggregationMethod] = ("MEAN",),
    bucket_ms: int = DEFAULT_BUCKET_MS,
    raw: bool = True,
    conditions: Mapping[str, Any] | None = None,
    **keywords: Any,
) -> StreamData:
    """Ask the mirror, as StackState does, for a stream's raw points and aggregates.

    The range defaults to the last ``DEFAULT_WINDOW_MS`` until now. Continued pages
    (``isPartial``) are followed, so a plot never silently stops early.
    """
    end_ms = to_millis(end, int(time.time() * 1000))
    start_ms = to_millis(start, end_ms - DEFAULT_WINDOW_MS)
    query: dict[str, Any] = {"start": start_ms, "end": end_ms, "fetch_all": True}
    raw_series = client.metrics(**query, conditions=conditions, **keywords) if raw else None
    aggregated = {
        _method_name(m): client.metrics(
            **query, method=m, bucket_ms=bucket_ms, conditions=conditions, **keywords
        )
        for m in methods
    }
    requested = next(iter(aggregated.values()), raw_series)
    used = requested.request.query.conditions if requested is not None else ()
    return StreamData(raw_series, aggregated, bucket_ms if methods else None, used)


def format_duration(ms: int) -> str:
    """``10 s``, ``5 min``, ``1 h``, ``1 d``: bucket sizes as people say them."""
    for unit, size in (("d", 86_400_000), ("h", HOUR_MS), ("min", MINUTE_MS), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


class StreamPlot:
    """The artists of one stream on one Axes, updated in place for live plots."""

    def __init__(
        self,
        ax: Axes,
        *,
        tz: tzinfo | None = None,
        title: str | None = None,
        unit: str | None = None,
    ) -> None:
        self.ax = ax
        self.tz = tz or local_tz()
        self.fixed_title = title
        self.unit = unit
        self.raw_line: Line2D | None = None
        self.aggregated_lines: dict[str, Line2D] = {}
        locator = mdates.AutoDateLocator(tz=self.tz)
        ax.xaxis_date(self.tz)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=self.tz))
        ax.set_xlabel(f"time ({tz_name(self.tz)})")
        ax.grid(True, alpha=0.3)

    @property
    def figure(self) -> Figure:
        figure: Any = self.ax.figure
        while not isinstance(figure, Figure):  # a SubFigure: its parent holds the canvas
            figure = figure.figure
        return figure

    def draw(self, data: StreamData) -> StreamPlot:
        """Show ``data``: reuse the existing lines (set_data), add or drop aggregates."""
        self._draw_raw(data.raw)
        for name in [n for n in self.aggregated_lines if n not in data.aggregated]:
            self.aggregated_lines.pop(name).remove()
        for name, series in data.aggregated.items():
            self._draw_aggregated(name, series, data.bucket_ms)
        self.ax.set_ylabel(y_label(data.metric, self.unit))
        self.ax.set_title(self.fixed_title if self.fixed_title is not None else data.title)
        self.ax.relim()
        self.ax.autoscale_view()
        handles = [h for h in (self.raw_line, *self.aggregated_lines.values()) if h is not None]
        if handles:
            self.ax.legend(  # below the axes: the data stays visible, the width fits panels
                handles=handles,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.22),
                ncol=min(len(handles), 3),
                fontsize="small",
                frameon=False,
            )
        self.figure.canvas.draw_idle()
        return self

    def _draw_raw(self, series: MetricSeries | None) -> None:
        if series is None:
            if self.raw_line is not None:
                self.raw_line.remove()
                self.raw_line = None
            return
        x, y = to_datenums(series.timestamps), series.values
        label = f"raw ({len(series)} points)"
        if self.raw_line is None:
            (self.raw_line,) = self.ax.plot(x, y, ".", ms=2, alpha=0.5, color="tab:gray")
        else:
            self.raw_line.set_data(x, y)
        self.raw_line.set_label(label)

    def _draw_aggregated(self, name: str, series: MetricSeries, bucket_ms: int | None) -> None:
        assert series.bucket_ends is not None, "an aggregated series has bucket ends"
        x_ms, y = step_xy(series.timestamps, series.bucket_ends, series.values)
        x = _datenums_with_nan(x_ms)
        per = f" per {format_duration(bucket_ms)}" if bucket_ms else ""
        label = f"{name}{per} ({len(series)} buckets)"
        line = self.aggregated_lines.get(name)
        if line is None:
            (line,) = self.ax.plot(x, y, lw=1.6)
            self.aggregated_lines[name] = line
        else:
            line.set_data(x, y)
        line.set_label(label)


def _as_stream_data(
    source: MirrorClient | StreamData | MetricSeries, query: Mapping[str, Any]
) -> StreamData:
    if isinstance(source, StreamData):
        return source
    if isinstance(source, MetricSeries):
        conditions = source.request.query.conditions
        if source.aggregated:
            aggregation = source.request.query.aggregation
            assert aggregation is not None
            name = aggregation.method.value
            return StreamData(None, {name: source}, aggregation.bucket_size_millis, conditions)
        return StreamData(source, {}, None, conditions)
    return fetch_stream(source, **query)


class StreamFigure(Figure):
    """A static Figure that a notebook shows as a PNG, with no backend set up.

    Made without pyplot (the inline backend does not show it a second time, no pyplot
    figure is left open), a plain Figure has only its text repr (``<Figure size ...>``)
    in a fresh kernel: IPython registers a PNG formatter for figures only once the
    inline backend is active. ``_repr_png_`` makes the PNG part of the cell's output
    everywhere: JupyterLab, nbclient/nbval, and the stored notebook on GitHub.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=PNG_DPI)
        return buffer.getvalue()


def plot_stream(
    source: MirrorClient | StreamData | MetricSeries,
    *,
    ax: Axes | None = None,
    tz: tzinfo | None = None,
    title: str | None = None,
    unit: str | None = None,
    figsize: tuple[float, float] = DEFAULT_FIGSIZE,
    **query: Any,
) -> StreamPlot:
    """Draw a stream on ``ax`` (a new StreamFigure when None) and return its StreamPlot.

    ``source`` is a client (then ``query`` holds fetch_stream's arguments: start, end,
    methods, bucket_ms, raw, conditions and condition keywords such as
    ``host="a-host"``), or answers already fetched (StreamData or one MetricSeries).
    ``unit`` labels the y axis (known for the kit's own metrics, see ``UNITS``).
    """
    if ax is None:
        ax = StreamFigure(figsize=figsize, layout="constrained").add_subplot()
    plot = StreamPlot(ax, tz=tz, title=title, unit=unit)
    return plot.draw(_as_stream_data(source, query))


def stream_figure(
    source: MirrorClient | StreamData | MetricSeries,
    *,
    tz: tzinfo | None = None,
    title: str | None = None,
    unit: str | None = None,
    figsize: tuple[float, float] = DEFAULT_FIGSIZE,
    **query: Any,
) -> StreamFigure:
    """A finished static figure of a stream: a notebook shows it as the cell's value (PNG)."""
    figure = plot_stream(source, tz=tz, title=title, unit=unit, figsize=figsize, **query).figure
    assert isinstance(figure, StreamFigure)
    return figure


def png_image(figure: Figure) -> Any:
    """An ``ipywidgets.Image`` showing ``figure`` as it is now (its empty axes, at first).

    Never empty: an Image with no value is a broken ``<img>``, and when one is
    rendered in a cell off screen (JupyterLab 4 skips those with
    ``content-visibility: auto``, e.g. during Run All) Chromium can leave it with no
    layout box for good: later PNGs never show, the panel has no plot, even after
    scrolling (tests/browser, under load). Its ``width``/``height`` attributes are the
    PNG's pixel size, so the page does not jump when the first answer is drawn.
    """
    import ipywidgets as widgets

    width, height = (round(inches * WIDGET_DPI) for inches in figure.get_size_inches())
    return widgets.Image(
        value=widget_png(figure), format="png", width=str(width), height=str(height)
    )


def widget_png(figure: Figure) -> bytes:
    """``figure`` as the PNG shown by its :func:`png_image`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=WIDGET_DPI)
    return buffer.getvalue()


def widget_backend() -> bool:
    """Whether pyplot draws into ipympl canvases (``%matplotlib widget``)."""
    backend = str(matplotlib.rcParams["backend"]).lower()
    return "ipympl" in backend or backend.endswith("widget")


class LiveStreamPlot:
    """A StreamPlot inside a widget, for panels that redraw after every change.

    Under ``%matplotlib widget`` the widget is ipympl's canvas and updates go through
    ``draw_idle`` (only widget messages, stable under nbval). Otherwise (inline
    backend, Agg in tests) it is an ``ipywidgets.Image`` re-rendered as PNG.
    """

    def __init__(
        self,
        *,
        tz: tzinfo | None = None,
        title: str | None = None,
        figsize: tuple[float, float] = DEFAULT_FIGSIZE,
        interactive: bool | None = None,
    ) -> None:
        self.interactive = widget_backend() if interactive is None else interactive
        if self.interactive:
            import matplotlib.pyplot as plt

            with plt.ioff():  # no auto-displayed duplicate canvas (see NOTEBOOK_NOTES)
                figure = plt.figure(figsize=figsize, layout="constrained")
            canvas: Any = figure.canvas
            canvas.header_visible = False
            self.widget: Any = canvas
        else:
            figure = Figure(figsize=figsize, layout="constrained")
        self.plot = StreamPlot(figure.add_subplot(), tz=tz, title=title)
        if not self.interactive:
            self.widget = png_image(figure)

    @property
    def figure(self) -> Figure:
        return self.plot.figure

    def update(self, data: StreamData) -> None:
        """Redraw with new answers (in place: the same line artists get new data)."""
        self.plot.draw(data)
        if not self.interactive:
            self.widget.value = widget_png(self.figure)

    def close(self) -> None:
        """Release the pyplot figure (ipympl mode keeps one in pyplot's registry)."""
        if self.interactive:
            import matplotlib.pyplot as plt

            plt.close(self.figure)
