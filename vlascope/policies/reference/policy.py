"""The shipped reference VLA as a policy plugin: the app's and the CLI's default policy.

Capabilities beyond ``batch_infer``: named hook points (``layers()`` and ``hook()``), the
visual token layout, attention maps, per-episode seeded flow-matching noise, and common
noise (``common_noise()``) for analyses that compare forward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from vlascope.core.device import pick_device
from vlascope.core.errors import ObservationError, PluginError, VLAScopeError
from vlascope.core.jsonfile import read_json
from vlascope.core.noise import SeededNoise
from vlascope.core.policy import Observation, file_sha256
from vlascope.core.tensor_files import check_shapes, read_header

from .efficientnet_lite import load_pretrained
from .language import InstructionEncoder
from .model import HookPoint, ReferenceConfig, ReferenceTrunk

SHIPPED = ("reference", "reference-shortcut")


def shipped_weights(name: str, package: str = __package__) -> Path:
    """The folder of a model shipped as package data (``<package>/weights/<name>``): found
    through importlib.resources, so a wheel, a bundle and a checkout all carry it."""
    return Path(str(files(package) / "weights" / name))


def load_checkpoint(path: str | Path) -> tuple[ReferenceConfig, dict[str, torch.Tensor], Path]:
    """Read config.json + model.safetensors from a folder, with errors a user can act on."""
    folder = Path(path)
    weights, config = folder / "model.safetensors", folder / "config.json"
    for f in (weights, config):
        if not f.is_file():
            raise PluginError(f"reference policy: missing {f} (expected a folder with "
                              "model.safetensors and config.json)")
    try:
        cfg = ReferenceConfig.from_dict(read_json(config)["config"])
    except (VLAScopeError, KeyError, TypeError, ValueError) as e:  # e.g. not UTF-8
        raise PluginError(f"reference policy: {config} is not a valid config ({e})") from e
    try:  # the config's sizes against the file's header, before any tensor is made
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in ReferenceTrunk(cfg).state_dict().items()}
        check_shapes(read_header(weights), expected, weights, config)
        state = load_file(str(weights))
    except VLAScopeError as e:
        raise PluginError(f"reference policy: {e}") from e
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise PluginError(f"reference policy: {weights} is corrupt or not a safetensors "
                          f"file, or {config} is not a valid config ({e})") from e
    return cfg, state, weights


class ReferencePolicy:
    """Frozen EfficientNet-Lite0 + MiniLM-L6 encoders, trained transformer trunk, two heads."""

    def __init__(self, weights: str | Path | None = None, name: str = "reference",
                 device: str = "auto", head: str | None = None, seed: int = 0,
                 shipped: Path | None = None):
        """``shipped``: where model ``name`` ships when not in this package (a plugin's)."""
        folder = (Path(weights) if weights is not None
                  else shipped if shipped is not None else shipped_weights(name))
        cfg, state, weights_file = load_checkpoint(folder)
        self.cfg = cfg
        self.device = torch.device(pick_device(device))
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        trunk = ReferenceTrunk(cfg)
        try:
            trunk.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        except RuntimeError as e:
            raise PluginError(f"reference policy: {weights_file} does not match its config "
                              f"({str(e).splitlines()[0]})") from e
        self.trunk = trunk.to(self.device, self.dtype).eval()
        encoder = load_pretrained(cfg.encoder_depth, taps=cfg.encoder_taps)
        if encoder.out_channels != cfg.vision_dim:
            raise PluginError(f"reference policy: {folder / 'config.json'} says vision_dim "
                              f"{cfg.vision_dim} but its encoder gives {encoder.out_channels}")
        self.encoder = encoder.to(self.device, self.dtype).eval()
        self.text = InstructionEncoder(cfg.text_tokens, device=self.device)
        self.vision_hooks = nn.ModuleDict({c: HookPoint() for c in cfg.cameras})
        self.head = head or cfg.head
        if self.head not in ("l1", "flow"):
            raise PluginError(f"reference policy: unknown head '{self.head}' (l1 or flow)")
        self.seed = seed
        self.noise = SeededNoise(seed)
        self.policy_id = f"vlascope/{name}" if weights is None else f"file:{folder}"
        self.weights_hash = file_sha256(weights_file)
        self.cameras = tuple(cfg.cameras)
        self.image_size = (cfg.image_size, cfg.image_size)
        self.n_action_steps = cfg.n_action_steps
        self.reset()

    # Contract ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Restart the flow-matching noise stream, so an episode replays exactly."""
        self.noise.restart()

    def episode_state(self) -> torch.Tensor:
        """The episode's noise stream, so a server can keep one per client."""
        return self.noise.state()

    def set_episode_state(self, state: torch.Tensor) -> None:
        self.noise.set_state(state)

    def batch_infer(self, observations: Sequence[Observation]) -> np.ndarray:
        with torch.inference_mode():
            chunks = self._act(observations)
        return chunks.float().cpu().numpy()

    # Capabilities -----------------------------------------------------------------------
    def common_noise(self) -> AbstractContextManager[None]:
        """Flow head: every call in this block, on this thread, starts every row from the
        same noise (the seed's first draw) and leaves the episode's noise stream alone."""
        return self.noise.common()

    def layers(self) -> dict[str, nn.Module]:
        """Named hook points: encoders' outputs, token embeddings, every trunk layer."""
        out: dict[str, nn.Module] = {f"vision.{c}": m for c, m in self.vision_hooks.items()}
        out["tokens.language"] = self.trunk.hook_language
        out["tokens.state"] = self.trunk.hook_state
        out["tokens.visual"] = self.trunk.hook_visual
        for i, block in enumerate(self.trunk.blocks):
            out[f"trunk.{i}.attn"] = block.hook_attn
            out[f"trunk.{i}.mlp"] = block.hook_mlp
            out[f"trunk.{i}.resid"] = block.hook_resid
        return out

    @contextmanager
    def hook(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
        """Call ``fn`` on the activation at ``name``; a returned tensor replaces it."""
        layers = self.layers()
        if name not in layers:
            raise KeyError(f"no hook point '{name}' (known: {', '.join(layers)})")
        handle = layers[name].register_forward_hook(lambda m, i, o: fn(o))
        try:
            yield
        finally:
            handle.remove()

    def visual_token_layout(self) -> dict[str, dict]:
        """Camera -> grid shape and positions in the trunk's token sequence; the visual
        tokens in ``tokens.visual`` are the cameras' grids concatenated in this order."""
        return self.trunk.layout()

    def readout_positions(self) -> list[int]:
        """Sequence positions of the action-query tokens the heads read the actions from."""
        return self.trunk.readout_positions()

    def token_groups(self, layer: str | None = None) -> dict[str, list[int]]:
        """Sequence positions of each kind of token in the trunk's layers, so interventions
        can target language, state, visual or action-query tokens only. Other hook points
        (encoders, token embeddings) hold one kind each and have no groups."""
        if layer is not None and not layer.startswith("trunk."):
            return {}
        n_text = self.cfg.text_tokens
        visual = [p for cam in self.visual_token_layout().values() for p in cam["positions"]]
        return {"language": list(range(n_text)), "state": [n_text], "visual": visual,
                "queries": self.readout_positions()}

    def actions_from_pixels(self, observations: Sequence[Observation],
                            pixels: dict[str, torch.Tensor]) -> torch.Tensor:
        """Differentiable action chunks (B, horizon, A) from float images (B, H, W, 3) in
        0..255 per camera (for gradient saliency); the rest of each observation as usual.
        The flow head uses one fixed noise draw, the same for every row."""
        noise = self.noise.fixed(len(observations), self._noise_shape).to(
            self.device, self.dtype) if self.head == "flow" else None
        return self._trunk_act(self._encode(pixels), observations, noise)

    def attention_maps(self, observations: Sequence[Observation]) -> list[torch.Tensor]:
        """Per trunk layer, (B, heads, tokens, tokens) attention weights."""
        attns = [b.attn for b in self.trunk.blocks]
        for a in attns:
            a.capture = True
        try:
            with torch.inference_mode(), self.common_noise():  # leave the episode's noise
                self._act(observations)
            return [a.last_weights.float().cpu() for a in attns]
        finally:
            for a in attns:
                a.capture, a.last_weights = False, None

    # Internals --------------------------------------------------------------------------
    def _pixels(self, observations: Sequence[Observation]) -> dict[str, torch.Tensor]:
        for obs in observations:
            missing = [c for c in self.cameras if c not in obs.images]
            if missing:
                raise ObservationError(f"reference policy needs camera(s) {missing}")
            obs.check_images(self.image_size)
        return {c: torch.from_numpy(np.stack([o.images[c] for o in observations]))
                for c in self.cameras}

    def _encode(self, pixels: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, H, W, 3) images per camera, uint8 or float in 0..255 -> (B, cams, tokens, C)."""
        feats = []
        for cam in self.cameras:
            x = pixels[cam].to(self.device).permute(0, 3, 1, 2)
            f = self.encoder(x).flatten(2).transpose(1, 2)  # (B, tokens, C)
            feats.append(self.vision_hooks[cam](f))
        return torch.stack(feats, dim=1)

    def _act(self, observations: Sequence[Observation]) -> torch.Tensor:
        if not observations:
            raise ObservationError("batch_infer needs at least one observation")
        noise = None
        if self.head == "flow":  # the episode's stream, or the common draw
            noise = self.noise.draw(len(observations), self._noise_shape).to(
                self.device, self.dtype)
        return self._trunk_act(self._encode(self._pixels(observations)), observations, noise)

    @property
    def _noise_shape(self) -> tuple[int, int]:
        return (self.cfg.horizon, self.cfg.action_dim)

    def _trunk_act(self, vision: torch.Tensor, observations: Sequence[Observation],
                   noise: torch.Tensor | None) -> torch.Tensor:
        text, mask = self.text([o.instruction for o in observations])
        text = text.clone()  # the encoder's cache holds inference tensors; autograd needs these
        state = torch.from_numpy(np.stack([np.asarray(o.state, np.float32)
                                           for o in observations]))
        if state.shape[1] != self.cfg.state_dim:
            raise ObservationError(f"reference policy expects a state of {self.cfg.state_dim} "
                                   f"numbers, got {state.shape[1]}")
        return self.trunk.act(vision, text.to(self.device, self.dtype), mask.to(self.device),
                              state.to(self.device, self.dtype), self.head, noise)


def make_reference(**options) -> ReferencePolicy:
    return ReferencePolicy(name="reference", **options)


def make_reference_shortcut(**options) -> ReferencePolicy:
    return ReferencePolicy(name="reference-shortcut", **options)
