"""Notebooks 03 and 04 driven in Chromium with the mouse and keyboard, checked over HTTP.

A learner selects options, drags sliders, types into fields and clicks buttons; the
test then asks the notebook's own mirror (over HTTP, as StackState would) what it
serves and compares every series before and after each step: the series the learner
changed changes exactly as asked (it equals a reference mirror given the same shape),
and every other series does not change at all. Switching the series a panel shows
never changes any series, and the controls then show the selected series' own
parameters.

Driving the widgets from code (tests/test_widgets.py) cannot see this class of bug:
the front end's echo of values while the kernel rewrites options and bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mirror_kit.sources import Wave

from .images import save_png
from .lab_server import LabServer
from .lab_ui import Controls, NotebookView, error_lines
from .mirror_http import changed, default_shape, mirror_url, reference_values, snapshot
from .screenshots import targets

pytestmark = pytest.mark.browser

A_CPU, B_CPU = ("a-host", "cpu.user"), ("b-host", "cpu.user")


def run(page: Any, lab: LabServer, notebook: str) -> tuple[NotebookView, Controls, str]:
    view = NotebookView(page, lab, notebook)
    view.open()
    view.run_all()
    assert view.errors() == []
    stop = view.panel.locator(".widget-html", has_text="serves on").last
    return view, Controls(view), mirror_url(stop.inner_text())


def shows_shape(ui: Controls, shape: Any) -> dict[str, tuple[str, str]]:
    """Controls whose shown value differs from ``shape``: {label: (shown, expected)}."""
    expected = {
        "baseline": f"{shape.baseline:.2f}",
        "amplitude": f"{shape.amplitude:.2f}",
        "noise (std)": f"{shape.noise:.2f}",
        "spike height": f"{shape.spike_height:.2f}",
    }
    shown = {label: ui.readout(label) for label in expected}
    shown["wave"], expected["wave"] = ui.chosen("wave"), shape.wave.value
    shown["seed"], expected["seed"] = ui.typed("seed"), str(shape.seed)
    return {k: (shown[k], expected[k]) for k in expected if shown[k] != expected[k]}


def select_series(ui: Controls, host: str, metric: str, shape: Any) -> None:
    """Pick a series in the panel's dropdowns; wait until the controls show ``shape``."""
    ui.choose("host", host)
    ui.choose("metric", metric)
    ui.wait_for(lambda: not shows_shape(ui, shape), f"the controls show {host}/{metric}")
    ui.settle()


def test_shaping_panel_driven_by_mouse_and_keyboard(page: Any, lab: LabServer) -> None:
    view, ui, url = run(page, lab, "03-shape-the-data.ipynb")
    a, b = default_shape(*A_CPU), default_shape(*B_CPU)

    # a clean first run: the panel shows a-host as the mirror serves it, as it started
    start = snapshot(url)
    assert shows_shape(ui, a) == {}
    np.testing.assert_array_equal(start[A_CPU], reference_values(*A_CPU))
    assert error_lines(view) == []

    # switching the series changes no series, and shows the new one's own parameters
    select_series(ui, *B_CPU, b)
    assert changed(start, snapshot(url)) == set()
    assert shows_shape(ui, b) == {}

    # a mouse drag, a key on a slider, typing a seed, two dropdowns: b-host only
    asked: dict[str, Any] = {}
    before = ui.readout("amplitude")
    ui.drag("amplitude", 0.08)
    ui.wait_for(lambda: ui.readout("amplitude") != before, "the amplitude slider moved")
    asked["amplitude"] = float(ui.readout("amplitude"))
    noise = ui.control("noise (std)").locator("[role=slider]")
    noise.focus()
    noise.press("Home")
    asked["noise"] = 0.0
    ui.type_into("seed", "12345")
    asked["seed"] = 12345
    ui.choose("wave", "square")
    asked["wave"] = Wave.SQUARE
    ui.choose("resolution", "1 min")
    asked["resolution_ms"] = 60_000
    ui.wait_for(lambda: ui.readout("noise (std)") == "0.00", "the noise slider went to 0")
    ui.settle()
    after = snapshot(url)
    assert changed(start, after) == {B_CPU}
    np.testing.assert_array_equal(after[B_CPU], reference_values(*B_CPU, **asked))

    # back to a-host: nothing changes, a-host's own parameters are shown
    select_series(ui, *A_CPU, a)
    assert changed(after, snapshot(url)) == set()

    # b-host again: every value the learner set is shown as set (the round trip)
    select_series(ui, *B_CPU, b.replace(**asked))
    assert ui.chosen("resolution") == "1 min"
    assert changed(after, snapshot(url)) == set()

    # another metric of the same host: its own parameters, still nothing changes
    select_series(ui, "b-host", "mem.used", default_shape("b-host", "mem.used"))
    assert changed(after, snapshot(url)) == set()
    assert view.errors() == [] and error_lines(view) == []
    assert view.log_messages() == []


