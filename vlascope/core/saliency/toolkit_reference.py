"""The ISS/NMR toolkit's pixel-ISS algorithm as published, written out directly: masks made
up front, each perturbed frame composited one mask at a time in numpy, the policy called in
batches of 64, map = sum(divergence x dropped) / (N (1 - p)). It is the baseline that
``benchmarks/iss.py`` times and the transcription the tests hold ``pixel_iss`` against."""

from __future__ import annotations

import numpy as np
import torch

from ..policy import Observation, Policy
from .blur import gaussian_blur
from .masks import grid_keep, upsample


def toolkit_iss(policy: Policy, obs: Observation, n_masks: int = 100, grid: int = 7,
                p_keep: float = 0.3, sigma: float = 10.0, seed: int = 0,
                batch: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cams = list(obs.images)
    cells = {c: grid_keep(n_masks, grid, p_keep, rng) for c in cams}
    masks = {c: upsample(cells[c], obs.images[c].shape[:2], rng).numpy() for c in cams}
    blurred = {c: gaussian_blur(torch.from_numpy(obs.images[c]).permute(2, 0, 1)[None].float(),
                                sigma)[0].permute(1, 2, 0).numpy() for c in cams}
    base = np.asarray(policy.batch_infer([obs]), dtype=np.float64)[0]
    maps = {c: np.zeros(obs.images[c].shape[:2]) for c in cams}
    for start in range(0, n_masks, batch):
        idx = range(start, min(n_masks, start + batch))
        perturbed = []
        for k in idx:
            images = {}
            for c in cams:
                m = masks[c][k][:, :, None]
                img = obs.images[c].astype(np.float64)
                mixed = np.round(m * img + (1 - m) * blurred[c])
                images[c] = np.clip(mixed, 0, 255).astype(np.uint8)
            perturbed.append(Observation(images, obs.state, obs.instruction, obs.extras))
        acts = np.asarray(policy.batch_infer(perturbed), dtype=np.float64)
        for j, k in enumerate(idx):
            div = float(np.mean((acts[j] - base) ** 2))
            for c in cams:
                maps[c] += div * (1 - masks[c][k])
    return {c: m / (n_masks * (1 - p_keep)) for c, m in maps.items()}
