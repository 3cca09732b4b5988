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

from vlascope.adapters.base import require_folder
from vlascope.core.policy import Observation

from .common import check_transformers, normalise, stats, unnormalise
from .pi_flow import PiFlowPolicy

FAMILY = "pi0 (transformers)"
# LIBERO's cameras, what released pi0 checkpoints are fine-tuned on; a checkpoint written
# by VLAScope names its own (``camera_names`` in processor_config.json).
DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")


class Pi0Policy(PiFlowPolicy):
    family = FAMILY

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 n_action_steps: int | None = None, num_steps: int | None = None,
                 action_dim: int | None = None):
        check_transformers(FAMILY)
        from transformers import PI0ForConditionalGeneration

        folder = require_folder(weights, FAMILY, ["config.json", "processor_config.json"])
        super().__init__(device, dtype, seed)
        proc = self._load(PI0ForConditionalGeneration, folder, cameras, DEFAULT_CAMERAS)
        cfg = self.model.config
        self.max_length = int(proc.get("max_length", 48))
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
        self.num_steps = int(num_steps or cfg.num_inference_steps)
        self.n_action_steps = int(n_action_steps or proc.get("n_action_steps") or self.horizon)
        self.policy_id = f"pi0:{folder}"
        self._register_hooks()
        self._set_token_layout(self._prompt([""])["input_ids"])  # known before any frame

    def _prompt(self, instructions: Sequence[str]) -> dict[str, torch.Tensor]:
        n_img = self.tokens_per_image * len(self.cameras)
        image_token = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        bos = self.tokenizer.bos_token or ""
        texts = [f"{image_token * n_img}{bos}{t}\n" for t in instructions]
        # the processor's max_length is the text's budget after the image tokens (as in
        # LeRobot's pi0; transformers' processor pads to it but never cuts the images)
        enc = self.tokenizer(texts, padding="max_length", max_length=n_img + self.max_length,
                             truncation=True, return_tensors="pt", add_special_tokens=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        prompt = self._prompt([o.instruction for o in observations])
        self._set_token_layout(prompt["input_ids"])
        state = normalise(self._states(observations), self.state_mean, self.state_std)
        state = torch.nn.functional.pad(state, (0, self.max_state_dim - state.shape[1]))
        out = self._sample(observations, prompt, noise, state=state.to(self.device, self.dtype))
        return unnormalise(out, self.action_mean, self.action_std)
