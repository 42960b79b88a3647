"""The Mirror source form: what to type into StackState, and its Test Connection button.

StackState → Settings → Telemetry Sources → Mirror sources asks for a Name, a Mirror
URL, an Api Key and Connection details JSON, and offers *Test Connection*. This
panel shows the values for the running mirror, ready to copy, and its button does
what StackState's does: POST ``/api/connection`` to the URL in the form, with the
details JSON as ``connectionDetails``, and compare the answer's
``X-MIRROR-API-KEY`` with the key in the form.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import ipywidgets as widgets

from ..client import (
    ApiKeyMismatchError,
    MirrorClient,
    MirrorClientError,
    MirrorUnreachableError,
)
from ..protocol import MirrorError
from ..runtime import RunningMirror
from .base import Panel, error_text, message_html

DEFAULT_NAME = "Mirror server"
DEFAULT_DETAILS = "{}"
#: How a container reaches the machine it runs on (Docker Desktop; on Linux it needs
#: ``--add-host host.docker.internal:host-gateway``).
DOCKER_HOST = "host.docker.internal"
TEST_TIMEOUT_S = 5.0

WHERE = (
    ("on this machine", "local"),
    ("in Docker on this laptop", "docker"),
    ("remote (tunnel)", "remote"),
)


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of Test Connection: OK, or FAILURE with the reason."""

    ok: bool
    reason: str = ""
    tested_url: str = ""

    @property
    def status(self) -> str:
        return "OK" if self.ok else "FAILURE"

    def __str__(self) -> str:
        return self.status if not self.reason else f"{self.status}: {self.reason}"


