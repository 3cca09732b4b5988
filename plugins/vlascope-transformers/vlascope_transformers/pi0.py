"""pi0 through transformers' native classes (``PI0ForConditionalGeneration``, transformers
>= 5): a PaliGemma VLM whose key/value cache conditions a Gemma action expert that denoises
a chunk of actions by flow matching.

Checkpoint folder: what ``model.save_pretrained`` and ``PI0Processor.save_pretrained`` write
(``config.json``, ``model.safetensors``, the tokenizer, ``processor_config.json`` with the
dataset statistics). Observation mapping, as PI0Processor does it: each camera resized into
the image processor's square (aspect kept, padded), scaled to [-1, 1]; the prompt is
``<image>`` x tokens-per-image x cameras, BOS, the instruction, a newline, right-padded to
48 tokens; the state normalised with ``state_mean``/``state_std`` and zero-padded to
``max_state_dim``; actions un-normalised with ``actions_mean``/``actions_std``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vlascope.adapters.base import AdapterPolicy, parse_cameras, require_folder, weights_fingerprint
from vlascope.adapters.hooks import fixed_positions
from vlascope.adapters.images import resize_batch
from vlascope.core.errors import PluginError
from vlascope.core.policy import Observation

from .common import check_transformers, normalise, read_json, stack_images, stats, unnormalise

FAMILY = "pi0 (transformers)"
# LIBERO's cameras, what released pi0 checkpoints are fine-tuned on; a checkpoint written
# by VLAScope names its own (``camera_names`` in processor_config.json).
DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")


class Pi0Policy(AdapterPolicy):
    family = FAMILY

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 n_action_steps: int | None = None, num_steps: int | None = None,
                 action_dim: int | None = None):
        check_transformers(FAMILY)
        from transformers import AutoTokenizer, PI0ForConditionalGeneration

        folder = require_folder(weights, FAMILY, ["config.json", "processor_config.json"])
        super().__init__(device, dtype, seed)
        proc = read_json(folder / "processor_config.json", FAMILY)
        try:
            self.model = PI0ForConditionalGeneration.from_pretrained(
                folder, dtype=self.dtype, local_files_only=True,
                trust_remote_code=False).to(self.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                                           trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise PluginError(f"{FAMILY}: cannot load {folder} ({e})") from e
        cfg = self.model.config
        image = proc.get("image_processor", {})
        pad = image.get("pad_size") or {"height": 224, "width": 224}
        self.image_shape = (int(pad["height"]), int(pad["width"]))
        self.image_mean = image.get("image_mean", [0.5] * 3)
        self.image_std = image.get("image_std", [0.5] * 3)
        self.tokens_per_image = int(image.get("image_seq_length", 256))
        self.max_length = int(proc.get("max_length", 48))
        self.image_token_id = int(cfg.vlm_config.image_token_id)

        self.cameras = parse_cameras(cameras, proc.get("camera_names", DEFAULT_CAMERAS),
                                     FAMILY)
        self.horizon = int(cfg.chunk_size)
        self.max_state_dim = int(cfg.max_state_dim)
        self.action_dim = int(action_dim or len(proc.get("actions_mean") or []) or
                              cfg.max_action_dim)
        self.state_dim = len(proc.get("state_mean") or []) or 0
        self.state_mean = stats(proc.get("state_mean"), self.state_dim, "state_mean", FAMILY)
        self.state_std = stats(proc.get("state_std"), self.state_dim, "state_std", FAMILY)
        self.action_mean = stats(proc.get("actions_mean"), self.action_dim, "actions_mean",
                                 FAMILY)
        self.action_std = stats(proc.get("actions_std"), self.action_dim, "actions_std",
                                FAMILY)
        self.noise_shape = (self.horizon, int(cfg.max_action_dim))
        self.num_steps = int(num_steps or cfg.num_inference_steps)
        self.n_action_steps = int(n_action_steps or proc.get("n_action_steps") or self.horizon)
        self.policy_id = f"pi0:{folder}"
        self.weights_hash = weights_fingerprint(sorted(folder.glob("*.safetensors")))

        inner = self.model.model
        self._embed_prefix = inner.embed_prefix
        inner.embed_prefix = self._tapped_embed_prefix  # the visual tokens pass the tap
        self._register_stack("vlm", inner.vlm.language_model.layers, "self_attn.o_proj", "mlp")
        self._register_stack("expert", inner.dit.layers, "self_attn.o_proj", "mlp",
                             sequence=False)
        self.hooks.add("vision.projector", inner.vlm.multi_modal_projector)
        self._find_positions(self._prompt([""])["input_ids"])  # known before any frame

    def _find_positions(self, ids: torch.Tensor) -> None:
        self._visual_positions = fixed_positions(ids == self.image_token_id, "image tokens")
        self._set_layout(ids)

    def _tapped_embed_prefix(self, input_ids, pixel_values, pixel_attention_mask,
                             attention_mask=None):
        embeds = self._embed_prefix(input_ids, pixel_values, pixel_attention_mask,
                                    attention_mask)
        return self.visual_tap.apply(embeds, self._visual_positions)

    def _prompt(self, instructions: Sequence[str]) -> dict[str, torch.Tensor]:
        n_img = self.tokens_per_image * len(self.cameras)
        image_token = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        bos = self.tokenizer.bos_token or ""
        texts = [f"{image_token * n_img}{bos}{t}\n" for t in instructions]
        enc = self.tokenizer(texts, padding="max_length", max_length=max(self.max_length,
                             n_img + 8), truncation=True, return_tensors="pt",
                             add_special_tokens=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        frames = stack_images(observations, self.cameras)
        b, n_cam = len(frames), len(self.cameras)
        pixels = resize_batch([f for fs in frames for f in fs], self.image_shape,
                              self.image_mean, self.image_std, pad=True)
        pixels = pixels.reshape(b, n_cam, *pixels.shape[1:]).to(self.device, self.dtype)
        prompt = self._prompt([o.instruction for o in observations])
        ids = prompt["input_ids"]
        self._find_positions(ids)
        state = normalise(self._states(observations), self.state_mean, self.state_std)
        state = torch.nn.functional.pad(state, (0, self.max_state_dim - state.shape[1]))
        out = self.model.sample_actions(
            state=state.to(self.device, self.dtype), input_ids=ids.to(self.device),
            pixel_values=pixels, noise=noise,
            attention_mask=prompt["attention_mask"].to(self.device),
            pixel_attention_mask=torch.ones(b, n_cam, dtype=torch.bool, device=self.device),
            num_steps=self.num_steps)
        return unnormalise(out[..., :self.action_dim].float(), self.action_mean,
                           self.action_std)

    def _set_layout(self, ids: torch.Tensor) -> None:
        side = int(round(self.tokens_per_image ** 0.5))
        grid = (side, side) if side * side == self.tokens_per_image else \
            (1, self.tokens_per_image)
        pos = self._visual_positions
        t = self.tokens_per_image
        self._layout = {c: {"grid": grid, "positions": pos[i * t:(i + 1) * t]}
                        for i, c in enumerate(self.cameras)}
        text = [i for i in range(ids.shape[1]) if i not in set(pos)]
        self._groups = {"visual": list(pos), "language": text}
