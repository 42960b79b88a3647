"""The notebook panels, driven through their plain methods and their widgets (no browser).

Every check compares a panel with what a separate MirrorClient receives over HTTP,
since the panels must show what StackState would get.
"""

from __future__ import annotations

import asyncio
import html
import re
import threading
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import nbformat
import numpy as np
import pytest
from conftest import HOUR, T0
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from mirror_kit import MirrorClient, RunningMirror, start_mirror
from mirror_kit.notebook import (
    check_connection,
    request_inspector,
    shaping_panel,
    source_form,
    stream_wizard,
)
from mirror_kit.notebook.base import Debouncer, expand_values
from mirror_kit.notebook.shaping import ShapingPanel
from mirror_kit.notebook.wizard import StreamWizard
from mirror_kit.protocol import CompleteValue, FieldDescriptor, FieldType, FieldValuePattern
from mirror_kit.sources import DataFrameSource, RoutingSource, SyntheticSource

UTC = timezone.utc
END = T0 + 6 * HOUR
A_CPU = {"host": "a-host", "metric": "cpu.user"}
WAIT_S = 10.0  # bound on waiting for a debounced call; never an assertion on speed


def raw_values(client: MirrorClient, **labels: Any) -> np.ndarray:
    return client.metrics(start=T0, end=END, **labels).values


@pytest.fixture
def panel(mirror: RunningMirror) -> Iterator[ShapingPanel]:
    p = shaping_panel(mirror, series=A_CPU, start=T0, end=END, debounce=0, tz=UTC)
    yield p
    p.close()


@pytest.fixture
def wizard(mirror: RunningMirror) -> Iterator[StreamWizard]:
    w = stream_wizard(mirror, start=T0, end=END, debounce=0, tz=UTC)
    yield w
    w.close()


# -- series shaping panel ------------------------------------------------------------


def test_shaping_panel_starts_on_the_chosen_series_and_plots_its_answers(
    panel: ShapingPanel, client: MirrorClient
) -> None:
    assert panel.match == A_CPU
    assert panel.data is not None and panel.data.raw is not None
    np.testing.assert_array_equal(panel.data.raw.values, raw_values(client, **A_CPU))
    assert panel.controls["baseline"].value == panel.shape.baseline == 35
    assert panel.message == ""


def test_shaping_panel_defaults_to_the_sources_first_series(mirror: RunningMirror) -> None:
    default = shaping_panel(mirror, start=T0, end=END, debounce=0)
    assert default.match == A_CPU  # the tutorial's component and metric
    assert repr(default) == "<ShapingPanel a-host/cpu.user>"
    default.close()


def test_a_served_routing_source_is_shaped_through_its_default_store() -> None:
    """``serve`` wraps every source in a RoutingSource: its synthetic default is shaped."""
    routed = RoutingSource({"synthetic": SyntheticSource()})
    with start_mirror(routed, port=0) as mirror, MirrorClient(mirror.url, mirror.api_key) as c:
        before = raw_values(c, **A_CPU)
        p = shaping_panel(mirror, series=A_CPU, start=T0, end=END, debounce=0, tz=UTC)
        try:
            assert p.apply(amplitude=5.0, noise=0.0) is True
            after = raw_values(c, **A_CPU)
            assert not np.array_equal(before, after)
            assert np.ptp(after) == pytest.approx(10.0, abs=0.05)  # 2 x amplitude, no noise
            assert p.data is not None and p.data.raw is not None
            np.testing.assert_array_equal(p.data.raw.values, after)
            p.reset()
            np.testing.assert_array_equal(raw_values(c, **A_CPU), before)
        finally:
            p.close()


def test_the_panel_defaults_to_the_routed_synthetic_first_series() -> None:
    routed = RoutingSource({"synthetic": SyntheticSource()})
    with start_mirror(routed, port=0) as mirror:
        p = shaping_panel(mirror, start=T0, end=END, debounce=0)
        assert p.match == A_CPU
        p.close()


