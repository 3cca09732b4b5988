"""RISE-style random masks: a coarse Bernoulli grid, upsampled bilinearly with a random
shift. 1 = pixel kept, 0 = pixel replaced (by the blurred image)."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def grid_keep(n: int, grid: int, p_keep: float, rng: np.random.Generator,
              stratified: bool = False) -> np.ndarray:
    """(n, grid, grid) 0/1 cells. Stratified: every cell is dropped in exactly
    round(n (1 - p_keep)) of the n masks, so coverage has no sampling noise while each
    mask's cells still have marginal keep probability p_keep."""
    if not stratified:
        return (rng.random((n, grid, grid)) < p_keep).astype(np.float32)
    n_drop = int(round(n * (1 - p_keep)))
    cells = np.ones((grid * grid, n), np.float32)
    for c in range(grid * grid):
        cells[c, rng.permutation(n)[:n_drop]] = 0.0
    return cells.T.reshape(n, grid, grid)


def upsample(cells: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    """(n, g, g) cells -> (n, H, W) smooth masks: bilinear upsampling of a (g+1)-cell canvas
    cropped at a random offset (as in RISE), so cell borders do not sit at fixed pixels."""
    n, g, _ = cells.shape
    h, w = size
    ch, cw = int(np.ceil(h / g)), int(np.ceil(w / g))
    padded = np.concatenate([cells, cells[:, -1:, :]], axis=1)
    padded = np.concatenate([padded, padded[:, :, -1:]], axis=2)  # (n, g+1, g+1)
    up = F.interpolate(torch.from_numpy(padded)[:, None], size=((g + 1) * ch, (g + 1) * cw),
                       mode="bilinear", align_corners=False)[:, 0]
    dy, dx = rng.integers(0, ch, n), rng.integers(0, cw, n)
    out = torch.empty(n, h, w)
    for i in range(n):
        out[i] = up[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out
