"""The transformers adapters on tiny random-weight checkpoints written by each family's own
``save_pretrained`` and loaded through the public plugin loader, as a real checkpoint is."""

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from vlascope_transformers.tiny import (  # noqa: E402
    write_tiny_pi0,
    write_tiny_pi05,
    write_tiny_vlm_head,
)

from vlascope.adapters.conformance import check_adapter  # noqa: E402
from vlascope.core.errors import ObservationError, PluginError  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.scenes.tabletop.scene import TabletopScene  # noqa: E402

FAMILIES = {"pi0": ("pi0", write_tiny_pi0, {}),
            "paligemma": ("vlm-head", write_tiny_vlm_head, {"family": "paligemma"}),
            "idefics3": ("vlm-head", write_tiny_vlm_head, {"family": "idefics3"})}
# image tokens per camera: pi0 and PaliGemma 32/8 squared; Idefics3 pixel-shuffles by 2
TOKENS = {"pi0": 16, "paligemma": 16, "idefics3": 4}


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover(plugin_dirs=[])


@pytest.fixture(scope="module")
def obs():
    scene = TabletopScene(image_size=(48, 48))
    scene.reset(scene.tasks()[0].name, 0)
    yield scene.observe(cameras=("front", "wrist")).observation
    scene.close()


@pytest.fixture(scope="module", params=list(FAMILIES))
def checkpoint(request, tmp_path_factory):
    name, write, kwargs = FAMILIES[request.param]
    folder = write(tmp_path_factory.mktemp(request.param) / "ckpt", **kwargs)
    return request.param, name, folder


def test_adapter_conforms(registry, obs, checkpoint):
    family, name, folder = checkpoint
    policy = registry.create_policy(name, weights=str(folder), device="cpu")
    rep = check_adapter(policy, obs)
    assert rep.chunk_shape == (2, 8, 4)
    assert rep.visual_tokens == {"front": TOKENS[family], "wrist": TOKENS[family]}
    layout = policy.visual_token_layout()
    # the cameras' tokens are consecutive, front before wrist, and the groups agree
    front, wrist = layout["front"]["positions"], layout["wrist"]["positions"]
    assert front == list(range(front[0], front[0] + TOKENS[family]))
    assert wrist[0] > front[-1]
    assert policy.token_groups("vlm.0.resid")["visual"] == front + wrist
    assert policy.token_groups("tokens.visual") == {}
    assert {"vlm.0.resid", "vlm.1.mlp", "vlm.1.attn"} <= set(rep.hooks_fired)
    if family == "pi0":
        assert {"expert.0.resid", "expert.1.mlp"} <= set(rep.hooks_fired)
    assert rep.token_edit_effect > 1e-6
    assert rep.norm_hook == "vlm.1.resid"  # the VLM's last layer, not the action expert's


def test_the_whole_instruction_follows_the_images(registry, tmp_path):
    """pi0's max_length is the text's budget after the image tokens (pi0.5's too, with its
    state in the text): three cameras' images must not crowd the instruction out."""
    folder = write_tiny_pi0(tmp_path / "pi0", cameras=("a", "b", "c"))
    policy = registry.create_policy("pi0", weights=str(folder), device="cpu")
    instruction = "stack the red cube on the blue cube, then push the green bowl left"
    ids = policy._prompt([instruction])["input_ids"][0].tolist()
    text = policy.tokenizer(instruction, add_special_tokens=False)["input_ids"]
    n_img = policy.tokens_per_image * 3
    assert ids[:n_img] == [policy.image_token_id] * n_img
    after = ids[n_img:]
    assert any(after[i:i + len(text)] == text for i in range(len(after) - len(text) + 1))


@pytest.mark.parametrize("name, write", [("pi0", write_tiny_pi0), ("pi05", write_tiny_pi05)])
def test_flow_noise_is_seeded(registry, obs, tmp_path, name, write):
    folder = write(tmp_path / name)
    a = registry.create_policy(name, weights=str(folder), device="cpu", seed=1)
    b = registry.create_policy(name, weights=str(folder), device="cpu", seed=1)
    c = registry.create_policy(name, weights=str(folder), device="cpu", seed=2)
    first = a.batch_infer([obs])
    assert np.array_equal(first, b.batch_infer([obs]))  # same seed, same episode stream
    assert not np.array_equal(first, c.batch_infer([obs]))
    assert not np.array_equal(first, a.batch_infer([obs]))  # the stream moves on
    with a.common_noise():
        x, y = a.batch_infer([obs]), a.batch_infer([obs])
    assert np.array_equal(x, y)


def test_residual_replacement_steers_the_action(registry, obs, tmp_path):
    """A hook that adds to a VLM layer's residual stream changes what comes out (the hook
    edits the layer's input, not a copy)."""
    folder = write_tiny_vlm_head(tmp_path / "pg", "paligemma")
    policy = registry.create_policy("vlm-head", weights=str(folder), device="cpu")
    base = policy.batch_infer([obs])
    with policy.hook("vlm.1.resid", lambda x: x + 5.0):
        steered = policy.batch_infer([obs])
    assert np.abs(steered - base).max() > 1e-4


def test_state_normalisation_and_camera_choice(registry, obs, tmp_path):
    folder = write_tiny_pi0(tmp_path / "pi0", cameras=("front",))
    cfg = json.loads((folder / "processor_config.json").read_text())
    policy = registry.create_policy("pi0", weights=str(folder), device="cpu")
    assert policy.cameras == ("front",) and policy.state_dim == 4
    policy.batch_infer([obs])
    assert list(policy.visual_token_layout()) == ["front"]
    # the user maps another scene camera onto the model's image input
    other = registry.create_policy("pi0", weights=str(folder), device="cpu", cameras="wrist")
    other.batch_infer([obs])
    assert list(other.visual_token_layout()) == ["wrist"]
    # actions are un-normalised with the checkpoint's statistics
    cfg["actions_mean"], cfg["actions_std"] = [10.0] * 4, [1e-3] * 4
    (folder / "processor_config.json").write_text(json.dumps(cfg))
    shifted = registry.create_policy("pi0", weights=str(folder), device="cpu")
    assert np.allclose(shifted.batch_infer([obs]), 10.0, atol=0.1)