@pytest.mark.parametrize(
    "source",
    [
        DataFrameSource({"timestamp": [T0], "value": [1.0]}),
        RoutingSource(
            {"table": DataFrameSource({"timestamp": [T0], "value": [1.0]}), "s": SyntheticSource()},
            default="table",
        ),
    ],
    ids=["dataframe", "routing-to-a-dataframe"],
)
def test_a_source_that_cannot_be_shaped_is_refused_by_name(source: Any) -> None:
    """Only what the panel's reads select ({} details: the default store) is shaped."""
    with (
        start_mirror(source, port=0) as mirror,
        pytest.raises(TypeError, match=r"(?i)serves .*dataframe"),
    ):
        shaping_panel(mirror, start=T0, end=END, debounce=0)


def test_applying_a_parameter_changes_what_the_client_receives(
    panel: ShapingPanel, client: MirrorClient
) -> None:
    before = raw_values(client, **A_CPU)
    other_before = raw_values(client, host="b-host", metric="cpu.user")
    assert panel.apply(amplitude=5.0, noise=0.0) is True
    after = raw_values(client, **A_CPU)
    assert not np.array_equal(before, after)
    assert np.ptp(after) == pytest.approx(10.0, abs=0.05)  # 2 x amplitude, no noise
    np.testing.assert_array_equal(
        raw_values(client, host="b-host", metric="cpu.user"), other_before
    )
    # the panel's plot shows exactly the new answers
    assert panel.data is not None and panel.data.raw is not None
    np.testing.assert_array_equal(panel.data.raw.values, after)
    assert panel.plot.plot.raw_line is not None
    np.testing.assert_array_equal(panel.plot.plot.raw_line.get_ydata(), after)
    assert panel.controls["amplitude"].value == 5.0  # a change by code shows in the slider


def test_moving_controls_changes_the_served_series(
    panel: ShapingPanel, client: MirrorClient
) -> None:
    assert len(client.metrics(start=T0, end=END, **A_CPU)) == 6 * 360
    panel.controls["resolution_ms"].value = 60_000
    assert len(client.metrics(start=T0, end=END, **A_CPU)) == 6 * 60
    assert panel.data is not None and panel.data.raw is not None and len(panel.data.raw) == 360
    before = raw_values(client, **A_CPU)
    panel.controls["wave"].value = "square"
    assert panel.shape.wave.value == "square"
    assert not np.array_equal(raw_values(client, **A_CPU), before)
    panel.controls["noise"].value = 0.0
    panel.controls["spike_rate"].value = 0.2
    panel.controls["spike_height"].value = 30.0
    spiky = raw_values(client, **A_CPU)
    assert panel.shape.spike_rate == 0.2 and panel.shape.spike_height == 30.0
    levels = set(np.round(spiky, 6))  # square wave 35 +/- 15, spikes +30, clipped to 0..100
    assert levels == {20.0, 50.0, 80.0}


def test_series_dropdowns_list_what_the_mirror_answers(
    panel: ShapingPanel, client: MirrorClient
) -> None:
    hosts = [v.value for v in client.field_values("host").values]
    assert list(panel.label_widgets["host"].options) == hosts
    assert list(panel.label_widgets["metric"].options) == expand_values(
        client, "metric", conditions={"host": "a-host"}
    )
    assert list(panel.label_widgets["metric"].options) == [
        "cpu.system",
        "cpu.user",
        "mem.used",
        "net.bytes_in",
    ]
    panel.label_widgets["metric"].value = "mem.used"
    assert panel.match == {"host": "a-host", "metric": "mem.used"}
    assert panel.controls["baseline"].value == 2048
    assert panel.controls["wave"].value == "sawtooth"
    before = raw_values(client, host="a-host", metric="mem.used")
    panel.controls["baseline"].value = 1000.0
    after = raw_values(client, host="a-host", metric="mem.used")
    assert np.mean(before - after) == pytest.approx(1048, abs=1e-6)


