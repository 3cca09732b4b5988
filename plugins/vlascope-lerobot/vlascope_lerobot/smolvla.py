"""SmolVLA through LeRobot 0.4.4's own classes: a SmolVLM backbone (its first
``num_vlm_layers`` layers) whose keys and values condition a smaller action expert that
denoises a chunk of actions by flow matching.

Checkpoint folder: what ``SmolVLAPolicy.save_pretrained`` and the policy's processor
pipelines write (``config.json``, ``model.safetensors``, ``policy_preprocessor.json``,
``policy_postprocessor.json`` and their statistics). The VLM's config, tokenizer and
processor are read from ``vlm=DIR``, else ``<folder>/vlm``, else the config's
``vlm_model_name`` if that is a folder or already in the Hugging Face cache: nothing is
downloaded. Weights always come from the checkpoint (``load_vlm_weights`` is off).

Observation mapping: LeRobot's preprocessor does it, as in LeRobot's own evaluation. Each
image feature ``observation.images.<name>`` is fed from the scene camera ``<name>`` (or the
``cameras`` option, in the features' order) as floats in [0, 1]; SmolVLA pads it to
``resize_imgs_with_padding`` and scales to [-1, 1]. The state is mean/std-normalised with
the checkpoint's statistics, the instruction gets a newline and is tokenised; actions are
un-normalised by the postprocessor.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vlascope.adapters.base import AdapterPolicy, parse_cameras, require_folder, weights_fingerprint
from vlascope.adapters.checkpoint_code import refuse_hub_code
from vlascope.core.errors import PluginError
from vlascope.core.policy import Observation

from .compat import import_smolvla
from .processors import check_processors, load_pipelines

FAMILY = "SmolVLA"
RESID_WHY = ("LeRobot's layer loop adds the residual from the layer's input, not from "
             "this point; steer through .mlp or .attn, whose outputs are added to the stream")


def resolve_vlm(folder: Path, vlm: str | None, saved: str) -> str:
    """The folder (or cached Hub id) holding the VLM's config, tokenizer and processor."""
    for cand in (vlm, folder / "vlm", saved):
        if cand and Path(cand).expanduser().is_dir():
            return str(Path(cand).expanduser())
    if vlm:
        raise PluginError(f"{FAMILY}: vlm={vlm} is not a folder")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(saved, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise PluginError(
            f"{FAMILY}: the checkpoint's VLM '{saved}' is not on this machine and VLAScope "
            f"never downloads; copy its config, tokenizer and processor to {folder / 'vlm'} "
            "or pass vlm=DIR (see docs/adapters.md)") from e
    return saved


class SmolVLAAdapter(AdapterPolicy):
    family = FAMILY

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 vlm: str | None = None, n_action_steps: int | None = None,
                 num_steps: int | None = None):
        folder = require_folder(weights, FAMILY, ["config.json", "model.safetensors"])
        lr = import_smolvla()
        super().__init__(device, dtype, seed)
        for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
            if not (folder / name).is_file():
                raise PluginError(f"{FAMILY}: {folder} has no {name} (LeRobot 0.4 checkpoints "
                                  "carry their normalisation there; convert an older one with "
                                  "LeRobot's processor migration script)")
        check_processors(folder)  # before LeRobot imports any class they name
        try:
            cfg = lr["PreTrainedConfig"].from_pretrained(folder)
        except Exception as e:  # noqa: BLE001 - draccus raises many kinds
            raise PluginError(f"{FAMILY}: {folder / 'config.json'} is not a LeRobot policy "
                              f"config ({type(e).__name__}: {e})") from e
        if getattr(cfg, "type", None) != "smolvla":
            raise PluginError(f"{FAMILY}: {folder} holds a LeRobot '{cfg.type}' policy, not "
                              "smolvla")
        self.vlm_dir = resolve_vlm(folder, vlm, cfg.vlm_model_name)
        refuse_hub_code(self.vlm_dir, FAMILY)  # LeRobot would load it without asking
        cfg.vlm_model_name, cfg.load_vlm_weights = self.vlm_dir, False
        cfg.device = str(self.device)
        if num_steps:
            cfg.num_steps = int(num_steps)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # LeRobot prints as it loads
                self.policy = lr["SmolVLAPolicy"].from_pretrained(folder, config=cfg,
                                                                   local_files_only=True)
            overrides = {"tokenizer_processor": {"tokenizer_name": self.vlm_dir},
                         "device_processor": {"device": str(self.device)}}
            self.pre, self.post = load_pipelines(lr, folder, overrides)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise PluginError(f"{FAMILY}: cannot load {folder} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e
        self.policy.to(self.device, self.dtype).eval()
        self.cfg = cfg
        self.image_keys = [k for k, f in cfg.input_features.items()
                           if str(getattr(f.type, "value", f.type)) == "VISUAL"]
        self.cameras = parse_cameras(cameras, [k.rsplit(".", 1)[-1] for k in self.image_keys],
                                     FAMILY, n_inputs=len(self.image_keys))
        state = cfg.input_features.get("observation.state")
        self.state_dim = int(state.shape[0]) if state is not None else 0
        self.action_dim = int(cfg.output_features["action"].shape[0])
        self.horizon = int(cfg.chunk_size)
        self.n_action_steps = int(n_action_steps or cfg.n_action_steps)
        self.noise_shape = (self.horizon, int(cfg.max_action_dim))
        self.policy_id = f"smolvla:{folder}"
        self.weights_hash = weights_fingerprint([folder / "model.safetensors"])

        inner = self.policy.model
        vlm_with_expert = inner.vlm_with_expert
        backbone = vlm_with_expert.get_vlm_model()
        self._embed_prefix = inner.embed_prefix
        inner.embed_prefix = self._tapped_embed_prefix
        self.hooks.add("vision.connector", backbone.connector)
        self._register_stack("vlm", backbone.text_model.layers, "self_attn.o_proj", "mlp",
                             resid="input_layernorm", resid_read_only=RESID_WHY,
                             copy_outputs=True)
        self._register_stack("expert", vlm_with_expert.lm_expert.layers, "self_attn.o_proj",
                             "mlp", resid="input_layernorm", sequence=False,
                             resid_read_only=RESID_WHY, copy_outputs=True)
        self._static_layout(vlm_with_expert)

    def reset(self) -> None:
        """The noise stream and LeRobot's observation queues start afresh."""
        super().reset()
        if getattr(self, "policy", None) is not None:
            self.policy.reset()

    def _static_layout(self, vlm_with_expert) -> None:
        """Token positions in the prefix: per camera [start] + image tokens + [end], then
        the instruction, then the state token; known before any frame."""
        h, w = self.cfg.resize_imgs_with_padding or (512, 512)
        probe = torch.zeros(1, 3, h, w, device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            self.tokens_per_image = int(vlm_with_expert.embed_image(probe).shape[1])
        special = 1 if self.cfg.add_image_special_tokens else 0
        block, t = self.tokens_per_image + 2 * special, self.tokens_per_image
        side = int(round(t ** 0.5))
        grid = (side, side) if side * side == t else (1, t)
        self._layout = {c: {"grid": grid, "positions": list(range(i * block + special,
                                                                  i * block + special + t))}
                        for i, c in enumerate(self.cameras)}
        self._visual_positions = [p for c in self._layout.values() for p in c["positions"]]
        self._image_end = len(self.cameras) * block
        self._set_groups(self._image_end + self.cfg.tokenizer_max_length + 1)

    def _set_groups(self, length: int) -> None:
        self._groups = {"visual": list(self._visual_positions),
                        "language": list(range(self._image_end, length - 1)),
                        "state": [length - 1]}

    def _tapped_embed_prefix(self, images, img_masks, lang_tokens, lang_masks, state=None):
        embs, pad_masks, att_masks = self._embed_prefix(images, img_masks, lang_tokens,
                                                        lang_masks, state=state)
        self._set_groups(embs.shape[1])
        return self.visual_tap.apply(embs, self._visual_positions), pad_masks, att_masks

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        raw: dict[str, object] = {
            key: torch.from_numpy(np.stack([o.images[cam] for o in observations]))
            .permute(0, 3, 1, 2).float().div(255.0)
            for key, cam in zip(self.image_keys, self.cameras, strict=True)}
        if self.state_dim:
            raw["observation.state"] = self._states(observations)
        raw["task"] = [o.instruction for o in observations]
        batch = self.pre(raw)
        batch = {k: v.to(self.dtype) if torch.is_tensor(v) and v.is_floating_point() else v
                 for k, v in batch.items()}
        chunk = self.policy.predict_action_chunk(batch, noise=noise)
        return self.post(chunk.float())
