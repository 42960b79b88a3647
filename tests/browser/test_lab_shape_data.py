"""The shaping panel works in JupyterLab: widgets render, a slider redraws the live plot.

The contract for notebook 03 (``notebooks/03-shape-the-data.ipynb``): Run All shows
ipywidgets sliders, one of them described "amplitude", next to a live matplotlib plot
(an ipympl canvas or an image in a widget); moving the slider re-queries the mirror
(debounced) and the plot changes; no cell shows an error. The same check runs on
scratch notebooks written here, which keep testing the harness itself (a slider
redrawing an ipympl canvas, and one redrawing an inline image in an Output widget)
and the panel from ``mirror_kit.notebook`` before notebook 03 exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .images import changed_pixels, ink_fraction, save_png
from .lab_server import LabServer
from .lab_ui import NotebookView, changed_screenshot, reveal, settled_screenshot
from .notebooks import write_inline_scratch, write_ipympl_scratch, write_shaping_preview
from .screenshots import targets

pytestmark = pytest.mark.browser

NOTEBOOK_03 = "03-shape-the-data.ipynb"
#: Fewer changed pixels than this is anti-aliasing noise, not a redraw.
MIN_CHANGED_PIXELS = 100


def check_slider_redraws_plot(view: NotebookView, artifacts: Path, name: str) -> int:
    """Run all, move the "amplitude" slider to its maximum, return the pixels that changed."""
    view.open()
    view.run_all()
    assert view.errors() == []

    slider = view.slider("amplitude")
    assert slider.count() == 1, (
        f"{slider.count()} sliders described 'amplitude' after Run All (a closed widget, "
        "e.g. by a clean-up cell calling panel.close(), vanishes from the page)"
    )
    plot = view.plot_near("amplitude")
    assert reveal(plot), "the plot near the amplitude slider has no size on the page"
    before = settled_screenshot(plot)
    assert ink_fraction(before) > 0.01, "the plot is blank"

    handle = slider.locator("[role=slider]")
    readout = slider.locator(".widget-readout").inner_text()
    handle.focus()
    handle.press("End")
    assert slider.locator(".widget-readout").inner_text() != readout, "the slider did not move"
    after = changed_screenshot(plot, before)
    view.wait_idle()

    save_png(before, artifacts / f"{name}-before.png")
    save_png(after, artifacts / f"{name}-after.png")
    assert view.errors() == []
    assert view.log_messages() == []
    return changed_pixels(before, after)


SCRATCH: dict[str, Callable[[Path], None]] = {
    "scratch-ipympl": write_ipympl_scratch,
    "scratch-inline-output": write_inline_scratch,
    "scratch-shaping-panel": write_shaping_preview,
}


@pytest.mark.parametrize("name", sorted(SCRATCH))
def test_slider_redraws_plot_in_scratch_notebook(
    name: str, page: Any, lab: LabServer, lab_root: Path, artifacts: Path
) -> None:
    SCRATCH[name](lab_root / f"{name}.ipynb")
    view = NotebookView(page, lab, f"{name}.ipynb")
    assert check_slider_redraws_plot(view, artifacts, name) >= MIN_CHANGED_PIXELS


def test_shape_the_data_notebook_in_lab(
    page: Any, lab: LabServer, lab_root: Path, artifacts: Path
) -> None:
    view = NotebookView(page, lab, NOTEBOOK_03)
    assert check_slider_redraws_plot(view, artifacts, "03-shape-the-data") >= MIN_CHANGED_PIXELS
    view.hide_left_sidebar()
    reveal(view.slider("amplitude"))
    save_png(view.screenshot(), *targets(NOTEBOOK_03.replace(".ipynb", ".png")))