def snapped(control: Any) -> Any:
    """What a browser slider sends back: its value snapped to ``min + k * step``."""
    if not isinstance(control, widgets.FloatSlider):
        return control.value
    return control.min + round((control.value - control.min) / control.step) * control.step


def test_selecting_series_changes_none_even_with_the_browsers_echoes(
    panel: ShapingPanel, client: MirrorClient
) -> None:
    """Every series shown in turn, each control's value echoed as a browser slider would."""
    series = [(s.labels["host"], s.labels["metric"]) for s in panel.source.catalog.series]
    before = {key: raw_values(client, host=key[0], metric=key[1]) for key in series}
    for host, metric in series:
        panel.label_widgets["host"].value = host
        panel.label_widgets["metric"].value = metric
        assert panel.match == {"host": host, "metric": metric}
        shape = panel.shape
        for name, control in panel.controls.items():
            shown = getattr(shape, name)
            assert control.value == (shown.value if name == "wave" else shown), (host, name)
            control.value = snapped(control)  # the echo: nothing to apply
    for key, values in before.items():
        np.testing.assert_array_equal(raw_values(client, host=key[0], metric=key[1]), values)


def test_a_slider_echo_within_half_a_step_is_not_a_change(panel: ShapingPanel) -> None:
    slider = panel.controls["amplitude"]
    slider.value = panel.shape.amplitude + slider.step / 3
    assert panel.shape.amplitude == 15.0
    slider.value = 15.0 + slider.step  # one step: a move the learner made
    assert panel.shape.amplitude == 15.0 + slider.step


def test_controls_belong_to_their_series(panel: ShapingPanel) -> None:
    """A control of a series no longer shown is closed and can change nothing."""
    old = panel.controls["amplitude"]
    panel.select(host="b-host", metric="cpu.user")
    assert old.comm is None  # closed: the browser removed it
    old.value = 99.0
    assert panel.source.shape(A_CPU).amplitude == 15.0
    assert panel.shape.amplitude == 15.0 and panel.controls["amplitude"] is not old


def test_values_set_by_code_are_shown_exactly(panel: ShapingPanel) -> None:
    assert panel.apply(amplitude=12.345, period_ms=7 * 60_000, spike_rate=0.0005)
    amplitude = panel.controls["amplitude"]
    assert amplitude.value == 12.345 and snapped(amplitude) == pytest.approx(12.345)
    assert panel.controls["period_ms"].value == 420_000
    assert ("7 min", 420_000) in panel.controls["period_ms"].options
    assert snapped(panel.controls["spike_rate"]) == pytest.approx(0.0005)
    assert panel.shape.amplitude == 12.345


def test_reset_gives_the_series_their_start_back(panel: ShapingPanel, client: MirrorClient) -> None:
    start = raw_values(client, **A_CPU)
    panel.apply(amplitude=40.0, noise=0.0)
    panel.select(host="c-host", metric="mem.used")
    panel.apply(baseline=100.0)
    panel.apply(noise=-1.0)
    assert panel.message.startswith("Not applied")
    panel.reset()
    np.testing.assert_array_equal(raw_values(client, **A_CPU), start)
    assert panel.source.shape({"host": "c-host", "metric": "mem.used"}).baseline == 2048
    assert panel.message == "" and panel.controls["baseline"].value == 2048
    assert panel.match == {"host": "c-host", "metric": "mem.used"}


def test_invalid_values_show_a_message_and_change_nothing(
    panel: ShapingPanel, client: MirrorClient
) -> None:
    before = raw_values(client, **A_CPU)
    shape = panel.shape
    for bad in (
        {"noise": -1.0},
        {"spike_rate": 2.0},
        {"period_ms": 0},
        {"colour": "red"},
        {"wave": "zigzag"},
        {"baseline": float("nan")},
        {"amplitude": float("inf")},
        {"amplitude": "big"},
        {"seed": 1.5},
    ):
        assert panel.apply(**bad) is False
        assert panel.message.startswith("Not applied:"), panel.message
        assert "Not applied" in panel.message_widget.value
    assert panel.shape == shape
    np.testing.assert_array_equal(raw_values(client, **A_CPU), before)


