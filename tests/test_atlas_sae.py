"""Action Atlas SAE checkpoints (github.com/CWRU-AISM/action-atlas): files written here as
their ``experiments/train_sae.py`` writes them (a ``torch.save`` dict of ``sae_state_dict``
of two ``nn.Linear``, ``activation_mean``/``activation_std``, ``config``, ``history``,
``best_loss``), and their encoder and edits computed here from their published formulas,
independently of our SAE code:

    xn = (x - mean) / (std + 1e-8);  pre = xn @ encoder.weight.T + encoder.bias
    z = topk(pre, k) scattered into zeros (signed: no ReLU);  dec(z) = z @ decoder.weight.T + b
    edit: x + (dec(z') - dec(z)) * (std + 1e-8), z'[f] = 0 (ablation), z'[f] *= 1 + s (steering)
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vlascope.core.errors import OutputExistsError, VLAScopeError
from vlascope.core.interventions import AblateFeatures, Steer
from vlascope.core.sae import SAE, SAEConfig, export_atlas, load_sae, save_sae
from vlascope.core.sae.atlas_format import (
    AtlasFormatError,
    atlas_checkpoint,
    atlas_hook_point,
    atlas_hook_points,
)
from vlascope.core.sae.model import SAEMismatchError

EPS = 1e-8


def atlas_dict(d=480, h=3840, k=64, seed=0, bias=-2.4, n=20_000, std_low=1e-3):
    """A checkpoint as theirs is, with random weights: SmolVLA expert width, 8x, k=64.
    A negative encoder bias makes some of the k largest pre-activations negative."""
    g = torch.Generator().manual_seed(seed)
    enc = torch.randn(h, d, generator=g) / d ** 0.5
    return {
        "sae_state_dict": {
            "encoder.weight": enc,
            "encoder.bias": torch.randn(h, generator=g) * 0.3 + bias,
            "decoder.weight": enc.t().contiguous() + 0.01 * torch.randn(d, h, generator=g),
            "decoder.bias": torch.randn(d, generator=g) * 0.1},
        "activation_mean": torch.randn(d, generator=g),
        "activation_std": (torch.rand(d, generator=g) * 2 + std_low).clamp(min=1e-8),
        "config": {"input_dim": d, "hidden_dim": h, "expansion": h / d, "k": k,
                   "n_samples": n},
        "history": [{"epoch": 0, "loss": 0.4, "explained_var": 0.6, "dead_features_frac": 0.2,
                     "l0": float(k)},
                    {"epoch": 1, "loss": 0.3, "explained_var": 0.7, "dead_features_frac": 0.1,
                     "l0": float(k)}],
        "best_loss": 0.3,
    }


def write(ckpt, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, folder / "sae_best.pt")
    return folder / "sae_best.pt"


def their_encode(ckpt, x):
    sd = ckpt["sae_state_dict"]
    mean = ckpt.get("activation_mean", torch.zeros(x.shape[-1]))
    std = ckpt.get("activation_std")
    xn = x - mean if std is None else (x - mean) / (std + EPS)
    pre = xn @ sd["encoder.weight"].T + sd["encoder.bias"]
    vals, idx = torch.topk(pre, ckpt["config"]["k"], dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, vals)


def their_edit(ckpt, x, edit):
    """Their per-token hook: encode, edit the codes, move x by the decoded difference."""
    sd = ckpt["sae_state_dict"]
    z = their_encode(ckpt, x)
    z2 = edit(z.clone())

    def dec(c):
        return c @ sd["decoder.weight"].T + sd["decoder.bias"]

    return x + (dec(z2) - dec(z)) * (ckpt["activation_std"] + EPS)


@pytest.fixture(scope="module")
def ckpt():
    return atlas_dict()


@pytest.fixture(scope="module")
def ckpt_file(ckpt, tmp_path_factory):
    return write(ckpt, tmp_path_factory.mktemp("atlas") / "expert_L3")


def activations(ckpt, n=512, seed=1):
    g = torch.Generator().manual_seed(seed)
    d = ckpt["config"]["input_dim"]
    return ckpt["activation_mean"] + torch.randn(n, d, generator=g) * ckpt["activation_std"]


# Encoding ---------------------------------------------------------------------------------
def test_codes_equal_their_encoder_including_negative_top_k(ckpt, ckpt_file):
    sae = load_sae(ckpt_file)
    assert (sae.cfg.kind, sae.cfg.k, sae.cfg.d_in, sae.cfg.d_sae) == ("topk_signed", 64, 480,
                                                                       3840)
    x = activations(ckpt)
    theirs = their_encode(ckpt, x)
    with torch.no_grad():
        ours = sae.encode(x)
    kept = theirs[theirs != 0]
    assert (kept < 0).sum() > 100, "the fixture must have negative top-k values"
    assert torch.equal(ours != 0, theirs != 0)  # the same k features per token
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    assert ((ours != 0).sum(-1) == 64).all()
    # our ReLU-TopK would lose every negative one: the signed kind is what makes it equal
    relu = SAE(SAEConfig(**{**sae.cfg.to_dict(), "kind": "topk"}))
    relu.load_state_dict(sae.state_dict())
    with torch.no_grad():
        assert not torch.equal(relu.encode(x) != 0, theirs != 0)
    # z-scoring divides by exactly their std + 1e-8
    assert torch.equal(sae.std, ckpt["activation_std"] + EPS)
    assert sae.report.fve == pytest.approx(0.7) and sae.report.samples == 20_000


def test_steering_and_ablation_edit_equal_theirs(ckpt, ckpt_file):
    x = activations(ckpt, n=64, seed=2).reshape(4, 16, -1)
    z = their_encode(ckpt, x.reshape(-1, x.shape[-1]))
    # a feature that is active, with negative values on some tokens
    f = int(((z < 0).sum(0) * 1000 + (z != 0).sum(0)).argmax())
    assert (z[:, f] < 0).any() and (z[:, f] != 0).sum() > 2
    layer = "expert.3.mlp"  # where their SmolVLA expert_L3 sits among our hook points

    def steer(c):
        c[..., f] *= 1.0 + 1.5
        return c

    def ablate(c):
        c[..., f] = 0
        return c

    edit = Steer(layer=layer, sae=str(ckpt_file), feature=f, alpha=1.5).make_edit(None)
    assert type(edit).__name__ == "SaeScale"
    got = edit.apply(x, 0)
    expected = their_edit(ckpt, x.reshape(-1, x.shape[-1]), steer).reshape(x.shape)
    assert (got - x).abs().max() > 1e-3  # it did move something
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    edit = AblateFeatures(layer=layer, sae=str(ckpt_file), features=(f,)).make_edit(None)
    got = edit.apply(x, 0)
    expected = their_edit(ckpt, x.reshape(-1, x.shape[-1]), ablate).reshape(x.shape)
    assert (got - x).abs().max() > 1e-3
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the edits travel to a remote policy as data and compute the same there
    from vlascope.core.hook_ops import op_from_wire

    steer_edit = Steer(layer=layer, sae=str(ckpt_file), feature=f, alpha=1.5).make_edit(None)
    torch.testing.assert_close(op_from_wire(steer_edit.to_wire()).apply(x, 0),
                               steer_edit.apply(x, 0))


# Round trips and export -------------------------------------------------------------------
def test_round_trip_ours_theirs_ours_is_exact(ckpt, ckpt_file, tmp_path):
    sae = load_sae(ckpt_file)
    path, warnings = export_atlas(sae, tmp_path / "out")
    assert warnings == [] and path == tmp_path / "out" / "expert_L3" / "sae_best.pt"
    back = load_sae(path)
    assert back.cfg == sae.cfg
    for name, t in sae.state_dict().items():
        assert torch.equal(back.state_dict()[name], t), name
    # what was written is their format, plain tensors and values only
    written = torch.load(path, weights_only=True)
    assert set(written) == {"sae_state_dict", "activation_mean", "activation_std", "config",
                            "history", "best_loss"}
    assert set(written["sae_state_dict"]) == {"encoder.weight", "encoder.bias",
                                              "decoder.weight", "decoder.bias"}
    assert written["config"] == {"input_dim": 480, "hidden_dim": 3840, "expansion": 8.0,
                                 "k": 64, "n_samples": 20_000}
    assert isinstance(written["config"]["expansion"], float)
    for key in ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"):
        assert torch.equal(written["sae_state_dict"][key], ckpt["sae_state_dict"][key]), key
    assert torch.equal(written["activation_std"] + EPS, ckpt["activation_std"] + EPS)
    assert written["best_loss"] == 0.3
    x = activations(ckpt, n=128, seed=3)
    assert torch.equal(their_encode(written, x), their_encode(ckpt, x))
    # saved in our format (the dock's "Save SAE as..."), it stays their SAE
    ours = load_sae(save_sae(sae, tmp_path / "ours"))
    assert ours.cfg == sae.cfg and ours.metadata["atlas"]["label"] == "expert_L3"
    assert all(torch.equal(ours.state_dict()[n], t) for n, t in sae.state_dict().items())


def test_round_trip_of_a_signed_sae_built_here(tmp_path):
    """Small stds where + 1e-8 changes the float32 bits: the export finds the value that
    gives our std back."""
    cfg = SAEConfig(d_in=64, expansion=4, kind="topk_signed", k=16, layer="trunk.1.resid",
                    steering="scale")
    sae = SAE(cfg)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, sae.mean):
            p.copy_(torch.randn(p.shape, generator=g))
        sae.std.copy_(torch.rand(64, generator=g) * 1e-3 + 1e-6)
    path, _ = export_atlas(sae, tmp_path)
    assert path == tmp_path / "trunk.1.resid" / "sae_best.pt"
    back = load_sae(path)  # a folder named as our hook point needs no --layer
    assert back.cfg.layer == "trunk.1.resid"
    with pytest.raises(SAEMismatchError, match="not of 'trunk.2.resid'"):
        load_sae(path, layer="trunk.2.resid")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "mean", "std"):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name


def test_relu_saes_are_not_exported_silently(sae_dir, tmp_path):
    sae = load_sae(sae_dir)  # a ReLU-TopK SAE trained here
    with pytest.raises(VLAScopeError, match="allow-inexact"):
        export_atlas(sae, tmp_path)
    assert not (tmp_path / "trunk.1.resid").exists()
    path, warnings = export_atlas(sae, tmp_path, allow_inexact=True)
    assert warnings and "differ" in warnings[0]
    back = load_sae(path, layer="trunk.1.resid")
    x = torch.randn(256, sae.cfg.d_in) * sae.std + sae.mean
    with torch.no_grad():  # equal where our ReLU kept all k, i.e. all k were positive
        a, b = sae.encode(x), back.encode(x)
        full = (a > 0).sum(-1) == sae.cfg.k
        torch.testing.assert_close(a[full], b[full], rtol=1e-4, atol=1e-4)
    l1 = SAE(SAEConfig(d_in=8, kind="relu"))
    with pytest.raises(VLAScopeError, match="TopK SAEs only"):
        atlas_checkpoint(l1, allow_inexact=True)


def test_export_never_replaces_a_file_unasked(ckpt_file, tmp_path):
    sae = load_sae(ckpt_file)
    target = tmp_path / "expert_L3" / "sae_best.pt"
    target.parent.mkdir()
    target.write_bytes(b"someone else's")
    with pytest.raises(OutputExistsError):
        export_atlas(sae, tmp_path)
    assert target.read_bytes() == b"someone else's"
    assert [p.name for p in target.parent.iterdir()] == ["sae_best.pt"]  # no partial left
    export_atlas(sae, tmp_path, overwrite=True)
    assert torch.equal(load_sae(target).W_enc, sae.W_enc)


# Variants ---------------------------------------------------------------------------------
def test_fallback_keys_and_mean_only_variant(ckpt, tmp_path):
    alt = {"model_state_dict": ckpt["sae_state_dict"], "act_mean": ckpt["activation_mean"],
           "act_std": ckpt["activation_std"], "config": {"k": 64}}
    sae = load_sae(write(alt, tmp_path / "vlm_L10"))
    assert sae.cfg.layer == "vlm.10.mlp"  # only SmolVLA has a 'vlm' group
    x = activations(ckpt, n=64)
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), their_encode(ckpt, x), rtol=1e-6, atol=1e-6)
    # MetaWorld's SmolVLA SAEs: <component>/layer_NN, centred on a mean only (a parameter
    # of their SAE module), a bare state dict
    state = {**ckpt["sae_state_dict"], "mean": ckpt["activation_mean"]}
    file = write(state, tmp_path / "expert" / "layer_03")
    sae = load_sae(file, policy="smolvla")
    assert sae.cfg.layer == "expert.3.mlp" and sae.cfg.k == 64
    assert torch.equal(sae.std, torch.ones(480))
    mean_only = {"sae_state_dict": ckpt["sae_state_dict"],
                 "activation_mean": ckpt["activation_mean"], "config": {"k": 64}}
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), their_encode(mean_only, x), rtol=1e-6,
                                   atol=1e-6)


def test_layer_names_map_to_our_hook_points(ckpt_file, tmp_path):
    assert atlas_hook_points("expert_L3") == {"smolvla": "expert.3.mlp",
                                              "pi05": "expert.4.resid"}
    assert atlas_hook_point("llm_L16", "openvla-oft") == "vlm.17.resid"
    assert atlas_hook_point("paligemma_L11", "pi0.5 (transformers)") == "vlm.12.resid"
    assert atlas_hook_point("transformer_L12", "X-VLA") == "expert.13.resid"
    assert atlas_hook_points("dit_L04") == {"groot": "expert.5.resid"}
    assert atlas_hook_point("eagle_lm_L08", "GR00T N1.5") == "vlm.9.resid"
    assert atlas_hook_point("eagle_L8", "groot") == "vlm.9.resid"
    assert atlas_hook_point("vl_sa_L01", "GR00T N1.5") == "vlsa.2.resid"
    assert atlas_hook_points("trunk.1.resid") == {} and atlas_hook_points("dit") == {}
    assert load_sae(ckpt_file).cfg.layer == "expert_L3"  # two families: not guessed
    assert load_sae(ckpt_file, policy="SmolVLA").cfg.layer == "expert.3.mlp"
    assert load_sae(ckpt_file, policy="pi05").cfg.layer == "expert.4.resid"
    assert load_sae(ckpt_file, layer="expert.3.mlp").cfg.layer == "expert.3.mlp"
    with pytest.raises(SAEMismatchError, match="expert_L3.*not of 'vlm.3.mlp'"):
        load_sae(ckpt_file, layer="vlm.3.mlp")
    with pytest.raises(SAEMismatchError, match="every token"):
        load_sae(ckpt_file, layer="expert.3.mlp", pooling="mean")
    sae = load_sae(ckpt_file)
    with pytest.raises(SAEMismatchError, match="size 480"):
        sae.encode(torch.zeros(2, 128))


# Refusals ---------------------------------------------------------------------------------


def _touch(path):
    Path(path).write_text("ran")


class Payload:
    """Unpickling this calls ``_touch``: what a hostile checkpoint could run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def test_pickled_objects_are_refused_without_running(ckpt, tmp_path):
    marker = tmp_path / "ran.txt"
    evil = {**ckpt, "config": {**ckpt["config"], "extra": Payload(str(marker))}}
    file = write(evil, tmp_path / "expert_L3")
    with pytest.raises(AtlasFormatError, match=r"sae_best\.pt holds pickled Python objects"):
        load_sae(file)
    with pytest.raises(AtlasFormatError):
        load_sae(file.parent)
    assert not marker.exists()
    torch.load(file, weights_only=False)  # the payload is real: a plain load runs it
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("change, message", [
    (lambda c: c["sae_state_dict"].pop("encoder.bias"), "missing key 'encoder.bias'"),
    (lambda c: c.pop("sae_state_dict"), "missing key 'sae_state_dict'"),
    (lambda c: c["sae_state_dict"].__setitem__("decoder.weight", torch.zeros(480, 100)),
     r"'decoder.weight' has shape \(480, 100\), expected \(480, 3840\)"),
    (lambda c: c["sae_state_dict"].__setitem__("encoder.weight", torch.zeros(3840)),
     "expected 2"),
    (lambda c: c.__setitem__("activation_mean", torch.zeros(479)),
     r"'activation_mean' has shape \(479,\), expected \(480,\)"),
    (lambda c: c["config"].__setitem__("hidden_dim", 4096), "config says hidden_dim=4096"),
    (lambda c: c["config"].__setitem__("k", 0), "k=0 outside"),
    (lambda c: c["sae_state_dict"].__setitem__("encoder.bias", torch.full((3840,), np.nan)),
     "non-finite"),
    (lambda c: c.__setitem__("activation_std", -torch.ones(480)), "cannot be negative"),
])
def test_bad_checkpoints_say_what_is_wrong(change, message, tmp_path):
    c = atlas_dict(d=480, h=3840, seed=3)
    change(c)
    file = write(c, tmp_path / "expert_L3")
    with pytest.raises(AtlasFormatError, match=message):
        load_sae(file)