#: StackState 5.1's Mirror source form: its ten settings and their defaults.
FORM_DEFAULTS = {
    "Name": "Mirror server",
    "Api Key": "api_key",
    "Connection details JSON": "{}",
    "Max active live streams": "200",
    "Max events per live-stream poll": "10000",
    "Minimum live-stream polling interval (s)": "60",
    "Propagate errors only after (min)": "",
    "Request timeout UI (s)": "15",
    "Stale after (min)": "10",
}


def test_configure_stackstate_driven_by_mouse_and_keyboard(page: Any, lab: LabServer) -> None:
    view, ui, url = run(page, lab, "04-configure-stackstate.ipynb")
    port = url.rsplit(":", 1)[1]
    start = snapshot(url)

    # the Mirror source form: all ten settings, with StackState's defaults
    assert {label: ui.typed(label) for label in FORM_DEFAULTS} == FORM_DEFAULTS
    ui.button("on this machine").click()
    ui.wait_for(lambda: ui.typed("Mirror URL") == url, "the Mirror URL is this machine's")
    ui.button("in Docker on this laptop").click()
    docker = f"http://host.docker.internal:{port}"
    ui.wait_for(lambda: ui.typed("Mirror URL") == docker, "the Mirror URL is Docker's")
    result = view.panel.locator(".widget-hbox").filter(has=ui.button_near("Test Connection"))

    def press_test_connection(expected: str) -> None:
        ui.button("Test Connection").click()
        shown = result.locator(".widget-html")
        ui.wait_for(lambda: shown.inner_text().startswith(expected), f"Test Connection: {expected}")

    press_test_connection("OK")
    ui.type_into("Api Key", "apikey")
    press_test_connection("FAILURE: wrong Api Key")
    ui.type_into("Api Key", "api_key")
    press_test_connection("OK")

    # the stream wizard, as in StackState: field, value, refine a pattern, aggregation
    conditions = view.panel.locator(".widget-html", has_text="Conditions:").first
    ui.button("Clear").click()
    ui.wait_for(lambda: "no conditions yet" in conditions.inner_text(), "conditions cleared")
    for field, value, shown in (
        ("host", "b-host", "host = b-host"),
        ("metric", "mem.* (refine)", None),
        (None, "mem.used", "host = b-host AND metric = mem.used"),
    ):
        if field is not None:
            ui.choose("field", field)
            ui.wait_for(lambda v=value: v in ui.options("value"), f"{value} is offered")
        ui.choose("value", value)
        if shown is not None:
            ui.wait_for(lambda s=shown: s in conditions.inner_text(), f"conditions: {shown}")
    ui.choose("aggregation", "MAX")
    ui.choose("bucket", "5 min")
    ui.settle()
    ui.button("Refresh").click()
    asked = "metric MAX/300000ms where host=b-host AND metric=mem.used"
    ui.wait_for(lambda: asked in view.panel.inner_text(), "the wizard's request in the log")

    assert changed(start, snapshot(url)) == set()  # configuring reads; it changes no data
    assert view.errors() == [] and error_lines(view) == []
    assert view.log_messages() == []

    view.hide_left_sidebar()
    ui.control("Name")  # scrolled into view, for the screenshot
    save_png(view.screenshot(), *targets("04-configure-stackstate.png"))
