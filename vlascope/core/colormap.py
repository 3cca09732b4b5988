"""Colour-mapping of saliency maps for display: one lookup table shared by every view, so a
map looks the same in the live viewer, the screenshots and exported videos."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

OUTLINE = (0, 255, 255)  # the top-k% outline, as the region dock draws it


def normalise(saliency: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1] for display (robust to a constant or negative map)."""
    s = np.asarray(saliency, np.float32)
    lo, hi = float(np.min(s)), float(np.percentile(s, 99.5))
    if hi <= lo:
        return np.zeros_like(s)
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)


def lookup_table(name: str = "inferno", n: int = 256) -> np.ndarray:
    """(n, 4) uint8 RGBA table; alpha ramps up so low saliency leaves the frame visible."""
    from matplotlib import colormaps

    rgba = (colormaps[name](np.linspace(0.0, 1.0, n)) * 255).astype(np.uint8)
    rgba[:, 3] = (np.linspace(0.0, 1.0, n) * 255).astype(np.uint8)
    return rgba


_LUT: np.ndarray | None = None


def blend(frame: np.ndarray, saliency: np.ndarray, opacity: float = 0.6,
          table: np.ndarray | None = None) -> np.ndarray:
    """A frame (H, W, 3) uint8 with a map (H, W) colour-mapped over it, as the views draw
    it: each pixel's colour weighted by the table's alpha times ``opacity``."""
    global _LUT
    if table is None:
        if _LUT is None:
            _LUT = lookup_table()
        table = _LUT
    idx = (normalise(saliency) * (len(table) - 1)).astype(np.int64)
    rgba = table[idx].astype(np.float32)
    a = rgba[..., 3:4] * (float(opacity) / 255.0)
    out = frame.astype(np.float32) * (1 - a) + rgba[..., :3] * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def outline(image: np.ndarray, mask: np.ndarray, colour=OUTLINE) -> np.ndarray:
    """``image`` with the edge of a boolean mask painted (the top-k% outline)."""
    edge = mask & ~ndimage.binary_erosion(mask)
    out = image.copy()
    out[edge] = colour
    return out
