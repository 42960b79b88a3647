"""The harness sees failures: without this, "no error found" could mean "looked nowhere".

A scratch notebook plants each kind of failure the other tests check for; each must
be reported, and Run All must end (not time out) when a cell fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .lab_server import LabServer
from .lab_ui import NotebookView
from .notebooks import write_failing_scratch

pytestmark = pytest.mark.browser


def test_harness_reports_planted_failures(page: Any, lab: LabServer, lab_root: Path) -> None:
    write_failing_scratch(lab_root / "scratch-failures.ipynb")
    view = NotebookView(page, lab, "scratch-failures.ipynb")
    view.open()
    view.run_all()

    assert view.prompts() == ["[1]:", "[2]:", "[3]:", "[ ]:"]
    errors = "\n".join(view.errors())
    assert "planted stderr" in errors
    assert "planted cell failure" in errors
    assert view.log_messages() == []

    handle = view.slider("amplitude").locator("[role=slider]")
    handle.focus()
    handle.press("ArrowRight")
    view.wait_for_log()
    messages = "\n".join(view.log_messages())
    assert "planted callback failure" in messages
