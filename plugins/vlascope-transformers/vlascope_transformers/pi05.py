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

from vlascope.adapters.base import AdapterPolicy, parse_cameras, require_folder, weights_fingerprint
from vlascope.adapters.hooks import fixed_positions
from vlascope.adapters.images import resize_batch
from vlascope.core.errors import PluginError
from vlascope.core.policy import Observation

from .common import check_transformers, read_json, stack_images
from .pi05_norm import discretise, from_processor

FAMILY = "pi0.5 (transformers)"
# LIBERO's cameras, what lerobot/pi05_libero is fine-tuned on (its image / image2); a
# checkpoint written by VLAScope names its own (``camera_names`` in processor_config.json).
DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")
TEXT_TOKENS = 200  # LeRobot's tokenizer_max_length: the text budget after the image tokens
BINS = 256


class Pi05Policy(AdapterPolicy):
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
        from transformers import AutoTokenizer, PI05ForConditionalGeneration

        folder = require_folder(weights, FAMILY, ["config.json", "processor_config.json"])
        super().__init__(device, dtype, seed)
        proc = read_json(folder / "processor_config.json", FAMILY)
        try:
            self.model = PI05ForConditionalGeneration.from_pretrained(
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
        self.text_tokens = int(proc.get("max_length", TEXT_TOKENS))
        self.image_token_id = int(cfg.vlm_config.image_token_id)

        self.cameras = parse_cameras(cameras, proc.get("camera_names", DEFAULT_CAMERAS),
                                     FAMILY)
        self.horizon = int(cfg.chunk_size)
        self.max_state_dim = int(proc.get("max_state_dim", cfg.max_action_dim))
        self.state_norm = from_processor(proc, "state", FAMILY)
        self.state_dim = self.state_norm.dim
        self.action_norm = from_processor(proc, "actions", FAMILY, action_dim)
        self.action_dim = int(action_dim or self.action_norm.dim or cfg.max_action_dim)
        if self.state_dim > self.max_state_dim:
            raise PluginError(f"{FAMILY}: state statistics have {self.state_dim} numbers, "
                              f"more than max_state_dim {self.max_state_dim}")
        self.noise_shape = (self.horizon, int(cfg.max_action_dim))
        self.num_steps = int(num_steps or cfg.num_inference_steps)
        self.n_action_steps = int(n_action_steps or proc.get("n_action_steps") or self.horizon)
        self.policy_id = f"pi05:{folder}"
        self.weights_hash = weights_fingerprint(sorted(folder.glob("*.safetensors")))

        inner = self.model.model
        self._embed_prefix = inner.embed_prefix
        inner.embed_prefix = self._tapped_embed_prefix  # the visual tokens pass the tap
        self._register_stack("vlm", inner.vlm.language_model.layers, "self_attn.o_proj", "mlp")
        self._register_stack("expert", inner.dit.layers, "self_attn.o_proj", "mlp",
                             sequence=False)
        self.hooks.add("vision.projector", inner.vlm.multi_modal_projector)
        zero = torch.zeros(1, self.state_dim)
        self._set_layout(self._prompt([""], zero))  # known before any frame

    def _tapped_embed_prefix(self, input_ids, pixel_values, pixel_attention_mask,
                             attention_mask=None):
        embeds = self._embed_prefix(input_ids, pixel_values, pixel_attention_mask,
                                    attention_mask)
        return self.visual_tap.apply(embeds, self._visual_positions)

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
        frames = stack_images(observations, self.cameras)
        b, n_cam = len(frames), len(self.cameras)
        pixels = resize_batch([f for fs in frames for f in fs], self.image_shape,
                              self.image_mean, self.image_std, pad=True)
        pixels = pixels.reshape(b, n_cam, *pixels.shape[1:]).to(self.device, self.dtype)
        prompt = self._prompt([o.instruction for o in observations],
                              self._states(observations))
        self._set_layout(prompt)
        out = self.model.sample_actions(
            input_ids=prompt["input_ids"].to(self.device), pixel_values=pixels, noise=noise,
            attention_mask=prompt["attention_mask"].to(self.device),
            pixel_attention_mask=torch.ones(b, n_cam, dtype=torch.bool, device=self.device),
            num_steps=self.num_steps)
        return self.action_norm.unnormalise(out[..., :self.action_dim].float())

    def _set_layout(self, prompt: dict) -> None:
        ids = prompt["input_ids"]
        self._visual_positions = fixed_positions(ids == self.image_token_id, "image tokens")
        side = int(round(self.tokens_per_image ** 0.5))
        grid = (side, side) if side * side == self.tokens_per_image else \
            (1, self.tokens_per_image)
        pos = self._visual_positions
        t = self.tokens_per_image
        self._layout = {c: {"grid": grid, "positions": pos[i * t:(i + 1) * t]}
                        for i, c in enumerate(self.cameras)}
        state = prompt["state_positions"]
        taken = set(pos) | set(state)
        text = [i for i in range(ids.shape[1]) if i not in taken]
        self._groups = {"visual": list(pos), "state": list(state), "language": text}
