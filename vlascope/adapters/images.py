"""Scene frames to a model's pixel tensor, in torch (one batched call instead of a PIL
image processor per frame, and no torchvision, whose PyPI build fails next to CPU torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def resize_batch(images: Sequence[np.ndarray], size: tuple[int, int],
                 mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
                 pad: bool = False) -> torch.Tensor:
    """(H, W, 3) uint8 frames -> (B, 3, h, w) float32: scaled to 0..1, resized (bilinear,
    antialiased), then ``(x - mean) / std``. ``pad`` keeps the aspect ratio and pads the
    bottom/right with black, as LeRobot's ``resize_with_pad`` does."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    h, w = size
    if tuple(x.shape[-2:]) != (h, w):
        if pad:
            scale = min(h / x.shape[-2], w / x.shape[-1])
            rh, rw = int(round(x.shape[-2] * scale)), int(round(x.shape[-1] * scale))
            x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False,
                              antialias=True)
            x = F.pad(x, (0, w - rw, 0, h - rh))
        else:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False,
                              antialias=True)
    m = torch.tensor(mean, dtype=x.dtype)[None, :, None, None]
    s = torch.tensor(std, dtype=x.dtype)[None, :, None, None]
    return (x - m) / s
