"""Notebooks for the browser tests: the tutorial's, cleared, and the harness's own.

The tutorial's notebooks are stored with outputs (nbval compares them); the copies
the browser opens have none, so every output the test reads was made by its run.
The scratch notebooks exercise the harness itself on a slider that redraws a plot,
independently of mirror-kit's widgets.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def copy_cleared(source: Path, target: Path) -> None:
    """Copy a notebook without outputs or execution counts."""
    notebook = nbformat.read(source, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(notebook, target)


def write_notebook(path: Path, *sources: str) -> None:
    notebook = new_notebook(
        cells=[new_code_cell(source) for source in sources],
        metadata={"kernelspec": KERNELSPEC},
    )
    nbformat.write(notebook, path)


_SLIDER = """\
amplitude = widgets.FloatSlider(value=1.0, min=0.0, max=8.0, step=0.5, description="amplitude")
amplitude.observe(redraw, names="value")
widgets.VBox([amplitude, plot_widget])
"""


def write_ipympl_scratch(path: Path) -> None:
    """A slider whose observer redraws an ipympl canvas (``%matplotlib widget``)."""
    write_notebook(
        path,
        "%matplotlib widget\nimport ipywidgets as widgets\nimport matplotlib.pyplot as plt\n"
        "import numpy as np",
        "x = np.linspace(0, 4 * np.pi, 200)\n"
        "with plt.ioff():\n"
        "    fig, ax = plt.subplots(figsize=(6, 3))\n"
        "(line,) = ax.plot(x, np.sin(x))\n"
        "ax.set_ylim(-10, 10)\n"
        "fig.canvas.header_visible = False\n"
        "plot_widget = fig.canvas\n\n\n"
        "def redraw(change):\n"
        '    line.set_ydata(change["new"] * np.sin(x))\n'
        "    fig.canvas.draw_idle()",
        _SLIDER,
    )


def write_inline_scratch(path: Path) -> None:
    """A slider whose observer re-renders an inline PNG into an Output widget."""
    write_notebook(
        path,
        "%matplotlib inline\nimport ipywidgets as widgets\nimport matplotlib.pyplot as plt\n"
        "import numpy as np",
        "x = np.linspace(0, 4 * np.pi, 200)\n"
        "plot_widget = widgets.Output()\n\n\n"
        "def draw(a):\n"
        "    fig, ax = plt.subplots(figsize=(6, 3))\n"
        "    ax.plot(x, a * np.sin(x))\n"
        "    ax.set_ylim(-10, 10)\n"
        "    plot_widget.outputs = ()\n"
        "    plot_widget.append_display_data(fig)\n"
        "    plt.close(fig)\n\n\n"
        "def redraw(change):\n"
        '    draw(change["new"])\n\n\n'
        "draw(1.0)",
        _SLIDER,
    )


def write_shaping_preview(path: Path) -> None:
    """mirror-kit's shaping panel as notebook 03 will show it (ipympl, debounced re-query)."""
    write_notebook(
        path,
        "%matplotlib widget\nfrom mirror_kit import start_mirror\n"
        "from mirror_kit.notebook import shaping_panel\n\n"
        "mirror = start_mirror(port=0)",
        "panel = shaping_panel(mirror)\npanel",
    )


def write_failing_scratch(path: Path) -> None:
    """Planted failures: stderr, a raising widget callback, a raising cell, a cell after it."""
    write_notebook(
        path,
        'import sys\n\nimport ipywidgets as widgets\n\nprint("planted stderr", file=sys.stderr)',
        'amplitude = widgets.IntSlider(description="amplitude")\n\n\n'
        "def fail(change):\n"
        '    raise ZeroDivisionError("planted callback failure")\n\n\n'
        'amplitude.observe(fail, names="value")\n'
        "amplitude",
        'raise RuntimeError("planted cell failure")',
        'print("never runs")',
    )
