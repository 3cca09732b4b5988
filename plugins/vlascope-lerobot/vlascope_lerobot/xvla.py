"""X-VLA through LeRobot 0.4.4's own classes (``XVLAPolicy`` and its processor pipelines),
run in the "lerobot" environment (transformers 4.57; the app serves it from there).

The model: Florence-2's DaViT encodes each camera image into a grid of tokens plus a pooled
token; the first camera's tokens and the instruction go through Florence-2's BART encoder
(the VLM); a soft-prompted transformer then reads, in one sequence, the action tokens
(noisy actions + state + time), the VLM's outputs, the other cameras' tokens and the
domain's soft prompts, and predicts the clean action chunk; flow matching repeats that
``num_denoising_steps`` times. Hook points: ``vision.encoder`` (DaViT's last stage),
``vision.projector`` (the projected image tokens), ``tokens.visual`` (every camera's grid
tokens as they leave the projector, before the VLM or the transformer reads them),
``vlm.{i}`` (the BART encoder layers) and ``expert.{i}`` (the soft-prompted blocks).

Checkpoint folder: what ``XVLAPolicy.save_pretrained`` and the processor pipelines write
(``config.json``, ``model.safetensors``, ``policy_{pre,post}processor.json`` and their
statistics); the tokenizer (``tokenizer_name``, BART's for the released models) comes from
``tokenizer=DIR``, else ``<folder>/tokenizer``, else the config's value if it is a folder or
already in the Hugging Face cache: nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from vlascope.adapters.base import AdapterPolicy, parse_cameras, require_folder, weights_fingerprint
from vlascope.adapters.checkpoint_code import refuse_hub_code
from vlascope.core.errors import PluginError
from vlascope.core.policy import Observation

from .compat import import_lerobot, read_policy_config
from .processors import FILES, check_processors, load_pipelines

FAMILY = "X-VLA"
# The registered steps X-VLA's pipelines are made of (processor_xvla.py, LeRobot 0.4.4).
XVLA_STEPS = frozenset({
    "rename_observations_processor", "to_batch_processor", "tokenizer_processor",
    "device_processor", "normalizer_processor", "unnormalizer_processor",
    "xvla_image_scale", "xvla_image_to_float", "xvla_imagenet_normalize",
    "xvla_add_domain_id", "xvla_rotation_6d_to_axis_angle"})
EMPTY = "observation.images.empty_camera_"  # views LeRobot pads with zeros (mask off)
GRID_SOURCES = ("temporal_avg_pool", "last_frame")  # DaViT features that are the grid


def import_xvla() -> dict[str, Any]:
    """LeRobot's X-VLA classes, or a PluginError saying what is missing and how to get it."""
    # processor_xvla registers X-VLA's own steps in LeRobot's registry
    modeling, _, processor, converters, configs = import_lerobot(FAMILY, [
        "lerobot.policies.xvla.modeling_xvla", "lerobot.policies.xvla.processor_xvla",
        "lerobot.processor", "lerobot.processor.converters", "lerobot.configs.policies"])
    return {"XVLAPolicy": modeling.XVLAPolicy, "Pipeline": processor.PolicyProcessorPipeline,
            "converters": converters, "PreTrainedConfig": configs.PreTrainedConfig}


def _original_checkpoint(folder: Path, config: dict) -> str | None:
    """X-VLA's own release (transformers custom code), which LeRobot converts."""
    if config.get("model_type") != "xvla" or "type" in config:
        return None
    return (f"{folder} is an original X-VLA checkpoint (transformers custom code, e.g. "
            "2toINF/X-VLA-Pt); VLAScope loads LeRobot's conversions (lerobot/xvla-base, "
            "lerobot/xvla-libero, ...)")


def resolve_tokenizer(folder: Path, tokenizer: str | None, saved: str) -> str:
    """The local folder holding the tokenizer's files: never a download."""
    for cand in (tokenizer, folder / "tokenizer", saved):
        if cand and Path(cand).expanduser().is_dir():
            return str(Path(cand).expanduser())
    if tokenizer:
        raise PluginError(f"{FAMILY}: tokenizer={tokenizer} is not a folder")
    from huggingface_hub import snapshot_download

    try:  # a folder of the Hugging Face cache, if the tokenizer was fetched before
        return snapshot_download(saved, local_files_only=True)
    except (OSError, ValueError) as e:
        raise PluginError(
            f"{FAMILY}: the checkpoint's tokenizer '{saved}' is not on this machine and "
            f"VLAScope never downloads; copy its files (tokenizer.json or vocab.json + "
            f"merges.txt, tokenizer_config.json) to {folder / 'tokenizer'} or pass "
            "tokenizer=DIR (see docs/adapters.md)") from e


