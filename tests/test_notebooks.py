"""Each tutorial notebook runs on its own in a fresh kernel and cleans up after itself.

nbval checks the notebooks' outputs; this checks what nbval cannot see. Notebooks
1, 2 and 5 stop their mirror in their last cell. Notebooks 3 and 4 keep it serving
after *Run All* (their panels, and a real StackState, need it) and end with a
*Stop the mirror* button; for them, stopping the kernel must free the port.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

KEEP_SERVING = {"03-shape-the-data", "04-configure-stackstate"}

CLEANUP_CHECK = """
import threading
import mirror_kit
left = [t.name for t in threading.enumerate() if t.name.startswith("mirror-kit")]
print("ports:", [m.port for m in mirror_kit.running_mirrors()], "threads:", len(left))
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
    try:
        client.execute()
    finally:
        manager.shutdown_kernel()  # graceful: the kernel's atexit handlers run
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    last = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    ports = [int(p) for p in re.findall(r"\d+", last.split("threads:")[0])]
    if path.stem in KEEP_SERVING:
        assert len(ports) == 1 and last.strip().endswith("threads: 1"), last
    else:
        assert last.strip() == "ports: [] threads: 0"
    for port in ports:  # the kernel has stopped: nothing listens there any more
        with socket.socket() as probe:  # SO_REUSEADDR as servers use: TIME_WAIT is no owner
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
            probe.listen()


def hold_port(port: int) -> socket.socket | None:
    """Listen on 127.0.0.1:``port`` as another program would; None when one already does."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", port))
    except OSError:
        holder.close()
        return None  # taken already: by someone else, which is the case under test too
    holder.listen()
    return holder


def test_nbval_passes_while_another_program_holds_7007(tmp_path: Path) -> None:
    """The learner's own `make serve` (or the sample's mirror_server.py) holds 7007.

    Notebook 04 then starts on a free port; its stored outputs must still match.
    """
    notebook = NOTEBOOKS[3]
    assert notebook.stem == "04-configure-stackstate"
    holder = hold_port(7007)
    try:
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            str(notebook),
        ]
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        if holder is not None:
            holder.close()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", done.stdout), done.stdout[-500:]


def test_stored_figures_carry_an_image() -> None:
    """A figure stored as text alone shows nothing on GitHub or nbviewer."""
    blind, images = [], 0
    for path in NOTEBOOKS:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                images += "image/png" in data
                if str(data.get("text/plain", "")).startswith("<Figure size") and (
                    "image/png" not in data
                ):
                    blind.append(f"{path.name} cell {index}")
    assert blind == []
    assert images >= 2  # notebook 02's raw-and-aggregated figure, notebook 05's CSV plot
