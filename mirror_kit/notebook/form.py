"""The Mirror source form: what to type into StackState, and its Test Connection button.

StackState → Settings → Telemetry Sources → Mirror sources asks (in 5.1) for ten
settings: a Name, a Mirror URL, an Api Key and Connection details JSON, and six that
govern how StackState polls (live streams, timeouts, staleness), and offers *Test
Connection*. This panel shows all ten for the running mirror with StackState's
defaults, says what each means for the mirror, and its button does what
StackState's does: POST ``/api/connection`` to the URL in the form, with the details
JSON as ``connectionDetails``, and compare the answer's ``X-MIRROR-API-KEY`` with
the key in the form.
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
from ..server import DEFAULT_PORT
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
class Setting:
    """One field of StackState's Mirror source form: its label, default and meaning."""

    label: str
    default: str
    meaning: str


#: The form's four connection fields (their values depend on the mirror).
CONNECTION = (
    Setting("Name", DEFAULT_NAME, "How StackState lists the source; the mirror never sees it."),
    Setting(
        "Mirror URL",
        "",
        "Where StackState sends the four Mirror API calls: this mirror as StackState "
        "reaches it (see <i>StackState runs</i> above).",
    ),
    Setting(
        "Api Key",
        "",
        "StackState compares it with the <code>X-MIRROR-API-KEY</code> header of every "
        "answer; the mirror sends its key, it never receives one.",
    ),
    Setting(
        "Connection details JSON",
        DEFAULT_DETAILS,
        "Sent as <code>connectionDetails</code> in every request: the mirror's own options "
        "(this kit reads <code>source</code> and a store's URL); <code>{}</code> is the "
        "default store.",
    ),
)
#: The six polling settings of StackState 5.1's form, with its defaults.
POLLING = (
    Setting(
        "Max active live streams",
        "200",
        "At most this many streams are polled live at once: at most that many Get Metric "
        "Values calls per polling interval reach the mirror.",
    ),
    Setting(
        "Max events per live-stream poll",
        "10000",
        "The most a single live-stream poll takes in; more is left for the next poll.",
    ),
    Setting(
        "Minimum live-stream polling interval (s)",
        "60",
        "A live stream is asked again at most this often, for a window ending now: the "
        "newest bucket is the one still filling.",
    ),
    Setting(
        "Propagate errors only after (min)",
        "",
        "How long the mirror must keep failing before StackState shows the error on its "
        "streams; empty: at once.",
    ),
    Setting(
        "Request timeout UI (s)",
        "15",
        "StackState's UI gives up on an answer after this long: a mirror must answer "
        "within it, or the chart shows nothing.",
    ),
    Setting(
        "Stale after (min)",
        "10",
        "A stream whose newest point is older than this is shown as stale: a mirror should "
        "serve points up to now.",
    ),
)
SETTINGS = (*CONNECTION, *POLLING)


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
    if answer.error is not None:  # not ``answer.ok``: mypy narrows the attribute itself
        return ConnectionCheck(False, error_text(answer.error) + note, url)
    return ConnectionCheck(True, note.strip(" ()"), url)


class SourceForm(Panel):
    """StackState's Mirror source form, filled for this mirror, with Test Connection."""

    def __init__(self, mirror: RunningMirror, *, where: str = "local") -> None:
        super().__init__(mirror)
        style = {"description_width": "270px"}
        self.where_widget = widgets.ToggleButtons(
            options=WHERE,
            value=where,
            description="StackState runs",
            style={"button_width": "auto"},  # each button as wide as its label
        )
        self.hint_widget = widgets.HTML()
        self.port_widget = widgets.HTML(self._port_note())
        self.copy_widget = widgets.HTML()
        self.fields: dict[str, Any] = {}
        rows = []
        for setting in SETTINGS:
            kind = widgets.Textarea if setting.label == "Connection details JSON" else widgets.Text
            wide = setting in CONNECTION
            field = kind(
                setting.default,
                description=setting.label,
                placeholder="empty" if not setting.default else "",
                style=style,
                layout=widgets.Layout(width="600px" if wide else "400px", flex="0 0 auto"),
            )
            field.observe(lambda _: self._show_copy(), names="value")
            self.fields[setting.label] = field
            meaning = widgets.HTML(
                f"<small>{setting.meaning}</small>",
                layout=widgets.Layout(flex="1 1 240px", margin="0 0 0 12px"),
            )
            rows.append(widgets.HBox([field, meaning], layout=widgets.Layout(flex_flow="row wrap")))
        self.name_widget = self.fields["Name"]
        self.url_widget = self.fields["Mirror URL"]
        self.key_widget = self.fields["Api Key"]
        self.details_widget = self.fields["Connection details JSON"]
        self.key_widget.value = mirror.api_key
        self.result_widget = widgets.HTML()
        self.button = widgets.Button(description="Test Connection", button_style="primary")
        self.button.on_click(lambda _: self.test())
        self.where_widget.observe(lambda change: self.set_where(change["new"]), names="value")
        self.last: ConnectionCheck | None = None
        self.widget = widgets.VBox(
            [
                self.where_widget,
                self.hint_widget,
                self.port_widget,
                *rows,
                widgets.HBox([self.button, self.result_widget]),
                self.copy_widget,
            ]
        )
        self.set_where(where)

    # -- plain methods -----------------------------------------------------------------

    def values(self) -> dict[str, str]:
        """The form's ten fields, as they would be typed into StackState."""
        return {label: field.value for label, field in self.fields.items()}

    def fill(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        details: str | None = None,
        name: str | None = None,
        **settings: str,
    ) -> None:
        """Type into the form (what a user does before pressing Test Connection).

        ``settings`` are other fields by label, e.g. ``**{"Stale after (min)": "5"}``.
        """
        unknown = sorted(set(settings) - set(self.fields))
        if unknown:
            raise ValueError(f"no such field in the form: {', '.join(unknown)}")
        typed = {
            "Mirror URL": url,
            "Api Key": api_key,
            "Connection details JSON": details,
            "Name": name,
            **settings,
        }
        for label, value in typed.items():
            if value is not None:
                self.fields[label].value = value

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

    def _port_note(self) -> str:
        if self.mirror.port == DEFAULT_PORT:
            return ""
        return message_html(
            f"This mirror serves on port {self.mirror.port}, not on {DEFAULT_PORT} as in "
            "StackState's tutorial (in notebook 4: another program holds it): the Mirror URL "
            f"below uses {self.mirror.port}.",
            "warning",
        )

    def _show_copy(self) -> None:
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(k)}</td>"
            f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
            for k, v in self.values().items()
        )
        self.copy_widget.value = f"<table>{rows}</table>"