def parse_details(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """Connection details JSON as StackState sends it; ValueError says what is wrong."""
    if isinstance(text, Mapping):
        return dict(text)
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(
            f"Connection details JSON is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(value, dict):
        raise ValueError("Connection details JSON must be a JSON object, such as {}")
    return value


def docker_url(port: int) -> str:
    """The Mirror URL for StackState running in Docker on the mirror's machine."""
    return f"http://{DOCKER_HOST}:{port}"


def reachable_url(url: str) -> tuple[str, str]:
    """The URL to test from this machine, and a note when it differs from ``url``.

    ``host.docker.internal`` names this machine from inside a container; from the
    notebook the same mirror is reached on 127.0.0.1, same port and path.
    """
    parsed = httpx.URL(url)
    if parsed.host != DOCKER_HOST:
        return url, ""
    local = str(parsed.copy_with(host="127.0.0.1"))
    return local, f" (tested from this machine as {local})"


def check_connection(
    url: str,
    api_key: str,
    connection_details: str | Mapping[str, Any] = DEFAULT_DETAILS,
    *,
    timeout: float = TEST_TIMEOUT_S,
) -> ConnectionCheck:
    """StackState's Test Connection against ``url`` with ``api_key``; never raises."""
    url = url.strip()
    try:
        details = parse_details(connection_details)
    except ValueError as error:
        return ConnectionCheck(False, str(error))
    if not url:
        return ConnectionCheck(False, "Mirror URL is empty: type the URL StackState will call")
    if not url.startswith(("http://", "https://")):
        return ConnectionCheck(False, "Mirror URL must start with http:// or https://")
    try:
        target, note = reachable_url(url)
    except httpx.InvalidURL as error:
        return ConnectionCheck(False, f"Mirror URL is not a valid URL: {error}")
    return _test(target, api_key, details, timeout, note)


def _test(
    url: str, api_key: str, details: dict[str, Any], timeout: float, note: str
) -> ConnectionCheck:
    try:
        with MirrorClient(url, api_key, connection_details=details, timeout=timeout) as client:
            answer = client.test_connection()
    except ApiKeyMismatchError as error:
        return ConnectionCheck(False, f"wrong Api Key: {error}", url)
    except MirrorUnreachableError as error:
        return ConnectionCheck(False, f"the mirror is unreachable: {error}{note}", url)
    except (MirrorError, MirrorClientError, httpx.HTTPError) as error:
        return ConnectionCheck(False, error_text(error) + note, url)
    if not answer.ok:
        return ConnectionCheck(False, error_text(answer.error) + note, url)
    return ConnectionCheck(True, note.strip(" ()"), url)


class SourceForm(Panel):
    """StackState's Mirror source form, filled for this mirror, with Test Connection."""

    def __init__(self, mirror: RunningMirror, *, where: str = "local") -> None:
        super().__init__(mirror)
        wide = widgets.Layout(width="520px")
        style = {"description_width": "190px"}
        self.where_widget = widgets.ToggleButtons(
            options=WHERE, value=where, description="StackState runs"
        )
        self.name_widget = widgets.Text(DEFAULT_NAME, description="Name", style=style, layout=wide)
        self.url_widget = widgets.Text(description="Mirror URL", style=style, layout=wide)
        self.key_widget = widgets.Text(
            mirror.api_key, description="Api Key", style=style, layout=wide
        )
        self.details_widget = widgets.Textarea(
            DEFAULT_DETAILS, description="Connection details JSON", style=style, layout=wide
        )
        self.hint_widget = widgets.HTML()
        self.copy_widget = widgets.HTML()
        self.result_widget = widgets.HTML()
        self.button = widgets.Button(description="Test Connection", button_style="primary")
        self.button.on_click(lambda _: self.test())
        self.where_widget.observe(lambda change: self.set_where(change["new"]), names="value")
        for field in (self.name_widget, self.url_widget, self.key_widget, self.details_widget):
            field.observe(lambda _: self._show_copy(), names="value")
        self.last: ConnectionCheck | None = None
        self.widget = widgets.VBox(
            [
                self.where_widget,
                self.hint_widget,
                self.name_widget,
                self.url_widget,
                self.key_widget,
                self.details_widget,
                widgets.HBox([self.button, self.result_widget]),
                self.copy_widget,
            ]
        )
        self.set_where(where)

    # -- plain methods -----------------------------------------------------------------

    def values(self) -> dict[str, str]:
        """The form's four fields, as they would be typed into StackState."""
        return {
            "Name": self.name_widget.value,
            "Mirror URL": self.url_widget.value,
            "Api Key": self.key_widget.value,
            "Connection details JSON": self.details_widget.value,
        }

    def fill(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        details: str | None = None,
        name: str | None = None,
    ) -> None:
        """Type into the form (what a user does before pressing Test Connection)."""
        for widget, value in (
            (self.url_widget, url),
            (self.key_widget, api_key),
            (self.details_widget, details),
            (self.name_widget, name),
        ):
            if value is not None:
                widget.value = value

    def set_where(self, where: str) -> None:
        """Fill the Mirror URL for where StackState runs, and say what that needs."""
        port = self.mirror.port
        if where == "docker":
            self.url_widget.value = docker_url(port)
            hint = (
                f"StackState in Docker reaches this machine as <code>{DOCKER_HOST}</code>. "
                "On Linux the container needs <code>--add-host "
                f"{DOCKER_HOST}:host-gateway</code> and the mirror must listen on all "
                "interfaces: <code>start_mirror(host='0.0.0.0', ...)</code>."
            )
            if self.mirror.host not in ("0.0.0.0", "", "::"):
                hint += (
                    f" This mirror listens on <code>{html.escape(self.mirror.host)}</code> only."
                )
        elif where == "remote":
            self.url_widget.value = ""
            hint = (
                f"Expose port {port} with a tunnel (<code>ssh -R</code>, ngrok, cloudflared...) "
                "and paste the tunnel's URL: StackState must be able to reach it."
            )
        else:
            self.url_widget.value = self.mirror.url
            hint = "StackState runs on this machine, outside Docker: it reaches the mirror here."
        self.hint_widget.value = f"<small>{hint}</small>"

    def test(self) -> ConnectionCheck:
        """Press Test Connection: a real request to the URL with the key and details typed."""
        values = self.values()
        self.last = check_connection(
            values["Mirror URL"], values["Api Key"], values["Connection details JSON"]
        )
        level = "ok" if self.last.ok else "error"
        self.result_widget.value = f"<b>{message_html(str(self.last), level)}</b>"
        return self.last

    def __repr__(self) -> str:
        return f"<SourceForm {self.name_widget.value!r}>"

    # -- widgets -------------------------------------------------------------------------

    def _show_copy(self) -> None:
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(k)}</td>"
            f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
            for k, v in self.values().items()
        )
        self.copy_widget.value = f"<table>{rows}</table>"
