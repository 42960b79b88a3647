"""The series shaping panel: change one synthetic series and watch what StackState gets.

The controls change the running source through the ``Shapeable`` protocol
(``set_shape``, thread-safe): a ``SyntheticSource``, or the one a ``RoutingSource``
(what ``serve`` runs) has as its default store;
the plot then asks the mirror again over HTTP, so it shows the answers StackState
would receive after the change, not the generator's internals. Redraws are
debounced: dragging a slider changes the series at once but asks the mirror only
when the slider rests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

import ipywidgets as widgets

from ..client import MirrorClient, TimeArg, to_millis
from ..protocol import AggregationMethod, FieldScalar
from ..runtime import RunningMirror
from ..sources import RoutingSource, SeriesShape, Shapeable, TelemetrySource, Wave, shaping_of
from .base import (
    DEFAULT_DEBOUNCE_S,
    Debouncer,
    Panel,
    error_text,
    expand_values,
    message_html,
    replace_options,
)
from .plots import (
    DEFAULT_BUCKET_MS,
    DEFAULT_WINDOW_MS,
    LiveStreamPlot,
    StreamData,
    fetch_stream,
    format_duration,
)

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
PERIODS_MS = (
    5 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    24 * HOUR_MS,
)
RESOLUTIONS_MS = (
    SECOND_MS,
    5 * SECOND_MS,
    10 * SECOND_MS,
    30 * SECOND_MS,
    MINUTE_MS,
    5 * MINUTE_MS,
)
#: The SeriesShape parameters the panel offers, in display order.
PARAMETERS = (
    "wave",
    "baseline",
    "amplitude",
    "period_ms",
    "noise",
    "trend_per_day",
    "spike_rate",
    "spike_height",
    "seed",
    "resolution_ms",
)


def shape_warnings(shape: SeriesShape, window_ms: int) -> list[str]:
    """Valid but misleading combinations, said in words (the change is still applied)."""
    notes = []
    if shape.period_ms < 2 * shape.resolution_ms and shape.wave is not Wave.FLAT:
        notes.append(
            f"the period ({format_duration(shape.period_ms)}) is shorter than two samples "
            f"({format_duration(2 * shape.resolution_ms)}): the wave aliases"
        )
    if shape.resolution_ms > window_ms:
        notes.append("the resolution is coarser than the plotted window: few or no points")
    return notes


def describe(source: TelemetrySource) -> str:
    """What a mirror serves, said for a refusal: a router names its default store."""
    if isinstance(source, RoutingSource):
        name, kind = source.default_name, source.default.kind
        return f"a RoutingSource whose default store {name!r} ({kind}) cannot be shaped"
    return f"a {type(source).__name__}"


def _choices(values: Sequence[int], current: int) -> list[tuple[str, int]]:
    return [(format_duration(v), v) for v in sorted({*values, current})]


def _scale(shape: SeriesShape) -> float:
    """A magnitude for slider ranges, so one panel fits 0-100 % and bytes per second."""
    biggest = max(abs(shape.baseline), abs(shape.amplitude), shape.noise, abs(shape.spike_height))
    return float(10 ** math.ceil(math.log10(max(biggest, 1.0))))


STYLE = {"description_width": "110px"}
#: The finest slider step offered; values finer than it are shown rounded.
FINEST_STEP = 1e-6


def on_grid(value: float, step: float) -> bool:
    """Whether ``value`` is a whole number of ``step``s (what a browser slider can hold)."""
    steps = value / step
    return abs(steps - round(steps)) < 1e-6


def fitting_step(coarsest: float, values: Sequence[float]) -> float:
    """The coarsest step (``coarsest``, then powers of ten) that fits every value.

    A browser slider snaps its value to ``min + k * step`` and sends the snapped value
    back: with a step that every value is a whole number of (and a min that is too)
    there is nothing to snap, so showing a series never rounds its parameters.
    """
    top = math.floor(math.log10(coarsest))
    finest = round(math.log10(FINEST_STEP))
    for step in (coarsest, *(10.0**j for j in range(top, finest - 1, -1))):
        if all(on_grid(v, step) for v in values):
            return step
    return FINEST_STEP


def _slider(name: str, shape: SeriesShape, low: float, high: float, **options: Any) -> Any:
    value = getattr(shape, name)
    return widgets.FloatSlider(
        value=value, min=min(low, value), max=max(high, value), style=STYLE, **options
    )


def make_controls(shape: SeriesShape, layout: widgets.Layout) -> dict[str, Any]:
    """One control per parameter, made with the shape's values, bounds and options at once.

    Nothing is rewritten afterwards for another series: a panel makes a new set when
    the series changes, so the browser never holds a half-updated control.
    """
    scale = _scale(shape)
    slid = ("baseline", "amplitude", "noise", "trend_per_day", "spike_height")
    step = fitting_step(scale / 200, [getattr(shape, name) for name in slid])
    controls: dict[str, Any] = {
        "wave": widgets.Dropdown(
            options=[w.value for w in Wave], value=shape.wave.value, description="wave"
        ),
        "baseline": _slider(
            "baseline", shape, -4 * scale, 4 * scale, step=step, description="baseline"
        ),
        "amplitude": _slider(
            "amplitude", shape, 0.0, 4 * scale, step=step, description="amplitude"
        ),
        "period_ms": widgets.Dropdown(
            options=_choices(PERIODS_MS, shape.period_ms),
            value=shape.period_ms,
            description="period",
        ),
        "noise": _slider("noise", shape, 0.0, scale, step=step, description="noise (std)"),
        "trend_per_day": _slider(
            "trend_per_day", shape, -scale, scale, step=step, description="trend per day"
        ),
        "spike_rate": _slider(
            "spike_rate",
            shape,
            0.0,
            0.2,
            step=fitting_step(0.001, [shape.spike_rate]),
            readout_format=".3f",
            description="spike rate",
        ),
        "spike_height": _slider(
            "spike_height", shape, -4 * scale, 4 * scale, step=step, description="spike height"
        ),
        "seed": widgets.BoundedIntText(
            value=shape.seed, min=0, max=2**32 - 1, description="seed", style=STYLE
        ),
        "resolution_ms": widgets.Dropdown(
            options=_choices(RESOLUTIONS_MS, shape.resolution_ms),
            value=shape.resolution_ms,
            description="resolution",
        ),
    }
    for control in controls.values():
        if isinstance(control, widgets.Dropdown):
            control.style = STYLE
        control.layout = layout
    return controls


#: Dropdowns of durations: presets, plus the value shown when code sets another.
PRESETS = {"period_ms": PERIODS_MS, "resolution_ms": RESOLUTIONS_MS}


def show_value(control: Any, value: Any, presets: Sequence[int] | None = None) -> None:
    """Show a value set by code in its control (bounds or options widened to hold it)."""
    with control.hold_sync():
        if isinstance(control, widgets.FloatSlider):
            control.step = fitting_step(control.step, [value, control.min])
            control.min, control.max = min(control.min, value), max(control.max, value)
        elif presets is not None and value not in {v for _, v in control.options}:
            replace_options(control, _choices([v for _, v in control.options], value), value)
        control.value = value


class ShapingPanel(Panel):
    """Sliders and dropdowns for one series' SeriesShape, with a live plot of its answers.

    How the widgets stay right in a browser (where every change makes a round trip):

    * the host and metric dropdowns only *select*; selecting never writes a parameter;
    * each selection gets its own, new set of controls, made with that series' values,
      bounds and options in one go and bound to that series alone; the old set is
      closed. No control is ever rewritten to show another series, so no value the
      browser sends back while a control changes can land on a series;
    * a control applies a value only when it differs from what the series has: the
      browser's echo of a value the kernel set is a no-op;
    * values set by code are shown with ``hold_sync`` (bounds or options and value in
      one message to the browser).
    """

    def __init__(
        self,
        mirror: RunningMirror,
        *,
        client: MirrorClient | None = None,
        series: Mapping[str, FieldScalar] | None = None,
        labels: tuple[str, str] = ("host", "metric"),
        start: TimeArg = None,
        end: TimeArg = None,
        window_ms: int = DEFAULT_WINDOW_MS,
        methods: Sequence[str | AggregationMethod] = ("MEAN",),
        bucket_ms: int = DEFAULT_BUCKET_MS,
        debounce: float = DEFAULT_DEBOUNCE_S,
        tz: tzinfo | None = None,
        interactive_plot: bool | None = None,
    ) -> None:
        source = shaping_of(mirror.source)
        if source is None:
            raise TypeError(
                "the shaping panel changes the series of a Shapeable source (such as "
                f"SyntheticSource); this mirror serves {describe(mirror.source)}"
            )
        super().__init__(mirror, client)
        self.source: Shapeable = source
        self.labels = labels
        self.start, self.end, self.window_ms = start, end, window_ms
        self.methods, self.bucket_ms = tuple(methods), bucket_ms
        self.data: StreamData | None = None
        self.message = ""
        self.refreshes = 0
        self.match: dict[str, FieldScalar] = {}
        self.controls: dict[str, Any] = {}
        #: The series asked for (by code or the dropdowns): a host change keeps its metric.
        self._wanted: dict[str, FieldScalar] = {}
        #: Each series' shape when the panel first showed it, for ``reset()``.
        self.originals: dict[tuple[tuple[str, FieldScalar], ...], SeriesShape] = {}
        self._debouncer = Debouncer(debounce, self.refresh)
        # beside a 430 px column of controls where the notebook is wide, below it where not
        self.plot = LiveStreamPlot(tz=tz, interactive=interactive_plot, figsize=(6.4, 3.6))
        self._build()
        self._init_series(series)

    # -- plain methods (what the widgets call; tests call them directly) -------------

    @property
    def shape(self) -> SeriesShape:
        """The chosen series' current parameters (as the source holds them)."""
        return self.source.shape(self.match)

    def label_values(self, label: str, **conditions: FieldScalar) -> list[FieldScalar]:
        """The values of ``label`` the mirror lists (Field Values over HTTP, patterns expanded)."""
        return expand_values(
            self.client, label, conditions=conditions, start=self.start, end=self.end
        )

    def select(self, **match: FieldScalar) -> None:
        """Show the series with these labels (``host=..., metric=...``); changes no series."""
        self.source.shape(match)  # KeyError when no series has these labels
        first, second = self.labels
        self._wanted = dict(match)
        if set(match) == {first, second}:  # the dropdowns say which series is shown
            self.label_widgets[first].value = match[first]  # refills the second
            self.label_widgets[second].value = match[second]
        if match != self.match:  # not already done by the dropdowns' observers
            self._show_series(match)

    def apply(self, **changes: Any) -> bool:
        """Change parameters of the chosen series; False (and a message) when invalid.

        Nothing is changed when the combination is invalid; warnings about valid but
        misleading values are shown and the change is kept.
        """
        try:
            changed = self.shape.replace(**changes)  # ValueError naming the problem
        except ValueError as error:
            self._say(f"Not applied: {error}", "error")
            return False
        self.source.set_shape(self.match, **changes)
        for name in changes:
            value = getattr(changed, name)
            if name in self.controls:
                show_value(
                    self.controls[name], value.value if name == "wave" else value, PRESETS.get(name)
                )
        notes = shape_warnings(changed, self._window_ms())
        text = "; ".join(notes)
        self._say(text[:1].upper() + text[1:], "warning" if notes else "info")
        self._debouncer.trigger()
        return True

    def reset(self) -> None:
        """Give every series this panel changed its shape back; show the chosen one again."""
        for key, shape in self.originals.items():
            self.source.set_shape(dict(key), **dataclasses.asdict(shape))
        self._show_series(self.match)

    def fetch(self) -> StreamData:
        """Ask the mirror for the chosen series, as StackState would (HTTP)."""
        return fetch_stream(
            self.client,
            start=self.start,
            end=self.end,
            methods=self.methods,
            bucket_ms=self.bucket_ms,
            conditions=self.match,
        )

    def refresh(self) -> None:
        """Ask the mirror again and redraw; a failure becomes the message line."""
        self.refreshes += 1
        try:
            self.data = self.fetch()
            self.plot.update(self.data)
        except Exception as error:  # shown to the user, never a traceback
            self._say(f"Could not read the stream: {error_text(error)}", "error")

    def close(self) -> None:
        self._debouncer.cancel()
        self.plot.close()
        self._close_controls(self.controls)
        super().close()

    def __repr__(self) -> str:
        chosen = "/".join(str(v) for v in self.match.values())
        return f"<ShapingPanel {chosen}>"

    # -- widgets ---------------------------------------------------------------------

    def _window_ms(self) -> int:
        if self.start is not None and self.end is not None:
            return to_millis(self.end, 0) - to_millis(self.start, 0)
        return self.window_ms

    def _say(self, text: str, level: str = "info") -> None:
        self.message = text
        self.message_widget.value = message_html(text, level)

    def _build(self) -> None:
        self._layout = widgets.Layout(width="420px")
        self.label_widgets = {
            label: widgets.Dropdown(description=label, style=STYLE, layout=self._layout)
            for label in self.labels
        }
        first, second = self.labels
        self.label_widgets[first].observe(self._on_first_label, names="value")
        self.label_widgets[second].observe(self._on_second_label, names="value")
        self.message_widget = widgets.HTML()
        # A fixed-size column: flexbox would otherwise shrink it until the controls'
        # descriptions are cut off. The row wraps: on a narrow notebook (a laptop with
        # the file browser open) the plot goes below the controls instead of off the edge.
        self._column = widgets.VBox(layout=widgets.Layout(flex="0 0 auto", width="430px"))
        row = widgets.HBox(
            [self._column, self.plot.widget], layout=widgets.Layout(flex_flow="row wrap")
        )
        self.widget = widgets.VBox([row, self.message_widget])

    def _init_series(self, series: Mapping[str, FieldScalar] | None) -> None:
        first = self.labels[0]
        if series is None:  # the source's first series (the tutorial's a-host/cpu.user)
            labels = self.source.series_labels()[0]
            series = {k: labels[k] for k in self.labels if k in labels}
        try:
            replace_options(self.label_widgets[first], self.label_values(first))
        except Exception as error:
            self._say(f"Could not list the series: {error_text(error)}", "error")
            return
        try:
            self.select(**dict(series))
        except KeyError as error:
            self._say(f"No such series: {error_text(error)}", "error")

    def _on_first_label(self, change: dict[str, Any]) -> None:
        """A host was picked: offer its metrics, keeping the metric asked for if it has it."""
        if change["new"] is None:
            return
        first, second = self.labels
        try:
            values = self.label_values(second, **{first: change["new"]})
        except Exception as error:
            self._say(f"Could not list values: {error_text(error)}", "error")
            return
        keep = self._wanted.get(second)
        replace_options(
            self.label_widgets[second], values, keep if keep in values else next(iter(values), None)
        )

    def _on_second_label(self, change: dict[str, Any]) -> None:
        """Both labels are chosen: show that series (a selection, never a change)."""
        match = {label: w.value for label, w in self.label_widgets.items()}
        if None in match.values() or match == self.match:
            return
        try:
            self._show_series(match)
        except KeyError as error:
            self._say(f"No such series: {error_text(error)}", "error")

    def _show_series(self, match: Mapping[str, FieldScalar]) -> None:
        """New controls for this series, made with its values and bound to it alone."""
        shape = self.source.shape(match)
        self.originals.setdefault(tuple(match.items()), shape)
        old, self.match, self._wanted = self.controls, dict(match), dict(match)
        self.controls = make_controls(shape, self._layout)
        for name, control in self.controls.items():
            control.observe(
                lambda change, n=name, m=dict(match): self._on_control(m, n, change["new"]),
                names="value",
            )
        self._column.children = (*self.label_widgets.values(), *self.controls.values())
        self._close_controls(old)
        self._say("")
        self._debouncer.trigger()

    def _on_control(self, match: dict[str, FieldScalar], name: str, value: Any) -> None:
        """A control moved: apply the value to its own series, unless it has it already."""
        if value is None or match != self.match:  # between options, or a closed control
            return
        if name == "wave":
            value = Wave(value)
        if not self._same(self.controls[name], getattr(self.shape, name), value):
            self.apply(**{name: value})

    @staticmethod
    def _same(control: Any, held: Any, shown: Any) -> bool:
        """Whether a control's value is what the series holds: then it is only an echo.

        A slider cannot be moved by less than a step; less than half a step off is a
        browser rounding what the kernel showed, never a change asked for.
        """
        if isinstance(control, widgets.FloatSlider):
            return abs(float(shown) - float(held)) <= control.step / 2
        return bool(held == shown)

    @staticmethod
    def _close_controls(controls: Mapping[str, Any]) -> None:
        for control in controls.values():
            control.close()
            control.style.close()