def test_odd_expansions_and_corrupt_files(tmp_path):
    with pytest.raises(AtlasFormatError, match="not a multiple"):
        load_sae(write(atlas_dict(d=48, h=100, k=8), tmp_path / "a_L1"))
    bad = tmp_path / "b_L1" / "sae_best.pt"
    bad.parent.mkdir()
    rng = np.random.default_rng(0)
    for _ in range(50):  # damaged bytes fail in many ways; each is named corrupt
        bad.write_bytes(rng.integers(0, 256, int(rng.integers(1, 4000)), np.uint8).tobytes())
        with pytest.raises(AtlasFormatError, match="corrupt or not a torch checkpoint"):
            load_sae(bad)
    good = write(atlas_dict(d=48, h=96, k=8), tmp_path / "c_L1").read_bytes()
    for cut in (10, len(good) // 2, len(good) - 10):  # a truncated download
        bad.write_bytes(good[:cut])
        with pytest.raises(AtlasFormatError, match="corrupt"):
            load_sae(bad)
    torch.save([1, 2], bad)
    with pytest.raises(AtlasFormatError, match="holds a list"):
        load_sae(bad)
    with pytest.raises(VLAScopeError):
        load_sae(tmp_path / "nothing_here")


# On the reference policy, through the CLI and the Features dock --------------------------
@pytest.fixture(scope="module")
def episodes(scene, tmp_path_factory):
    """pick_red and pick_blue rollouts into the grasp, with trunk.1.resid captured:
    concepts need two tasks and two motion phases."""
    from vlascope.core.runner import rollout
    from vlascope.policies.reference.policy import ReferencePolicy

    folder = tmp_path_factory.mktemp("two_tasks")
    policy = ReferencePolicy(name="reference")
    for task in ("pick_red", "pick_blue"):
        rollout(scene, policy, task, 0, max_steps=24, record_to=folder / f"{task}.h5",
                capture=["trunk.1.resid"])
    return folder


def reference_checkpoint(recorded, folder, seed=0):
    """An Atlas-format SAE of the reference policy's trunk.1.resid (random weights, their
    statistics of the recorded activations) and the recorded activations."""
    from vlascope.core.capture import load_activations

    acts = load_activations([recorded] if Path(recorded).is_file() else
                            sorted(Path(recorded).glob("*.h5")), "trunk.1.resid")
    x = torch.from_numpy(acts.x)
    d = x.shape[1]
    c = atlas_dict(d=d, h=2 * d, k=8, seed=seed, bias=-0.5, n=len(x))
    c["activation_mean"] = x.mean(0)
    c["activation_std"] = x.std(0).clamp(min=1e-8)
    return write(c, folder), c, x


@pytest.mark.slow
def test_cli_sae_stats_steer_ablate_export_with_an_atlas_sae(episodes, tmp_path):
    from test_plugins_and_cli import run_cli

    recorded = episodes / "pick_red.h5"
    file, c, x = reference_checkpoint(episodes, tmp_path / "atlas" / "trunk_L1")
    z = their_encode(c, x)
    f, f2 = (int(i) for i in (z != 0).sum(0).argsort(descending=True)[:2])  # most active

    no_layer = run_cli("sae", "stats", "--sae", str(file), "--episodes", str(episodes))
    assert no_layer.returncode != 0 and "pass --layer" in no_layer.stderr
    run_cli("sae", "stats", "--sae", str(file), "--layer", "trunk.1.resid", "--episodes",
            str(episodes), "--concepts", "2", check=True)
    stats = json.loads((file.parent / "sae_stats.json").read_text())
    assert stats["vectors"] == len(x) and stats["atlas"]["decoder"]["points"] == len(z[0])

    out = run_cli("steer", "--sae", str(file), "--layer", "trunk.1.resid", "--feature",
                  str(f), "--alphas", "0,2", "--tasks", "pick_red", "--episodes", "1",
                  "--out", str(tmp_path / "steer"), check=True)
    assert "| pick_red | 2 |" in out.stdout
    from vlascope.core.episode import Episode

    with Episode(tmp_path / "steer" / "pick_red__alpha2__seed0.h5") as ep:
        (iv,) = ep.metadata["interventions"]
        assert (iv["kind"], iv["feature"], iv["alpha"], iv["layer"]) == (
            "steer", f, 2.0, "trunk.1.resid")
        steered = ep.actions()
    with Episode(tmp_path / "steer" / "pick_red__alpha0__seed0.h5") as ep:
        plain = ep.actions()
    n = min(len(steered), len(plain))
    assert np.abs(steered[:n] - plain[:n]).max() > 1e-4

    run_cli("ablate", "--sae", str(file), "--layer", "trunk.1.resid", "--features",
            f"{f},{f2}", "--episodes", str(recorded), "--frames", "4", "--json-out",
            str(tmp_path / "ablate.json"), check=True)
    ablate = json.loads((tmp_path / "ablate.json").read_text())
    assert ablate["features"] == [f, f2] and ablate["layer"] == "trunk.1.resid"
    assert max(ablate["max_action_change"]) > 0

    narrow = write(atlas_dict(d=64, h=256, k=8), tmp_path / "narrow" / "trunk_L1")
    wrong = run_cli("sae", "stats", "--sae", str(narrow), "--layer", "trunk.1.resid",
                    "--episodes", str(episodes))
    assert wrong.returncode != 0 and "takes vectors of size 64" in wrong.stderr

    exported = run_cli("sae", "export", str(file.parent), "--out", str(tmp_path / "exp"),
                       check=True)
    assert "trunk_L1" in exported.stdout
    again = run_cli("sae", "export", str(file.parent), "--out", str(tmp_path / "exp"))
    assert again.returncode != 0 and "already exists" in again.stderr


def test_a_saved_sae_of_the_wrong_width_is_a_mismatch(recorded, tmp_path):
    from vlascope.core.capture import load_activations

    file = write(atlas_dict(d=64, h=256, k=8), tmp_path / "trunk_L1")
    sae = load_sae(file, layer="trunk.1.resid")
    acts = load_activations([recorded], "trunk.1.resid")
    with pytest.raises(SAEMismatchError, match="takes vectors of size 64"):
        sae.encode(torch.from_numpy(acts.x[:4]))


@pytest.mark.slow
def test_features_dock_opens_an_atlas_checkpoint(qtbot, window, recorded, tmp_path,
                                                 monkeypatch):
    from test_app import WAIT_MS, errors_shown, idle, play_steps

    from vlascope.app.docks import features as features_module

    file, c, _ = reference_checkpoint(recorded, tmp_path / "atlas" / "trunk_L1")
    asked = {}

    def pick(parent, caption, folder, filters):
        asked["filters"] = filters
        return str(file), filters

    monkeypatch.setattr(features_module.QFileDialog, "getOpenFileName", pick)
    play_steps(qtbot, window, 4)
    dock = window.features_dock
    dock.raise_()
    dock.layer.setCurrentText("trunk.1.resid")  # their name maps to none of ours here
    from PySide6.QtCore import Qt

    qtbot.mouseClick(dock.load, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.features is not None, timeout=WAIT_MS)
    idle(qtbot, window)
    assert "sae_best.pt" in asked["filters"]
    fs = dock.features
    assert fs.layer == "trunk.1.resid" and fs.sae.cfg.kind == "topk_signed"
    assert dock.model.rowCount() == fs.n_features == 256
    x = torch.from_numpy(fs.samples.x)
    with torch.no_grad():
        torch.testing.assert_close(fs.sae.encode(x), their_encode(c, x), rtol=1e-5,
                                   atol=1e-5)
    assert not errors_shown(window)


def test_our_own_sae_folders_still_load(sae_dir, tmp_path):
    """A folder of ours beside which an Atlas file lies is still ours."""
    sae = load_sae(sae_dir)
    folder = save_sae(sae, tmp_path / "ours")
    torch.save({"x": torch.zeros(1)}, folder / "sae_best.pt")
    assert load_sae(folder).cfg.kind == "topk"
