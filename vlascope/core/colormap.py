"""Colour-mapping of saliency maps for display: one lookup table shared by every view, so a
map looks the same in the live viewer, the screenshots and exported videos."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

OUTLINE = (0, 255, 255)  # the top-k% outline, as the region dock draws it


def normalise(saliency: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1] for display (robust to a constant or negative map)."""
    s = np.asarray(saliency, np.float32)
    flat = s.ravel()
    rank = min(flat.size - 1, int(round(0.995 * (flat.size - 1))))  # the 99.5th percentile,
    lo, hi = float(flat.min()), float(np.partition(flat, rank)[rank])  # linear time
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
    idx = (normalise(saliency) * (len(table) - 1)).astype(np.intp)
    lut = table.copy()
    lut[:, 3] = np.round(lut[:, 3] * float(np.clip(opacity, 0.0, 1.0))).astype(np.uint8)
    over = Image.fromarray(lut[idx], "RGBA")  # Pillow composites in C: 5x numpy's time
    base = Image.fromarray(np.ascontiguousarray(frame[..., :3])).convert("RGBA")
    return np.asarray(Image.alpha_composite(base, over).convert("RGB"))


def outline(image: np.ndarray, mask: np.ndarray, colour=OUTLINE) -> np.ndarray:
    """``image`` with the edge of a boolean mask painted (the top-k% outline)."""
    edge = mask & ~ndimage.binary_erosion(mask)
    out = image.copy()
    out[edge] = colour
    return out
