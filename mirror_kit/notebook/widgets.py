"""The notebook's panels, and one constructor each.

Each panel is a class with a ``.widget`` (the ipywidgets container, shown when the
panel is the value of a cell) and plain methods that the widgets call, so the
behaviour is tested in pytest with no browser. Panels change a source's parameters
and read data only through a ``MirrorClient`` over HTTP.
"""

from __future__ import annotations

from typing import Any

from ..runtime import RunningMirror
from .form import ConnectionCheck, SourceForm, check_connection, docker_url, parse_details
from .inspector import RequestInspector, request_rows, requests_table_html
from .shaping import ShapingPanel, shape_warnings
from .wizard import StreamWizard


def shaping_panel(mirror: RunningMirror, **options: Any) -> ShapingPanel:
    """Sliders for one series of the mirror's SyntheticSource, with a live plot.

    Options: ``series={"host": "a-host", "metric": "cpu.user"}``, ``start``/``end``
    (epoch ms or datetime; default: the last ``window_ms`` until now), ``methods``,
    ``bucket_ms``, ``debounce`` (seconds; 0 redraws synchronously), ``tz``.
    """
    return ShapingPanel(mirror, **options)


def stream_wizard(mirror: RunningMirror, **options: Any) -> StreamWizard:
    """StackState's stream wizard: fields and values from the mirror, aggregation, plot.

    Options: ``start``/``end``, ``method`` (None for raw only), ``bucket_ms``,
    ``debounce``, ``tz``.
    """
    return StreamWizard(mirror, **options)


def source_form(mirror: RunningMirror, **options: Any) -> SourceForm:
    """StackState's Mirror source form for this mirror, with a working Test Connection.

    Option: ``where`` = ``"local"``, ``"docker"`` or ``"remote"`` (fills the Mirror URL).
    """
    return SourceForm(mirror, **options)


def request_inspector(mirror: RunningMirror, **options: Any) -> RequestInspector:
    """The last requests the mirror received, as a table with a Refresh button.

    Options: ``rows`` (default 20), ``tz``.
    """
    return RequestInspector(mirror, **options)


__all__ = [
    "ConnectionCheck",
    "RequestInspector",
    "ShapingPanel",
    "SourceForm",
    "StreamWizard",
    "check_connection",
    "docker_url",
    "parse_details",
    "request_inspector",
    "request_rows",
    "requests_table_html",
    "shape_warnings",
    "shaping_panel",
    "source_form",
    "stream_wizard",
]
