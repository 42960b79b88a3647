"""The notebook's simulation view: runs on the mirror's loop, plots while it runs,
and reports exactly what ``simulate`` reports.

The kernel's thread must stay free (start returns at once), the plot must get
points during the run (not one drawing at the end), and the report shown must be
the simulator's own: the same questions and, from a deterministic mirror, the
same answers as a plain ``simulate`` run.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from conftest import T0

from mirror_kit import MirrorClient, RunningMirror, start_mirror
from mirror_kit.notebook import LatencyTimeline, SimulationView, simulation_view
from mirror_kit.notebook.simulation import report_html
from mirror_kit.simulate import Clock, LoadModel, Progress, Report, simulate

SMALL = {"streams": 5, "monitors": 2, "wizards": 1}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_plot_gets_points_while_the_simulation_runs(mirror: RunningMirror) -> None:
    view = SimulationView(
        mirror,
        **SMALL,
        minutes=10,
        speed=100,  # six real seconds
        start_ms=T0,
        progress_every_s=0.2,
        redraw_every_s=0.2,
    )
    started = time.perf_counter()
    view.start()
    assert time.perf_counter() - started < 3, "start() waited for the simulation"
    empty_plot = bytes(view.image.value)
    assert empty_plot.startswith(PNG_MAGIC)
    deadline = time.monotonic() + 30
    while view.drawn_points < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    running, points_so_far = not view.done, view.drawn_points
    plot_so_far = bytes(view.image.value)
    assert running, "no points were drawn before the end"
    assert points_so_far >= 2
    assert plot_so_far != empty_plot and plot_so_far.startswith(PNG_MAGIC)
    assert view.report is None and view.report_box.value == ""

    report = view.wait(60)
    assert report.ok, report.lines()
    assert view.drawn_points == len(view.timeline) > points_so_far  # the end is drawn too
    minutes = view.timeline.snapshot()["live stream"][:, 0]
    assert np.all(np.diff(minutes) > 0) and minutes[-1] >= 9  # over the simulated run
    assert view.report is report
    assert "verdict: OK" in view.report_box.value
    view.close()


async def test_the_report_is_the_one_simulate_gives(mirror: RunningMirror) -> None:
    view = simulation_view(mirror, **SMALL, minutes=5, speed=300, start_ms=T0)
    shown = await asyncio.get_running_loop().run_in_executor(None, view.wait, 60)

    model = LoadModel(live_streams=5, monitors=2, wizard_sessions=1)
    clock = Clock(start_ms=T0, duration_s=300, speed=300)
    plain = await simulate(mirror.url, model=model, clock=clock, api_key=mirror.api_key)

    assert view.model == model and view.clock == clock
    assert {k: s.requests for k, s in shown.kinds.items()} == {
        k: s.requests for k, s in plain.kinds.items()
    }
    assert shown.consistency.to_json() == plain.consistency.to_json()
    asked = len(plain.digests)
    assert asked == 5 * 5 + 2 * 5  # every poll of every stream and monitor
    assert shown.same_answers(plain) == (asked, 0)
    assert view.report_box.value == report_html(shown)
    for line in shown.lines():
        assert line.split()[0] in view.report_box.value
    view.close()


def test_close_stops_a_running_simulation_and_the_mirror_keeps_serving(
    mirror: RunningMirror,
) -> None:
    view = simulation_view(mirror, **SMALL, minutes=60, speed=1, start_ms=T0)
    deadline = time.monotonic() + 10
    while not any(e.method == "metric" for e in mirror.requests()) and time.monotonic() < deadline:
        time.sleep(0.05)
    view.close()
    assert view.done and view.report is None
    assert "Stopped" in view.status.value
    asked = len(mirror.requests())
    time.sleep(1.5)  # the next polls were due within the second: none is sent
    assert len(mirror.requests()) == asked
    with MirrorClient(mirror.url, api_key=mirror.api_key) as client:
        client.test_connection()


def test_a_stopped_mirror_is_refused_at_start() -> None:
    mirror = start_mirror(port=0)
    mirror.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        SimulationView(mirror, **SMALL).start()


def test_each_point_summarises_only_the_requests_since_the_last() -> None:
    timeline, report = LatencyTimeline(speed=60), Report()
    stats = report.stats("live stream")
    for latency in (10.0, 20.0, 30.0):
        stats.add(latency)
    timeline.record(Progress(30, 600, report, real_s=0.5))
    timeline.record(Progress(60, 600, report, real_s=1.0))  # nothing new: no point
    for latency in (1000.0, 1000.0):
        stats.add(latency)
    timeline.record(Progress(600, 600, report, real_s=20.0))  # late: past the end
    rows = timeline.snapshot()["live stream"]
    assert rows[:, 0].tolist() == [0.5, 20.0]  # minutes where the clock had got to
    assert rows[:, 1].tolist() == [20.0, 1000.0]
    assert rows[0, 2] == pytest.approx(np.percentile([10, 20, 30], 99))


def test_the_finished_plot_is_a_png_figure_only_once_done(mirror: RunningMirror) -> None:
    view = simulation_view(mirror, **SMALL, minutes=5, speed=300, start_ms=T0)
    if not view.done:
        with pytest.raises(RuntimeError, match="wait"):
            view.latency_figure()
    view.wait(60)
    figure = view.latency_figure()
    assert figure._repr_png_().startswith(PNG_MAGIC)
    axes = figure.axes[0]
    kinds = [text.get_text() for text in axes.get_legend().get_texts()]
    assert kinds[:2] == ["live stream", "monitor"]
    streams = next(line for line in axes.lines if line.get_label() == "live stream")
    assert len(streams.get_xdata()) == len(view.timeline.snapshot()["live stream"])
    view.close()


def test_a_given_model_is_kept_and_counts_override_it(mirror: RunningMirror) -> None:
    model = LoadModel(live_streams=200, monitors=20, wizard_sessions=4, poll_interval_s=90)
    assert SimulationView(mirror, model=model).model == model
    fewer = SimulationView(mirror, model=model, streams=3)
    assert fewer.model == LoadModel(
        live_streams=3, monitors=20, wizard_sessions=4, poll_interval_s=90
    )
    assert SimulationView(mirror).model.live_streams == 20  # the notebook's default


def test_the_latency_axis_labels_a_range_narrower_than_a_decade() -> None:
    """Latencies of 2 to 30 ms: more than the one "10" a log axis labels by default."""
    from matplotlib.figure import Figure

    from mirror_kit.notebook.simulation import LatencyPlot

    plot = LatencyPlot(Figure(), "title", minutes=1.0)
    plot.ax.plot([0.0, 1.0], [2.0, 30.0])
    plot.figure.canvas.draw()
    low, high = plot.ax.get_ylim()
    labels = [t.get_text() for t in plot.ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert [text for text in labels if text] == ["2", "5", "10", "20"], labels
