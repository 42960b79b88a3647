"""The mirror inside a real Jupyter kernel: cells and a widget callback call it synchronously.

ipykernel runs cells on a running asyncio loop, which is where a naive server
deadlocks (shared/NOTEBOOK_NOTES.md). These tests build a scratch notebook and run
it in a real kernel of this virtualenv, twice:

* with nbclient, which sends one cell, waits for its reply, then sends the next;
* queued, as JupyterLab's "Run All" does: every execute_request is sent before the
  first reply arrives. nbclient has no mode for that (it always awaits each cell's
  reply), so that run drives the kernel with jupyter_client, nbclient's own transport.
  Queued cells are what nest_asyncio broke on ipykernel 7.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import HOUR, T0
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import AsyncKernelManager, KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

KERNEL_NAME = "mirror-kit-test-env"
CELL_TIMEOUT_S = 30
STARTUP_TIMEOUT_S = 60
QUEUED_TIMEOUT_S = 60.0

#: The scratch notebook: (source, the stdout the cell must print).
CELLS: list[tuple[str, str]] = [
    (
        "import sys, threading\n"
        "import ipywidgets as widgets\n"
        "import mirror_kit\n"
        "from mirror_kit import AsyncMirrorClient, MirrorClient, start_mirror\n"
        f"T0, HOUR = {T0}, {HOUR}\n"
        "print('python', sys.executable)",
        f"python {sys.executable}\n",
    ),
    (
        "mirror = start_mirror(port=0)\n"
        "client = MirrorClient(mirror.url, api_key=mirror.api_key)\n"
        "print('serving', mirror.url.startswith('http://127.0.0.1:'), mirror.port > 0)",
        "serving True True\n",
    ),
    (
        "print('connection', 'OK' if client.test_connection().ok else 'FAILURE')",
        "connection OK\n",
    ),
    (
        "async with AsyncMirrorClient(mirror.url, api_key=mirror.api_key) as aclient:\n"
        "    answer = await aclient.test_connection()\n"
        "print('async connection', answer.ok)",
        "async connection True\n",
    ),
    (
        "results = []\n"
        "def on_click(button):\n"
        "    series = client.metrics(host='a-host', metric='cpu.user', start=T0, end=T0 + HOUR)\n"
        "    results.append(len(series))\n"
        "button = widgets.Button(description='Fetch')\n"
        "button.on_click(on_click)\n"
        "button",
        "",
    ),
    (
        "button.click()\nassert results == [360], results\nprint('clicked', results)",
        "clicked [360]\n",
    ),
    (
        "port, old = mirror.port, mirror\n"
        "client.close()\n"
        "mirror = start_mirror(port=port)  # re-running the start cell on its port\n"
        "client = MirrorClient(mirror.url, api_key=mirror.api_key)\n"
        "print('restarted', mirror.port == port, old.running, client.test_connection().ok)",
        "restarted True False True\n",
    ),
    (
        "client.close()\n"
        "mirror.stop()\n"
        "left = [t.name for t in threading.enumerate() if t.name.startswith('mirror-kit:')]\n"
        "assert left == [], left\n"
        "print('threads left', left, mirror_kit.running_mirrors())",
        "threads left [] []\n",
    ),
]
WIDGET_CELL = 4
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec running this interpreter (as nbval's --nbval-current-env does),
    so the kernel imports this checkout's mirror_kit whatever kernels are installed."""
    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernels / KERNEL_NAME)
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def scratch_notebook(folder: Path) -> nbformat.NotebookNode:
    """Build the notebook with nbformat, save it in ``folder`` and read it back."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source, _ in CELLS]
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "mirror-kit test"}
    path = folder / "scratch.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def stdout_of(outputs: list[dict[str, Any]]) -> str:
    return "".join(o["text"] for o in outputs if o.get("name") == "stdout")


def assert_clean(outputs: list[dict[str, Any]]) -> None:
    """No error, no stderr (a warning from the runtime counts as a failure too)."""
    assert [o for o in outputs if o["output_type"] == "error"] == []
    assert [o["text"] for o in outputs if o.get("name") == "stderr"] == []


def test_notebook_cells_and_widget_callback_call_the_mirror(
    tmp_path: Path, kernel_specs: KernelSpecManager
) -> None:
    nb = scratch_notebook(tmp_path)
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=STARTUP_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    for cell, (_, expected) in zip(nb.cells, CELLS, strict=True):
        assert_clean(cell.outputs)
        assert stdout_of(cell.outputs) == expected, cell.source
    widget_outputs = nb.cells[WIDGET_CELL].outputs
    assert any(WIDGET_MIME in o.get("data", {}) for o in widget_outputs)


@pytest.fixture
def kernel(tmp_path: Path, kernel_specs: KernelSpecManager) -> Iterator[Any]:
    """A blocking client on a fresh kernel of this interpreter, shut down afterwards."""
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    km.start_kernel(cwd=str(tmp_path))
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def collect(kc: Any, msg_ids: list[str]) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Replies' statuses and each request's outputs, until every request went idle.

    Bounded by QUEUED_TIMEOUT_S overall: a dropped cell fails the test, not hangs it.
    """
    deadline = time.monotonic() + QUEUED_TIMEOUT_S
    statuses: dict[str, str] = {}
    outputs: dict[str, list[dict]] = {m: [] for m in msg_ids}
    idle: set[str] = set()
    while len(statuses) < len(msg_ids) or len(idle) < len(msg_ids):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"cells never finished: replies {statuses}, idle {idle}"
        if len(statuses) < len(msg_ids):
            reply = kc.get_shell_msg(timeout=remaining)
            parent = reply["parent_header"].get("msg_id")
            if parent in outputs:  # not a late kernel_info_reply left by wait_for_ready
                statuses[parent] = reply["content"]["status"]
            continue
        msg = kc.get_iopub_msg(timeout=remaining)
        parent = msg["parent_header"].get("msg_id")
        if parent not in outputs:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle.add(parent)
        elif msg["msg_type"] in ("stream", "error", "execute_result", "display_data"):
            outputs[parent].append({"output_type": msg["msg_type"], **msg["content"]})
    return statuses, outputs


def test_queued_cells_all_run(kernel: Any) -> None:
    """Every cell sent at once, as "Run All" does; none may be dropped or fail."""
    msg_ids = [kernel.execute(source, store_history=True) for source, _ in CELLS]
    statuses, outputs = collect(kernel, msg_ids)
    assert [statuses[m] for m in msg_ids] == ["ok"] * len(CELLS)
    for msg_id, (source, expected) in zip(msg_ids, CELLS, strict=True):
        assert_clean(outputs[msg_id])
        assert stdout_of(outputs[msg_id]) == expected, source
    assert any(WIDGET_MIME in o.get("data", {}) for o in outputs[msg_ids[WIDGET_CELL]])