def test_bad_checkpoints_say_what_is_wrong(registry, obs, tmp_path):
    with pytest.raises(PluginError, match="give a checkpoint folder"):
        registry.create_policy("pi0")
    with pytest.raises(PluginError, match="does not exist"):
        registry.create_policy("pi0", weights=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PluginError, match="missing config.json"):
        registry.create_policy("vlm-head", weights=str(tmp_path / "empty"))
    folder = write_tiny_vlm_head(tmp_path / "pg", "paligemma")
    spec = json.loads((folder / "vlascope_head.json").read_text())
    (folder / "vlascope_head.json").write_text(json.dumps({**spec, "hidden": 17}))
    with pytest.raises(PluginError, match=r"does not match vlascope_head.json: net.1.weight"):
        registry.create_policy("vlm-head", weights=str(folder))
    (folder / "vlascope_head.json").write_text("{not json")
    with pytest.raises(PluginError, match="cannot read"):
        registry.create_policy("vlm-head", weights=str(folder))
    pi0 = registry.create_policy("pi0", weights=str(write_tiny_pi0(tmp_path / "p")))
    with pytest.raises(ObservationError, match="state of 4"):
        pi0.batch_infer([type(obs)(obs.images, np.zeros(7, np.float32), "x")])
    with pytest.raises(ObservationError, match="camera"):
        pi0.batch_infer([type(obs)({"front": obs.images["front"]}, obs.state, "x")])


@pytest.mark.slow
def test_cli_records_and_explains_with_an_adapter(tmp_path):
    """`vlascope record` and `vlascope iss --method token-iss` on a tiny pi0, with the
    cameras and the steps per chunk given as --policy-option."""
    import subprocess
    import sys

    from vlascope.core.episode import Episode

    folder = write_tiny_pi0(tmp_path / "pi0")
    cli = [sys.executable, "-m", "vlascope.cli"]
    policy = ["--policy", "pi0", "--weights", str(folder), "--policy-option",
              "cameras=front,wrist", "--policy-option", "n_action_steps=2"]
    ep = tmp_path / "ep.h5"
    run = subprocess.run([*cli, "record", *policy, "--task", "pick_red", "--max-steps", "5",
                          "--out", str(ep)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([*cli, "iss", str(ep), "--method", "token-iss", "--n", "8",
                          *policy[:4]], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    e = Episode(ep)
    try:
        assert e.metadata["policy"]["id"] == f"pi0:{folder}"
        assert e.n_steps == 5
        assert any(m.startswith("token-iss") for m in e.saliency_methods())
        assert e.saliency(e.saliency_methods()[0], "front", 0).shape == (224, 224)
    finally:
        e.close()
    bad = subprocess.run([*cli, "record", *policy[:4], "--policy-option", "cameras",
                          "--out", str(tmp_path / "x.h5")], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_precision_choice(registry, obs, tmp_path):
    """float32 on the CPU by default; half precision when asked (on CUDA 'auto' picks it)."""
    import torch

    from vlascope.adapters.base import pick_dtype
    from vlascope.core.errors import VLAScopeError

    assert pick_dtype(torch.device("cpu")) == torch.float32
    with pytest.raises(VLAScopeError, match="unknown dtype"):
        pick_dtype(torch.device("cpu"), "float8")
    folder = write_tiny_pi0(tmp_path / "pi0")
    half = registry.create_policy("pi0", weights=str(folder), device="cpu", dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    full = registry.create_policy("pi0", weights=str(folder), device="cpu")
    with half.common_noise(), full.common_noise():
        a, b = half.batch_infer([obs]), full.batch_infer([obs])
    assert a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.abs(a - b).max() < 0.25 * (np.abs(b).max() + 1)  # same model, coarser numbers


@pytest.mark.parametrize("family", ["paligemma", "idefics3"])
def test_attention_baselines_run_on_a_vlm(registry, obs, tmp_path, family):
    """The VLM adapter returns every language-model layer's attention (eager for that call
    only) and where the head reads, so the attention-rollout baseline runs unchanged."""
    from vlascope.core.saliency.baselines import attention_saliency

    folder = write_tiny_vlm_head(tmp_path / family, family)
    policy = registry.create_policy("vlm-head", weights=str(folder), device="cpu")
    attn = policy.attention_maps([obs])
    n = policy.visual_token_layout()["wrist"]["positions"][-1] + 1
    assert len(attn) == 2 and attn[0].shape[:2] == (1, 2) and attn[0].shape[-1] >= n
    assert torch.allclose(attn[0].sum(-1), torch.ones(1), atol=1e-4)  # rows are softmaxes
    assert policy.model.config._attn_implementation != "eager"  # restored afterwards
    for mode in ("rollout", "last"):
        maps = attention_saliency(policy, obs, mode)
        assert set(maps.maps) == {"front", "wrist"} and np.ptp(maps.maps["front"]) > 0


def test_an_old_transformers_is_named(registry, tmp_path, monkeypatch):
    import transformers

    folder = write_tiny_pi0(tmp_path / "pi0")
    monkeypatch.setattr(transformers, "__version__", "4.57.1")
    with pytest.raises(PluginError, match="needs transformers >= 5.0.*4.57.1"):
        registry.create_policy("pi0", weights=str(folder))
