"""Any Hugging Face VLM (PaliGemma, SmolVLM, Idefics3, Qwen2-VL, ...) with an action head
on top: the generic adapter for the "VLM backbone + action head" recipe.

Checkpoint folder: the VLM as ``save_pretrained`` writes it (config, weights, tokenizer,
processor) plus ``vlascope_head.json`` and ``action_head.safetensors``: an MLP that reads
the last layer's hidden state at the prompt's last token, concatenated with the normalised
state, and regresses a whole chunk of actions in parallel (an L1 head, as OpenVLA-OFT's).
``write_action_head`` writes that pair for a head trained elsewhere, atomically as a pair
(both to temporaries, then renamed, each carrying one pair id the loader checks); the loader
checks the head's sizes against the weights' header before it builds the head. A VLM whose
files name their own code (``auto_map``) loads only with ``trust_remote_code=1``.

Observation mapping: the VLM's own processor (resize, normalisation, image-token expansion);
the prompt is ``prompt`` from the head file with ``{images}`` (one placeholder per camera)
and ``{instruction}`` filled in, right-padded to ``max_length`` so the image tokens sit at
the same positions in every row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vlascope.adapters.base import AdapterPolicy, parse_cameras, require_folder, weights_fingerprint
from vlascope.adapters.checkpoint_code import hub_code, require_code_allowed, trust_choice
from vlascope.adapters.hooks import fixed_positions
from vlascope.core.atomic import atomic_paths
from vlascope.core.errors import PluginError, VLAScopeError
from vlascope.core.policy import Observation
from vlascope.core.tensor_files import (
    PAIR_KEY,
    check_pair,
    check_shapes,
    new_pair_id,
    read_header,
)

from .common import check_transformers, normalise, read_json, stack_images, stats, unnormalise

FAMILY = "VLM + action head"
HEAD_JSON, HEAD_WEIGHTS = "vlascope_head.json", "action_head.safetensors"
HEAD_FORMAT = "vlascope-action-head"
# Where each family keeps its text decoder and its vision -> language projector.
DECODERS = ("model.language_model", "model.text_model")
PROJECTORS = ("model.multi_modal_projector", "model.connector", "model.visual.merger")


class ActionHead(nn.Module):
    """(last hidden state, state) -> (horizon, action_dim) in one pass."""

    def __init__(self, d_model: int, state_dim: int, hidden: int, horizon: int,
                 action_dim: int):
        super().__init__()
        self.horizon, self.action_dim = horizon, action_dim
        self.net = nn.Sequential(nn.LayerNorm(d_model + state_dim),
                                 nn.Linear(d_model + state_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, horizon * action_dim))

    def forward(self, h: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([h, state.to(h.dtype)], dim=-1))
        return out.reshape(-1, self.horizon, self.action_dim)


def write_action_head(folder: str | Path, head: ActionHead, spec: dict) -> None:
    """Write ``vlascope_head.json`` + ``action_head.safetensors`` next to a saved VLM."""
    folder, pair = Path(folder), new_pair_id()
    spec = {"format": HEAD_FORMAT, "version": 1, "horizon": head.horizon,
            "action_dim": head.action_dim, **spec, PAIR_KEY: pair}
    with atomic_paths(folder / HEAD_WEIGHTS, folder / HEAD_JSON) as (weights, config):
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(weights),
                  metadata={PAIR_KEY: pair})
        config.write_text(json.dumps(spec, indent=2), encoding="utf-8")


def head_shapes(d_model: int, state_dim: int, hidden: int, horizon: int,
                action_dim: int) -> dict[str, tuple[int, ...]]:
    """The tensor shapes ``ActionHead(...)`` has, to check a file before building one."""
    d = d_model + state_dim
    return {"net.0.weight": (d,), "net.0.bias": (d,), "net.1.weight": (hidden, d),
            "net.1.bias": (hidden,), "net.3.weight": (horizon * action_dim, hidden),
            "net.3.bias": (horizon * action_dim,)}


def _find(model: nn.Module, paths: Sequence[str]) -> nn.Module | None:
    for path in paths:
        module = model
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if module is not None:
            return module
    return None


class VLMActionPolicy(AdapterPolicy):
    family = FAMILY

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 n_action_steps: int | None = None, trust_remote_code: object = False):
        check_transformers(FAMILY)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = require_folder(weights, FAMILY, ["config.json", HEAD_JSON, HEAD_WEIGHTS])
        trust, code = trust_choice(trust_remote_code, FAMILY), hub_code(folder)
        if code:
            require_code_allowed(folder, FAMILY, trust, f"auto_map in {', '.join(code)}")
        super().__init__(device, dtype, seed)
        spec = read_json(folder / HEAD_JSON, FAMILY)
        if spec.get("format") != HEAD_FORMAT:
            raise PluginError(f"{FAMILY}: {folder / HEAD_JSON} is not a VLAScope action-head "
                              f"file (format '{spec.get('format')}', expected {HEAD_FORMAT})")
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(
                folder, dtype=self.dtype, local_files_only=True,
                trust_remote_code=trust).to(self.device).eval()
            self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True,
                                                           trust_remote_code=trust)
        except (OSError, ValueError, KeyError) as e:
            raise PluginError(f"{FAMILY}: cannot load the VLM in {folder} ({e})") from e
        try:
            self.horizon, self.action_dim = int(spec["horizon"]), int(spec["action_dim"])
            self.state_dim = int(spec["state_dim"])
            hidden = int(spec["hidden"])
        except (KeyError, TypeError, ValueError) as e:
            raise PluginError(f"{FAMILY}: {folder / HEAD_JSON} lacks {e}") from e
        d_model = self.model.config.get_text_config().hidden_size
        try:
            header = read_header(folder / HEAD_WEIGHTS)
            check_pair(header, spec.get(PAIR_KEY), folder / HEAD_WEIGHTS, folder / HEAD_JSON)
            check_shapes(header, head_shapes(d_model, self.state_dim, hidden, self.horizon,
                                             self.action_dim),
                         folder / HEAD_WEIGHTS, folder / HEAD_JSON)
        except VLAScopeError as e:
            raise PluginError(f"{FAMILY}: {e}") from e
        self.head = ActionHead(d_model, self.state_dim, hidden, self.horizon, self.action_dim)
        try:
            self.head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
        except (SafetensorError, RuntimeError, OSError) as e:
            raise PluginError(f"{FAMILY}: {folder / HEAD_WEIGHTS} does not fit the VLM and "
                              f"{HEAD_JSON} ({str(e).splitlines()[0]})") from e
        self.head = self.head.to(self.device, self.dtype).eval()
        self.cameras = parse_cameras(cameras, spec.get("cameras", ["front"]), FAMILY)
        self.n_action_steps = int(n_action_steps or spec.get("n_action_steps", self.horizon))
        self.prompt = spec.get("prompt", "{images}{instruction}")
        self.placeholder = spec.get("image_placeholder",
                                    getattr(self.processor, "image_token", "") or "")
        self.max_length = int(spec.get("max_length", 128))
        self.state_mean = stats(spec.get("state_mean"), self.state_dim, "state_mean", FAMILY)
        self.state_std = stats(spec.get("state_std"), self.state_dim, "state_std", FAMILY)
        self.action_mean = stats(spec.get("action_mean"), self.action_dim, "action_mean",
                                 FAMILY)
        self.action_std = stats(spec.get("action_std"), self.action_dim, "action_std", FAMILY)
        self.image_token_id = int(getattr(self.model.config, "image_token_id", None)
                                  or self.model.config.image_token_index)
        self.policy_id = f"vlm-head:{folder}"
        self.weights_hash = weights_fingerprint(sorted(folder.glob("*.safetensors")))

        decoder = _find(self.model, DECODERS)
        if decoder is None or not hasattr(decoder, "layers"):
            raise PluginError(f"{FAMILY}: {type(self.model).__name__} has no text decoder "
                              f"at {' or '.join(DECODERS)}")
        decoder.register_forward_pre_hook(self._tap_visual, with_kwargs=True)
        self._register_stack("vlm", decoder.layers, "self_attn.o_proj", "mlp")
        projector = _find(self.model, PROJECTORS)
        if projector is not None:
            self.hooks.add("vision.projector", projector)
        self._visual_positions: list[int] = []
        blank = np.zeros((64, 64, 3), np.uint8)  # the layout, before any frame
        self._find_positions(self._inputs([Observation({c: blank for c in self.cameras},
                                                       np.zeros(self.state_dim), "")]))

    def _find_positions(self, inputs: dict[str, torch.Tensor]) -> None:
        ids = inputs["input_ids"]
        self._last_token = int(inputs["attention_mask"][0].sum()) - 1
        self._visual_positions = fixed_positions(ids == self.image_token_id, "image tokens")
        self._set_layout(ids)

    def attention_maps(self, observations: Sequence[Observation]) -> list[torch.Tensor]:
        """Per language-model layer, (B, heads, tokens, tokens) attention weights (computed
        with eager attention for this call: the fused kernels do not return weights)."""
        for obs in observations:
            self._check(obs)
        inputs = self._device_inputs(self._inputs(observations))
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            with torch.inference_mode():
                out = self.model(**inputs, output_attentions=True, use_cache=False)
        finally:
            self.model.set_attn_implementation(previous)
        return [a.float().cpu() for a in out.attentions]

    def readout_positions(self) -> list[int]:
        """The head reads the last real prompt token: its position in the latest call's
        first row (attention maps are computed one frame at a time)."""
        return [self._last_token]

    def _device_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._find_positions(inputs)
        return {k: v.to(self.device, self.dtype) if v.is_floating_point() else
                v.to(self.device) for k, v in inputs.items()}

    def _tap_visual(self, module: nn.Module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            return None
        return args, {**kwargs, "inputs_embeds": self.visual_tap.apply(
            embeds, self._visual_positions)}

    def _inputs(self, observations: Sequence[Observation]) -> dict[str, torch.Tensor]:
        images = self.placeholder * len(self.cameras)
        texts = [self.prompt.format(images=images, instruction=o.instruction)
                 for o in observations]
        try:
            return self.processor(text=texts, images=stack_images(observations, self.cameras),
                                  padding="max_length", max_length=self.max_length,
                                  truncation=False, return_tensors="pt")
        except ValueError as e:
            raise PluginError(f"{FAMILY}: the processor refused the prompt ({e})") from e

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        inputs = self._device_inputs(self._inputs(observations))
        out = self.model(**inputs, output_hidden_states=True, use_cache=False)
        last = inputs["attention_mask"].sum(1) - 1  # right padding: the last real token
        h = out.hidden_states[-1][torch.arange(last.shape[0], device=self.device), last]
        state = normalise(self._states(observations), self.state_mean, self.state_std)
        actions = self.head(h, state.to(self.device, self.dtype))
        return unnormalise(actions.float(), self.action_mean, self.action_std)

    def _set_layout(self, ids: torch.Tensor) -> None:
        pos = self._visual_positions
        per = len(pos) // len(self.cameras)
        side = int(round(per ** 0.5))
        grid = (side, side) if side * side == per else (1, per)
        self._layout = {c: {"grid": grid, "positions": pos[i * per:(i + 1) * per]}
                        for i, c in enumerate(self.cameras)}
        visual = set(pos)
        self._groups = {"visual": list(pos),
                        "language": [i for i in range(ids.shape[1]) if i not in visual]}
