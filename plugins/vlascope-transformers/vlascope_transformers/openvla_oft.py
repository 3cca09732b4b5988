"""OpenVLA-OFT through the user's own install of openvla-oft (its code is not on PyPI and
is not copied here): the checkpoint folder is loaded with openvla-oft's ``get_vla``
(``trust_remote_code``), its L1 action head and proprio projector from the
``action_head--*_checkpoint.pt`` / ``proprio_projector--*_checkpoint.pt`` files next to it,
and actions come from its ``get_vla_action`` (prompt, centre crop, un-normalisation with
``dataset_statistics.json`` under ``unnorm_key``), one observation at a time.

openvla-oft's ``get_vla`` loads the checkpoint with ``trust_remote_code=True``: the folder's
own Python files (``modeling_prismatic.py``, ...) run. So the adapter loads only when the
user allowed that (``trust_remote_code=1``; the app asks once per folder), else it raises
``CheckpointCodeRequired`` before importing anything.

Hook points: ``tokens.visual`` is the projector's output (256 patches per image, cameras in
order), ``vlm.{i}.*`` the Llama-2 layers. The action chunk is deterministic (L1 head).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vlascope.adapters.base import AdapterPolicy, parse_cameras, require_folder, weights_fingerprint
from vlascope.adapters.checkpoint_code import require_code_allowed
from vlascope.adapters.torchvision_ops import prepare_torchvision
from vlascope.core.errors import PluginError
from vlascope.core.policy import Observation

FAMILY = "OpenVLA-OFT"
MODULES = ("prismatic", "experiments.robot.openvla_utils",
           "experiments.robot.libero.run_libero_eval")


def install_hint() -> str:
    """How to add openvla-oft's GitHub-only parts to the environment this runs in (its
    code, its transformers fork, dlimp): none is on PyPI, so no environment script can."""
    py = sys.executable
    return (f"its code is on GitHub only: git clone https://github.com/moojink/openvla-oft && "
            f"{py} -m pip install --no-deps -e openvla-oft && {py} -m pip install --no-deps "
            "'transformers @ git+https://github.com/moojink/transformers-openvla-oft.git' "
            "'dlimp @ git+https://github.com/moojink/dlimp_openvla' (see docs/adapters.md)")


def check_folder(weights: str | Path | None, trust_remote_code: object) -> Path:
    """The checkpoint folder, once the user allowed its code: checked in the app's process
    before the environment serves it (the app asks there, once per folder)."""
    folder = require_folder(weights, FAMILY, ["config.json", "dataset_statistics.json"])
    require_code_allowed(folder, FAMILY, trust_remote_code,
                         "openvla-oft loads it with trust_remote_code")
    return folder


def openvla_oft_modules() -> dict[str, object]:
    """openvla-oft's modules, or a PluginError naming what is missing and how to get it."""
    prepare_torchvision()  # timm's layers import it
    found = {}
    for name in MODULES:
        try:
            found[name] = importlib.import_module(name)
        except ImportError as e:
            raise PluginError(f"{FAMILY}: openvla-oft is not installed in this environment "
                              f"({sys.prefix}; cannot import '{name}': {e}); "
                              f"{install_hint()}") from e
    return found


class OpenVLAOFTPolicy(AdapterPolicy):
    family = FAMILY
    image_keys = ("full_image", "wrist_image")

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", seed: int = 0, cameras: str | Sequence[str] | None = None,
                 unnorm_key: str = "libero_spatial_no_noops", n_action_steps: int | None = None,
                 trust_remote_code: object = False):
        folder = check_folder(weights, trust_remote_code)
        mods = openvla_oft_modules()
        if not list(folder.glob("action_head--*checkpoint.pt")):
            raise PluginError(f"{FAMILY}: {folder} has no action_head--*_checkpoint.pt (the "
                              "L1 head trained with the checkpoint)")
        super().__init__(device, dtype, seed)
        utils = mods["experiments.robot.openvla_utils"]
        constants = importlib.import_module("prismatic.vla.constants")
        self.cameras = parse_cameras(cameras, ("agentview", "robot0_eye_in_hand"), FAMILY)
        self.cfg = mods["experiments.robot.libero.run_libero_eval"].GenerateConfig(
            pretrained_checkpoint=str(folder), use_l1_regression=True, use_diffusion=False,
            use_film=False, num_images_in_input=len(self.cameras), use_proprio=True,
            center_crop=True, unnorm_key=unnorm_key,
            num_open_loop_steps=constants.NUM_ACTIONS_CHUNK)
        try:
            self.vla = utils.get_vla(self.cfg)
            self.processor = utils.get_processor(self.cfg)
            self.action_head = utils.get_action_head(self.cfg, self.vla.llm_dim)
            self.proprio_projector = utils.get_proprio_projector(
                self.cfg, self.vla.llm_dim, constants.PROPRIO_DIM)
        except Exception as e:  # noqa: BLE001 - openvla-oft's own errors, passed on
            raise PluginError(f"{FAMILY}: openvla-oft could not load {folder} "
                              f"({type(e).__name__}: {e})") from e
        self._get_action = utils.get_vla_action
        self.horizon, self.action_dim = constants.NUM_ACTIONS_CHUNK, constants.ACTION_DIM
        self.state_dim = constants.PROPRIO_DIM
        self.n_action_steps = int(n_action_steps or self.horizon)
        self.policy_id = f"openvla-oft:{folder}"
        self.weights_hash = weights_fingerprint(sorted(folder.glob("*.safetensors")))
        self.hooks.add("tokens.visual", self.vla.projector)  # all cameras' patches, in order
        self._register_stack("vlm", self.vla.language_model.model.layers, "self_attn.o_proj",
                             "mlp")
        n = 256  # 224 / 14 squared, per camera
        self._layout = {c: {"grid": (16, 16), "positions": list(range(1 + i * n,
                                                                        1 + (i + 1) * n))}
                        for i, c in enumerate(self.cameras)}
        self._groups = {"visual": [p for c in self._layout.values() for p in c["positions"]]}

    def _infer(self, observations: list[Observation], noise: torch.Tensor | None
               ) -> torch.Tensor:
        chunks = []
        for obs in observations:
            inputs = {k: obs.images[c]
                      for k, c in zip(self.image_keys, self.cameras, strict=False)}
            inputs.update(state=np.asarray(obs.state, np.float32),
                          task_description=obs.instruction)
            actions = self._get_action(self.cfg, self.vla, self.processor, inputs,
                                       obs.instruction, self.action_head,
                                       self.proprio_projector)
            chunks.append(torch.as_tensor(np.stack(actions), dtype=torch.float32))
        return torch.stack(chunks)
