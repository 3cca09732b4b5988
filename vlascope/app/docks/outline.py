"""The top-k% outline drawn over a camera image, one way for every dock that shows it
(Regions, Scene): the edge of the chosen pixels in cyan, transparent elsewhere."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from scipy import ndimage

LUT = np.array([[0, 0, 0, 0], [0, 255, 255, 255]], np.uint8)


def outline_item() -> pg.ImageItem:
    item = pg.ImageItem(axisOrder="row-major")
    item.setLookupTable(LUT)
    return item


def show_outline(item: pg.ImageItem, top: np.ndarray | None) -> None:
    """Draw the edge of ``top`` (an (H, W) bool mask) on ``item``; None clears it."""
    if top is None:
        item.clear()
        return
    edge = top & ~ndimage.binary_erosion(top)
    item.setImage(edge.astype(np.uint8), autoLevels=False, levels=(0, 1))
