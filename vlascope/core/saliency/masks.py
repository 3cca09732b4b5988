"""RISE-style random masks: a coarse Bernoulli grid, upsampled bilinearly with a random
shift. 1 = pixel kept, 0 = pixel replaced (by the blurred image)."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def drop_counts(n: int, n_cells: int, p_keep: float, rng) -> np.ndarray:
    """In how many of n masks each cell is dropped, for a stratified design: n (1 - p_keep)
    when that is whole; else its floor or ceiling at random with the right odds, so each
    mask-cell is still dropped with probability exactly 1 - p_keep (rounding instead, as
    before, changed the mask distribution: 4 of 5 dropped instead of 3.5). Whole counts
    draw nothing, so those designs stay what they were for the same seed. ``rng``: a numpy
    Generator or RandomState."""
    expected = n * (1.0 - p_keep)
    base = int(np.floor(expected + 1e-9))
    frac = expected - base
    if frac < 1e-9:
        return np.full(n_cells, base, dtype=int)
    return base + (rng.random(n_cells) < frac).astype(int)


def stratified_drops(n: int, n_cells: int, p_keep: float, rng) -> np.ndarray:
    """(n_cells, n) 0/1 keep values, cell c dropped in ``drop_counts`` of the n masks, at
    masks chosen by an independent permutation per cell (so a mask's cells are independent
    with keep probability p_keep, as in plain Bernoulli masks)."""
    counts = drop_counts(n, n_cells, p_keep, rng)
    keep = np.ones((n_cells, n), np.float32)
    for c in range(n_cells):
        keep[c, rng.permutation(n)[:counts[c]]] = 0.0
    return keep


def grid_keep(n: int, grid: int, p_keep: float, rng: np.random.Generator,
              stratified: bool = False) -> np.ndarray:
    """(n, grid, grid) 0/1 cells. Stratified (``stratified_drops``): coverage has (almost)
    no sampling noise while each mask's cells keep marginal keep probability p_keep."""
    if not stratified:
        return (rng.random((n, grid, grid)) < p_keep).astype(np.float32)
    return stratified_drops(n, grid * grid, p_keep, rng).T.reshape(n, grid, grid)


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


class RisePerturbation:
    """Per-camera RISE masks (random shift, drawn independently per camera), blurred fill,
    blend rounded to uint8; sums in float64. Our own estimator family ('rise', and
    'rise-improved' with stratified cells): not the toolkit's mask distribution."""

    def __init__(self, images: dict[str, np.ndarray], cameras: list[str], n: int, grid: int,
                 p_keep: float, sigma: float, seed: int, stratified: bool):
        from .blur import gaussian_blur

        self.rng = np.random.default_rng(seed)
        self.cells = {c: grid_keep(n, grid, p_keep, self.rng, stratified) for c in cameras}
        self.size = {c: images[c].shape[:2] for c in cameras}
        self.image = {c: torch.from_numpy(images[c]).permute(2, 0, 1)[None].float()
                      for c in cameras}
        self.blurred = {c: gaussian_blur(self.image[c], sigma) for c in cameras}
        self.weighted = {c: torch.zeros(self.size[c], dtype=torch.float64) for c in cameras}
        self.dropped = {c: torch.zeros(self.size[c], dtype=torch.float64) for c in cameras}
        self.drop: dict[str, torch.Tensor] = {}

    def batch(self, start: int, end: int) -> dict[str, np.ndarray]:
        out = {}
        for c, cells in self.cells.items():
            keep = upsample(cells[start:end], self.size[c], self.rng)
            mixed = self.blurred[c] + keep[:, None] * (self.image[c] - self.blurred[c])
            out[c] = mixed.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            self.drop[c] = 1.0 - keep.double()
        return out

    def add(self, divergences: np.ndarray) -> None:
        d = torch.from_numpy(np.asarray(divergences, np.float64))
        for c, drop in self.drop.items():
            self.weighted[c] += torch.einsum("k,khw->hw", d, drop)
            self.dropped[c] += drop.sum(0)

    def sums(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per camera: sum_k d_k (1 - m_k), and sum_k (1 - m_k)."""
        return ({c: w.numpy() for c, w in self.weighted.items()},
                {c: d.numpy() for c, d in self.dropped.items()})
