"""The request inspector: the last requests the mirror received, as a table.

When a real StackState is connected, this is where its calls show up: which method,
the conditions it asked for, how the mirror answered and how fast. It reads the
mirror's own bounded request log (``RunningMirror.requests()``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, tzinfo

import ipywidgets as widgets

from ..runtime import RunningMirror
from ..server.requestlog import RequestLogEntry
from .base import Panel
from .plots import local_tz, tz_name

DEFAULT_ROWS = 20
COLUMNS = ("time", "method", "conditions / summary", "status", "latency", "points")


def request_rows(entries: Sequence[RequestLogEntry], tz: tzinfo | None = None) -> list[list[str]]:
    """Table cells for log entries, newest first, times in ``tz`` (local by default)."""
    tz = tz or local_tz()
    rows = []
    for entry in reversed(entries):
        when = datetime.fromtimestamp(entry.time, tz).strftime("%H:%M:%S.%f")[:-3]
        rows.append(
            [
                when,
                entry.method,
                entry.summary,
                str(entry.status),
                f"{entry.latency_ms:.1f} ms",
                "" if entry.points is None else str(entry.points),
            ]
        )
    return rows


def requests_table_html(entries: Sequence[RequestLogEntry], tz: tzinfo | None = None) -> str:
    """An HTML table of log entries, newest first; every cell is escaped."""
    tz = tz or local_tz()
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for cells, entry in zip(request_rows(entries, tz), reversed(entries), strict=True):
        colour = "#1a7f37" if 200 <= entry.status < 300 else "#cf222e"
        tds = [f"<td style='text-align:left'>{html.escape(c)}</td>" for c in cells]
        tds[3] = f"<td style='text-align:left;color:{colour}'>{html.escape(cells[3])}</td>"
        body.append(f"<tr>{''.join(tds)}</tr>")
    if not body:
        empty = f"<td colspan='{len(COLUMNS)}'><i>no requests yet</i></td>"
        body.append(f"<tr>{empty}</tr>")
    caption = f"<caption>newest first; time in {html.escape(tz_name(tz))}</caption>"
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class RequestInspector(Panel):
    """The last ``rows`` requests the mirror received, with a Refresh button."""

    def __init__(
        self, mirror: RunningMirror, *, rows: int = DEFAULT_ROWS, tz: tzinfo | None = None
    ) -> None:
        super().__init__(mirror)
        self.rows = rows
        self.tz = tz
        self.table_widget = widgets.HTML()
        self.button = widgets.Button(description="Refresh", icon="refresh")
        self.button.on_click(lambda _: self.refresh())
        self.widget = widgets.VBox([self.button, self.table_widget])
        self.refresh()

    def entries(self) -> list[RequestLogEntry]:
        """The newest ``rows`` log entries, oldest first (as the log keeps them)."""
        return self.mirror.requests(self.rows)

    def refresh(self) -> str:
        """Re-read the log and redraw the table; returns the table's HTML."""
        self.table_widget.value = requests_table_html(self.entries(), self.tz)
        return self.table_widget.value

    def __repr__(self) -> str:
        return f"<RequestInspector last {self.rows} requests>"
