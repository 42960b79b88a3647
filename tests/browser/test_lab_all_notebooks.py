"""Every tutorial notebook survives JupyterLab's Run All: all cells run, none shows an error.

nbval sends one cell at a time and never renders; Run All queues every cell at once
and renders each output (widgets included). Notebooks 01 and 03 have their own,
stricter tests (test_lab_start_mirror.py, test_lab_shape_data.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import NOTEBOOKS
from .lab_server import LabServer
from .lab_ui import NotebookView

pytestmark = pytest.mark.browser

OWN_TESTS = {"01-start-the-mirror.ipynb", "03-shape-the-data.ipynb"}
OTHERS = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name not in OWN_TESTS)


@pytest.mark.parametrize("notebook", OTHERS)
def test_notebook_runs_all_in_lab(notebook: str, page: Any, lab: LabServer) -> None:
    view = NotebookView(page, lab, notebook)
    view.open()
    view.run_all()

    assert view.errors() == []
    prompts = view.prompts()
    assert prompts == [f"[{n}]:" for n in range(1, len(prompts) + 1)], prompts
    assert view.log_messages() == []
