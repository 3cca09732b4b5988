"""The part every adapter shares: the policy contract around a model-specific ``_infer``.

A subclass loads its model, registers hook points on ``self.hooks`` (``tokens.visual`` is
registered here: the subclass routes its visual token embeddings through
``self.visual_tap``), sets the attributes below and implements ``_infer``:

- ``cameras``: scene cameras in the order of the model's image inputs
- ``horizon``, ``action_dim``, ``state_dim``, ``n_action_steps``
- ``noise_shape``: (horizon, dim) of the flow-matching noise, or None for a
  deterministic head
- ``policy_id``, ``weights_hash``
- ``self._layout`` / ``self._groups``: the visual token layout and token groups, set by
  ``_infer`` from the prompt it built (they depend on prompt padding and image count)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vlascope.core.device import pick_device
from vlascope.core.errors import ObservationError, PluginError, VLAScopeError
from vlascope.core.noise import SeededNoise
from vlascope.core.policy import Observation

from .hooks import ModuleHooks, TokenTap

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """'auto': half precision on CUDA (bfloat16 where the GPU has it: these models were
    trained in bfloat16 and overflow in float16 more easily), float32 on the CPU."""
    requested = (requested or "auto").lower()
    if requested == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if requested not in DTYPES:
        raise VLAScopeError(f"unknown dtype '{requested}' (auto, {', '.join(DTYPES)})")
    return DTYPES[requested]


def weights_fingerprint(files: Sequence[Path]) -> str:
    """A cheap, stable identity for multi-gigabyte checkpoints: each file's name, size and
    first and last MiB (hashing 15 GB on every load would cost a minute)."""
    h = hashlib.sha256()
    for f in sorted(Path(p) for p in files):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()


def parse_cameras(value: str | Sequence[str] | None, default: Sequence[str], family: str,
                  n_inputs: int | None = None) -> tuple[str, ...]:
    """Scene cameras for the model's image inputs, in order: ``value`` ("front,wrist" or a
    list) or the checkpoint's own camera names; ``n_inputs`` when the model fixes the count."""
    cams = list(default) if value is None else (
        [c for c in value.split(",") if c] if isinstance(value, str) else list(value))
    if not cams or (n_inputs is not None and len(cams) != n_inputs):
        want = f"{n_inputs} image(s)" if n_inputs is not None else "at least one image"
        raise PluginError(f"{family}: the checkpoint takes {want}, got cameras {cams}; "
                          "pass cameras='cam1,cam2,...'")
    return tuple(cams)


def require_folder(folder: str | Path | None, family: str, files: Sequence[str]) -> Path:
    """The checkpoint folder, with the files it must hold: errors a user can act on."""
    if folder is None:
        raise PluginError(f"{family}: no checkpoint ships with VLAScope; give a checkpoint "
                          "folder (--weights DIR, or 'Load checkpoint' in the app); "
                          "see docs/adapters.md")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise PluginError(f"{family}: checkpoint folder {path} does not exist")
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise PluginError(f"{family}: {path} is not a {family} checkpoint (missing "
                          f"{', '.join(missing)}); see docs/adapters.md")
    return path


