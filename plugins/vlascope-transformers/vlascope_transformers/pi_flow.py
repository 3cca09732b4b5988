"""What pi0 and pi0.5 share in transformers: a PaliGemma VLM whose key/value cache conditions
a Gemma action expert that denoises a chunk of actions by flow matching. Loading the folder,
the image mapping (each camera resized into the image processor's square, aspect kept,
padded, scaled as its statistics say), the hook points (``tokens.visual``,
``vision.projector``, ``vlm.{i}.*``, ``expert.{i}.*``), sampling and the token layout live
here once; each family maps the state and writes the prompt (``pi0.py``, ``pi05.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vlascope.adapters.base import AdapterPolicy, parse_cameras, weights_fingerprint
from vlascope.adapters.hooks import fixed_positions
from vlascope.adapters.images import resize_batch
from vlascope.core.errors import PluginError
from vlascope.core.policy import Observation

from .common import read_json, stack_images


class PiFlowPolicy(AdapterPolicy):
    """The shared body of the pi0 and pi0.5 adapters."""

    def _load(self, model_class: Any, folder: Path, cameras: str | Sequence[str] | None,
              default_cameras: Sequence[str]) -> dict[str, Any]:
        """Model, tokenizer, image mapping, cameras and chunk shape from ``folder``;
        returns its processor_config.json for the family's own settings."""
        from transformers import AutoTokenizer

        proc = read_json(folder / "processor_config.json", self.family)
        try:
            self.model = model_class.from_pretrained(
                folder, dtype=self.dtype, local_files_only=True,
                trust_remote_code=False).to(self.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                                           trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise PluginError(f"{self.family}: cannot load {folder} ({e})") from e
        cfg = self.model.config
        image = proc.get("image_processor", {})
        pad = image.get("pad_size") or {"height": 224, "width": 224}
        self.image_shape = (int(pad["height"]), int(pad["width"]))
        self.image_mean = image.get("image_mean", [0.5] * 3)
        self.image_std = image.get("image_std", [0.5] * 3)
        self.tokens_per_image = int(image.get("image_seq_length", 256))
        self.image_token_id = int(cfg.vlm_config.image_token_id)
        self.cameras = parse_cameras(cameras, proc.get("camera_names", default_cameras),
                                     self.family)
        self.horizon = int(cfg.chunk_size)
        self.noise_shape = (self.horizon, int(cfg.max_action_dim))
        self.weights_hash = weights_fingerprint(sorted(folder.glob("*.safetensors")))
        return proc

    def _register_hooks(self) -> None:
        inner = self.model.model
        self._embed_prefix = inner.embed_prefix
        inner.embed_prefix = self._tapped_embed_prefix  # the visual tokens pass the tap
        self._register_stack("vlm", inner.vlm.language_model.layers, "self_attn.o_proj", "mlp")
        self._register_stack("expert", inner.dit.layers, "self_attn.o_proj", "mlp",
                             sequence=False)
        self.hooks.add("vision.projector", inner.vlm.multi_modal_projector)

    def _tapped_embed_prefix(self, input_ids, pixel_values, pixel_attention_mask,
                             attention_mask=None):
        embeds = self._embed_prefix(input_ids, pixel_values, pixel_attention_mask,
                                    attention_mask)
        return self.visual_tap.apply(embeds, self._visual_positions)

    def _sample(self, observations: list[Observation], prompt: dict[str, Any],
                noise: torch.Tensor | None, **inputs: Any) -> torch.Tensor:
        """The expert's denoised chunk (normalised) for the cameras' images and ``prompt``
        (``inputs``: what the family adds, e.g. pi0's state)."""
        frames = stack_images(observations, self.cameras)
        b, n_cam = len(frames), len(self.cameras)
        pixels = resize_batch([f for fs in frames for f in fs], self.image_shape,
                              self.image_mean, self.image_std, pad=True)
        pixels = pixels.reshape(b, n_cam, *pixels.shape[1:]).to(self.device, self.dtype)
        out = self.model.sample_actions(
            **inputs, input_ids=prompt["input_ids"].to(self.device), pixel_values=pixels,
            noise=noise, attention_mask=prompt["attention_mask"].to(self.device),
            pixel_attention_mask=torch.ones(b, n_cam, dtype=torch.bool, device=self.device),
            num_steps=self.num_steps)
        return out[..., :self.action_dim].float()

    def _set_token_layout(self, ids: torch.Tensor, **groups: list[int]) -> None:
        """Visual positions, each camera's grid, and the token groups: ``visual``, the
        family's own ``groups`` (pi0.5's ``state``), the rest ``language``."""
        self._visual_positions = fixed_positions(ids == self.image_token_id, "image tokens")
        side = int(round(self.tokens_per_image ** 0.5))
        grid = (side, side) if side * side == self.tokens_per_image else \
            (1, self.tokens_per_image)
        pos = self._visual_positions
        t = self.tokens_per_image
        self._layout = {c: {"grid": grid, "positions": pos[i * t:(i + 1) * t]}
                        for i, c in enumerate(self.cameras)}
        taken = set(pos).union(*map(set, groups.values()))
        text = [i for i in range(ids.shape[1]) if i not in taken]
        self._groups = {"visual": list(pos), **{k: list(v) for k, v in groups.items()},
                        "language": text}
