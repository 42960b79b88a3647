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
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page

from .images import changed_pixels, ink_fraction
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

    def file_browser_open(self) -> bool:
        return self.page.locator("#filebrowser").is_visible()

    def show_file_browser(self) -> None:
        """Open the file browser in the left sidebar (JupyterLab's default layout)."""
        if not self.file_browser_open():
            tabs = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab")
            tabs.filter(has=self.page.locator("[data-icon*=folder]")).first.click()
        self.page.locator("#filebrowser").wait_for(state="visible")

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
    last = _screenshot(element, deadline)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        current = _screenshot(element, deadline)
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
        if changed_pixels(before, _screenshot(element, deadline)):
            return settled_screenshot(element)
        time.sleep(interval_s)
    return _screenshot(element, deadline)


def _screenshot(element: Locator, deadline: float) -> bytes:
    """A capture of ``element``, retried (bounded) while a redraw leaves it without a size.

    An Output widget's image is replaced on each redraw: for a moment it has 0 height.
    """
    while True:
        try:
            return element.screenshot()
        except PlaywrightError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


# -- what a person sees: figures, boxes, labels, controls ---------------------------------

#: The notebook cell an element sits in (its nearest ancestor of class jp-Cell).
_CELL_OF = "xpath=ancestor::div[contains(concat(' ', @class, ' '), ' jp-Cell ')][1]"
#: A drawn figure: an inline PNG output, an ipywidgets Image, or an ipympl canvas.
FIGURE = ".jp-RenderedImage img, img.widget-image, .jupyter-matplotlib-canvas-div"
#: Less ink than this (share of pixels unlike the background) is a blank figure.
MIN_INK = 0.01
#: The red of a panel's error line (mirror_kit.notebook.base.message_html).
ERROR_RED = "#cf222e"

#: For every visible element of the outputs that a person reads or uses: its box, and
#: whether its text is cut (wider than its box), relative to the notebook's own box.
_BOXES_JS = """
(cellElement, kinds) => {
  const notebook = cellElement.closest('.jp-Notebook').getBoundingClientRect();
  const found = [];
  for (const element of cellElement.querySelectorAll(kinds)) {
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden') continue;
    const text = (element.innerText || element.value || '').trim().slice(0, 40);
    found.push({
      what: element.tagName.toLowerCase() + '.' + [...element.classList].join('.'),
      text,
      left: box.left - notebook.left,
      right: notebook.right - box.right,
      cut: element.scrollWidth > element.clientWidth + 1 && style.overflowX !== 'auto'
        && style.overflowX !== 'scroll',
    });
  }
  return found;
}
"""
#: Elements a person reads or uses in a panel (plots included).
VISIBLE_PARTS = ", ".join(
    [
        ".jp-OutputArea-output > .jupyter-widgets",
        ".jupyter-widgets .widget-label",
        ".widget-toggle-button",
        ".widget-button",
        ".widget-readout",
        ".jupyter-widgets input",
        ".jupyter-widgets select",
        ".jupyter-widgets textarea",
        FIGURE,
        ".jp-RenderedImage",
    ]
)
#: Elements whose text must not be cut off (a label shrunk to "amp…" or "in Docker on this …").
LABELS = (".widget-label", ".widget-toggle-button", ".widget-button", ".widget-readout")


def _exact(label: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(label)}\s*$")


