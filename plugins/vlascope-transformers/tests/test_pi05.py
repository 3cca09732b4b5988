"""pi0.5 on transformers' native classes: a tiny random-weight checkpoint written by its own
``save_pretrained`` and loaded through the public plugin loader, as a real one is."""

import json
import os
import subprocess
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from vlascope_transformers.tiny import write_tiny_pi05  # noqa: E402

from vlascope.adapters.conformance import check_adapter  # noqa: E402
from vlascope.adapters.layer_agreement import layer_outputs_feed_the_next  # noqa: E402
from vlascope.core.errors import ObservationError, PluginError  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.scenes.tabletop.scene import TabletopScene  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover(plugin_dirs=[])


@pytest.fixture(scope="module")
def obs():
    scene = TabletopScene(image_size=(48, 48))
    scene.reset(scene.tasks()[0].name, 0)
    yield scene.observe(cameras=("front", "wrist")).observation
    scene.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_pi05(tmp_path_factory.mktemp("pi05") / "ckpt")


def test_pi05_conforms(registry, obs, folder):
    """Chunk shape, every hook point fires, a mean-replaced visual token moves the action,
    common noise repeats, pixel and token ISS run, an SAE trains on captured activations."""
    policy = registry.create_policy("pi05", weights=str(folder), device="cpu")
    rep = check_adapter(policy, obs)
    assert rep.chunk_shape == (2, 8, 4)
    assert rep.visual_tokens == {"front": 16, "wrist": 16}
    layout = policy.visual_token_layout()
    front, wrist = layout["front"]["positions"], layout["wrist"]["positions"]
    assert front == list(range(16)) and wrist == list(range(16, 32))
    assert layout["front"]["grid"] == (4, 4)
    assert {"vlm.0.resid", "vlm.1.mlp", "vlm.1.attn", "expert.0.resid", "expert.1.mlp",
            "expert.1.attn", "vision.projector"} <= set(rep.hooks_fired)
    assert rep.token_edit_effect > 1e-6
    assert rep.iss_maps == {"front": (48, 48), "wrist": (48, 48)}
    assert rep.norm_hook == "vlm.1.resid"  # the VLM's last layer, not the action expert's
    assert np.isfinite(rep.sae_fve)
    groups = policy.token_groups("vlm.0.resid")
    assert groups["visual"] == front + wrist and len(groups["state"]) == 4
    assert not set(groups["state"]) & set(groups["language"])
    assert policy.token_groups("expert.0.resid") == {}  # the expert holds the actions only



def test_atlas_layer_outputs_are_our_next_resid_points(registry, obs, folder):
    """sae/atlas_format maps Action Atlas's ``paligemma_L{i}`` / ``expert_L{i}`` (a decoder
    layer's output) to our ``vlm.{i+1}.resid`` / ``expert.{i+1}.resid``. Measured on
    transformers' pi0.5 classes (ours; theirs hook LeRobot's): a forward hook on layer i
    and our point see the same numbers at every call (the expert's at every step)."""
    policy = registry.create_policy("pi05", weights=str(folder), device="cpu")
    inner = policy.model.model
    for stack, layers in (("vlm", inner.vlm.language_model.layers),
                          ("expert", inner.dit.layers)):
        gaps = layer_outputs_feed_the_next(policy, obs, stack, layers)
        assert gaps and all(v == 0.0 for v in gaps.values()), (stack, gaps)

def test_state_is_written_into_the_prompt(registry, obs, tmp_path):
    """LeRobot's mapping: quantiles to [-1, 1], zero-padded to max_state_dim, 256 bins, the
    bins as words of the prompt; a different state is a different prompt and action."""
    folder = write_tiny_pi05(tmp_path / "p", state_dim=2, action_dim=4)
    cfg = json.loads((folder / "processor_config.json").read_text())
    cfg["state_q01"], cfg["state_q99"] = [0.0, -2.0], [2.0, 2.0]
    (folder / "processor_config.json").write_text(json.dumps(cfg))
    policy = registry.create_policy("pi05", weights=str(folder), device="cpu")
    assert policy.state_dim == 2 and policy.max_state_dim == 4
    # 1.0 -> 0.0 -> bin 128; 4.0 -> 2.0 -> above the range, the last bin; padding -> 128
    prompt = policy._prompt(["put_the cube\n"], torch.tensor([[1.0, 4.0]]))
    words = policy.tokenizer.convert_ids_to_tokens(prompt["input_ids"][0].tolist())
    text = " ".join(w for w in words if w not in ("<image>", "<pad>"))
    assert text == "<bos> Task : put the cube , State : 128 255 128 128 ; Action :"
    assert [words[i] for i in prompt["state_positions"]] == ["128", "255", "128", "128"]
    moved = type(obs)(obs.images, np.asarray([1.9, -1.9], np.float32), obs.instruction)
    still = type(obs)(obs.images, np.asarray([0.1, 0.1], np.float32), obs.instruction)
    with policy.common_noise():
        assert not np.array_equal(policy.batch_infer([moved]), policy.batch_infer([still]))
    with pytest.raises(ObservationError, match="state of 2"):
        policy.batch_infer([obs])


def test_actions_use_the_quantiles_and_cameras_are_chosen(registry, obs, tmp_path):
    folder = write_tiny_pi05(tmp_path / "p", cameras=("front",))
    policy = registry.create_policy("pi05", weights=str(folder), device="cpu",
                                    cameras="wrist")
    policy.batch_infer([obs])
    assert list(policy.visual_token_layout()) == ["wrist"]
    cfg = json.loads((folder / "processor_config.json").read_text())
    cfg["actions_q01"], cfg["actions_q99"] = [10.0] * 4, [10.002] * 4
    (folder / "processor_config.json").write_text(json.dumps(cfg))
    shifted = registry.create_policy("pi05", weights=str(folder), device="cpu")
    assert np.allclose(shifted.batch_infer([obs]), 10.0, atol=0.1)


def test_bad_pi05_checkpoints_say_what_is_wrong(registry, tmp_path):
    with pytest.raises(PluginError, match="give a checkpoint folder"):
        registry.create_policy("pi05")
    folder = write_tiny_pi05(tmp_path / "p")
    cfg = json.loads((folder / "processor_config.json").read_text())
    cfg["state_q01"] = cfg["state_q99"] = None
    (folder / "processor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(PluginError, match="no state statistics"):
        registry.create_policy("pi05", weights=str(folder))


@pytest.mark.slow
def test_cli_records_a_pi05_rollout(folder, tmp_path):
    """`vlascope record --policy pi05 --weights DIR` on the built-in tabletop (ISS on pi0.5
    runs in-process in test_pi05_conforms; `vlascope iss` is the same for every adapter)."""
    from vlascope.core.episode import Episode

    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": ""}
    cli = [sys.executable, "-m", "vlascope.cli"]
    policy = ["--policy", "pi05", "--weights", str(folder), "--policy-option",
              "n_action_steps=2"]
    ep = tmp_path / "ep.h5"
    run = subprocess.run([*cli, "record", *policy, "--task", "pick_red", "--max-steps", "4",
                          "--out", str(ep)], capture_output=True, text=True, timeout=600,
                         env=env)
    assert run.returncode == 0, run.stderr
    e = Episode(ep)
    try:
        assert e.metadata["policy"]["id"] == f"pi05:{folder}"
        assert e.n_steps == 4
        assert np.all(np.isfinite(e.actions()))
    finally:
        e.close()
