"""The top-k% outline drawn over a camera image, one way for every dock that shows it
(Regions, Scene): the edge of the chosen pixels in cyan, transparent elsewhere."""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg
from scipy import ndimage

LUT = np.array([[0, 0, 0, 0], [0, 255, 255, 255]], np.uint8)


def outline_item() -> pg.ImageItem:
    item = pg.ImageItem(axisOrder="row-major")
    item.setLookupTable(LUT)
    return item


def show_outline(item: pg.ImageItem, top: np.ndarray | None,
                 shape: tuple[int, int] | None = None) -> None:
    """Draw the edge of ``top`` (an (H, W) bool mask) on ``item``; None clears it. With
    ``shape`` (a display render's size) the mask is scaled up first, so the edge stays a
    thin line over a crisp image instead of the policy's pixel blocks."""
    if top is None:
        item.clear()
        return
    if shape is not None and top.shape != tuple(shape):
        top = cv2.resize(top.astype(np.uint8), (int(shape[1]), int(shape[0])),
                         interpolation=cv2.INTER_NEAREST).astype(bool)
    edge = top & ~ndimage.binary_erosion(top)
    item.setImage(edge.astype(np.uint8), autoLevels=False, levels=(0, 1))
