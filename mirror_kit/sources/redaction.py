"""Take secrets and server paths out of text before it reaches a caller or a log.

A store's error text (an exception's message, a status line) can carry what the
caller must never see: the operator's credentials, raw or in the base64 form an
``Authorization: Basic ...`` header has; bearer tokens; ``user:password@`` in a
URL; tokens in a URL's query string; absolute paths on the server. ``Redactor``
removes each form, and ``status_line`` squeezes what is left into one short
printable line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable

REDACTED = "***"
#: The most characters of store-provided text an answer carries.
STATUS_LINE_CHARS = 160

_AUTH_SCHEME = re.compile(r"(?i)\b(basic|bearer|token|digest|negotiate)(\s+|=)[^\s,;\"']+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_QUERY = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?#\"']*)\?[^\s#\"']*")
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(/[\w.@+-]+){2,}/?")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


class Redactor:
    """Replaces known secrets (and their base64 basic-auth form) and secret-shaped text."""

    def __init__(self, secrets: Iterable[str] = (), basic: tuple[str, str] | None = None) -> None:
        known = {s for s in secrets if s}
        if basic is not None:
            user, password = basic
            known.add(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))
        # longest first, so no secret is left half replaced
        self.secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return redact_patterns(text)


def redact_patterns(text: str) -> str:
    """Secret-shaped parts of ``text`` replaced: auth schemes' credentials, URL userinfo
    and query strings."""
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _QUERY.sub(lambda m: f"{m.group(1)}?{REDACTED}", text)


def hide_paths(text: str) -> str:
    """Absolute server paths in ``text`` (``/srv/data/x.csv``) replaced by ``<path>``."""
    return _ABSOLUTE_PATH.sub("<path>", text)


def status_line(
    text: str, redact: Callable[[str], str] | None = None, limit: int = STATUS_LINE_CHARS
) -> str:
    """``text`` as one short, printable, redacted line (at most ``limit`` characters)."""
    text = text[: limit * 4]  # never scan more than a bounded prefix
    text = _UNPRINTABLE.sub(" ", text).strip()
    text = redact(text) if redact is not None else redact_patterns(text)
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
