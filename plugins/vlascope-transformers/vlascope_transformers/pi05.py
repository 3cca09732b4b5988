"""pi0.5 through transformers' native classes (``PI05ForConditionalGeneration``,
tested with transformers 5.25): pi0's PaliGemma VLM and Gemma action expert, with two changes that
matter to an inspector: the robot state enters as *language tokens* (discretised into 256
bins and written into the prompt), not through a state projection, and the expert's norms
are modulated by the flow-matching time (adaptive RMSNorm) instead of mixing time into the
action tokens.

Checkpoint folder: what ``model.save_pretrained`` and ``PI05Processor.save_pretrained``
write (``config.json``, ``model.safetensors``, the tokenizer, ``processor_config.json`` with
the dataset statistics), the layout of ``lerobot/pi05_base`` converted to transformers.
Observation mapping, as LeRobot's pi0.5 does it (docs/adapters.md): each camera resized
into the image processor's square (aspect kept, padded), scaled to [-1, 1]; the state
mapped to [-1, 1] with the quantiles ``state_q01``/``state_q99`` (mean/std when only those
are given), zero-padded to ``max_state_dim``, cut into 256 bins; the prompt is ``<image>`` x
tokens-per-image x cameras, BOS, ``Task: {instruction}, State: {bins};\\nAction: ``,
right-padded; actions mapped back with the same statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vlascope.adapters.base import require_folder
from vlascope.core.errors import PluginError
from vlascope.core.policy import Observation

from .common import check_transformers
from .pi05_norm import discretise, from_processor
from .pi_flow import PiFlowPolicy

FAMILY = "pi0.5 (transformers)"
# LIBERO's cameras, what lerobot/pi05_libero is fine-tuned on (its image / image2); a
# checkpoint written by VLAScope names its own (``camera_names`` in processor_config.json).
DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")
TEXT_TOKENS = 200  # LeRobot's tokenizer_max_length: the text budget after the image tokens
BINS = 256


class Pi05Policy(PiFlowPolicy):
    """pi0.5 with pi0's hook points, so analyses written for pi0 run unchanged; the
    state's prompt tokens form their own token group (``state``)."""

    family = FAMILY

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 n_action_steps: int | None = None, num_steps: int | None = None,
                 action_dim: int | None = None):
        check_transformers(FAMILY)
        import transformers

        if not hasattr(transformers, "PI05ForConditionalGeneration"):
            raise PluginError(f"{FAMILY}: transformers {transformers.__version__} has no "
                              "native pi0.5 (tested with 5.25: pip install -U transformers)")
        from transformers import PI05ForConditionalGeneration

        folder = require_folder(weights, FAMILY, ["config.json", "processor_config.json"])
        super().__init__(device, dtype, seed)
        proc = self._load(PI05ForConditionalGeneration, folder, cameras, DEFAULT_CAMERAS)
        cfg = self.model.config
        self.text_tokens = int(proc.get("max_length", TEXT_TOKENS))
        self.max_state_dim = int(proc.get("max_state_dim", cfg.max_action_dim))
        self.state_norm = from_processor(proc, "state", FAMILY)
        self.state_dim = self.state_norm.dim
        self.action_norm = from_processor(proc, "actions", FAMILY, action_dim)
        self.action_dim = int(action_dim or self.action_norm.dim or cfg.max_action_dim)
        if self.state_dim > self.max_state_dim:
            raise PluginError(f"{FAMILY}: state statistics have {self.state_dim} numbers, "
                              f"more than max_state_dim {self.max_state_dim}")
        self.num_steps = int(num_steps or cfg.num_inference_steps)
        self.n_action_steps = int(n_action_steps or proc.get("n_action_steps") or self.horizon)
        self.policy_id = f"pi05:{folder}"
        self._register_hooks()
        zero = torch.zeros(1, self.state_dim)
        self._set_layout(self._prompt([""], zero))  # known before any frame

    def _state_text(self, states: torch.Tensor) -> list[str]:
        """The state as pi0.5 reads it: normalised, padded to ``max_state_dim``, binned."""
        x = self.state_norm.normalise(states)
        x = torch.nn.functional.pad(x, (0, self.max_state_dim - x.shape[1]))
        return [" ".join(map(str, row)) for row in discretise(x, BINS).tolist()]

    def _prompt(self, instructions: Sequence[str], states: torch.Tensor) -> dict:
        n_img = self.tokens_per_image * len(self.cameras)
        image_token = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        head = f"{image_token * n_img}{self.tokenizer.bos_token or ''}"
        texts, spans = [], []
        for task, state in zip(instructions, self._state_text(states), strict=True):
            task = task.strip().replace("_", " ").replace("\n", " ")
            before = f"{head}Task: {task}, State: "
            texts.append(f"{before}{state};\nAction: ")
            spans.append((len(before), len(before) + len(state)))
        enc = self.tokenizer(texts, padding="max_length", max_length=n_img + self.text_tokens,
                             truncation=True, return_tensors="pt", add_special_tokens=False,
                             return_offsets_mapping=True)
        start, end = spans[0]  # the groups follow the first row, as the layout does
        state = [i for i, (s, e) in enumerate(enc["offset_mapping"][0].tolist())
                 if e > s and s < end and e > start]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "state_positions": state}

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        prompt = self._prompt([o.instruction for o in observations],
                              self._states(observations))
        self._set_layout(prompt)
        return self.action_norm.unnormalise(self._sample(observations, prompt, noise))

    def _set_layout(self, prompt: dict) -> None:
        """pi0's layout, with the state's prompt tokens as a group of their own."""
        self._set_token_layout(prompt["input_ids"], state=prompt["state_positions"])
