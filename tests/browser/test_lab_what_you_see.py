"""Each tutorial notebook after JupyterLab's Run All, on a laptop screen, as a learner sees it.

Every notebook is run once, in Chromium at 1366x768 with the file browser open (a
laptop with JupyterLab's default layout), and then looked at:

* every cell ran, none shows an error, nothing went to the log console;
* every figure the notebook draws is on the page and not blank (an inline PNG, a
  widget image or an ipympl canvas): a figure shown only as ``<Figure size ...>``
  text counts as missing;
* every panel and plot fits inside the notebook (no part sticks out on the right or
  left) and no label, button or readout has its text cut off;
* no panel shows an error line after a clean first run (a message left by a later
  demo cell is as wrong for the learner as a real failure).

nbval runs the same notebooks but renders nothing; these tests look at the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest

from .conftest import NOTEBOOKS, _loopback_only
from .lab_server import LabServer
from .lab_ui import MIN_INK, NotebookView, drawn_figures, error_lines, misfits

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
#: A call that draws one figure: a static figure, or a panel with a live plot.
DRAWS = re.compile(
    r"^[^#\n]*\b(stream_figure|plot_stream|shaping_panel|stream_wizard|simulation_view"
    r"|latency_figure)\(",
    re.M,
)


def figures_drawn_by(name: str) -> int:
    """How many figures the notebook's code draws (one per drawing call)."""
    cells = nbformat.read(NOTEBOOKS / name, as_version=4).cells
    return sum(len(DRAWS.findall(c.source)) for c in cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def laptop(chromium: Any, lab: LabServer) -> Iterator[Any]:
    """One browser context at 1366x768 for the module; kernels stopped at the end."""
    context = chromium.new_context(viewport=LAPTOP)
    context.route("**/*", _loopback_only)
    yield context
    context.close()
    lab.shutdown_kernels()


@pytest.fixture(scope="module")
def ran(laptop: Any, lab: LabServer) -> Any:
    """Run All of a notebook, once per module, in its own tab with the file browser open."""
    views: dict[str, NotebookView] = {}

    def view_of(name: str) -> NotebookView:
        if name not in views:
            page = laptop.new_page()
            page.set_default_timeout(20_000)
            view = NotebookView(page, lab, name)
            view.open()
            view.show_file_browser()
            view.run_all()
            views[name] = view
        return views[name]

    return view_of


@pytest.mark.parametrize("notebook", ALL)
def test_run_all_runs_every_cell_without_an_error(notebook: str, ran: Any) -> None:
    view = ran(notebook)
    prompts = view.prompts()
    assert prompts == [f"[{n}]:" for n in range(1, len(prompts) + 1)], prompts
    assert view.errors() == []
    assert view.log_messages() == []


@pytest.mark.parametrize("notebook", ALL)
def test_every_figure_is_drawn(notebook: str, ran: Any) -> None:
    inks = drawn_figures(ran(notebook))
    assert len(inks) == figures_drawn_by(notebook), (
        f"{len(inks)} figures on the page, the notebook draws {figures_drawn_by(notebook)}"
    )
    assert all(ink > MIN_INK for ink in inks), f"blank figures: {inks}"


@pytest.mark.parametrize("notebook", ALL)
def test_every_panel_and_plot_fits_a_laptop_screen(notebook: str, ran: Any) -> None:
    view = ran(notebook)
    assert view.file_browser_open(), "the test must look with the file browser open"
    assert misfits(view) == []


@pytest.mark.parametrize("notebook", ALL)
def test_a_first_run_leaves_no_error_in_a_panel(notebook: str, ran: Any) -> None:
    assert error_lines(ran(notebook)) == []


def test_the_figure_count_sees_the_figures() -> None:
    """The expected counts come from the notebooks' code: they must not all be zero."""
    counts = {name: figures_drawn_by(name) for name in ALL}
    assert counts["02-the-mirror-api.ipynb"] >= 1 and counts["03-shape-the-data.ipynb"] == 1