def test_misleading_values_are_applied_with_a_warning(panel: ShapingPanel) -> None:
    assert panel.apply(period_ms=10_000) is True
    assert panel.shape.period_ms == 10_000
    assert "aliases" in panel.message


def test_a_stopped_mirror_is_a_message_not_a_traceback(panel: ShapingPanel) -> None:
    panel.mirror.stop()
    panel.refresh()
    assert panel.message.startswith("Could not read the stream: MirrorUnreachableError")


def test_debouncer_coalesces_triggers_in_a_thread_without_a_loop() -> None:
    calls: list[int] = []
    fired = threading.Event()

    def action() -> None:
        calls.append(1)
        fired.set()

    debouncer = Debouncer(0.05, action)
    for _ in range(5):
        debouncer.trigger()
    assert fired.wait(WAIT_S)
    assert calls == [1] and not debouncer.pending


def test_debouncer_cancel_drops_the_pending_call() -> None:
    calls: list[int] = []
    debouncer = Debouncer(60.0, lambda: calls.append(1))
    debouncer.trigger()
    assert debouncer.pending
    debouncer.cancel()
    assert not debouncer.pending and calls == []


async def test_debouncer_uses_the_running_loop_as_in_a_kernel() -> None:
    calls: list[int] = []
    debouncer = Debouncer(0.01, lambda: calls.append(1))
    for _ in range(3):
        debouncer.trigger()
    assert isinstance(debouncer._pending, asyncio.TimerHandle)
    assert calls == []  # nothing runs while this coroutine holds the loop
    for _ in range(int(WAIT_S / 0.01)):
        if calls:
            break
        await asyncio.sleep(0.01)
    assert calls == [1]


# -- stream wizard -------------------------------------------------------------------


def test_wizard_fields_are_the_field_names_answer(
    wizard: StreamWizard, client: MirrorClient
) -> None:
    names = [f.field_name for f in client.field_names(start=T0, end=END).fields]
    assert wizard.field_names() == names
    assert [v for _, v in wizard.field_widget.options][1:] == names


def test_wizard_values_refine_through_patterns(wizard: StreamWizard, client: MirrorClient) -> None:
    options = wizard.choose_field("metric")
    assert options == list(client.field_values("metric", start=T0, end=END).values)
    assert FieldValuePattern("cpu.*") in options
    refined = wizard.choose_value(FieldValuePattern("cpu.*"))
    expected = list(client.field_values("metric", prefix="cpu.*", start=T0, end=END).values)
    assert refined == expected == [CompleteValue("cpu.system"), CompleteValue("cpu.user")]
    assert wizard.prefix == "cpu.*"
    labels = [label for label, _ in wizard.value_widget.options][1:]
    assert labels == ["cpu.system", "cpu.user"]
    asked = wizard.mirror.requests(1)[0]
    assert asked.method == "field/value" and "cpu.*" in asked.summary


def test_wizard_conditions_narrow_fields_and_select_the_stream(
    wizard: StreamWizard, client: MirrorClient
) -> None:
    wizard.field_widget.value = "host"  # through the widgets, as a user clicks
    wizard.value_widget.value = CompleteValue("b-host")
    assert wizard.conditions == {"host": "b-host"}
    expected = [f.field_name for f in client.field_names(host="b-host").fields if f != "host"]
    assert wizard.field_names() == expected
    assert "host" not in [v for _, v in wizard.field_widget.options]
    wizard.choose_field("metric")
    wizard.choose_value(FieldValuePattern("mem.*"))
    wizard.choose_value(CompleteValue("mem.used"))
    assert wizard.conditions == {"host": "b-host", "metric": "mem.used"}
    assert wizard.data is not None and wizard.data.raw is not None
    np.testing.assert_array_equal(
        wizard.data.raw.values, raw_values(client, host="b-host", metric="mem.used")
    )
    mean = client.metrics(
        start=T0, end=END, method="MEAN", bucket_ms=600_000, host="b-host", metric="mem.used"
    )
    np.testing.assert_array_equal(wizard.data.aggregated["MEAN"].values, mean.values)


