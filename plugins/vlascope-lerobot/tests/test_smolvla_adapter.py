"""The SmolVLA adapter on a tiny random-weight checkpoint written by LeRobot's own
save_pretrained and processor pipelines, loaded through the public plugin loader."""

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from vlascope_lerobot.tiny import write_tiny_smolvla  # noqa: E402

from vlascope.adapters.conformance import check_adapter  # noqa: E402
from vlascope.core.capture import ActivationCapture  # noqa: E402
from vlascope.core.errors import PluginError, VLAScopeError  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.scenes.tabletop.scene import TabletopScene  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover(plugin_dirs=[])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_smolvla(tmp_path_factory.mktemp("smolvla") / "ckpt")


@pytest.fixture(scope="module")
def policy(registry, checkpoint):
    return registry.create_policy("smolvla", weights=str(checkpoint), device="cpu")


@pytest.fixture(scope="module")
def obs():
    scene = TabletopScene(image_size=(48, 48))
    scene.reset("pick_red", 0)
    yield scene.observe(cameras=("front", "wrist")).observation
    scene.close()


def test_smolvla_conforms(policy, obs):
    rep = check_adapter(policy, obs)
    assert rep.chunk_shape == (2, 8, 4)
    assert rep.visual_tokens == {"front": 64, "wrist": 64}  # (64 px / patch 8) squared
    assert policy.visual_token_layout()["front"]["grid"] == (8, 8)
    groups = policy.token_groups("vlm.0.resid")
    assert groups["visual"] == list(range(128))
    assert groups["state"] == [groups["language"][-1] + 1]  # the state token comes last
    assert {f"vlm.{i}.mlp" for i in range(4)} | {f"expert.{i}.attn" for i in range(4)} \
        <= set(rep.hooks_fired)
    assert rep.token_edit_effect > 1e-6
    assert rep.norm_hook == "vlm.3.resid"


def test_captured_outputs_are_not_overwritten(policy, obs):
    """LeRobot adds the residual into o_proj's and mlp's outputs in place; what a hook
    captured must stay the module's own output."""
    layer = policy.policy.model.vlm_with_expert.get_vlm_model().text_model.layers[1]
    direct = []
    handle = layer.mlp.register_forward_hook(lambda m, i, o: direct.append(o.clone()))
    capture = ActivationCapture(policy, ["vlm.1.mlp"])
    try:
        with policy.common_noise(), capture.hooks():
            policy.batch_infer([obs])
    finally:
        handle.remove()
    np.testing.assert_allclose(capture.last["vlm.1.mlp"], direct[0][0].numpy(), atol=1e-6)


def test_residual_is_read_only_and_mlp_steers(policy, obs):
    with policy.common_noise():
        base = policy.batch_infer([obs])
        with pytest.raises(VLAScopeError, match="read but not replaced"), \
                policy.hook("vlm.1.resid", lambda x: x + 1.0):
            policy.batch_infer([obs])
        with policy.hook("vlm.1.mlp", lambda x: x + 3.0):
            steered = policy.batch_infer([obs])
    assert np.abs(steered - base).max() > 1e-4


def test_flow_noise_is_seeded(registry, checkpoint, obs):
    a = registry.create_policy("smolvla", weights=str(checkpoint), seed=3)
    b = registry.create_policy("smolvla", weights=str(checkpoint), seed=3)
    first = a.batch_infer([obs])
    assert np.array_equal(first, b.batch_infer([obs]))
    assert not np.array_equal(first, a.batch_infer([obs]))
    a.reset()
    assert np.array_equal(first, a.batch_infer([obs]))


def test_statistics_come_from_the_checkpoint(registry, checkpoint, obs, tmp_path):
    """The postprocessor's statistics un-normalise the actions: shift them and the actions
    follow."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "shifted"
    shutil.copytree(checkpoint, folder)
    (stats_file,) = folder.glob("policy_postprocessor_step_*.safetensors")
    stats = load_file(str(stats_file))
    stats["action.mean"] = torch.full_like(stats["action.mean"], 10.0)
    stats["action.std"] = torch.full_like(stats["action.std"], 1e-3)
    save_file(stats, str(stats_file))
    shifted = registry.create_policy("smolvla", weights=str(folder))
    assert np.allclose(shifted.batch_infer([obs]), 10.0, atol=0.05)


def test_bad_checkpoints_say_what_is_wrong(registry, checkpoint, tmp_path):
    import shutil

    with pytest.raises(PluginError, match="give a checkpoint folder"):
        registry.create_policy("smolvla")
    folder = tmp_path / "no-vlm"
    shutil.copytree(checkpoint, folder)
    shutil.rmtree(folder / "vlm")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["vlm_model_name"] = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PluginError, match="not on this machine.*vlm=DIR"):
        registry.create_policy("smolvla", weights=str(folder))
    with pytest.raises(PluginError, match="is not a folder"):
        registry.create_policy("smolvla", weights=str(folder), vlm=str(tmp_path / "none"))
    # the VLM given explicitly
    registry.create_policy("smolvla", weights=str(folder), vlm=str(checkpoint / "vlm"))
    (folder / "policy_preprocessor.json").unlink()
    with pytest.raises(PluginError, match="no policy_preprocessor.json"):
        registry.create_policy("smolvla", weights=str(folder))
    other = tmp_path / "act"
    shutil.copytree(checkpoint, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "type": "act"}))
    with pytest.raises(PluginError, match="not smolvla|not a LeRobot policy config"):
        registry.create_policy("smolvla", weights=str(other))
    with pytest.raises(PluginError, match="takes 2 image"):
        registry.create_policy("smolvla", weights=str(checkpoint), cameras="front")


def test_wrong_lerobot_version_is_named(monkeypatch):
    import lerobot
    from vlascope_lerobot.compat import import_smolvla

    monkeypatch.setattr(lerobot, "__version__", "0.5.1", raising=False)
    with pytest.raises(PluginError, match="written for LeRobot 0.4.x.*0.5.1"):
        import_smolvla()
