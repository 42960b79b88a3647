"""The stream wizard: StackState's "add telemetry stream" dialog, asked over HTTP.

As in StackState, the conditions chosen so far narrow what is offered next: the
field list comes from Field Names under those conditions, a field's values from
Field Values; picking a ``FieldValuePattern`` (``cpu.*``) asks Field Values again
with it as ``fieldValuePrefix``, picking a ``CompleteValue`` adds a condition. The
plot shows the stream the conditions select, raw and aggregated as chosen.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import ipywidgets as widgets

from ..client import MirrorClient, TimeArg
from ..protocol import (
    AggregationMethod,
    CompleteValue,
    FieldDescriptor,
    FieldScalar,
    FieldValueOption,
    FieldValuePattern,
)
from ..protocol.values import as_text
from ..runtime import RunningMirror
from .base import (
    DEFAULT_DEBOUNCE_S,
    Debouncer,
    Panel,
    error_text,
    message_html,
    replace_options,
)
from .plots import (
    DEFAULT_BUCKET_MS,
    HOUR_MS,
    MINUTE_MS,
    LiveStreamPlot,
    StreamData,
    fetch_stream,
    format_duration,
)

BUCKETS_MS = (
    10_000,
    MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    6 * HOUR_MS,
    24 * HOUR_MS,
)
NO_CHOICE = "—"


def describe_choice(conditions: dict[str, FieldScalar]) -> str:
    """``host = a-host AND metric = cpu.user``, or a hint when nothing is chosen yet."""
    if not conditions:
        return "no conditions yet: the mirror serves its first series"
    return " AND ".join(f"{k} = {as_text(v)}" for k, v in conditions.items())


class StreamWizard(Panel):
    """Field and value dropdowns filled by the mirror's answers, an aggregation picker, a plot."""

    def __init__(
        self,
        mirror: RunningMirror,
        *,
        client: MirrorClient | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        method: str | AggregationMethod | None = AggregationMethod.MEAN,
        bucket_ms: int = DEFAULT_BUCKET_MS,
        debounce: float = DEFAULT_DEBOUNCE_S,
        tz: tzinfo | None = None,
        interactive_plot: bool | None = None,
    ) -> None:
        super().__init__(mirror, client)
        self.start, self.end = start, end
        self.method = None if method is None else AggregationMethod(method)
        self.bucket_ms = bucket_ms
        self.conditions: dict[str, FieldScalar] = {}
        self.fields: dict[str, FieldDescriptor] = {}
        self.field: str | None = None
        self.prefix: str | None = None
        self.options: list[FieldValueOption] = []
        self.data: StreamData | None = None
        self.message = ""
        self._debouncer = Debouncer(debounce, self.refresh)
        self.plot = LiveStreamPlot(tz=tz, interactive=interactive_plot)
        self._build()
        self._reload_fields()
        self._debouncer.trigger()

    # -- plain methods -----------------------------------------------------------------

    def field_names(self) -> list[str]:
        """Field names the mirror offers under the chosen conditions (Field Names)."""
        answer = self.client.field_names(conditions=self.conditions, start=self.start, end=self.end)
        self.fields = {f.field_name: f for f in answer.fields}
        return list(self.fields)

    def value_options(self, field: str, prefix: str | None = None) -> list[FieldValueOption]:
        """The options of ``field`` after ``prefix`` (Field Values, with the field's type)."""
        descriptor = self.fields.get(field) or FieldDescriptor(field)
        answer = self.client.field_values(
            descriptor, prefix=prefix, conditions=self.conditions, start=self.start, end=self.end
        )
        return list(answer.values)

    def choose_field(self, field: str | None) -> list[FieldValueOption]:
        """Pick the field to filter on; returns (and offers) its values, from the top level."""
        self.field, self.prefix = field, None
        self.options = [] if field is None else self.value_options(field)
        if field in {v for _, v in self.field_widget.options}:
            self.field_widget.value = field  # shown as picked (its observer sees it is)
        self._show_values()
        return self.options

    def choose_value(self, option: FieldValueOption | FieldScalar) -> list[FieldValueOption]:
        """Pick a value of the chosen field.

        A FieldValuePattern refines: Field Values is asked again with it as prefix and
        the new options are returned. A complete value adds the condition ``field =
        value``, updates the field list and the plot, and returns ``[]``. A plain value
        is looked up among the options offered, so ``"cpu.*"`` picks that pattern.
        """
        if self.field is None:
            raise ValueError("choose a field first")
        offered = {o.value: o for o in self.options}
        if not isinstance(option, (CompleteValue, FieldValuePattern)) and option in offered:
            option = offered[option]
        if isinstance(option, FieldValuePattern):
            self.prefix = option.value
            self.options = self.value_options(self.field, self.prefix)
            self._show_values()
            return self.options
        value = option.value if isinstance(option, CompleteValue) else option
        self.conditions[self.field] = value
        self._after_conditions_changed()
        return []

    def remove_condition(self, field: str | None = None) -> None:
        """Drop the condition on ``field`` (the last one added when None)."""
        if not self.conditions:
            return
        key = field if field is not None else next(reversed(self.conditions))
        self.conditions.pop(key, None)
        self._after_conditions_changed()

    def clear(self) -> None:
        self.conditions.clear()
        self._after_conditions_changed()

    def set_aggregation(self, method: str | AggregationMethod | None, bucket_ms: int) -> None:
        """Choose the aggregation (None: raw points only) and bucket size; redraw."""
        self.method = None if method is None else AggregationMethod(method)
        self.bucket_ms = int(bucket_ms)
        self._debouncer.trigger()

    def fetch(self) -> StreamData:
        """The chosen stream's answers from the mirror, as StackState would get them."""
        return fetch_stream(
            self.client,
            start=self.start,
            end=self.end,
            methods=() if self.method is None else (self.method,),
            bucket_ms=self.bucket_ms,
            conditions=self.conditions,
        )

    def refresh(self) -> None:
        """Ask the mirror for the stream and redraw; failures become the message line."""
        try:
            self.data = self.fetch()
            self.plot.update(self.data)
            self._say("")
        except Exception as error:
            self._say(f"No stream for these conditions: {error_text(error)}", "error")

    def close(self) -> None:
        self._debouncer.cancel()
        self.plot.close()
        super().close()

    def __repr__(self) -> str:
        return f"<StreamWizard {describe_choice(self.conditions)}>"

    # -- widgets -------------------------------------------------------------------------

    def _say(self, text: str, level: str = "info") -> None:
        self.message = text
        self.message_widget.value = message_html(text, level)

    def _after_conditions_changed(self) -> None:
        self.field, self.prefix, self.options = None, None, []
        self.chosen_widget.value = f"<b>Conditions:</b> {describe_choice(self.conditions)}"
        self._reload_fields()
        self._debouncer.trigger()

    def _reload_fields(self) -> None:
        try:
            names = [n for n in self.field_names() if n not in self.conditions]
        except Exception as error:
            names = []
            self._say(f"Field Names failed: {error_text(error)}", "error")
        replace_options(self.field_widget, [(NO_CHOICE, None), *((n, n) for n in names)])
        self._show_values()

    def _show_values(self) -> None:
        shown = [
            (
                f"{as_text(o.value)}  (refine)"
                if isinstance(o, FieldValuePattern)
                else as_text(o.value),
                o,
            )
            for o in self.options
        ]
        replace_options(self.value_widget, [(NO_CHOICE, None), *shown])
        self.prefix_widget.value = (
            f"values starting with <code>{self.prefix}</code>" if self.prefix else ""
        )

    def _build(self) -> None:
        style = {"description_width": "90px"}
        self.field_widget = widgets.Dropdown(description="field", style=style)
        self.value_widget = widgets.Dropdown(description="value", style=style)
        self.prefix_widget = widgets.HTML()
        self.chosen_widget = widgets.HTML(f"<b>Conditions:</b> {describe_choice(self.conditions)}")
        undo = widgets.Button(description="Remove last", icon="undo")
        reset = widgets.Button(description="Clear", icon="times")
        self.method_widget = widgets.Dropdown(
            options=[("raw only", None), *((m.value, m) for m in AggregationMethod)],
            value=self.method,
            description="aggregation",
            style=style,
        )
        self.bucket_widget = widgets.Dropdown(
            options=[(format_duration(b), b) for b in sorted({*BUCKETS_MS, self.bucket_ms})],
            value=self.bucket_ms,
            description="bucket",
            style=style,
        )
        self.message_widget = widgets.HTML()
        self.field_widget.observe(self._on_field, names="value")
        self.value_widget.observe(self._on_value, names="value")
        self.method_widget.observe(self._on_aggregation, names="value")
        self.bucket_widget.observe(self._on_aggregation, names="value")
        undo.on_click(lambda _: self._guarded(self.remove_condition))
        reset.on_click(lambda _: self._guarded(self.clear))
        self.widget = widgets.VBox(
            [
                self.chosen_widget,
                widgets.HBox([self.field_widget, self.value_widget, undo, reset]),
                self.prefix_widget,
                widgets.HBox([self.method_widget, self.bucket_widget]),
                self.plot.widget,
                self.message_widget,
            ]
        )

    def _guarded(self, action: Any, *args: Any) -> None:
        """Run a widget action; a failure becomes the message line, never a traceback."""
        try:
            action(*args)
        except Exception as error:
            self._say(error_text(error), "error")

    # The dropdowns are refilled with replace_options: observers see None (the "—"
    # entry) between two lists, never an option of the old list applied to the new.

    def _on_field(self, change: dict[str, Any]) -> None:
        if change["new"] is not None and change["new"] != self.field:
            self._guarded(self.choose_field, change["new"])

    def _on_value(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self._guarded(self.choose_value, change["new"])

    def _on_aggregation(self, change: dict[str, Any]) -> None:
        self._guarded(self.set_aggregation, self.method_widget.value, self.bucket_widget.value)
