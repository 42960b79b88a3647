"""Each tutorial notebook runs on its own in a fresh kernel and cleans up after itself.

nbval checks the notebooks' outputs; this checks what nbval cannot see: after the
last cell no mirror is running, no mirror thread is alive and no port is held.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

CLEANUP_CHECK = """
import threading
import mirror_kit
left = [t.name for t in threading.enumerate() if t.name.startswith("mirror-kit")]
print("mirrors:", mirror_kit.running_mirrors(), "threads:", left)
"""


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec running this interpreter, as nbval's --nbval-current-env does."""
    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernels / "mirror-kit-tests")
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def test_the_tutorial_has_five_numbered_notebooks() -> None:
    assert [p.name[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_leaves_nothing_running(path: Path, kernel_specs: KernelSpecManager) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(CLEANUP_CHECK))
    manager = KernelManager(kernel_name="mirror-kit-tests", kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    last = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    assert last.strip() == "mirrors: [] threads: []"
