"""Importing PyPI's torchvision next to a CPU build of torch: PyPI's torchvision is a CUDA
build whose compiled ops need ``libtorch_cuda.so``, and its import then dies registering
fake kernels for the two operators those ops would have defined (``torchvision::nms``,
``qnms``). Defining the two schemas first lets its Python part import (measured,
docs/adapters.md); the families that import torchvision (LeRobot's policies, timm's layers
for OpenVLA-OFT) never call them. With a torchvision built for this torch, its real ops load.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

_schemas = None  # a torch.library.Library drops its definitions when garbage-collected


def prepare_torchvision(private: Path | None = None) -> None:
    """Make ``import torchvision`` work; ``private``: a folder holding it that only the
    caller puts on the path (added when torchvision is not importable otherwise)."""
    global _schemas
    if private is not None and importlib.util.find_spec("torchvision") is None \
            and private.is_dir():
        sys.path.append(str(private))
        importlib.invalidate_caches()
    spec = importlib.util.find_spec("torchvision")
    if spec is None or _schemas is not None or "torchvision" in sys.modules:
        return
    import torch

    try:  # a torchvision built for this torch loads its real ops
        torch.ops.load_library(os.path.join(spec.submodule_search_locations[0], "_C.so"))
        return
    except (OSError, RuntimeError):
        pass
    _schemas = torch.library.Library("torchvision", "DEF")
    _schemas.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _schemas.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