def _steps(folder: Path, name: str) -> dict[str, dict]:
    """registry name -> config of the steps in a processor file (already checked)."""
    data = json.loads((folder / name).read_text(encoding="utf-8"))
    return {s["registry_name"]: s.get("config") or {} for s in data["steps"]}


class XVLAAdapter(AdapterPolicy):
    family = FAMILY

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 tokenizer: str | None = None, n_action_steps: int | None = None,
                 num_steps: int | None = None, domain_id: int | None = None):
        folder = require_folder(weights, FAMILY, ["config.json", "model.safetensors"])
        saved = read_policy_config(folder, FAMILY, "xvla", _original_checkpoint)
        for name in FILES:
            if not (folder / name).is_file():
                raise PluginError(f"{FAMILY}: {folder} has no {name} (LeRobot 0.4 checkpoints "
                                  "carry their normalisation there)")
        # before LeRobot's slow import: the mistakes a user makes fail at once
        self.tokenizer_dir = resolve_tokenizer(
            folder, tokenizer, str(saved.get("tokenizer_name") or "facebook/bart-large"))
        refuse_hub_code(self.tokenizer_dir, FAMILY)  # AutoTokenizer would load its code
        lr = import_xvla()
        super().__init__(device, dtype, seed)
        if self.dtype == torch.float16:  # XVLAConfig.dtype knows float32 and bfloat16 only
            if str(dtype).lower() == "float16":
                raise PluginError(f"{FAMILY}: runs in float32 or bfloat16 (LeRobot's "
                                  "XVLAConfig.dtype); pass dtype=bfloat16 or float32")
            self.dtype = torch.float32
        check_processors(folder, FAMILY, XVLA_STEPS)  # before LeRobot imports any class
        try:
            cfg = lr["PreTrainedConfig"].from_pretrained(folder)
        except Exception as e:  # noqa: BLE001 - draccus raises many kinds
            raise PluginError(f"{FAMILY}: {folder / 'config.json'} is not a LeRobot X-VLA "
                              f"config ({type(e).__name__}: {e})") from e
        cfg.device = str(self.device)
        cfg.dtype = "bfloat16" if self.dtype == torch.bfloat16 else "float32"
        if num_steps:
            cfg.num_denoising_steps = int(num_steps)
        pre_steps = _steps(folder, "policy_preprocessor.json")
        overrides = {k: v for k, v in {
            "tokenizer_processor": {"tokenizer_name": self.tokenizer_dir},
            "device_processor": {"device": str(self.device)}}.items() if k in pre_steps}
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # stdout is the server's
                self.policy = lr["XVLAPolicy"].from_pretrained(folder, config=cfg,
                                                               local_files_only=True)
            self.pre, self.post = load_pipelines(lr, folder, overrides)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise PluginError(f"{FAMILY}: cannot load {folder} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e
        self.policy.to(self.device).eval()
        self.cfg = self.policy.config
        model = self.policy.model

        self.image_keys = [k for k in self.cfg.image_features if not k.startswith(EMPTY)]
        self.cameras = parse_cameras(cameras, [k.rsplit(".", 1)[-1] for k in self.image_keys],
                                     FAMILY, n_inputs=len(self.image_keys))
        state = self.cfg.input_features.get("observation.state")
        self.state_dim = int(state.shape[0]) if state is not None else 0
        post_steps = _steps(folder, "policy_postprocessor.json")
        self.action_dim = (7 if "xvla_rotation_6d_to_axis_angle" in post_steps  # eef, axis-
                           else int(self.cfg.output_features["action"].shape[0]))  # angle, grip
        self.horizon = int(self.cfg.chunk_size)
        self.n_action_steps = int(n_action_steps or self.cfg.n_action_steps)
        if not 1 <= self.n_action_steps <= self.horizon:
            raise PluginError(f"{FAMILY}: n_action_steps must be 1..{self.horizon} (the "
                              f"chunk), got {self.n_action_steps}")
        self.noise_shape = (self.horizon, int(model.dim_action))
        default_domain = pre_steps.get("xvla_add_domain_id", {}).get("domain_id", 0)
        self.domain_id = int(default_domain if domain_id is None else domain_id)
        if not 0 <= self.domain_id < int(self.cfg.num_domains):
            raise PluginError(f"{FAMILY}: domain_id must be 0..{self.cfg.num_domains - 1} "
                              f"(the checkpoint's num_domains), got {self.domain_id}")
        self.policy_id = f"xvla:{folder}"
        self.weights_hash = weights_fingerprint([folder / "model.safetensors"])

        vlm = model.vlm
        self._encode_image = vlm._encode_image
        vlm._encode_image = self._tapped_encode_image
        self.hooks.add("vision.encoder", vlm.vision_tower.blocks[-1])
        self.hooks.add("vision.projector", vlm.image_proj_norm)
        self._register_stack("vlm", vlm.language_model.model.encoder.layers, "self_attn", "fc2")
        self._register_stack("expert", model.transformer.blocks, "attn", "mlp")
        self._static_layout(vlm)

    def reset(self) -> None:
        """The noise stream and LeRobot's action queue start afresh."""
        super().reset()
        if getattr(self, "policy", None) is not None:
            self.policy.reset()

    # Layout ---------------------------------------------------------------------------
    def _static_layout(self, vlm) -> None:
        """Each image's tokens (DaViT's sources in order: a pooled token, the grid), probed
        on a blank frame of the size the model sees; then the sequences they land in."""
        self.frame_size = tuple(self.cfg.resize_imgs_with_padding or
                                self.cfg.input_features[self.image_keys[0]].shape[1:])
        probe = torch.zeros(1, 3, *self.frame_size, device=self.device,
                            dtype=next(vlm.parameters()).dtype)
        try:
            with torch.inference_mode():
                grid = int(vlm.vision_tower.forward_features_unpool(probe).shape[1])
                per_image = int(self._encode_image(probe).shape[1])
        except (AssertionError, RuntimeError) as e:
            raise PluginError(f"{FAMILY}: images of {self.frame_size} do not give a square "
                              f"token grid ({e}); the checkpoint's image features must be "
                              "square") from e
        offset, grid_at, pooled = 0, None, []
        for source in vlm.image_feature_source:
            n = grid if source in GRID_SOURCES else 1
            if source in GRID_SOURCES and grid_at is None:
                grid_at = offset
            else:
                pooled += range(offset, offset + n)
            offset += n
        if offset != per_image:
            raise PluginError(f"{FAMILY}: image features {vlm.image_feature_source} give "
                              f"{per_image} tokens, expected {offset}")
        side = int(round(grid ** 0.5))
        self._grid = (side, side) if grid_at is not None else (1, 1)
        self._grid_tokens = list(range(grid_at, grid_at + grid)) if grid_at is not None \
            else pooled[:1]
        self._pooled = [p for p in pooled if p not in self._grid_tokens]
        self.tokens_per_image = per_image
        self._views = max(int(self.cfg.num_image_views or 0), len(self.cameras))
        tap = []  # positions among the cameras' concatenated image tokens
        for c in range(len(self.cameras)):
            tap += [c * per_image + p for p in self._grid_tokens]
        self._tap_positions = tap
        self._set_layout(self._language_length())

    def _language_length(self) -> int:
        """Tokens of the instruction: the tokenizer step pads to ``max_length``."""
        for step in self.pre.steps:
            if hasattr(step, "max_length") and hasattr(step, "input_tokenizer"):
                return int(step.max_length)
        return int(self.cfg.tokenizer_max_length)

    def _set_layout(self, language: int) -> None:
        """Positions in the soft-prompted transformer's sequence (the layout's), where
        actions come first, then the VLM's outputs (camera 0, the instruction), the other
        cameras, the padded views and the soft prompts; and in the VLM's own sequence."""
        t, a = self.tokens_per_image, self.horizon
        self._language = language
        starts = [a] + [a + t + language + (c - 1) * t for c in range(1, len(self.cameras))]
        self._layout = {cam: {"grid": self._grid,
                              "positions": [s + p for p in self._grid_tokens]}
                        for cam, s in zip(self.cameras, starts, strict=True)}
        empty_at = a + t + language + (len(self.cameras) - 1) * t
        prompts_at = a + t + language + (self._views - 1) * t
        length = prompts_at + int(self.cfg.len_soft_prompts)
        if length > int(self.cfg.max_len_seq):
            raise PluginError(f"{FAMILY}: {len(self.cameras)} camera(s) and {language} "
                              f"instruction tokens make {length} tokens, more than the "
                              f"checkpoint's max_len_seq {self.cfg.max_len_seq}")
        groups = {"action": list(range(a)),
                  "visual": [p for c in self._layout.values() for p in c["positions"]],
                  "visual_pooled": [s + p for s in starts for p in self._pooled],
                  "language": list(range(a + t, a + t + language)),
                  "empty_camera": list(range(empty_at, prompts_at)),
                  "soft_prompt": list(range(prompts_at, length))}
        self._groups = {k: v for k, v in groups.items() if v}
        vlm = {"visual": list(self._grid_tokens), "visual_pooled": list(self._pooled),
               "language": list(range(t, t + language))}
        self._vlm_groups = {k: v for k, v in vlm.items() if v}

    def token_groups(self, layer: str | None = None) -> dict[str, list[int]]:
        """Per stack: the VLM's layers hold camera 0 and the instruction; the transformer's
        (and ``layer=None``) the whole sequence, in the layout's positions."""
        if layer is not None and layer not in self._sequence_layers:
            return {}
        return dict(self._vlm_groups if layer and layer.startswith("vlm.") else self._groups)

    # Inference ------------------------------------------------------------------------
    def _tapped_encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Florence-2's image encoding with every camera's grid tokens through the tap:
        (B * cameras, T, d) are the batch's frames in row order, cameras in order."""
        feats = self._encode_image(pixel_values)
        n, t, d = len(self.cameras), feats.shape[1], feats.shape[2]
        rows = feats.reshape(-1, n * t, d)
        return self.visual_tap.apply(rows, self._tap_positions).reshape(-1, t, d)

    def _frames(self, observations: list[Observation], cam: str) -> torch.Tensor:
        """A camera's frames as floats in [0, 1], at the checkpoint's image size unless the
        model pads them itself (``resize_imgs_with_padding``)."""
        x = torch.from_numpy(np.stack([o.images[cam] for o in observations]))
        x = x.permute(0, 3, 1, 2).float().div(255.0)
        if self.cfg.resize_imgs_with_padding is None and tuple(x.shape[2:]) != self.frame_size:
            x = F.interpolate(x, size=self.frame_size, mode="bilinear", align_corners=False,
                              antialias=True).clamp(0.0, 1.0)
        return x

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        raw: dict[str, object] = {key: self._frames(observations, cam)
                                  for key, cam in zip(self.image_keys, self.cameras, strict=True)}
        if self.state_dim:
            raw["observation.state"] = self._states(observations)
        raw["task"] = [o.instruction for o in observations]
        batch = self.pre(raw)
        batch["domain_id"] = torch.full((len(observations),), self.domain_id,
                                        dtype=torch.long, device=self.device)
        inputs = self.policy._build_model_inputs(batch)
        if inputs["input_ids"].shape[1] != self._language:  # a checkpoint that pads less
            self._set_layout(int(inputs["input_ids"].shape[1]))
        chunk = self._sample(inputs, noise)
        b, h, d = chunk.shape
        return self.post(chunk.float().reshape(b * h, d)).reshape(b, h, -1)

    def _sample(self, inputs: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """``XVLAModel.generate_actions`` (LeRobot 0.4.4) with our noise instead of its own
        ``torch.randn``: the VLM once, then the transformer predicts the clean chunk from
        ``x_t = t * noise + (1 - t) * previous`` for t = 1, (n-1)/n, ..., 1/n."""
        model = self.policy.model
        dtype = model._get_target_dtype()
        proprio = inputs["proprio"].to(dtype)
        enc = model.forward_vlm(inputs["input_ids"], inputs["image_input"].to(dtype),
                                inputs["image_mask"])
        x1 = noise.to(proprio.device, dtype)
        action = torch.zeros_like(x1)
        steps = max(1, int(self.cfg.num_denoising_steps))
        for i in range(steps, 0, -1):
            t = torch.full((x1.shape[0],), i / steps, device=x1.device, dtype=dtype)
            x_t = x1 * t.view(-1, 1, 1) + action * (1 - t).view(-1, 1, 1)
            proprio_m, x_t_m = model.action_space.preprocess(proprio, x_t)
            action = model.transformer(domain_id=inputs["domain_id"], action_with_noise=x_t_m,
                                       proprio=proprio_m, t=t, **enc)
        return model.action_space.postprocess(action)
