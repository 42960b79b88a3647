"""What every panel shares: a debouncer, message rendering, value expansion, display.

Panels keep their logic in plain methods (testable in pytest with no browser) and
read data only through a ``MirrorClient`` over HTTP, as StackState does.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..client import MirrorClient, MirrorClientError
from ..protocol import (
    CompleteValue,
    FieldDescriptor,
    FieldScalar,
    FieldValuePattern,
    MirrorError,
)
from ..runtime import RunningMirror

#: How long a panel waits after the last change before asking the mirror again.
DEFAULT_DEBOUNCE_S = 0.25
#: At most this many Field Values requests to expand ``cpu.*``-like patterns.
MAX_EXPANSION_REQUESTS = 32


class Debouncer:
    """Calls ``action`` once, ``wait_s`` after the last ``trigger()``; ``wait_s=0`` is synchronous.

    In a Jupyter kernel the timer runs on the kernel's asyncio loop (as ipywidgets'
    debounce recipe does), so the action runs on the main thread like any widget
    callback; with no running loop (a script) a daemon ``threading.Timer`` is used.
    """

    def __init__(self, wait_s: float, action: Callable[[], None]) -> None:
        self.wait_s = wait_s
        self.action = action
        self._pending: asyncio.TimerHandle | threading.Timer | None = None
        self._lock = threading.Lock()

    def trigger(self) -> None:
        if self.wait_s <= 0:
            self.action()
            return
        with self._lock:
            self._cancel_pending()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                timer = threading.Timer(self.wait_s, self._fire)
                timer.daemon = True
                timer.start()
                self._pending = timer
            else:
                self._pending = loop.call_later(self.wait_s, self._fire)

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def cancel(self) -> None:
        with self._lock:
            self._cancel_pending()

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _fire(self) -> None:
        with self._lock:
            self._pending = None
        self.action()


def error_text(error: BaseException) -> str:
    """A one-line reason for a failure, for a panel's message line (never a traceback)."""
    if isinstance(error, MirrorError):
        return f"{type(error).__name__}: {error}"
    if isinstance(error, (MirrorClientError, ValueError, KeyError, TypeError)):
        text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        return f"{type(error).__name__}: {text}"
    return f"{type(error).__name__}: {error}"


_COLOURS = {"ok": "#1a7f37", "warning": "#9a6700", "error": "#cf222e", "info": "#57606a"}


def message_html(text: str, level: str = "info") -> str:
    """The HTML of a panel's message line; empty text gives an empty line."""
    if not text:
        return ""
    colour = _COLOURS.get(level, _COLOURS["info"])
    return f'<span style="color:{colour}">{html.escape(text)}</span>'


def expand_values(
    client: MirrorClient,
    field: str | FieldDescriptor,
    *,
    conditions: Mapping[str, Any] | None = None,
    start: Any = None,
    end: Any = None,
    max_requests: int = MAX_EXPANSION_REQUESTS,
) -> list[FieldScalar]:
    """All complete values of ``field``, asking again with each FieldValuePattern as prefix.

    This is the wizard's refinement done exhaustively (``cpu.*`` → ``cpu.user``,
    ``cpu.system``); bounded by ``max_requests`` Field Values calls.
    """
    found: list[FieldScalar] = []
    prefixes: list[str | None] = [None]
    seen: set[str | None] = set()
    while prefixes and len(seen) < max_requests:
        prefix = prefixes.pop(0)
        if prefix in seen:
            continue
        seen.add(prefix)
        answer = client.field_values(
            field, prefix=prefix, conditions=conditions, start=start, end=end
        )
        for option in answer.values:
            if isinstance(option, FieldValuePattern):
                prefixes.append(option.value)
            elif isinstance(option, CompleteValue) and option.value not in found:
                found.append(option.value)
    return found


class Panel:
    """Base of the panels: a ``.widget``, a client on the mirror, a stable text repr.

    Displaying a panel displays its widget; the ``text/plain`` part of that output is
    the panel's short repr rather than the widget tree's (which holds ports and
    values, and would make stored notebook outputs change on every run).
    """

    widget: Any

    def __init__(self, mirror: RunningMirror, client: MirrorClient | None = None) -> None:
        self.mirror = mirror
        self._client = client
        self._own_client = client is None

    @property
    def client(self) -> MirrorClient:
        """The HTTP client on the mirror (made on first use unless one was given)."""
        if self._client is None:
            self._client = MirrorClient(self.mirror.url, api_key=self.mirror.api_key)
        return self._client

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def close(self) -> None:
        """Close the widgets and the panel's own HTTP client."""
        self.widget.close()
        if self._own_client and self._client is not None:
            self._client.close()


def replace_options(dropdown: Any, options: Sequence[Any], value: Any = None) -> None:
    """Give a Dropdown new options and select ``value``, as one update to the browser.

    ipywidgets selects the first option whenever ``options`` change: without care the
    kernel sees (and observers apply) that option before the one meant, and the browser
    gets options and index in separate messages, between which it may send back an
    index of its own. Here the selection is cleared first (observers see ``None``,
    which no panel treats as a choice), and ``hold_sync`` sends options and the final
    index together.
    """
    with dropdown.hold_sync():
        dropdown.index = None
        dropdown.options = options
        dropdown.value = value
