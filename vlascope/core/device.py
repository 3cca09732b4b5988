"""Device choice shared by every policy: CUDA when present, else CPU; the user may override."""

from __future__ import annotations

from vlascope.core.errors import VLAScopeError


def pick_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' if a GPU is usable else 'cpu'; explicit choices are checked."""
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise VLAScopeError(f"device '{requested}' requested but no CUDA GPU is available")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise VLAScopeError(f"unknown device '{requested}' (use auto, cpu or cuda[:N])")
    return requested
