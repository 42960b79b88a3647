"""The series shaping panel: change one synthetic series and watch what StackState gets.

The controls change the running ``SyntheticSource`` (``set_shape``, thread-safe);
the plot then asks the mirror again over HTTP, so it shows the answers StackState
would receive after the change, not the generator's internals. Redraws are
debounced: dragging a slider changes the series at once but asks the mirror only
when the slider rests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

import ipywidgets as widgets

from ..client import MirrorClient, TimeArg, to_millis
from ..protocol import AggregationMethod, FieldScalar
from ..runtime import RunningMirror
from ..sources import SeriesShape, SyntheticSource, Wave
from .base import DEFAULT_DEBOUNCE_S, Debouncer, Panel, error_text, expand_values, message_html
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


def check_changes(shape: SeriesShape, changes: Mapping[str, Any]) -> SeriesShape:
    """The shape after ``changes``; raises ValueError naming the problem otherwise."""
    unknown = sorted(set(changes) - set(SeriesShape.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
    for name, value in changes.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number")
    try:
        return shape.replace(**changes)
    except (TypeError, ValueError) as error:
        raise ValueError(str(error)) from None


def _choices(values: Sequence[int], current: int) -> list[tuple[str, int]]:
    return [(format_duration(v), v) for v in sorted({*values, current})]


def _set_values(dropdown: widgets.Dropdown, values: Sequence[FieldScalar]) -> None:
    """New options; keep the chosen value when still offered, else take the first."""
    previous = dropdown.value
    dropdown.options = list(values)
    if values:
        dropdown.value = previous if previous in values else values[0]


def _scale(shape: SeriesShape) -> float:
    """A magnitude for slider ranges, so one panel fits 0-100 % and bytes per second."""
    biggest = max(abs(shape.baseline), abs(shape.amplitude), shape.noise, abs(shape.spike_height))
    return float(10 ** math.ceil(math.log10(max(biggest, 1.0))))


class ShapingPanel(Panel):
    """Sliders and dropdowns for one series' SeriesShape, with a live plot of its answers."""

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
        source = mirror.source
        if not isinstance(source, SyntheticSource):
            raise TypeError(
                "the shaping panel changes a SyntheticSource's parameters; this mirror "
                f"serves a {type(source).__name__}"
            )
        super().__init__(mirror, client)
        self.source = source
        self.labels = labels
        self.start, self.end, self.window_ms = start, end, window_ms
        self.methods, self.bucket_ms = tuple(methods), bucket_ms
        self.data: StreamData | None = None
        self.message = ""
        self.refreshes = 0
        self._syncing = False
        self._debouncer = Debouncer(debounce, self.refresh)
        # beside a 430 px column of controls: narrow enough for a notebook's width
        self.plot = LiveStreamPlot(tz=tz, interactive=interactive_plot, figsize=(6.4, 3.6))
        self._build_controls()
        self.match: dict[str, FieldScalar] = {}
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
        """Bind the panel to the series with these labels (``host=..., metric=...``)."""
        self.source.shape(match)  # KeyError when no series has these labels
        self.match = dict(match)
        self._show_shape(self.shape)
        self._debouncer.trigger()

    def apply(self, **changes: Any) -> bool:
        """Change parameters of the chosen series; False (and a message) when invalid.

        Nothing is changed when the combination is invalid; warnings about valid but
        misleading values are shown and the change is kept.
        """
        try:
            changed = check_changes(self.shape, changes)
        except ValueError as error:
            self._say(f"Not applied: {error}", "error")
            return False
        self.source.set_shape(self.match, **changes)
        self._show_changes(changed, changes)
        notes = shape_warnings(changed, self._window_ms())
        text = "; ".join(notes)
        self._say(text[:1].upper() + text[1:], "warning" if notes else "info")
        self._debouncer.trigger()
        return True

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

    def _build_controls(self) -> None:
        style = {"description_width": "110px"}
        wide = widgets.Layout(width="420px")
        self.label_widgets = {
            label: widgets.Dropdown(description=label, style=style, layout=wide)
            for label in self.labels
        }
        self.controls: dict[str, Any] = {
            "wave": widgets.Dropdown(options=[w.value for w in Wave], description="wave"),
            "baseline": widgets.FloatSlider(description="baseline"),
            "amplitude": widgets.FloatSlider(description="amplitude"),
            "period_ms": widgets.Dropdown(description="period"),
            "noise": widgets.FloatSlider(description="noise (std)"),
            "trend_per_day": widgets.FloatSlider(description="trend per day"),
            "spike_rate": widgets.FloatSlider(
                min=0, max=0.2, step=0.001, readout_format=".3f", description="spike rate"
            ),
            "spike_height": widgets.FloatSlider(description="spike height"),
            "seed": widgets.BoundedIntText(min=0, max=2**32 - 1, description="seed"),
            "resolution_ms": widgets.Dropdown(description="resolution"),
        }
        for control in self.controls.values():
            control.style = style
            control.layout = wide
        for label, dropdown in self.label_widgets.items():
            dropdown.observe(lambda change, lb=label: self._on_label(lb, change), names="value")
        for name, control in self.controls.items():
            control.observe(lambda change, n=name: self._on_control(n, change), names="value")
        self.message_widget = widgets.HTML()
        # A fixed-size column: in an HBox beside the plot, flexbox would otherwise
        # shrink it until the controls' descriptions are cut off.
        left = widgets.VBox(
            [*self.label_widgets.values(), *self.controls.values()],
            layout=widgets.Layout(flex="0 0 auto", min_width="430px"),
        )
        self.widget = widgets.VBox([widgets.HBox([left, self.plot.widget]), self.message_widget])

    def _init_series(self, series: Mapping[str, FieldScalar] | None) -> None:
        first, second = self.labels
        if series is None:  # the source's first series (the tutorial's a-host/cpu.user)
            labels = self.source.catalog.series[0].labels
            series = {k: labels[k] for k in self.labels if k in labels}
        try:
            self._syncing = True
            _set_values(self.label_widgets[first], self.label_values(first))
            if series and first in series:
                self.label_widgets[first].value = series[first]
            self._fill_second()
            if series and second in series:
                self.label_widgets[second].value = series[second]
        except Exception as error:
            self._say(f"Could not list the series: {error_text(error)}", "error")
            return
        finally:
            self._syncing = False
        self._select_from_dropdowns()

    def _fill_second(self) -> None:
        first, second = self.labels
        chosen = {first: self.label_widgets[first].value}
        _set_values(self.label_widgets[second], self.label_values(second, **chosen))

    def _select_from_dropdowns(self) -> None:
        match = {label: w.value for label, w in self.label_widgets.items()}
        try:
            self.select(**match)
        except KeyError as error:
            self._say(f"No such series: {error_text(error)}", "error")

    def _on_label(self, label: str, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        if label == self.labels[0]:
            self._syncing = True
            try:
                self._fill_second()
            except Exception as error:
                self._say(f"Could not list values: {error_text(error)}", "error")
            finally:
                self._syncing = False
        self._select_from_dropdowns()

    def _on_control(self, name: str, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        value = change["new"]
        self.apply(**{name: Wave(value) if name == "wave" else value})

    def _show_changes(self, shape: SeriesShape, changes: Mapping[str, Any]) -> None:
        """Show values applied by code (not by the controls) in the controls too."""
        self._syncing = True
        try:
            for name in changes:
                control = self.controls.get(name)
                if control is None:
                    continue
                value = getattr(shape, name)
                value = value.value if name == "wave" else value
                if isinstance(control, widgets.Dropdown) and name != "wave":
                    control.options = _choices([v for _, v in control.options], value)
                elif isinstance(control, widgets.FloatSlider):
                    control.min, control.max = min(control.min, value), max(control.max, value)
                control.value = value
        finally:
            self._syncing = False

    def _show_shape(self, shape: SeriesShape) -> None:
        """Put a shape's values into the controls without applying them back."""
        scale = _scale(shape)
        ranges = {
            "baseline": (-4 * scale, 4 * scale),
            "amplitude": (0.0, 4 * scale),
            "noise": (0.0, scale),
            "trend_per_day": (-scale, scale),
            "spike_height": (-4 * scale, 4 * scale),
        }
        self._syncing = True
        try:
            for name, (low, high) in ranges.items():
                slider, value = self.controls[name], getattr(shape, name)
                slider.min, slider.max = -1e300, 1e300  # widen first: min <= max always
                slider.min, slider.max = min(low, value), max(high, value)
                slider.step = scale / 200
            self.controls["spike_rate"].max = max(0.2, shape.spike_rate)
            self.controls["period_ms"].options = _choices(PERIODS_MS, shape.period_ms)
            self.controls["resolution_ms"].options = _choices(RESOLUTIONS_MS, shape.resolution_ms)
            for name in PARAMETERS:
                value = getattr(shape, name)
                self.controls[name].value = value.value if name == "wave" else value
        finally:
            self._syncing = False
