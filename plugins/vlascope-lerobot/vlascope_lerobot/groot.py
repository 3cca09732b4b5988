"""GR00T N1.5 through LeRobot 0.4.4's own classes: an Eagle 2.5 VLM (SigLIP, a one-layer
connector, Qwen3 cut at ``select_layer``) whose last hidden states, after a LayerNorm and a
few self-attention blocks, condition a DiT that denoises a chunk of actions by flow
matching. Runs in the "lerobot" environment (transformers 4.57); the app reaches it through
``vlascope serve`` (docs/adapters.md).

Checkpoint folder: what ``GrootPolicy.save_pretrained`` and the policy's processor pipelines
write; the base model and the Eagle assets come from their own folders
(``vlascope_lerobot.groot_assets``).

Observation mapping: LeRobot's preprocessor, as in LeRobot's evaluation, run per
observation (its packing step reads one instruction per call) and collated once. Image
feature ``observation.images.<name>`` takes the scene camera ``<name>`` (or ``cameras=``,
in the features' sorted order, the order LeRobot stacks them in) as uint8 frames; Eagle's
processor resizes each to one tile (224x224 for the released model) scaled to [-1, 1]. The
instruction becomes ``"['<instruction>']"`` after the images in Eagle's chat prompt. The
state is min/max-scaled to [-1, 1] with the checkpoint's statistics and zero-padded to
``max_state_dim``; the embodiment id comes from the checkpoint's tag (or ``embodiment=``).
Actions are un-normalised by the postprocessor, step by step (LeRobot's step keeps only a
chunk's last action).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlascope.adapters.base import AdapterPolicy, parse_cameras, require_folder, weights_fingerprint
from vlascope.adapters.hooks import fixed_positions
from vlascope.core.errors import ObservationError, PluginError, VLAScopeError
from vlascope.core.policy import Observation

from .compat import read_policy_config
from .groot_assets import (
    BASE_REPO,
    EAGLE_REPO,
    FAMILY,
    register_vendored_eagle,
    resolve_base,
    resolve_eagle,
    stage_base,
    stage_eagle,
)
from .processors import FILES as PROCESSOR_FILES
from .processors import check_processors, load_pipelines

GROOT = "lerobot.policies.groot"
# The steps of make_groot_pre_post_processors, by registry name
GROOT_STEPS = frozenset({
    "rename_observations_processor", "to_batch_processor", "groot_pack_inputs_v3",
    "groot_eagle_encode_v3", "groot_eagle_collate_v3", "device_processor",
    "groot_action_unpack_unnormalize_v1"})
PROBE = "Perform the task."  # LeRobot's own instruction when there is none


class _SeededNoise:
    """Stands in for ``torch`` in GR00T's action-head module for one call: the flow's
    starting actions (its one ``torch.randn`` in ``get_action``) are our seeded noise, so
    ``common_noise()`` and ``reset()`` replay exactly."""

    def __init__(self, noise: torch.Tensor):
        self.noise, self.drawn = noise, False

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def randn(self, *size: Any, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None, **kwargs: Any) -> torch.Tensor:
        shape = kwargs.pop("size", None) or (size[0] if len(size) == 1 else size)
        if self.drawn or tuple(shape) != tuple(self.noise.shape):
            raise RuntimeError(f"{FAMILY}: the action head drew noise of shape {tuple(shape)} "
                               f"(expected one draw of {tuple(self.noise.shape)})")
        self.drawn = True
        return self.noise.to(device=device, dtype=dtype)


@contextlib.contextmanager
def seeded_noise(module: Any, noise: torch.Tensor) -> Iterator[None]:
    real, module.torch = module.torch, _SeededNoise(noise)
    try:
        yield
    finally:
        module.torch = real


class GrootAdapter(AdapterPolicy):
    """A LeRobot GR00T N1.5 checkpoint behind the policy contract; see the module
    docstring for the folders it reads and the observation mapping."""

    family = FAMILY

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 base_model: str | None = None, eagle: str | None = None,
                 n_action_steps: int | None = None, num_steps: int | None = None,
                 embodiment: str | int | None = None):
        folder = require_folder(weights, FAMILY, ["config.json", "model.safetensors"])
        for name, value in (("num_steps", num_steps), ("n_action_steps", n_action_steps)):
            if value is not None and int(value) < 1:
                raise PluginError(f"{FAMILY}: {name} must be at least 1, got {value}")
        saved = read_policy_config(folder, FAMILY, "groot")
        for name in PROCESSOR_FILES:
            if not (folder / name).is_file():
                raise PluginError(f"{FAMILY}: {folder} has no {name} (LeRobot 0.4 checkpoints "
                                  "carry their normalisation there)")
        base = resolve_base(folder, base_model, str(saved.get("base_model_path") or BASE_REPO))
        eagle_dir = resolve_eagle(folder, eagle,
                                  str(saved.get("tokenizer_assets_repo") or EAGLE_REPO))
        lr = _import_groot()
        check_processors(folder, FAMILY, GROOT_STEPS)  # before LeRobot imports any class
        super().__init__(device, dtype, seed)
        register_vendored_eagle()
        staging = Path(tempfile.mkdtemp(prefix="vlascope-groot-"))
        weakref.finalize(self, shutil.rmtree, str(staging), True)
        eagle_copy = stage_eagle(eagle_dir, staging / "eagle")
        base_copy = stage_base(base, eagle_copy, staging / "base")
        self._load(lr, folder, base_copy, eagle_copy)
        self.base_dir, self.eagle_dir = base, eagle_dir

        cfg, model = self.cfg, self.policy._groot_model
        self.image_keys = sorted(k for k, f in cfg.input_features.items()
                                 if str(getattr(f.type, "value", f.type)) == "VISUAL")
        self.cameras = parse_cameras(cameras, [k.rsplit(".", 1)[-1] for k in self.image_keys],
                                     FAMILY, n_inputs=len(self.image_keys))
        self.state_dim = int(cfg.input_features["observation.state"].shape[0])
        self.action_dim = int(cfg.output_features["action"].shape[0])
        head = model.action_head
        self.horizon = int(head.config.action_horizon)
        self.noise_shape = (self.horizon, int(head.config.action_dim))
        self.n_action_steps = min(int(n_action_steps or cfg.n_action_steps), self.horizon)
        if num_steps is not None:
            head.num_inference_timesteps = int(num_steps)
        self.embodiment_id = self._embodiment(embodiment, head.config.max_num_embodiments)
        self.policy_id = f"groot:{folder}"
        self.weights_hash = weights_fingerprint([folder / "model.safetensors"])
        self._register_hooks(model)
        self._read_prompt(self._preprocess([self._probe()]))  # the layout, before any frame

    # Loading ----------------------------------------------------------------------------
    def _load(self, lr: dict[str, Any], folder: Path, base_copy: Path, eagle_copy: Path) -> None:
        try:
            cfg = lr["PreTrainedConfig"].from_pretrained(folder)
        except Exception as e:  # noqa: BLE001 - draccus raises many kinds
            raise PluginError(f"{FAMILY}: {folder / 'config.json'} is not a LeRobot policy "
                              f"config ({type(e).__name__}: {e})") from e
        cfg.base_model_path, cfg.tokenizer_assets_repo = str(base_copy), str(eagle_copy)
        cfg.device = str(self.device)
        cfg.use_bf16 = self.dtype == torch.bfloat16  # GR00T's autocast; else our dtype
        assets = {"tokenizer_assets_repo": str(eagle_copy)}
        overrides = {"groot_eagle_encode_v3": assets, "groot_eagle_collate_v3": assets,
                     "device_processor": {"device": str(self.device)}}
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # GR00T prints as it loads
                self.policy = lr["GrootPolicy"].from_pretrained(folder, config=cfg,
                                                                local_files_only=True)
                self.pre, self.post = load_pipelines(lr, folder, overrides)
                steps = {type(s).__name__: i for i, s in enumerate(self.pre.steps)}
                for name in ("GrootPackInputsStep", "GrootEagleEncodeStep",
                             "GrootEagleCollateStep"):
                    if name not in steps:
                        raise PluginError(f"{FAMILY}: {folder / 'policy_preprocessor.json'} "
                                          f"has no {name}; it is not GR00T's preprocessor")
                for name in ("GrootEagleEncodeStep", "GrootEagleCollateStep"):
                    self.pre.steps[steps[name]].proc  # noqa: B018 - read the assets now
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
            raise PluginError(f"{FAMILY}: cannot load {folder} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e
        split = steps["GrootEagleCollateStep"]
        self._per_row, self._batched = self.pre.steps[:split], self.pre.steps[split:]
        # right, not left, padding: the image tokens come first in every prompt, so they
        # sit at the same positions in every row of a batch
        self.pre.steps[split].proc.tokenizer.padding_side = "right"
        self._pack = self.pre.steps[steps["GrootPackInputsStep"]]
        self._noise_module = lr["flow_matching"]
        self.policy.to(self.device, self.dtype).eval()
        self.cfg = cfg

    def _embodiment(self, value: str | int | None, count: int) -> int:
        """The embodiment id: ``value`` (a tag of the checkpoint's mapping, or a number),
        else the checkpoint's tag through that mapping (0 when unknown, as LeRobot does)."""
        mapping = dict(self._pack.embodiment_mapping)
        if value is None:
            return int(mapping.get(self._pack.embodiment_tag, 0))
        text = str(value).strip()
        if text in mapping:
            return int(mapping[text])
        if text.isdigit() and int(text) < count:
            return int(text)
        raise PluginError(f"{FAMILY}: embodiment '{value}' is neither a tag of this "
                          f"checkpoint ({', '.join(sorted(mapping))}) nor an id below {count}")

    def _register_hooks(self, model: Any) -> None:
        eagle = model.backbone.eagle_model
        head = model.action_head
        self.hooks.add("vision.connector", eagle.mlp1)
        self._register_stack("vlm", eagle.language_model.model.layers, "self_attn.o_proj", "mlp")
        blocks = getattr(head.vl_self_attention, "transformer_blocks", None)
        if blocks is not None:  # the action head's self-attention over the VLM's output
            self._register_stack("vlsa", blocks, "attn1", "ff")
        self._register_stack("expert", head.model.transformer_blocks, "attn1", "ff",
                             sequence=False)
        future = int(head.config.num_target_vision_tokens)
        self._expert_groups = {"state": [0], "future": list(range(1, 1 + future)),
                               "action": list(range(1 + future, 1 + future + self.horizon))}
        self._image_token = int(eagle.image_token_index)
        eagle.register_forward_pre_hook(self._prompt_hook, with_kwargs=True)
        eagle.language_model.register_forward_pre_hook(self._visual_hook, with_kwargs=True)

    # Contract ---------------------------------------------------------------------------
    def reset(self) -> None:
        """The noise stream and LeRobot's action queue start afresh."""
        super().reset()
        if getattr(self, "policy", None) is not None:
            self.policy.reset()

    def token_groups(self, layer: str | None = None) -> dict[str, list[int]]:
        """The VLM and ``vlsa`` layers: ``visual`` and ``language`` (what follows the
        images: the instruction and the chat template's end) of the last prompt; the
        expert (DiT) layers: ``state``, ``future`` (learned tokens) and ``action``."""
        if layer is not None and layer.startswith("expert."):
            return {k: list(v) for k, v in self._expert_groups.items()}
        return super().token_groups(layer)

    # Inference --------------------------------------------------------------------------
    def _check(self, obs: Observation) -> None:
        super()._check(obs)
        shapes = {c: tuple(np.asarray(obs.images[c]).shape) for c in self.cameras}
        if len(set(shapes.values())) > 1:  # LeRobot's packing step stacks them
            raise ObservationError(f"{FAMILY} takes frames of one size from all its cameras, "
                                   f"got {shapes}")

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        batch = self._preprocess(observations)
        batch["embodiment_id"] = torch.full_like(batch["embodiment_id"], self.embodiment_id)
        with seeded_noise(self._noise_module, noise):
            chunk = self.policy.predict_action_chunk(batch)
        b, h, d = chunk.shape
        return self.post(chunk.float().reshape(b * h, d)).reshape(b, h, -1)

    def _preprocess(self, observations: Sequence[Observation]) -> dict[str, Any]:
        """LeRobot's preprocessor up to Eagle's encoding once per observation (each with its
        own instruction), then its collation and device steps on all of them."""
        rows = []
        for obs in observations:
            raw: dict[str, Any] = {
                key: torch.from_numpy(np.ascontiguousarray(obs.images[cam])).permute(2, 0, 1)[None]
                for key, cam in zip(self.image_keys, self.cameras, strict=True)}
            raw["observation.state"] = torch.from_numpy(np.asarray(obs.state, np.float32))[None]
            raw["task"] = obs.instruction
            rows.append(_run(self._per_row, self.pre.to_transition(raw)))
        return self.pre.to_output(_run(self._batched, _merge(rows)))

    def _probe(self) -> Observation:
        frame = np.zeros((224, 224, 3), np.uint8)
        return Observation(images=dict.fromkeys(self.cameras, frame),
                           state=np.zeros(self.state_dim, np.float32), instruction=PROBE)

    def _read_prompt(self, batch: dict[str, Any]) -> None:
        """Visual positions, per-camera layout and token groups from a collated prompt."""
        ids, mask = batch["eagle_input_ids"], batch["eagle_attention_mask"]
        positions = fixed_positions(ids == self._image_token, f"{FAMILY}'s image tokens")
        n = len(self.cameras)
        if not positions or len(positions) % n:
            raise VLAScopeError(f"{FAMILY}: {len(positions)} image tokens in the prompt for "
                                f"{n} camera(s)")
        per = len(positions) // n
        side = int(round(per ** 0.5))
        grid = (side, side) if side * side == per else (1, per)
        self._layout = {c: {"grid": grid, "positions": positions[i * per:(i + 1) * per]}
                        for i, c in enumerate(self.cameras)}
        self._visual_positions = positions
        used = mask.bool().any(0)
        self._groups = {"visual": list(positions),
                        "language": [p for p in range(positions[-1] + 1, ids.shape[1])
                                     if bool(used[p])]}

    def _prompt_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        self._read_prompt({"eagle_input_ids": kwargs["input_ids"],
                           "eagle_attention_mask": kwargs["attention_mask"]})

    def _visual_hook(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        embeds = self.visual_tap.apply(kwargs["inputs_embeds"], self._visual_positions)
        return args, {**kwargs, "inputs_embeds": embeds}


def _run(steps: Sequence[Any], transition: dict) -> dict:
    for step in steps:
        transition = step(transition)
    return transition


def _merge(rows: list[dict]) -> dict:
    """One transition from per-observation ones: tensors concatenated along the batch,
    lists (Eagle's encoded prompts) joined, anything else from the first row."""
    out = dict(rows[0])
    for key, first in rows[0].items():
        if not isinstance(first, dict):
            continue
        merged = {}
        for name, value in first.items():
            values = [r[key][name] for r in rows]
            if name == "video":  # already encoded into eagle_content; sizes may differ
                continue
            if torch.is_tensor(value):
                merged[name] = torch.cat(values)
            elif isinstance(value, list):
                merged[name] = [v for vs in values for v in vs]
            else:
                merged[name] = value
        out[key] = merged
    return out


def _import_groot() -> dict[str, Any]:
    from .compat import import_lerobot

    # processor_groot registers GR00T's processor steps in LeRobot's registry
    _, modeling, processor, _, converters, configs, flow = import_lerobot(FAMILY, [
        f"{GROOT}.configuration_groot", f"{GROOT}.modeling_groot", "lerobot.processor",
        f"{GROOT}.processor_groot", "lerobot.processor.converters", "lerobot.configs.policies",
        f"{GROOT}.action_head.flow_matching_action_head"])
    return {"GrootPolicy": modeling.GrootPolicy, "Pipeline": processor.PolicyProcessorPipeline,
            "converters": converters, "PreTrainedConfig": configs.PreTrainedConfig,
            "flow_matching": flow}
