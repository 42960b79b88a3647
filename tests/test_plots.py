"""Plots show exactly what StackState receives: the client's answers, point for point."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import HOUR, T0
from matplotlib.figure import Figure

from mirror_kit import MirrorClient
from mirror_kit.notebook import (
    LiveStreamPlot,
    StreamPlot,
    fetch_stream,
    plot_stream,
    step_xy,
    stream_figure,
)
from mirror_kit.notebook.plots import to_datenums

UTC = timezone.utc
BUCKET = 600_000
STREAM = {"host": "a-host", "metric": "cpu.user"}


def datenums_to_ms(x: np.ndarray) -> np.ndarray:
    """Epoch ms back from matplotlib date numbers (days since 1970, the default epoch)."""
    assert mdates.get_epoch() == "1970-01-01T00:00:00"
    return np.rint(np.asarray(x, dtype=np.float64) * 86_400_000).astype(np.int64)


def test_raw_line_holds_every_point_the_client_receives(client: MirrorClient) -> None:
    series = client.metrics(start=T0, end=T0 + 6 * HOUR, **STREAM)
    plot = plot_stream(client, start=T0, end=T0 + 6 * HOUR, methods=(), tz=UTC, **STREAM)
    assert plot.raw_line is not None
    x, y = plot.raw_line.get_data()
    assert len(x) == len(series) == 6 * 360
    np.testing.assert_array_equal(datenums_to_ms(x), series.timestamps)
    np.testing.assert_array_equal(y, series.values)
    assert plot.aggregated_lines == {}


@pytest.mark.parametrize("methods", [("MEAN",), ("MAX", "PERCENTILE_90", "EVENT_COUNT")])
def test_aggregated_steps_match_the_clients_buckets(
    client: MirrorClient, methods: tuple[str, ...]
) -> None:
    plot = plot_stream(
        client, start=T0, end=T0 + 6 * HOUR, methods=methods, bucket_ms=BUCKET, tz=UTC, **STREAM
    )
    assert list(plot.aggregated_lines) == list(methods)
    for method in methods:
        series = client.metrics(
            start=T0, end=T0 + 6 * HOUR, method=method, bucket_ms=BUCKET, **STREAM
        )
        x, y = plot.aggregated_lines[method].get_data()
        assert len(x) == 2 * len(series) == 2 * 36  # (start, v), (end, v) per bucket
        np.testing.assert_array_equal(y[0::2], series.values)
        np.testing.assert_array_equal(y[1::2], series.values)
        np.testing.assert_array_equal(datenums_to_ms(x[0::2]), series.timestamps)
        np.testing.assert_array_equal(datenums_to_ms(x[1::2]), series.bucket_ends)


def test_step_xy_breaks_the_line_between_buckets_that_do_not_touch() -> None:
    starts = np.array([0, 10, 30])
    ends = np.array([10, 20, 40])
    x, y = step_xy(starts, ends, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(x, [0, 10, 10, 20, np.nan, 30, 40])
    np.testing.assert_array_equal(y, [1, 1, 2, 2, np.nan, 3, 3])


def test_labels_title_and_legend_say_what_is_drawn(client: MirrorClient) -> None:
    plot = plot_stream(
        client, start=T0, end=T0 + HOUR, methods=("MEAN",), bucket_ms=BUCKET, tz=UTC, **STREAM
    )
    assert plot.ax.get_xlabel() == "time (UTC)"
    assert plot.ax.get_ylabel() == "cpu.user (%)"
    assert plot.ax.get_title() == "host=a-host AND metric=cpu.user"
    legend = plot.ax.get_legend()
    assert legend is not None
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["raw (360 points)", "MEAN per 10 min (6 buckets)"]


def test_time_axis_is_shown_in_the_given_timezone(client: MirrorClient) -> None:
    x0 = to_datenums(np.array([T0]))[0]
    utc = plot_stream(client, start=T0, end=T0 + HOUR, methods=(), tz=UTC, **STREAM)
    plus2 = plot_stream(
        client, start=T0, end=T0 + HOUR, methods=(), tz=timezone(timedelta(hours=2)), **STREAM
    )
    assert utc.ax.format_xdata(x0).startswith("2026-01-01 00:00")
    assert plus2.ax.format_xdata(x0).startswith("2026-01-01 02:00")
    # the data are the same instants either way: only the labels move
    assert utc.raw_line is not None and plus2.raw_line is not None
    np.testing.assert_array_equal(utc.raw_line.get_xdata(), plus2.raw_line.get_xdata())


def test_redraw_updates_the_same_artists_in_place(client: MirrorClient) -> None:
    first = fetch_stream(
        client, start=T0, end=T0 + HOUR, methods=("MEAN", "MAX"), bucket_ms=BUCKET, **STREAM
    )
    second = fetch_stream(
        client, start=T0, end=T0 + 3 * HOUR, methods=("MEAN",), bucket_ms=BUCKET, **STREAM
    )
    plot = StreamPlot(Figure().add_subplot(), tz=UTC).draw(first)
    raw, mean = plot.raw_line, plot.aggregated_lines["MEAN"]
    assert raw is not None and len(raw.get_xdata()) == 360
    plot.draw(second)
    assert plot.raw_line is raw and plot.aggregated_lines["MEAN"] is mean
    assert len(raw.get_xdata()) == 3 * 360
    assert len(mean.get_xdata()) == 2 * 18
    assert "MAX" not in plot.aggregated_lines
    assert len(plot.ax.get_lines()) == 2  # the MAX line left the axes too


def test_a_single_metric_series_can_be_plotted(client: MirrorClient) -> None:
    series = client.metrics(
        start=T0, end=T0 + HOUR, method="SUM", bucket_ms=BUCKET, host="b-host", metric="mem.used"
    )
    plot = plot_stream(series, tz=UTC)
    assert plot.raw_line is None
    np.testing.assert_array_equal(plot.aggregated_lines["SUM"].get_ydata()[0::2], series.values)
    assert plot.ax.get_ylabel() == "mem.used (MiB)"


def test_stream_figure_is_a_static_figure_outside_pyplot(client: MirrorClient) -> None:
    open_before = plt.get_fignums()
    figure = stream_figure(client, start=T0, end=T0 + HOUR, tz=UTC, **STREAM)
    assert isinstance(figure, Figure)
    assert plt.get_fignums() == open_before  # nothing for the inline backend to show twice
    assert len(figure.axes) == 1 and len(figure.axes[0].get_lines()) == 2


def test_stream_figure_shows_itself_as_a_png(client: MirrorClient) -> None:
    """Without a backend's PNG formatter (a fresh kernel), a cell shows ``_repr_png_``."""
    from IPython.core.formatters import PNGFormatter

    figure = stream_figure(client, start=T0, end=T0 + HOUR, tz=UTC, **STREAM)
    png = PNGFormatter()(figure)  # what IPython puts in the cell's output as image/png
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG")
    width, height = (int.from_bytes(png[i : i + 4], "big") for i in (16, 20))
    assert (width, height) == (800, 300)  # 8 x 3 inches at 100 dpi


