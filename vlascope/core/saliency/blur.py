"""Gaussian blur as separable convolutions in torch (batched, on the policy's device)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def gaussian_kernel(sigma: float, device: torch.device | str = "cpu") -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) float -> blurred, reflect padding (replicate when the kernel is wider)."""
    if sigma <= 0:
        return images
    k = gaussian_kernel(sigma, images.device).to(images.dtype)
    r = (len(k) - 1) // 2
    c = images.shape[1]
    mode = "reflect" if r < min(images.shape[-2:]) else "replicate"
    x = F.pad(images, (r, r, 0, 0), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode=mode)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
