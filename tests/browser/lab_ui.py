"""Driving one notebook in JupyterLab 4 through Playwright, as a user would.

Everything is scoped to the notebook's panel. Each notebook is opened in a fresh
workspace (``/lab/workspaces/<name>/tree/<path>``), so tabs restored from an earlier
test can never be the one that "Run All" runs.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from playwright.sync_api import Locator, Page

from .images import changed_pixels
from .lab_server import LabServer

OPEN_TIMEOUT_MS = 30_000
RUN_TIMEOUT_MS = 45_000
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: What a failed cell, a warning or a broken widget looks like in JupyterLab 4.
ERROR_OUTPUTS = ", ".join(
    [
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
        ".jp-RenderedText[data-mime-type*=error]",
        ".jupyter-widgets-error-widget",
    ]
)
WIDGET_FAILURES = ("Error displaying widget", "Failed to load model class")
#: A live plot: an ipympl canvas, an ipywidgets Image, or an Output widget showing an
#: image (the Output widget, not its <img>: each redraw replaces the <img> element).
PLOT = ", ".join(
    [
        ".jupyter-matplotlib-canvas-div",
        "img.widget-image",
        ".widget-output:has(img)",
    ]
)

#: True when the notebook has a kernel, connected and idle ("idle" is also shown,
#: misleadingly, before any kernel exists: then the kernel name reads "No Kernel").
_KERNEL_IDLE_JS = """
(panelSelector) => {
  const panel = document.querySelector(panelSelector);
  if (!panel) return false;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const name = panel.querySelector('.jp-Toolbar-kernelName');
  return !!indicator && indicator.getAttribute('data-status') === 'idle'
    && !!name && name.textContent.trim() !== '' && !name.textContent.includes('No Kernel');
}
"""

#: True when every code cell has run (or one failed) and the kernel is idle.
_FINISHED_JS = """
([panelSelector, errorSelector]) => {
  const panel = document.querySelector(panelSelector);
  if (!panel) return false;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!indicator || indicator.getAttribute('data-status') !== 'idle') return false;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map(e => e.textContent.trim());
  if (prompts.length === 0 || prompts.some(p => p.includes('*'))) return false;
  return prompts.every(p => /^\\[\\d+\\]:$/.test(p)) || !!panel.querySelector(errorSelector);
}
"""


@dataclass
class NotebookView:
    """One notebook open in JupyterLab: run it, read its outputs, find its widgets."""

    page: Page
    server: LabServer
    path: str

    @property
    def panel(self) -> Locator:
        return self.page.locator(PANEL)

    def open(self) -> None:
        """Open the notebook in a fresh workspace and wait for an idle kernel."""
        workspace = f"test-{secrets.token_hex(4)}"
        self.page.goto(self.server.url(f"lab/workspaces/{workspace}/tree/{self.path}"))
        self.panel.locator(".jp-Cell").first.wait_for(timeout=OPEN_TIMEOUT_MS)
        self.wait_idle(OPEN_TIMEOUT_MS)

    def hide_left_sidebar(self) -> None:
        """Collapse the file browser (clicking the current side tab) for wider screenshots."""
        current = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.first.click()

    def run_all(self, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
        """Run → Run All Cells, then wait until every cell ran or one failed."""
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        self.page.wait_for_function(
            _FINISHED_JS, arg=[PANEL, ERROR_OUTPUTS], timeout=timeout_ms, polling=100
        )

    def screenshot(self) -> bytes:
        """The page, with the mouse parked on the status bar (no hover effects)."""
        size = self.page.viewport_size or {"width": 0, "height": 2}
        self.page.mouse.move(2, size["height"] - 2)
        return self.page.screenshot()

    def prompts(self) -> list[str]:
        """The code cells' execution prompts: ``[1]:`` after a run, ``[ ]:`` before."""
        cells = self.panel.locator(".jp-CodeCell .jp-InputArea-prompt")
        return [text.strip() for text in cells.all_text_contents()]

    def cell(self, index: int) -> Locator:
        """Cell ``index`` as in the .ipynb file (markdown cells count)."""
        return self.panel.locator(".jp-Notebook .jp-Cell").nth(index)

    def output_text(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def errors(self) -> list[str]:
        """Error outputs, stderr (warnings too) and widgets that failed to render."""
        found = [clip(text) for text in self.panel.locator(ERROR_OUTPUTS).all_inner_texts()]
        for text in self.panel.locator(".jp-OutputArea-output").all_inner_texts():
            found += [clip(text) for failure in WIDGET_FAILURES if failure in text]
        return found

    def log_messages(self) -> list[str]:
        """What went to the log console (e.g. tracebacks of widget callbacks)."""
        status = self.page.locator(".jp-LogConsoleStatusItem:not(.lm-mod-hidden)")
        if not status.count() or not re.search(r"[1-9]", status.inner_text()):
            return []
        status.click()
        entries = self.page.locator(".jp-LogConsolePanel .jp-OutputArea-output")
        entries.first.wait_for(timeout=5_000)
        return [clip(text) for text in entries.all_inner_texts()]

    def wait_for_log(self, timeout_ms: int = 10_000) -> None:
        """Wait until the log console counts a message (callbacks log asynchronously)."""
        counted = self.page.locator(".jp-LogConsoleStatusItem", has_text=re.compile(r"[1-9]"))
        counted.wait_for(timeout=timeout_ms)

    def slider(self, label: str) -> Locator:
        """The ipywidgets slider whose description is ``label``."""
        return self.panel.locator(self._slider(label))

    def plot_near(self, label: str) -> Locator:
        """The live plot in the same cell output as the slider ``label``."""
        output = self.panel.locator(".jp-Cell-outputArea").filter(has=self._slider(label))
        return output.locator(PLOT).first

    def _slider(self, label: str) -> Locator:
        """A relative locator (for ``has=``): a slider with this exact description."""
        exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
        labelled = self.page.locator(".widget-label", has_text=exact)
        return self.page.locator(".widget-slider").filter(has=labelled)

    def wait_idle(self, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
        """Wait until the notebook's kernel is connected and idle."""
        self.page.wait_for_function(_KERNEL_IDLE_JS, arg=PANEL, timeout=timeout_ms, polling=100)


def clip(text: str, head: int = 200, tail: int = 600) -> str:
    """A long output's start and end (a traceback's message is at its end)."""
    return text if len(text) <= head + tail else f"{text[:head]} [...] {text[-tail:]}"


def settled_screenshot(
    element: Locator, *, settle_s: float = 0.75, interval_s: float = 0.2, timeout_s: float = 20.0
) -> bytes:
    """A screenshot of ``element`` once it has not changed for ``settle_s`` (bounded wait).

    Debounced redraws and ipympl's asynchronous drawing mean a first capture may show
    a stale or empty plot; an unchanged image for longer than the debounce is not.
    """
    deadline = time.monotonic() + timeout_s
    last = element.screenshot()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        current = element.screenshot()
        if changed_pixels(last, current):
            last, stable_since = current, time.monotonic()
        elif time.monotonic() - stable_since >= settle_s:
            return current
    raise TimeoutError(f"the element kept changing for {timeout_s} s")


def changed_screenshot(
    element: Locator, before: bytes, *, interval_s: float = 0.2, timeout_s: float = 15.0
) -> bytes:
    """Wait (bounded) until ``element`` looks different from ``before``, then until it settles.

    When nothing changes in time it returns the last (unchanged) capture: the
    caller's comparison then fails and says so.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if changed_pixels(before, element.screenshot()):
            return settled_screenshot(element)
        time.sleep(interval_s)
    return element.screenshot()