def test_wizard_number_fields_keep_their_type(wizard: StreamWizard, client: MirrorClient) -> None:
    options = wizard.choose_field("cores")
    cores = FieldDescriptor("cores", FieldType.NUMBER)  # as the Field Names answer typed it
    assert options == list(client.field_values(cores, start=T0, end=END).values)
    assert options == [CompleteValue(2.0), CompleteValue(4.0), CompleteValue(8.0)]
    wizard.choose_value(CompleteValue(8.0))
    assert wizard.conditions == {"cores": 8.0}
    assert wizard.data is not None and wizard.data.raw is not None
    np.testing.assert_array_equal(wizard.data.raw.values, raw_values(client, host="b-host"))


def test_wizard_aggregation_picker_asks_for_that_aggregation(
    wizard: StreamWizard, client: MirrorClient
) -> None:
    wizard.method_widget.value = wizard.method_widget.options[9][1]  # MAX
    wizard.bucket_widget.value = 300_000
    assert wizard.data is not None and list(wizard.data.aggregated) == ["MAX"]
    expected = client.metrics(start=T0, end=END, method="MAX", bucket_ms=300_000)
    np.testing.assert_array_equal(wizard.data.aggregated["MAX"].values, expected.values)
    line = wizard.plot.plot.aggregated_lines["MAX"]
    assert len(line.get_ydata()) == 2 * len(expected) == 2 * 72
    wizard.set_aggregation(None, 300_000)
    assert wizard.data.aggregated == {} and wizard.plot.plot.aggregated_lines == {}


def test_wizard_remove_and_clear_conditions(wizard: StreamWizard) -> None:
    wizard.choose_field("host")
    wizard.choose_value(CompleteValue("c-host"))
    wizard.choose_field("region")
    wizard.choose_value(CompleteValue("us-east"))
    wizard.remove_condition()
    assert wizard.conditions == {"host": "c-host"}
    wizard.clear()
    assert wizard.conditions == {} and "host" in wizard.field_names()


def test_wizard_failure_is_a_message(wizard: StreamWizard) -> None:
    wizard.mirror.stop()
    wizard.field_widget.value = "host"  # the widget path: a message, no exception
    assert wizard.message.startswith("MirrorUnreachableError: cannot reach")
    wizard.refresh()
    assert wizard.message.startswith("No stream for these conditions: MirrorUnreachableError")


# -- Mirror source form ----------------------------------------------------------------


def test_form_shows_stackstates_values(mirror: RunningMirror) -> None:
    form = source_form(mirror)
    assert form.values() == {
        "Name": "Mirror server",
        "Mirror URL": mirror.url,
        "Api Key": mirror.api_key,
        "Connection details JSON": "{}",
        # StackState 5.1's polling settings, with its defaults
        "Max active live streams": "200",
        "Max events per live-stream poll": "10000",
        "Minimum live-stream polling interval (s)": "60",
        "Propagate errors only after (min)": "",
        "Request timeout UI (s)": "15",
        "Stale after (min)": "10",
    }
    for value in form.values().values():
        assert f"<code>{html.escape(value)}</code>" in form.copy_widget.value
    form.fill(**{"Stale after (min)": "5"})
    assert form.values()["Stale after (min)"] == "5"
    assert "<code>5</code>" in form.copy_widget.value
    with pytest.raises(ValueError, match="no such field"):
        form.fill(**{"Stale after": "5"})
    # each setting says what it means for the mirror
    shown = " ".join(str(getattr(w, "value", "")) for w in iter_widgets(form.widget))
    assert "polled live at once" in shown and "gives up on an answer" in shown
    assert "serves on port" in form.port_widget.value  # not 7007: the form says so
    form.set_where("docker")
    assert form.values()["Mirror URL"] == f"http://host.docker.internal:{mirror.port}"


