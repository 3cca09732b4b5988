"""The X-VLA adapter on a tiny random-weight checkpoint written by LeRobot's own
save_pretrained and processor pipelines, reached through its entry point from the app
(transformers 5): the policy is served from the "lerobot" environment (transformers 4.57)."""

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vlascope.adapters.conformance import check_adapter  # noqa: E402
from vlascope.core.errors import PluginError  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.scenes.tabletop.scene import TabletopScene  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover()


@pytest.fixture(scope="module")
def checkpoint(in_lerobot_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("xvla") / "ckpt"
    printed = in_lerobot_env("-m", "vlascope_lerobot.xvla_build", str(out))
    assert printed.strip() == str(out)  # the folder, and nothing else on stdout
    return out


@pytest.fixture(scope="module")
def policy(registry, checkpoint):
    served = registry.create_policy("xvla", weights=str(checkpoint), device="cpu")
    yield served
    served.close()


@pytest.fixture(scope="module")
def obs():
    scene = TabletopScene(image_size=(48, 48))  # the adapter resizes to the model's 64x64
    scene.reset("pick_red", 0)
    yield scene.observe(cameras=("front", "wrist")).observation
    scene.close()


def test_served_from_the_lerobot_environment(policy, lerobot_python):
    assert policy.environment == "lerobot"
    argv = Path(f"/proc/{policy.server_pid}/cmdline").read_bytes().split(b"\0")
    assert argv[0].decode() == str(lerobot_python)  # the environment's python, not ours
    assert "--policy" in [a.decode() for a in argv]


def test_xvla_conforms(policy, obs):
    rep = check_adapter(policy, obs)
    assert rep.chunk_shape == (2, 8, 4)
    assert rep.visual_tokens == {"front": 16, "wrist": 16}  # 64 px / DaViT stride 16, squared
    layout = policy.visual_token_layout()
    assert layout["front"]["grid"] == (4, 4)
    # the transformer's sequence: 8 action tokens, camera 0's pooled token and grid, 16
    # instruction tokens, camera 1's pooled token and grid, 4 soft prompts
    assert layout["front"]["positions"] == list(range(9, 25))
    assert layout["wrist"]["positions"] == list(range(42, 58))
    groups = policy.token_groups("expert.1.resid")
    assert groups["visual"] == list(range(9, 25)) + list(range(42, 58))
    assert groups["action"] == list(range(8)) and groups["visual_pooled"] == [8, 41]
    assert groups["language"] == list(range(25, 41))
    assert groups["soft_prompt"] == list(range(58, 62))
    vlm = policy.token_groups("vlm.0.resid")  # the VLM sees camera 0 and the instruction
    assert vlm["visual"] == list(range(1, 17)) and vlm["language"] == list(range(17, 33))
    assert {"vision.encoder", "vision.projector", "vlm.1.attn", "vlm.1.mlp",
            "expert.1.attn", "expert.1.mlp"} <= set(rep.hooks_fired)
    assert rep.token_edit_effect > 1e-6
    assert rep.norm_hook == "expert.1.resid"


def test_activations_match_the_layout(policy, obs):
    """What the hooks see has the lengths the token groups promise."""
    from vlascope.core.hook_ops import Capture

    grabs = {n: Capture(rows=1) for n in ("vlm.0.resid", "expert.0.resid", "tokens.visual")}
    with policy.common_noise(), policy.hook("vlm.0.resid", grabs["vlm.0.resid"]), \
            policy.hook("expert.0.resid", grabs["expert.0.resid"]), \
            policy.hook("tokens.visual", grabs["tokens.visual"]):
        policy.batch_infer([obs])
    assert grabs["vlm.0.resid"].values[0].shape[1] == 1 + 16 + 16
    assert len(grabs["expert.0.resid"].values) == 3  # once per denoising step
    assert grabs["expert.0.resid"].values[0].shape[1] == 62
    assert grabs["tokens.visual"].values[0].shape[1] == 32


def test_reset_replays(policy, obs):
    policy.reset()
    first = policy.batch_infer([obs])
    assert not np.array_equal(first, policy.batch_infer([obs]))  # the stream moved on
    policy.reset()
    assert np.array_equal(first, policy.batch_infer([obs]))


@pytest.fixture(scope="module")
def in_env_figures(checkpoint, in_lerobot_env) -> dict:
    """Run in the environment, where LeRobot is (one process: its imports take seconds):
    LeRobot's own generate_actions and the adapter's sampler from the same noise, and the
    published model's parameter count on the meta device."""
    code = f"""
import json
import numpy as np
import torch
from vlascope.core.policy import Observation
from vlascope_lerobot.xvla import XVLAAdapter
from vlascope_lerobot.xvla_build import count_parameters
from vlascope.adapters.layer_agreement import layer_outputs_feed_the_next
p = XVLAAdapter(weights={str(checkpoint)!r}, device="cpu")
img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
obs = [Observation(images={{"front": img, "wrist": img[::-1]}}, state=np.ones(4, np.float32),
                   instruction="pick up the red cube")]
batch = p.pre({{"observation.images.front": p._frames(obs, "front"),
               "observation.images.wrist": p._frames(obs, "wrist"),
               "observation.state": p._states(obs), "task": ["pick up the red cube"]}})
inputs = p.policy._build_model_inputs(batch)
torch.manual_seed(7)
noise = torch.randn(1, *p.noise_shape)
torch.manual_seed(7)
ref = p.policy.model.generate_actions(**inputs, steps=p.cfg.num_denoising_steps)
print(json.dumps({{"same": torch.equal(ref, p._sample(inputs, noise)),
                  "size": float(ref.abs().max()), "published": count_parameters("published"),
                  "tiny_meta": count_parameters("tiny"),
                  "tiny_loaded": sum(x.numel() for x in p.policy.parameters()),
                  # Action Atlas's transformer_L{{i}}: policy.model.transformer.blocks[i]
                  "atlas_gaps": layer_outputs_feed_the_next(p, obs[0], "expert",
                                                            p.policy.model.transformer.blocks)
                  }}))
"""
    return json.loads(in_lerobot_env("-c", code).strip().splitlines()[-1])


def test_sampler_is_lerobots_with_our_noise(in_env_figures):
    """The adapter's sampler reproduces LeRobot's generate_actions exactly when both start
    from the same noise."""
    assert in_env_figures["same"] is True and in_env_figures["size"] > 0


def test_action_atlas_blocks_read_what_our_hook_points_read(in_env_figures):
    """Their ``transformer_L{i}`` (the block's output) is our ``expert.{i+1}.resid``: the
    same numbers at every denoising step."""
    gaps = in_env_figures["atlas_gaps"]
    assert gaps and all(v == 0.0 for v in gaps.values()), gaps


def test_published_configuration(in_env_figures):
    """X-VLA-0.9B's architecture, counted on the meta device (nothing allocated); the
    count's method agrees with the tiny model as loaded."""
    assert in_env_figures["tiny_meta"] == in_env_figures["tiny_loaded"]
    assert 0.85e9 < in_env_figures["published"] < 0.95e9


def test_statistics_come_from_the_checkpoint(registry, checkpoint, obs, tmp_path):
    """The postprocessor's statistics un-normalise the actions: shift them and the actions
    follow."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "shifted"
    shutil.copytree(checkpoint, folder)
    (stats_file,) = folder.glob("policy_postprocessor_step_*.safetensors")
    stats = load_file(str(stats_file))
    stats["action.mean"] = torch.full_like(stats["action.mean"], 10.0)
    stats["action.std"] = torch.full_like(stats["action.std"], 1e-3)
    save_file(stats, str(stats_file))
    shifted = registry.create_policy("xvla", weights=str(folder), device="cpu")
    try:
        assert np.allclose(shifted.batch_infer([obs]), 10.0, atol=0.05)
    finally:
        shifted.close()


def one_line_error(registry, match: str, **options) -> str:
    with pytest.raises(PluginError, match=match) as err:
        registry.create_policy("xvla", device="cpu", **options)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_bad_checkpoints_say_what_is_wrong(registry, checkpoint, tmp_path, monkeypatch):
    one_line_error(registry, "X-VLA: no checkpoint ships with VLAScope; give a checkpoint")
    other = tmp_path / "act"  # a folder holding another LeRobot family
    other.mkdir()
    cfg = json.loads((checkpoint / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "type": "act"}))
    shutil.copy(checkpoint / "model.safetensors", other)
    one_line_error(registry, "X-VLA: .* holds a LeRobot 'act' policy, not xvla",
                   weights=str(other))
    bare = tmp_path / "no-tokenizer"
    shutil.copytree(checkpoint, bare)
    shutil.rmtree(bare / "tokenizer")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # the child's too
    one_line_error(registry, "tokenizer 'facebook/bart-large' is not on this machine.*"
                   "tokenizer=DIR", weights=str(bare))
    one_line_error(registry, "tokenizer=.* is not a folder", weights=str(bare),
                   tokenizer=str(tmp_path / "none"))
    (bare / "policy_postprocessor.json").unlink()
    one_line_error(registry, "has no policy_postprocessor.json", weights=str(bare))