def test_y_axis_names_the_unit(client: MirrorClient) -> None:
    cpu = plot_stream(client, start=T0, end=T0 + HOUR, methods=(), tz=UTC, **STREAM)
    assert cpu.ax.get_ylabel() == "cpu.user (%)"
    mem = plot_stream(
        client, start=T0, end=T0 + HOUR, methods=(), tz=UTC, host="a-host", metric="mem.used"
    )
    assert mem.ax.get_ylabel() == "mem.used (MiB)"
    own = plot_stream(
        client,
        start=T0,
        end=T0 + HOUR,
        methods=(),
        tz=UTC,
        unit="°C",
        host="a-host",
        metric="mem.used",
    )
    assert own.ax.get_ylabel() == "mem.used (°C)"


def test_live_plot_without_ipympl_renders_a_png_per_update(client: MirrorClient) -> None:
    live = LiveStreamPlot(tz=UTC)
    assert live.interactive is False  # tests run on Agg
    live.update(fetch_stream(client, start=T0, end=T0 + HOUR, methods=(), **STREAM))
    first = bytes(live.widget.value)  # ipywidgets keeps bytes as a memoryview
    assert first.startswith(b"\x89PNG")
    live.update(fetch_stream(client, start=T0, end=T0 + 2 * HOUR, methods=(), **STREAM))
    second = bytes(live.widget.value)
    assert second.startswith(b"\x89PNG") and second != first


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG"), png[:8]
    width, height = (int.from_bytes(png[i : i + 4], "big") for i in (16, 20))
    return width, height


@pytest.mark.parametrize("make", ["live plot", "simulation view"])
def test_a_panel_image_is_a_sized_png_before_the_first_answer(make: str, mirror: Any) -> None:
    """Never an empty ``<img>``: Chromium left one rendered off screen with no box for good.

    (JupyterLab 4's ``content-visibility``, Run All under load: the stream wizard of
    notebook 04 showed no plot in 1 of 2 runs, even after scrolling; tests/browser.)
    """
    from mirror_kit.notebook import SimulationView

    image = (
        LiveStreamPlot(interactive=False).widget
        if make == "live plot"
        else SimulationView(mirror, minutes=1).image
    )
    assert png_size(bytes(image.value)) == (int(image.width), int(image.height))