def test_test_connection_ok_through_the_button(mirror: RunningMirror) -> None:
    form = source_form(mirror)
    form.button.click()
    assert form.last is not None and form.last.ok and str(form.last) == "OK"
    assert ">OK<" in form.result_widget.value
    assert mirror.requests(1)[0].method == "connection"


def test_test_connection_wrong_api_key_fails_with_the_reason(mirror: RunningMirror) -> None:
    form = source_form(mirror)
    form.fill(api_key="not-the-key")
    result = form.test()
    assert not result.ok
    assert str(result).startswith("FAILURE: wrong Api Key:")
    assert "'not-the-key'" in result.reason and repr(mirror.api_key) in result.reason
    assert "FAILURE" in form.result_widget.value


def test_test_connection_to_a_stopped_mirror_is_unreachable() -> None:
    stopped = start_mirror(port=0)
    url, key = stopped.url, stopped.api_key
    stopped.stop()
    result = check_connection(url, key)
    assert not result.ok and result.reason.startswith("the mirror is unreachable")


@pytest.mark.parametrize(
    ("details", "reason"),
    [
        ("{", "Connection details JSON is not valid JSON"),
        ("[1, 2]", "Connection details JSON must be a JSON object"),
        ('{"a": 1,}', "Connection details JSON is not valid JSON"),
    ],
)
def test_invalid_connection_details_are_explained(
    mirror: RunningMirror, details: str, reason: str
) -> None:
    form = source_form(mirror)
    form.fill(details=details)
    result = form.test()
    assert not result.ok and result.reason.startswith(reason)
    assert mirror.requests() == []  # nothing was sent


def test_connection_details_and_docker_url_reach_the_mirror(mirror: RunningMirror) -> None:
    form = source_form(mirror, where="docker")
    form.fill(details='{"host": "prometheus.local.com", "port": 9900}')
    result = form.test()
    assert result.ok, result.reason
    assert result.tested_url == f"http://127.0.0.1:{mirror.port}"


def test_empty_or_malformed_url_is_explained(mirror: RunningMirror) -> None:
    form = source_form(mirror, where="remote")
    assert form.values()["Mirror URL"] == ""
    assert form.test().reason.startswith("Mirror URL is empty")
    form.fill(url="localhost:7007")
    assert form.test().reason.startswith("Mirror URL must start with http://")


