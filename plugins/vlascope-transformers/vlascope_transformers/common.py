"""What the transformers adapters share: reading a checkpoint folder's JSON with errors a
user can act on, the version check, and the observation -> prompt mapping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlascope.core.errors import PluginError


def check_transformers(family: str, need: str = "5.0") -> None:
    """Native pi0 and the VLM classes these adapters use arrived in transformers 5. Also
    silences transformers' own loading progress bars: the app reports progress itself."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    have = tuple(int(p) for p in transformers.__version__.split(".")[:2] if p.isdigit())
    want = tuple(int(p) for p in need.split("."))
    if have < want:
        raise PluginError(f"{family}: needs transformers >= {need}, this environment has "
                          f"{transformers.__version__} (pip install 'transformers>={need}')")


def read_json(path: Path, family: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: not UTF-8, or not JSON
        raise PluginError(f"{family}: cannot read {path} ({e})") from e


def stats(values: Sequence[float] | None, n: int, what: str, family: str) -> torch.Tensor | None:
    """A normalisation vector of the model's state/action size, or None when absent."""
    if values is None:
        return None
    t = torch.tensor(values, dtype=torch.float32)
    if t.shape != (n,):
        raise PluginError(f"{family}: {what} has {t.numel()} numbers, expected {n}")
    return t


def normalise(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None
              ) -> torch.Tensor:
    if mean is None or std is None:
        return x
    return (x - mean) / (std + 1e-8)


def unnormalise(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None
                ) -> torch.Tensor:
    if mean is None or std is None:
        return x
    return x * (std.to(x) + 1e-8) + mean.to(x)


def stack_images(observations: Sequence[Any], cameras: Sequence[str]) -> list[list[np.ndarray]]:
    """Per observation, its frames in the model's camera order."""
    return [[o.images[c] for c in cameras] for o in observations]
