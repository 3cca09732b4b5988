"""GR00T N1.5 (LeRobot 0.4.4) on a tiny random-weight checkpoint written by GR00T's and
LeRobot's own save_pretrained in the "lerobot" environment, loaded through its entry point:
the app never imports it, ``create_policy("groot")`` serves it from that environment."""

import json
import os
import shutil

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vlascope.adapters.conformance import check_adapter  # noqa: E402
from vlascope.core.errors import PluginError  # noqa: E402
from vlascope.core.hook_ops import AddVector, At, Capture  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.scenes.tabletop.scene import TabletopScene  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, in_lerobot_env):
    out = tmp_path_factory.mktemp("groot") / "ckpt"
    in_lerobot_env("-m", "vlascope_lerobot.groot_build", str(out))
    return out


@pytest.fixture(scope="module")
def policy(registry, checkpoint):
    served = registry.create_policy("groot", weights=str(checkpoint), device="cpu")
    yield served
    served.close()


@pytest.fixture(scope="module")
def obs():
    scene = TabletopScene(image_size=(48, 48))
    scene.reset("pick_red", 0)
    yield scene.observe(cameras=("front", "wrist")).observation
    scene.close()


def test_served_groot_conforms(policy, obs):
    assert policy.environment == "lerobot"
    rep = check_adapter(policy, obs)
    assert rep.chunk_shape == (2, 16, 4)  # GR00T's 16-step horizon, the scene's 4 numbers
    assert rep.visual_tokens == {"front": 16, "wrist": 16}  # (56 px / patch 14) squared
    layout = policy.visual_token_layout()
    assert layout["front"]["grid"] == (4, 4)
    visual = layout["front"]["positions"] + layout["wrist"]["positions"]
    groups = policy.token_groups("vlm.1.resid")
    assert groups["visual"] == visual and min(groups["language"]) > max(visual)
    assert policy.token_groups("vlsa.0.mlp")["visual"] == visual
    assert policy.token_groups("expert.2.attn") == {
        "state": [0], "future": [1, 2, 3, 4], "action": list(range(5, 21))}
    assert {"vision.connector", "vlm.1.mlp", "vlsa.1.attn", "expert.3.resid"} \
        <= set(rep.hooks_fired)
    assert rep.token_edit_effect > 1e-6
    assert rep.norm_hook == "vlsa.1.resid"  # the last stream that still holds the image



def test_action_atlas_layers_read_what_our_hook_points_read(checkpoint, in_lerobot_env):
    """Action Atlas's GR00T collector hooks each Eagle LM layer, VL self-attention block
    and DiT block's output (their groot_common paths, N1.5); sae/atlas_format maps
    ``{group}_L{i}`` to our ``{stack}.{i+1}.resid``. On the model itself, in its
    environment: the same numbers at every call (the DiT's at every denoising step)."""
    code = f"""
import json
import numpy as np
from vlascope.adapters.layer_agreement import layer_outputs_feed_the_next
from vlascope.core.policy import Observation
from vlascope_lerobot.groot import GrootAdapter
p = GrootAdapter(weights={str(checkpoint)!r}, device="cpu")
model = p.policy._groot_model
head = model.action_head
img = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
obs = Observation(images={{"front": img, "wrist": img[::-1]}}, state=np.ones(4, np.float32),
                  instruction="pick up the red cube")
dit = getattr(head, "diffusion_model", None) or head.model
groups = {{"vlm": model.backbone.eagle_model.language_model.model.layers,
          "vlsa": head.vl_self_attention.transformer_blocks, "expert": dit.transformer_blocks}}
print(json.dumps({{stack: layer_outputs_feed_the_next(p, obs, stack, layers)
                  for stack, layers in groups.items()}}))
"""
    gaps = json.loads(in_lerobot_env("-c", code).strip().splitlines()[-1])
    assert set(gaps) == {"vlm", "vlsa", "expert"}
    for stack, per_layer in gaps.items():
        assert per_layer and all(v == 0.0 for v in per_layer.values()), (stack, per_layer)

def test_noise_stream_advances_and_replays(policy, obs):
    policy.reset()
    first = policy.batch_infer([obs])
    assert not np.array_equal(first, policy.batch_infer([obs]))
    policy.reset()
    assert np.array_equal(first, policy.batch_infer([obs]))


