"""Plots and ipywidgets panels for the mirror-kit notebooks.

Everything shown is read from the mirror over HTTP (a ``MirrorClient``), so it is
what StackState receives. Panels change a ``SyntheticSource``'s parameters and ask
again. Use ``%matplotlib widget`` (ipympl) for live plots in panels; under the inline
backend, panels redraw a PNG image instead. Usage::

    from mirror_kit import start_mirror, MirrorClient
    from mirror_kit.notebook import (
        plot_stream, stream_figure, fetch_stream,
        shaping_panel, stream_wizard, source_form, request_inspector,
    )

    mirror = start_mirror(port=0)
    client = MirrorClient(mirror.url, api_key=mirror.api_key)

    # a static figure, shown as a PNG in any kernel (no backend magic needed):
    # raw points + MEAN and MAX per 10 min
    stream_figure(client, host="a-host", metric="cpu.user",
                  methods=("MEAN", "MAX"), bucket_ms=600_000)

    shaping_panel(mirror)             # sliders for one series + live plot
    stream_wizard(mirror)             # StackState's stream wizard, over HTTP
    source_form(mirror)               # values to copy + a working Test Connection
    request_inspector(mirror)         # the last requests the mirror received
    view = simulation_view(mirror, streams=20, minutes=30, speed=120)
    report = view.wait()              # StackState's polling, latency plotted live
    stop_button(mirror, *panels)      # when done: close the panels, stop the mirror

Plots (``mirror_kit.notebook.plots``):

* ``fetch_stream(client, *, start=None, end=None, methods=("MEAN",), bucket_ms=600_000,
  raw=True, conditions=None, **condition_keywords) -> StreamData``
* ``plot_stream(source, *, ax=None, tz=None, title=None, unit=None, figsize=(8, 3),
  **query) -> StreamPlot`` -- ``source`` is a MirrorClient (``query`` = fetch_stream's
  arguments), a StreamData, or one MetricSeries. The y axis names the metric and its
  unit (``UNITS`` knows the kit's own metrics; pass ``unit=`` for yours).
* ``stream_figure(source, *, tz=None, title=None, unit=None, figsize=(8, 3), **query)
  -> StreamFigure``: a Figure with ``_repr_png_``, so a cell returning it shows the
  plot in JupyterLab, under nbclient/nbval and in the stored notebook.
* ``StreamPlot(ax, *, tz=None, title=None)``: ``.draw(data)`` updates the same line
  artists (``.raw_line``, ``.aggregated_lines[method]``) and calls ``draw_idle``.
* ``LiveStreamPlot(*, tz=None, title=None, figsize=(8, 3), interactive=None)``:
  ``.widget``, ``.update(data)``, ``.figure``, ``.close()``.
* ``step_xy(starts, ends, values)``, ``local_tz()``, ``to_datenums(ms)``.

Panels (``mirror_kit.notebook.widgets``), each with ``.widget`` and ``.close()``:

* ``shaping_panel(mirror, **options) -> ShapingPanel``: ``.select(host=..., metric=...)``,
  ``.apply(**shape_changes) -> bool``, ``.reset()``, ``.refresh()``, ``.fetch()``,
  ``.shape``, ``.controls`` (the shown series' own controls), ``.data``, ``.message``.
* ``stream_wizard(mirror, **options) -> StreamWizard``: ``.field_names()``,
  ``.value_options(field, prefix=None)``, ``.choose_field(field)``,
  ``.choose_value(option)``, ``.remove_condition(field=None)``, ``.clear()``,
  ``.set_aggregation(method, bucket_ms)``, ``.refresh()``, ``.conditions``, ``.data``.
* ``source_form(mirror, *, where="local") -> SourceForm``: ``.values()`` (StackState
  5.1's ten settings), ``.fill(url=, api_key=, details=, name=, **settings)``,
  ``.set_where(where)``,
  ``.test() -> ConnectionCheck``; ``check_connection(url, api_key, details)`` is the
  same check as a function.
* ``request_inspector(mirror, *, rows=20, tz=None) -> RequestInspector``:
  ``.refresh() -> str`` (the table's HTML), ``.entries()``.

Simulation (``mirror_kit.notebook.simulation``):

* ``SimulationView(mirror, *, streams=None, monitors=None, wizards=None, minutes=30,
  speed=120, start_ms=None, model=None, series=None)`` (counts override ``model``, by
  default 20 streams, 5 monitors, 2 wizard sessions): ``.start()`` (returns at once: it runs on
  the mirror's loop), ``.wait(timeout=None) -> Report``, ``.done``, ``.report``,
  ``.timeline`` (p50/p99 per request kind over simulated time), ``.latency_figure()``
  (the finished plot, a PNG in any kernel), ``.widget``, ``.close()``;
  ``simulation_view(mirror, **options)`` makes and starts one. The report is
  ``python -m mirror_kit simulate``'s.

Pass ``tz=datetime.timezone.utc`` for reproducible time axes; the default is the
machine's local timezone. Panels take ``debounce=0`` to redraw synchronously.
"""

from .form import ConnectionCheck, SourceForm, check_connection
from .inspector import RequestInspector, requests_table_html
from .plots import (
    LiveStreamPlot,
    StreamData,
    StreamFigure,
    StreamPlot,
    fetch_stream,
    local_tz,
    plot_stream,
    step_xy,
    stream_figure,
)
from .shaping import ShapingPanel
from .simulation import LatencyTimeline, SimulationView, simulation_view
from .stop import StopButton, stop_button
from .widgets import request_inspector, shaping_panel, source_form, stream_wizard
from .wizard import StreamWizard

__all__ = [
    "ConnectionCheck",
    "LatencyTimeline",
    "LiveStreamPlot",
    "RequestInspector",
    "ShapingPanel",
    "SimulationView",
    "SourceForm",
    "StopButton",
    "StreamData",
    "StreamFigure",
    "StreamPlot",
    "StreamWizard",
    "check_connection",
    "fetch_stream",
    "local_tz",
    "plot_stream",
    "request_inspector",
    "requests_table_html",
    "shaping_panel",
    "simulation_view",
    "source_form",
    "step_xy",
    "stop_button",
    "stream_figure",
    "stream_wizard",
]
