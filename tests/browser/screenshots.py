"""Where screenshots go: always test-artifacts/browser/, the README's copies on request.

Every run shows other ports and timings, so rewriting the committed PNGs in
docs/screenshots/ on each ``make test`` would leave the work tree dirty: they are
written when missing, or when MIRROR_KIT_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOCS = ROOT / "docs" / "screenshots"


def targets(name: str) -> list[Path]:
    """The files a screenshot called ``name`` (e.g. ``01-start-the-mirror.png``) goes to."""
    docs = DOCS / name
    refresh = os.environ.get("MIRROR_KIT_UPDATE_SCREENSHOTS") == "1"
    return [ARTIFACTS / name, docs] if refresh or not docs.exists() else [ARTIFACTS / name]
