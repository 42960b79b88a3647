"""Notebook 1 works in JupyterLab itself: Run All, no error, Test Connection answers OK.

nbval sends cells one at a time; JupyterLab's Run All queues them all at once
(the way nest_asyncio once broke, see NOTEBOOK_NOTES). This runs it the user's way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .images import save_png
from .lab_server import LabServer
from .lab_ui import NotebookView
from .screenshots import targets

pytestmark = pytest.mark.browser

NOTEBOOK = "01-start-the-mirror.ipynb"


def code_cell_index(path: Path, fragment: str) -> int:
    """The index (markdown cells included) of the first code cell containing ``fragment``."""
    cells = nbformat.read(path, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type == "code" and fragment in cell.source:
            return index
    raise AssertionError(f"no code cell with {fragment!r} in {path.name}")


def test_start_the_mirror_runs_all_in_lab(
    page: Any, lab: LabServer, lab_root: Path, artifacts: Path
) -> None:
    view = NotebookView(page, lab, NOTEBOOK)
    view.open()
    view.hide_left_sidebar()
    view.run_all()

    prompts = view.prompts()
    assert prompts == [f"[{n}]:" for n in range(1, len(prompts) + 1)], prompts
    assert view.errors() == []
    assert view.log_messages() == []

    index = code_cell_index(lab_root / NOTEBOOK, "client.test_connection()")
    answer = view.output_text(index)
    assert re.search(r"'status':\s*'OK'", answer), answer

    view.cell(index).scroll_into_view_if_needed()
    save_png(view.screenshot(), *targets("01-start-the-mirror.png"))
