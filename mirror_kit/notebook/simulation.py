"""StackState's polling, simulated from a notebook, with a live latency plot.

``SimulationView(mirror, streams=20, minutes=30, speed=120)`` runs
``mirror_kit.simulate.simulate`` -- the same load model and report as
``python -m mirror_kit simulate URL`` -- on the mirror's own background loop, so
the kernel stays free: the cell that makes the view returns at once, the widget
redraws p50 and p99 latency per request kind over simulated time while the
simulation runs, and shows the report when it ends. ``view.wait()`` blocks a
cell until then (the mirror keeps serving meanwhile) and returns the ``Report``.

The simulated StackState shares the mirror's loop and the kernel's cores, so its
latencies are upper bounds of what the mirror alone needs: for real figures run
``python -m mirror_kit simulate`` in another process, or on another machine.

Threads: the progress callback runs on the mirror's loop and only records numbers
(a few percentiles of the latencies since the last call); a daemon thread of the
view renders the PNG, so a redraw never holds up a request.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field, replace
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib import ticker

from ..runtime import RunningMirror
from ..simulate import Clock, LoadModel, Progress, Report, simulate
from .base import Panel, error_text, message_html
from .plots import StreamFigure, png_image, widget_png

#: real seconds between two looks at the running simulation (one point per kind)
PROGRESS_EVERY_S = 0.5
#: real seconds between two redraws of the plot, at most
REDRAW_EVERY_S = 2.0
FIGSIZE = (8.0, 3.2)
#: StackState's defaults (LoadModel) but a tenth of the streams and a quarter of the
#: monitors: the simulated StackState shares the kernel's cores with the mirror
NOTEBOOK_MODEL = LoadModel(live_streams=20, monitors=5, wizard_sessions=2)


@dataclass
class LatencyTimeline:
    """p50/p99 latency per request kind over simulated time, one point per progress call.

    Each point summarises the requests that finished since the previous call, so the
    plot shows how latency changes while the load runs, not only where it ends.
    """

    #: kind -> (simulated minutes, p50 ms, p99 ms) per point
    points: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    #: simulated seconds per real second: places points where the clock had got to
    speed: float = 1.0

    def record(self, progress: Progress) -> None:
        """Add a point per kind that had requests since the last call (cheap: numbers only).

        A point sits where the simulated clock was when it was taken, past the end
        of the run when the mirror could not keep up with the schedule.
        """
        minutes = progress.real_s * self.speed / 60
        with self._lock:
            for kind, stats in progress.report.kinds.items():
                new = stats.latencies_ms[self._seen.get(kind, 0) :]
                if not new:
                    continue
                self._seen[kind] = self._seen.get(kind, 0) + len(new)
                p50, p99 = np.percentile(new, (50, 99))
                self.points.setdefault(kind, []).append((minutes, float(p50), float(p99)))

    def snapshot(self) -> dict[str, np.ndarray]:
        """kind -> array of rows (minutes, p50, p99), copied under the lock."""
        with self._lock:
            return {kind: np.array(rows) for kind, rows in self.points.items()}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(rows) for rows in self.points.values())


class LatencyPlot:
    """The timeline on one Axes: per kind a p50 line (solid) and a p99 line (dashed).

    Redrawn in place (the same line artists get new data) on a log scale with plain
    tick labels: a log axis's default ``10^n`` labels go through mathtext and made
    each redraw twice as slow, time the simulated StackState would lose.
    """

    def __init__(self, figure: Any, title: str, minutes: float) -> None:
        self.figure = figure
        figure.subplots_adjust(left=0.09, right=0.74, bottom=0.16, top=0.9)
        self.ax = ax = figure.add_subplot()
        ax.set_xlabel("simulated minutes")
        ax.set_ylabel("latency, ms (p50 —, p99 - -)")
        ax.set_title(title, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.set_yscale("log")
        # 1-2-5 ticks: latencies often span less than a decade (2 to 30 ms), where
        # powers of ten alone would label one line, or none
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        # points right of it came late: the mirror could not keep up with the schedule
        ax.axvline(minutes, color="0.5", linestyle=":", linewidth=1)
        ax.annotate(
            "scheduled end",
            (minutes, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-3, -3),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize="x-small",
            color="0.4",
        )
        self.lines: dict[str, tuple[Any, Any]] = {}

    def draw(self, timeline: LatencyTimeline) -> int:
        """Show the timeline as it is now; how many points it drew."""
        snapshot = timeline.snapshot()
        for kind, rows in snapshot.items():
            if kind not in self.lines:
                colour = f"C{len(self.lines)}"
                solid = self.ax.plot([], [], "o-", color=colour, markersize=2.5, label=kind)[0]
                dashed = self.ax.plot([], [], "--", color=colour, linewidth=1)[0]
                self.lines[kind] = (solid, dashed)
                self.ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
            solid, dashed = self.lines[kind]
            solid.set_data(rows[:, 0], rows[:, 1])
            dashed.set_data(rows[:, 0], rows[:, 2])
        if self.lines:
            self.ax.relim()
            self.ax.autoscale_view()
        return sum(len(rows) for rows in snapshot.values())


class SimulationView(Panel):
    """A simulation of StackState polling ``mirror``, drawn while it runs (module docstring).

    ``streams``, ``monitors`` and ``wizards`` override the load model's counts;
    ``model`` sets all of LoadModel's fields (default: ``NOTEBOOK_MODEL``, a load a
    laptop kernel can play alongside the mirror). ``minutes`` of simulated time run
    ``speed`` times faster than real time; ``start_ms`` fixes the simulated start
    (default: now) so that two runs ask the same questions.
    """

    def __init__(
        self,
        mirror: RunningMirror,
        *,
        streams: int | None = None,
        monitors: int | None = None,
        wizards: int | None = None,
        minutes: float = 30.0,
        speed: float = 120.0,
        start_ms: int | None = None,
        model: LoadModel | None = None,
        series: Sequence[Mapping[str, Any]] | None = None,
        progress_every_s: float = PROGRESS_EVERY_S,
        redraw_every_s: float = REDRAW_EVERY_S,
    ) -> None:
        super().__init__(mirror)
        base = model or NOTEBOOK_MODEL
        self.model = replace(
            base,
            live_streams=base.live_streams if streams is None else streams,
            monitors=base.monitors if monitors is None else monitors,
            wizard_sessions=base.wizard_sessions if wizards is None else wizards,
        )
        start = int(time.time() * 1000) if start_ms is None else start_ms
        self.clock = Clock(start_ms=start, duration_s=minutes * 60, speed=speed)
        self.series = series
        self.progress_every_s = progress_every_s
        self.redraw_every_s = redraw_every_s
        self.timeline = LatencyTimeline(speed=speed)
        self.title = (
            f"{self.model.live_streams} live streams, {self.model.monitors} monitors, "
            f"{self.model.wizard_sessions} wizard sessions · {minutes:g} min at {speed:g}x speed"
        )
        self.figure = StreamFigure(figsize=FIGSIZE)
        self.plot = LatencyPlot(self.figure, self.title, minutes)
        #: how often the plot has been drawn, and how many points the last drawing had
        self.draws = 0
        self.drawn_points = 0
        self.status = widgets.HTML()
        self.image = png_image(self.figure)
        self.report_box = widgets.HTML()
        self.widget = widgets.VBox([self.status, self.image, self.report_box])
        self._future: Future[Report] | None = None
        self._changed = threading.Event()
        self._drawer: threading.Thread | None = None

    # --- running -----------------------------------------------------------------------

    def start(self) -> SimulationView:
        """Start on the mirror's loop and return at once (idempotent while it runs)."""
        if self._future is not None:
            return self
        self.status.value = message_html(f"Simulating: {self.title} …", "info")
        self._redraw()
        self._future = self.mirror.submit(
            simulate(
                self.mirror.url,
                model=self.model,
                clock=self.clock,
                api_key=self.mirror.api_key,
                series=self.series,
                on_progress=self._on_progress,
                progress_every_s=self.progress_every_s,
            )
        )
        self._drawer = threading.Thread(
            target=self._draw_while_running, name="simulation-view-plot", daemon=True
        )
        self._drawer.start()
        return self

    @property
    def done(self) -> bool:
        return self._future is not None and self._future.done()

    @property
    def report(self) -> Report | None:
        """The report once the simulation has ended; None before (or if it failed)."""
        if not self.done or self._future is None or self._future.cancelled():
            return None
        return None if self._future.exception() else self._future.result()

    def wait(self, timeout: float | None = None) -> Report:
        """Block until the simulation ends, the plot and the report shown; its Report.

        The mirror keeps serving meanwhile (it runs on its own loop). Raises what the
        simulation raised, or TimeoutError after ``timeout`` seconds.
        """
        if self._future is None:
            self.start()
        assert self._future is not None and self._drawer is not None
        report = self._future.result(timeout)
        self._drawer.join(timeout)
        return report

    def latency_figure(self) -> StreamFigure:
        """The latency plot as a Figure a cell shows as a PNG (stored in the notebook,
        unlike the widget); after ``wait()`` it is the finished plot."""
        if self._drawer is not None and self._drawer.is_alive():
            raise RuntimeError("the simulation still runs: call wait() first")
        return self.figure

    def close(self) -> None:
        """Stop the simulation if it still runs, and close the widgets."""
        if self._future is not None:
            self._future.cancel()
        self._changed.set()
        if self._drawer is not None and self._drawer is not threading.current_thread():
            self._drawer.join(5)
        super().close()

    def __repr__(self) -> str:
        return f"<SimulationView {self.title}>"

    # --- on the mirror's loop: numbers only ------------------------------------------

    def _on_progress(self, progress: Progress) -> None:
        self.timeline.record(progress)
        self._changed.set()

    # --- on the view's own thread: drawing ---------------------------------------------

    def _draw_while_running(self) -> None:
        assert self._future is not None
        while not self._future.done():
            self._changed.wait(self.redraw_every_s)
            self._changed.clear()
            self._redraw()
        self._finish(self._future)

    def _redraw(self) -> None:
        points = self.plot.draw(self.timeline)
        self.image.value = widget_png(self.figure)
        self.draws, self.drawn_points = self.draws + 1, points

    def _finish(self, future: Future[Report]) -> None:
        """The final plot, then the report (or why there is none)."""
        self._redraw()
        try:
            report = future.result()
        except CancelledError:
            self.status.value = message_html("Stopped before the end.", "warning")
            return
        except Exception as error:  # shown in the panel; wait() raises it
            self.status.value = message_html(f"The simulation failed: {error_text(error)}", "error")
            return
        level = "ok" if report.ok else "error"
        self.status.value = message_html(f"Done: {self.title}.", level)
        self.report_box.value = report_html(report)


def report_html(report: Report) -> str:
    """The report's lines, as ``python -m mirror_kit simulate`` prints them."""
    text = html.escape("\n".join(report.lines()))
    return f'<pre style="font-size:11px;line-height:1.3">{text}</pre>'


def simulation_view(mirror: RunningMirror, **options: Any) -> SimulationView:
    """Make a SimulationView and start it (see SimulationView for the options)."""
    return SimulationView(mirror, **options).start()