class Controls:
    """ipywidgets controls of one notebook, found by their description as a person reads it."""

    def __init__(self, view: NotebookView) -> None:
        self.view = view
        self.page = view.page

    def control(self, label: str) -> Locator:
        """The control (slider, dropdown, text) whose description is exactly ``label``.

        It is scrolled into view first: JupyterLab does not lay out cells off screen,
        and a person looks at what they use.
        """
        labelled = self.page.locator(".widget-label", has_text=_exact(label))
        control = self.view.panel.locator(".widget-inline-hbox").filter(has=labelled)
        assert reveal(control), f"control {label!r} is not shown"
        return control

    def choose(self, label: str, option: str) -> None:
        """Pick ``option`` in the dropdown ``label`` (as a click on the list does)."""
        index = self.options(label).index(" ".join(option.split()))
        self.control(label).locator("select").select_option(index=index)

    def options(self, label: str) -> list[str]:
        """The option texts of dropdown ``label``, whitespace collapsed as a person reads them."""
        texts = self.control(label).locator("select option").all_inner_texts()
        return [" ".join(t.split()) for t in texts]

    def chosen(self, label: str) -> str:
        select = self.control(label).locator("select")
        text = select.evaluate("s => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].text")
        return " ".join(str(text).split())

    def readout(self, label: str) -> str:
        return (self.control(label).locator(".widget-readout").text_content() or "").strip()

    def typed(self, label: str) -> str:
        return self.control(label).locator("input, textarea").first.input_value()

    def type_into(self, label: str, text: str) -> None:
        """Click into a text field, replace its text by typing, and press Enter."""
        field = self.control(label).locator("input, textarea").first
        field.click()
        field.press("Control+a")
        field.press_sequentially(text)
        field.press("Enter")

    def drag(self, label: str, fraction: float) -> None:
        """Drag the slider's handle with the mouse by ``fraction`` of the track's width."""
        control = self.control(label)
        handle = control.locator(".noUi-handle, [role=slider]").first
        track = control.locator(".noUi-target, .slider-container").first
        assert reveal(handle), f"slider {label!r} has no handle on the page"
        grip, rail = handle.bounding_box(), track.bounding_box()
        assert grip is not None and rail is not None, f"slider {label!r} is not visible"
        x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        self.page.mouse.move(x + fraction * rail["width"], y, steps=8)
        self.page.mouse.up()

    def button(self, text: str) -> Locator:
        return self.view.panel.locator(self.button_near(text))

    def button_near(self, text: str) -> Locator:
        """A relative locator (for ``has=``): a button labelled ``text``."""
        return self.page.locator("button", has_text=_exact(text))

    def wait_for(self, condition: Any, what: str, timeout_s: float = 15.0) -> None:
        """Poll (bounded) until ``condition()`` is true; fail saying ``what`` did not happen."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except PlaywrightError as error:  # e.g. a control replaced while it was read
                last = error
            time.sleep(0.1)
        raise AssertionError(f"not within {timeout_s} s: {what} (last error: {last})")

    def settle(self, quiet_s: float = 1.0) -> None:
        """Let echoes and debounced redraws arrive, then wait for an idle kernel."""
        time.sleep(quiet_s)
        self.view.wait_idle()


def code_cells(view: NotebookView) -> list[Locator]:
    return view.panel.locator(".jp-Notebook .jp-CodeCell").all()


def reveal(target: Locator, timeout_s: float = 10.0) -> bool:
    """Scroll ``target``'s cell into view, as a person scrolls to it; True once it has a size.

    JupyterLab 4 renders notebooks with ``content-visibility: auto``: a cell off screen
    is not laid out, so everything in it has a zero-size box, and Playwright's own
    scrolling waits for the target to be visible, which it never becomes. The cell
    itself keeps its placeholder size, so it is the cell that is scrolled to, again
    until the target shows: cells above it that come into view are laid out at their
    real height and can push it back off screen.
    """
    cell = target.locator(_CELL_OF)
    deadline = time.monotonic() + timeout_s
    while True:
        cell.scroll_into_view_if_needed()
        if target.is_visible():
            target.scroll_into_view_if_needed()
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def drawn_figures(view: NotebookView) -> list[float]:
    """The ink fraction of every figure the notebook shows (0 for one with no size)."""
    return [
        ink_fraction(settled_screenshot(figure)) if reveal(figure) else 0.0
        for figure in view.panel.locator(FIGURE).all()
    ]


def misfits(view: NotebookView) -> list[str]:
    """Every output part that sticks out of the notebook's box, or whose text is cut."""
    problems = []
    for number, cell in enumerate(code_cells(view)):
        cell.scroll_into_view_if_needed()
        for part in cell.evaluate(_BOXES_JS, VISIBLE_PARTS):
            where = f"code cell {number}: {part['what']} {part['text']!r}"
            if part["left"] < -1 or part["right"] < -1:
                margins = f"left {part['left']:.0f}, right {part['right']:.0f} px"
                problems.append(f"{where} sticks out ({margins})")
            if part["cut"] and any(c[1:] in part["what"].split(".") for c in LABELS):
                problems.append(f"{where} is cut off")
    return problems


def error_lines(view: NotebookView) -> list[str]:
    """Panel lines drawn in the error red (e.g. "Not applied: ..."), as a person reads them."""
    red = view.panel.locator(f".jp-OutputArea-output .widget-html span[style*='{ERROR_RED}']")
    return [text.strip() for text in red.all_inner_texts()]
