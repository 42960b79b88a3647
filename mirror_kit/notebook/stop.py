"""A button that stops the mirror when you are done with a notebook.

Notebooks whose panels should keep working after *Run All* (shaping the data,
configuring StackState) cannot stop the mirror in their last cell: Run All would
stop it right away. They end with this button instead; shutting the kernel down
stops the mirror too (``mirror_kit.runtime`` registers an ``atexit`` handler).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..runtime import RunningMirror
from .base import Panel, message_html


class StopButton(Panel):
    """Closes the given panels and stops the mirror, once, when clicked."""

    def __init__(self, mirror: RunningMirror, *panels: Panel) -> None:
        super().__init__(mirror)
        self.panels = panels
        self.button = widgets.Button(description="Stop the mirror", icon="stop")
        self.status = widgets.HTML(message_html(f"The mirror serves on {mirror.url}.", "info"))
        self.button.on_click(lambda _: self.stop())
        self.widget = widgets.HBox([self.button, self.status])

    def stop(self) -> None:
        """Close the panels, stop the mirror (frees its port) and say so."""
        for panel in self.panels:
            panel.close()
        self.mirror.stop()
        self.button.disabled = True
        self.status.value = message_html(f"Stopped: port {self.mirror.port} is free.", "info")

    def __repr__(self) -> str:
        return "<StopButton>"


def stop_button(mirror: RunningMirror, *panels: Any) -> StopButton:
    """A *Stop the mirror* button that also closes ``panels``."""
    return StopButton(mirror, *panels)
