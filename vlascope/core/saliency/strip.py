"""The ISS/NMR toolkit's perturbations, reproduced value for value: ONE Bernoulli grid of
(g, g V) cells for the V camera views side by side, drawn by
``np.random.RandomState(seed).rand(N, g, g V) < p_keep``; each grid upsampled as a whole
strip with OpenCV's bilinear resize (fixed offset, edges clamped, so neighbouring views blend
at the seam) and cut into views; the fill is ``cv2.GaussianBlur`` with a kernel of
2 round(3 sigma) + 1; the blend ``orig keep + blur (1 - keep)`` is computed in float32 and
truncated to uint8. The arithmetic follows the toolkit's own code (checked against numbers
its code produced: tests/data/toolkit/), so the same seed gives the same masks and maps.
One difference, in cost only: the toolkit pads a short last batch with copies of its last
item; we send the short batch (the same maps for any policy whose answer for an item does
not depend on the rest of its batch).

``stratified=True`` keeps that distribution per mask but drops every strip cell in
N (1 - p_keep) masks (its floor or ceiling when that is not whole: masks.drop_counts), and
the map is estimated per cell, as the mean divergence of the masks that drop it, then
upsampled like the masks (the ``toolkit-improved`` estimator): unbiased at any N, since
a bilinear resize is linear and the map is E[d drop] / (1 - p_keep) pixel by pixel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from ..errors import VLAScopeError
from .masks import stratified_drops


def strip_cells(n: int, grid: int, n_views: int, p_keep: float, seed: int,
                stratified: bool = False) -> np.ndarray:
    """(n, grid, grid * n_views) float32 cells, 1 kept and 0 dropped."""
    rng = np.random.RandomState(seed)
    if not stratified:
        return (rng.rand(n, grid, grid * n_views) < p_keep).astype(np.float32)
    cells = stratified_drops(n, grid * grid * n_views, p_keep, rng)
    return cells.T.reshape(n, grid, grid * n_views)


def strip_keep(cells: np.ndarray, height: int, strip_width: int) -> np.ndarray:
    """(b, g, g V) cells -> (b, H, W V) float32 keep masks, one cv2 bilinear resize each."""
    out = np.empty((len(cells), height, strip_width), np.float32)
    for i, cell in enumerate(cells):
        out[i] = cv2.resize(cell, (strip_width, height), interpolation=cv2.INTER_LINEAR)
    return out


def toolkit_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """The toolkit's fill: float32 Gaussian blur with a kernel of 2 round(3 sigma) + 1."""
    ksize = int(2 * round(3 * sigma) + 1)
    return cv2.GaussianBlur(image.astype(np.float32), (ksize, ksize), sigma)


def common_size(images: Mapping[str, np.ndarray], cameras: Sequence[str]) -> tuple[int, int]:
    """The toolkit stitches views side by side: all of them must have one size."""
    sizes = {images[c].shape[:2] for c in cameras}
    if len(sizes) != 1:
        raise VLAScopeError(f"the toolkit's masks span all views side by side and need one "
                            f"image size; cameras {list(cameras)} have {sorted(sizes)} (use the "
                            "'rise' estimators for cameras of different sizes)")
    return next(iter(sizes))


def blend(original: np.ndarray, blurred: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 original and fill, (b, H, W) keep -> (b, H, W, 3) uint8, the toolkit's
    float32 blend truncated (not rounded) to uint8."""
    k = keep[..., None]
    mixed = original[None] * k + blurred[None] * (1.0 - k)
    return np.clip(mixed, 0, 255).astype(np.uint8)


class ToolkitPerturbation:
    """The toolkit's perturbations for one frame, a batch at a time (masks are made per batch
    from the cells drawn up front, so memory stays bounded for any N), with its float32
    accumulation ``sum(d[:, None, None, None] * drop, axis=0)`` per batch."""

    def __init__(self, images: Mapping[str, np.ndarray], cameras: Sequence[str], n: int,
                 grid: int, p_keep: float, sigma: float, seed: int, stratified: bool):
        self.cameras = list(cameras)
        self.height, self.width = common_size(images, self.cameras)
        self.cells = strip_cells(n, grid, len(self.cameras), p_keep, seed, stratified)
        # the estimator's sums only: per cell when stratified (cell_means), per pixel else
        self.per_cell = stratified
        self.cell_weighted = np.zeros(self.cells.shape[1:], np.float64)  # sum_k d_k (1 - cell)
        self.cell_dropped = np.zeros(self.cells.shape[1:], np.float64)
        self._batch_cells = self.cells[:0]
        self.original = {c: images[c].astype(np.float32) for c in self.cameras}
        self.blurred = {c: toolkit_blur(self.original[c], sigma) for c in self.cameras}
        shape = (self.height, self.width)
        self.weighted = {c: np.zeros(shape, np.float32) for c in self.cameras}
        self.dropped = {c: np.zeros(shape, np.float32) for c in self.cameras}
        self.drop: dict[str, np.ndarray] = {}

    def batch(self, start: int, end: int) -> dict[str, np.ndarray]:
        self._batch_cells = self.cells[start:end]
        keep = strip_keep(self._batch_cells, self.height, self.width * len(self.cameras))
        out = {}
        for v, c in enumerate(self.cameras):
            view = keep[:, :, v * self.width:(v + 1) * self.width]
            out[c] = blend(self.original[c], self.blurred[c], view)
            if not self.per_cell:
                self.drop[c] = (1.0 - view)[..., None]
        return out

    def add(self, divergences: np.ndarray) -> None:
        if self.per_cell:
            drop_cells = 1.0 - self._batch_cells.astype(np.float64)
            self.cell_weighted += np.tensordot(np.asarray(divergences, np.float64),
                                               drop_cells, 1)
            self.cell_dropped += drop_cells.sum(0)
            return
        d = np.asarray(divergences, np.float32)
        for c, drop in self.drop.items():
            self.weighted[c] += np.sum(d[:, None, None, None] * drop, axis=0).squeeze(-1)
            self.dropped[c] += np.sum(drop, axis=0).squeeze(-1)

    def sums(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per camera, the toolkit's pixel sums (not kept for the stratified estimator)."""
        return self.weighted, self.dropped

    def cell_means(self, mean_divergence: float) -> dict[str, np.ndarray]:
        """Per camera: the mean divergence of the masks that drop each cell, upsampled as
        the masks are (a cell no mask dropped, possible only at tiny N, gets the mean)."""
        means = np.divide(self.cell_weighted, self.cell_dropped,
                          out=np.full_like(self.cell_weighted, mean_divergence),
                          where=self.cell_dropped > 0).astype(np.float32)
        strip = cv2.resize(means, (self.width * len(self.cameras), self.height),
                           interpolation=cv2.INTER_LINEAR)
        return {c: strip[:, v * self.width:(v + 1) * self.width].copy()
                for v, c in enumerate(self.cameras)}
