"""Comparing screenshots by pixels, not bytes, so "the plot changed" means what it says."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib import image


def pixels(png: bytes) -> np.ndarray:
    """An (h, w, channels) float array of a PNG."""
    return np.asarray(image.imread(io.BytesIO(png), format="png"))


def changed_pixels(first: bytes, second: bytes) -> int:
    """How many pixels differ (all of them when the sizes differ)."""
    a, b = pixels(first), pixels(second)
    if a.shape != b.shape:
        return max(a.shape[0] * a.shape[1], b.shape[0] * b.shape[1])
    return int(np.count_nonzero(np.any(a != b, axis=-1)))


def ink_fraction(png: bytes) -> float:
    """The share of pixels unlike the most common colour: ~0 for a blank plot."""
    array = pixels(png)
    flat = array.reshape(-1, array.shape[-1])
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    return float(np.mean(np.any(flat != background, axis=-1)))


def save_png(png: bytes, *paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