def iter_widgets(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from iter_widgets(child)


# -- request inspector ---------------------------------------------------------------


def table_rows(table: str) -> list[list[str]]:
    body = table.split("<tbody>", 1)[1]
    return [
        [html.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


def test_inspector_shows_the_requests_made(mirror: RunningMirror, client: MirrorClient) -> None:
    inspector = request_inspector(mirror, tz=UTC)
    assert table_rows(inspector.table_widget.value)[0][0] == "no requests yet"
    client.test_connection()
    client.field_names(start=T0, end=END)
    client.metrics(start=T0, end=T0 + HOUR, **A_CPU)
    inspector.button.click()
    rows = table_rows(inspector.table_widget.value)
    assert [r[1] for r in rows] == ["metric", "field/name", "connection"]  # newest first
    assert rows[0][3] == "200" and rows[0][5] == "360"
    assert "host=a-host" in rows[0][2] and "metric=cpu.user" in rows[0][2]
    entry = mirror.requests()[-1]
    assert rows[0][4] == f"{entry.latency_ms:.1f} ms"


def test_inspector_keeps_the_last_rows_and_escapes_cells(
    mirror: RunningMirror, client: MirrorClient
) -> None:
    inspector = request_inspector(mirror, rows=2, tz=UTC)
    client.test_connection()
    with pytest.raises(Exception, match="No series"):
        client.metrics(host="<b>x</b>")
    table = inspector.refresh()
    rows = table_rows(table)
    assert len(rows) == 2
    assert rows[0][3] == "404" and "<b>x</b>" in rows[0][2]
    assert "<b>x</b>" not in table and "&lt;b&gt;x&lt;/b&gt;" in table


# -- the panels in a real kernel ---------------------------------------------------------

KERNEL_NAME = "mirror-kit-widgets-test"
SMOKE_CELLS = [
    "%matplotlib widget\n"
    "import asyncio\n"
    "from datetime import timezone\n"
    "from mirror_kit import MirrorClient, start_mirror\n"
    "from mirror_kit.notebook import *\n"
    f"T0, END = {T0}, {END}\n"
    "mirror = start_mirror(port=0)\n"
    "client = MirrorClient(mirror.url, api_key=mirror.api_key)",
    "panel = shaping_panel(mirror, series={'host': 'a-host', 'metric': 'cpu.user'},\n"
    "                      start=T0, end=END, tz=timezone.utc, debounce=0.05)\n"
    "panel",
    # debounced on the kernel's loop: nothing before the cell ends, one refresh after
    "before = panel.refreshes\n"
    "panel.controls['amplitude'].value = 25.0\n"
    "panel.controls['amplitude'].value = 30.0\n"
    "assert panel.refreshes == before\n"
    "for _ in range(200):\n"
    "    if panel.refreshes > before:\n"
    "        break\n"
    "    await asyncio.sleep(0.05)\n"
    "print('refreshes', panel.refreshes - before, type(panel.plot.widget).__name__)",
    "wizard = stream_wizard(mirror, start=T0, end=END, tz=timezone.utc)\nwizard",
    "form = source_form(mirror)\nform",
    "print(form.test())",
    "inspector = request_inspector(mirror)\ninspector",
    # no backend magic: the returned figure shows itself as a PNG under ipympl too
    "stream_figure(client, start=T0, end=END, host='a-host', tz=timezone.utc)",
    "mirror.stop()",
]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec for this interpreter, so the kernel imports this checkout."""
    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernels / KERNEL_NAME)
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def test_panels_render_in_a_real_kernel(tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in SMOKE_CELLS]
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    NotebookClient(
        nb, km=km, timeout=60, startup_timeout=60, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    for cell in nb.cells:
        errors = [o for o in cell.outputs if o["output_type"] == "error"]
        stderr = [o["text"] for o in cell.outputs if o.get("name") == "stderr"]
        assert errors == [] and stderr == [], (cell.source, errors, stderr)
    shown = {i: nb.cells[i].outputs for i in (1, 3, 4, 6)}
    for i, outputs in shown.items():  # one output each: no stray auto-displayed canvas
        assert len(outputs) == 1 and WIDGET_MIME in outputs[0]["data"], SMOKE_CELLS[i]
    plain = [nb.cells[i].outputs[0]["data"]["text/plain"] for i in (1, 3, 4, 6)]
    assert plain == [
        "<ShapingPanel a-host/cpu.user>",
        "<StreamWizard no conditions yet: the mirror serves its first series>",
        "<SourceForm 'Mirror server'>",
        "<RequestInspector last 20 requests>",
    ]
    assert nb.cells[2].outputs[0]["text"] == "refreshes 1 Canvas\n"
    assert nb.cells[5].outputs[0]["text"] == "OK\n"
    figure = nb.cells[7].outputs[0]["data"]
    assert "image/png" in figure and figure["text/plain"].startswith("<StreamFigure size")


def test_stop_button_closes_panels_and_frees_the_port() -> None:
    """The button notebooks 3 and 4 end with: after a click the port can be bound again."""
    import socket

    from mirror_kit import start_mirror
    from mirror_kit.notebook import stop_button

    running = start_mirror(port=0)
    panel = request_inspector(running)
    button = stop_button(running, panel)
    button.button.click()
    assert not running.running and button.button.disabled
    assert "is free" in button.status.value
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", running.port))