class AdapterPolicy:
    """Policy contract, hook points, seeded noise and observation checks for a wrapped
    third-party model; see the module docstring for what a subclass provides."""

    family = "adapter"
    cameras: tuple[str, ...] = ()
    horizon = action_dim = state_dim = 0
    n_action_steps = 1
    noise_shape: tuple[int, int] | None = None
    image_size: tuple[int, int] | None = None  # None: the adapter resizes any frame

    def __init__(self, device: str = "auto", dtype: str = "auto", seed: int = 0):
        self.device = torch.device(pick_device(device))
        self.dtype = pick_dtype(self.device, dtype)
        self.seed = int(seed)
        self.noise = SeededNoise(seed)
        self.hooks = ModuleHooks()
        self.visual_tap = TokenTap()
        self.hooks.add("tokens.visual", self.visual_tap)
        self._layout: dict[str, dict] = {}
        self._groups: dict[str, list[int]] = {}
        self._sequence_layers: set[str] = set()  # hook points that hold the prompt sequence
        self.reset()

    # Contract ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Restart the noise stream, so an episode replays exactly."""
        self.noise.restart()

    def batch_infer(self, observations: Sequence[Observation]) -> np.ndarray:
        if not observations:
            raise ObservationError("batch_infer needs at least one observation")
        for obs in observations:
            self._check(obs)
        with torch.inference_mode():
            chunks = self._infer(list(observations), self._draw_noise(len(observations)))
        return chunks[..., :self.action_dim].float().cpu().numpy()

    # Capabilities -----------------------------------------------------------------------
    def common_noise(self) -> AbstractContextManager[None]:
        """Every call in this block, on this thread, starts every row from the same noise
        (the seed's first draw) and leaves the episode's noise stream alone."""
        return self.noise.common()

    def layers(self) -> dict[str, nn.Module]:
        return self.hooks.modules()

    @contextmanager
    def hook(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor | None]
             ) -> Iterator[None]:
        """Call ``fn`` on the activation at ``name``; a returned tensor replaces it."""
        with self.hooks.hook(name, fn):
            yield

    def visual_token_layout(self) -> dict[str, dict]:
        """Camera -> token grid and positions in the language model's sequence; the tokens
        at ``tokens.visual`` are the cameras' grids concatenated in this order."""
        if not self._layout:
            raise VLAScopeError(f"{self.family}: the visual token layout is known after "
                                "the first forward pass")
        return self._layout

    def token_groups(self, layer: str | None = None) -> dict[str, list[int]]:
        """Positions of each kind of token at hook points that hold the prompt sequence
        (the VLM's layers); other hook points have no groups."""
        if layer is not None and layer not in self._sequence_layers:
            return {}
        return dict(self._groups)

    # For subclasses ---------------------------------------------------------------------
    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, obs: Observation) -> None:
        missing = [c for c in self.cameras if c not in obs.images]
        if missing:
            raise ObservationError(f"{self.family} needs camera(s) {missing} "
                                   f"(it reads {list(self.cameras)})")
        obs.check_images(self.image_size)
        state = np.asarray(obs.state)
        if self.state_dim and state.shape != (self.state_dim,):
            raise ObservationError(f"{self.family} expects a state of {self.state_dim} "
                                   f"numbers, got shape {state.shape}")

    def _draw_noise(self, batch: int) -> torch.Tensor | None:
        if self.noise_shape is None:
            return None
        return self.noise.draw(batch, self.noise_shape).to(self.device, self.dtype)

    def _states(self, observations: Sequence[Observation]) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(o.state, np.float32)
                                          for o in observations]))

    def _register_stack(self, prefix: str, layers: Sequence[nn.Module], attn: str, mlp: str,
                        resid: str = "", sequence: bool = True, resid_read_only: str = "",
                        copy_outputs: bool = False) -> None:
        """``{prefix}.{i}.resid`` (the residual stream entering layer i: the input of the
        submodule ``resid``, by default the layer itself), ``.attn`` (attention output
        projection) and ``.mlp``; see ModuleHooks for the flags."""
        for i, layer in enumerate(layers):
            self.hooks.add(f"{prefix}.{i}.resid", _sub(layer, resid), "input",
                           read_only=resid_read_only)
            self.hooks.add(f"{prefix}.{i}.attn", _sub(layer, attn), copy_output=copy_outputs)
            self.hooks.add(f"{prefix}.{i}.mlp", _sub(layer, mlp), copy_output=copy_outputs)
            if sequence:
                self._sequence_layers.update(f"{prefix}.{i}.{k}" for k in ("resid", "attn", "mlp"))


def _sub(module: nn.Module, path: str) -> nn.Module:
    for part in filter(None, path.split(".")):
        module = getattr(module, part)
    return module