def test_steering_the_state_token_in_the_dit(policy, obs):
    """The expert's token groups address its sequence: a push on the state token's MLP
    output in one DiT block reaches the action tokens through the blocks after it."""
    grab = Capture(rows=1)
    state = tuple(policy.token_groups("expert.1.mlp")["state"])
    with policy.common_noise():
        with policy.hook("expert.1.mlp", grab):
            base = policy.batch_infer([obs])
        # not a constant: the next block's LayerNorm would remove it
        push = 3 * np.random.default_rng(0).standard_normal(grab.values[0].shape[-1])
        push = push.astype(np.float32)
        with policy.hook("expert.1.mlp", At(AddVector(push, state), 0)):
            steered = policy.batch_infer([obs])
    assert grab.values[0].shape[1] == 1 + 4 + 16  # state, future tokens, actions
    assert np.abs(steered - base).max() > 1e-4


def test_statistics_come_from_the_checkpoint_and_its_python_never_runs(
        registry, checkpoint, obs, tmp_path):
    """The postprocessor's min/max un-normalise every step of the chunk: narrow them
    around 10 and the actions follow. Python files in the Eagle folder, even under the
    vendored modules' names its auto_map uses, are never imported."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "shifted"
    shutil.copytree(checkpoint, folder)
    (stats_file,) = folder.glob("policy_postprocessor_step_*.safetensors")
    stats = load_file(str(stats_file))
    stats["action.min"] = torch.full_like(stats["action.min"], 10.0)
    stats["action.max"] = torch.full_like(stats["action.max"], 10.001)
    save_file(stats, str(stats_file))
    ran = tmp_path / "ran"
    for name in ("configuration_eagle2_5_vl.py", "modeling_eagle2_5_vl.py",
                 "processing_eagle2_5_vl.py", "image_processing_eagle2_5_vl_fast.py"):
        (folder / "eagle" / name).write_text(f"open({str(ran)!r}, 'w').write({name!r})\n")
    shifted = registry.create_policy("groot", weights=str(folder), device="cpu", num_steps=1)
    try:
        assert np.allclose(shifted.batch_infer([obs]), 10.0, atol=0.05)
    finally:
        shifted.close()
    assert not ran.exists()


def test_published_configuration_counts_without_allocating(in_lerobot_env):
    """GR00T-N1.5-3B as published, built on the meta device by GR00T's own classes."""
    found = json.loads(in_lerobot_env("-m", "vlascope_lerobot.groot_build", "--count",
                                      "--size", "published").strip().splitlines()[-1])
    text, vision = found["eagle"]["text_config"], found["eagle"]["vision_config"]
    assert (text["hidden_size"], text["num_hidden_layers"]) == (2048, 28)
    assert text["vocab_size"] == 151680
    assert (vision["hidden_size"], vision["num_hidden_layers"]) == (1152, 27)
    assert found["gr00t"]["backbone_cfg"]["select_layer"] == 12  # Qwen3 runs 12 of 28 layers
    assert found["gr00t"]["action_head_cfg"]["diffusion_model_cfg"]["num_layers"] == 16
    # SigLIP ~0.41 B + 12 Qwen3 layers with embeddings ~0.92 B + the action head ~1.08 B
    assert 2.3e9 < found["parameters"] < 2.5e9


def _one_line(registry, **options) -> str:
    with pytest.raises(PluginError) as caught:
        registry.create_policy("groot", **options)
    message = str(caught.value)
    assert "\n" not in message and "environment 'lerobot'" in message
    return message


def test_what_a_user_gets_wrong_comes_back_as_one_line(registry, checkpoint, tmp_path,
                                                       monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no base model cached anywhere
    assert "give a checkpoint folder" in _one_line(registry)
    no_base = tmp_path / "no-base"
    shutil.copytree(checkpoint, no_base, ignore=shutil.ignore_patterns("base"))
    message = _one_line(registry, weights=str(no_base))
    assert "nvidia/GR00T-N1.5-3B" in message and "base_model=DIR" in message \
        and str(no_base / "base") in message
    other = tmp_path / "smolvla"
    shutil.copytree(checkpoint, other, ignore=shutil.ignore_patterns("base", "eagle"))
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "type": "smolvla"}))
    assert "holds a LeRobot 'smolvla' policy, not groot" in _one_line(registry,
                                                                       weights=str(other))
    foreign = tmp_path / "foreign-code"
    shutil.copytree(checkpoint, foreign)
    cfg = json.loads((foreign / "eagle" / "config.json").read_text())
    cfg["auto_map"]["AutoModel"] = "my_eagle.MyEagle"
    (foreign / "eagle" / "config.json").write_text(json.dumps(cfg))
    message = _one_line(registry, weights=str(foreign))
    assert "'my_eagle.MyEagle'" in message and "never a folder's own" in message
