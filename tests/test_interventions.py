"""Interventions as data, applied in closed-loop rollouts of the shipped reference policy:
each changes what it should and nothing else; activation capture; the measures."""

import json
import math

import numpy as np
import pytest
import torch

from vlascope.core.capture import load_activations, step_means
from vlascope.core.episode import Episode, policy_instruction
from vlascope.core.errors import PluginError, UnknownNameError, VLAScopeError
from vlascope.core.experiments import run_episode
from vlascope.core.interventions import (
    KINDS,
    AblateFeatures,
    AblateLayer,
    Inject,
    Perturb,
    Prompt,
    Steer,
    bind,
    counterfactual_prompt,
    from_dict,
    layer_mean,
)
from vlascope.core.measures import action_cosine, displacement, handled_object, motion_phases
from vlascope.core.runner import rollout
from vlascope.core.sae import load_sae
from vlascope.core.sae.io import SAEMismatchError
from vlascope.policies.reference.policy import ReferencePolicy

LAYER = "trunk.1.resid"
STEPS = 10


@pytest.fixture(scope="module")
def policy():
    return ReferencePolicy(name="reference")


def _run(scene, policy, tmp_path, name, interventions, steps=STEPS, **kw):
    path = tmp_path / f"{name}.h5"
    rollout(scene, policy, "pick_red", 3, max_steps=steps, record_to=path,
            interventions=interventions, **kw)
    return Episode(path)


def test_capture_records_every_step_per_token_and_pooled(scene, policy, recorded, tmp_path):
    with Episode(recorded) as ep:
        acts = ep.activations(LAYER)
        assert acts.shape == (STEPS, 93, 128)  # 12 language + state + 2x36 visual + 8 queries
        assert ep.activations("tokens.language").shape == (STEPS, 12, 128)
        assert ep.metadata["capture"] == {"layers": [LAYER, "tokens.language"],
                                          "pooling": "tokens"}
        tokens = acts
    with _run(scene, policy, tmp_path, "mean", [], capture=[LAYER], pooling="mean") as ep:
        np.testing.assert_allclose(ep.activations(LAYER), tokens.mean(1), atol=1e-5)
    sub = load_activations([recorded], LAYER, max_vectors=100, seed=1)
    assert sub.x.shape == (100, 128) and sub.token.max() < 93
    np.testing.assert_allclose(sub.x, tokens[sub.step, sub.token], atol=1e-6)
    # several episodes, some positions: every drawn row is the recorded one, from its episode
    both = load_activations([recorded, recorded], LAYER, max_vectors=50, seed=2,
                            positions=[0, 90])
    assert set(both.episode) == {0, 1} and set(both.token) == {0, 90}
    np.testing.assert_allclose(both.x, tokens[both.step, both.token], atol=1e-6)
    with pytest.raises(VLAScopeError, match="positions outside"):
        load_activations([recorded], LAYER, positions=[93])


def test_injecting_the_episodes_own_activations_reproduces_it(scene, policy, recorded,
                                                              tmp_path):
    with Episode(recorded) as base, \
            _run(scene, policy, tmp_path, "own", [Inject(layer=LAYER, source=str(recorded))]) \
            as inj:
        np.testing.assert_array_equal(inj.actions(), base.actions())
        assert inj.metadata["interventions"][0]["kind"] == "inject"


def test_cross_task_injection_moves_the_trajectory(scene, policy, recorded, tmp_path):
    src = tmp_path / "src.h5"
    rollout(scene, policy, "pick_blue", 3, max_steps=STEPS, record_to=src, capture=[LAYER])
    with Episode(recorded) as base, Episode(src) as s, \
            _run(scene, policy, tmp_path, "x", [Inject(layer=LAYER, source=str(src))]) as inj:
        d = displacement(inj.states()[:, :3], s.states()[:, :3], base.states()[:, :3])
        assert d > 0.6  # follows the source task's hand path, not its own


def test_short_injection_source_holds_or_stops(scene, policy, recorded, tmp_path):
    short = tmp_path / "short.h5"
    rollout(scene, policy, "pick_red", 3, max_steps=4, record_to=short, capture=[LAYER])
    with _run(scene, policy, tmp_path, "stop",
              [Inject(layer=LAYER, source=str(short), on_short="stop")]) as ep:
        assert ep.n_steps == 4
    with _run(scene, policy, tmp_path, "hold",
              [Inject(layer=LAYER, source=str(short), on_short="hold")]) as ep:
        assert ep.n_steps == STEPS
    with pytest.raises(VLAScopeError, match="has no activations of 'trunk.2.resid'"):
        bind([Inject(layer="trunk.2.resid", source=str(short))], policy)


def test_steer_at_alpha_zero_is_the_identity_and_nonzero_changes(scene, policy, recorded,
                                                                 sae_dir, tmp_path):
    sae = load_sae(sae_dir)
    feature = int(torch.argmax(sae.feature_scale))
    with Episode(recorded) as base:
        with _run(scene, policy, tmp_path, "a0", [Steer(layer=LAYER, sae=str(sae_dir),
                                                        feature=feature, alpha=0.0)]) as ep:
            np.testing.assert_array_equal(ep.actions(), base.actions())
        with _run(scene, policy, tmp_path, "a3", [Steer(layer=LAYER, sae=str(sae_dir),
                                                        feature=feature, alpha=3.0)]) as ep:
            assert np.abs(ep.actions() - base.actions()).max() > 1e-3


def test_steering_adds_exactly_the_scaled_decoder_direction(policy, sae_dir, scene):
    sae = load_sae(sae_dir)
    scene.reset("pick_red", 0)
    obs = scene.observe(cameras=("front", "wrist"), size=(96, 96)).observation
    seen = {}
    applied = bind([Steer(layer=LAYER, sae=str(sae_dir), feature=5, alpha=2.0,
                          positions=(0, 40))], policy)
    with policy.hook(LAYER, lambda a: seen.setdefault("clean", a.clone())):
        policy.batch_infer([obs])
    with applied.hooks(0), policy.hook(LAYER, lambda a: seen.setdefault("steered", a.clone())):
        policy.batch_infer([obs])
    diff = seen["steered"] - seen["clean"]
    expected = 2.0 * float(sae.feature_scale[5] or 1.0) * sae.direction(5)
    torch.testing.assert_close(diff[0, 40], expected.float(), atol=1e-5, rtol=1e-4)
    assert float(diff[0, 1].abs().max()) == 0.0  # other tokens untouched


def test_ablating_an_inactive_feature_changes_nothing(scene, policy, recorded, sae_dir,
                                                      tmp_path):
    sae = load_sae(sae_dir)
    acts = load_activations([recorded], LAYER)
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(acts.x))
    inactive = [int(f) for f in torch.nonzero(codes.max(0).values == 0).flatten()[:3]]
    active = int(codes.sum(0).argmax())
    assert inactive, "the SAE has no feature inactive on this episode"
    with Episode(recorded) as base:
        with _run(scene, policy, tmp_path, "off", [AblateFeatures(
                layer=LAYER, sae=str(sae_dir), features=tuple(inactive))]) as ep:
            np.testing.assert_allclose(ep.actions(), base.actions(), atol=1e-5)
        with _run(scene, policy, tmp_path, "on", [AblateFeatures(
                layer=LAYER, sae=str(sae_dir), features=(active,))]) as ep:
            assert np.abs(ep.actions() - base.actions()).max() > 1e-4


def test_an_sae_of_another_layer_is_refused(policy, sae_dir):
    with pytest.raises(SAEMismatchError, match="trunk.3.resid|trunk.1.resid"):
        bind([Steer(layer="trunk.3.resid", sae=str(sae_dir), feature=0, alpha=1.0)], policy)


def test_alpha_must_be_finite_and_names_known(policy, sae_dir):
    for bad in (math.nan, math.inf):
        with pytest.raises(VLAScopeError, match="finite"):
            bind([Steer(layer=LAYER, sae=str(sae_dir), feature=0, alpha=bad)], policy)
    with pytest.raises(UnknownNameError, match="hook point"):
        bind([AblateLayer(layer="trunk.9.resid")], policy)
    with pytest.raises(UnknownNameError, match="perturbation"):
        bind([Perturb(perturbation="sparkles")], policy)
    with pytest.raises(VLAScopeError, match="empty step window"):
        bind([AblateLayer(layer=LAYER, start=5, stop=5)], policy)


def test_layer_ablation_acts_only_inside_its_window(scene, policy, recorded, tmp_path):
    with Episode(recorded) as base, _run(scene, policy, tmp_path, "win", [
            AblateLayer(layer="trunk.0.mlp", start=4)]) as ep:
        np.testing.assert_array_equal(ep.actions()[:4], base.actions()[:4])
        assert np.abs(ep.actions()[4] - base.actions()[4]).max() > 1e-4


def test_mean_layer_ablation_uses_the_recorded_mean(scene, policy, recorded, tmp_path):
    with _run(scene, policy, tmp_path, "mean", [AblateLayer(
            layer=LAYER, mode="mean", mean_from=(str(recorded),))], capture=[LAYER]) as ep:
        with Episode(recorded) as base:
            mean = base.activations(LAYER).mean(0)
        np.testing.assert_allclose(ep.activations(LAYER)[0], mean, atol=1e-5)
    _run(scene, policy, tmp_path, "pooled", [], steps=2, capture=[LAYER],
         pooling="mean").close()
    with pytest.raises(VLAScopeError, match="per-token vs mean pooling"):
        layer_mean([recorded, tmp_path / "pooled.h5"], LAYER)


def test_perturbation_changes_what_the_policy_sees_and_is_recorded(scene, policy, recorded,
                                                                   tmp_path):
    with Episode(recorded) as base, _run(scene, policy, tmp_path, "p", [
            Perturb(perturbation="gaussian_noise", severity=5, cameras=("front",))]) as ep:
        assert np.abs(ep.frame(0, "front").astype(int) - base.frame(0, "front")).mean() > 5
        np.testing.assert_array_equal(ep.frame(0, "wrist"), base.frame(0, "wrist"))
        assert np.abs(ep.actions() - base.actions()).max() > 1e-4


def test_prompt_is_recorded_and_counterfactuals(scene, policy, tmp_path):
    text = counterfactual_prompt("pick up the red cube", "wrong_object")
    assert text == "pick up the blue cube"
    assert counterfactual_prompt("pick up the red cube", "null") == ""
    assert counterfactual_prompt("put the red cube on the plate", "wrong_object") == \
        "put the blue cube on the plate"
    assert counterfactual_prompt("put the red cube on the plate", "paraphrase") == \
        "place the red block on the plate"
    with _run(scene, policy, tmp_path, "prompt", [Prompt(text=text, variant="wrong_object")]) \
            as ep:
        assert policy_instruction(ep.metadata) == text
        assert ep.metadata["interventions"][0]["variant"] == "wrong_object"
    windowed = {"instruction": "pick up the red cube", "interventions": [
        Prompt(text=text, start=2, stop=4).to_dict()]}
    assert [policy_instruction(windowed, t) for t in range(5)] == [
        "pick up the red cube"] * 2 + [text] * 2 + ["pick up the red cube"]


def test_interventions_round_trip_as_data(sae_dir, recorded):
    ivs = [Prompt(text="", variant="null"), Perturb(perturbation="gaussian_blur", severity=2),
           Steer(layer=LAYER, sae=str(sae_dir), feature=1, alpha=-1.5, positions=(3, 4)),
           AblateFeatures(layer=LAYER, sae=str(sae_dir), features=(1, 2), mode="mean"),
           AblateLayer(layer=LAYER, start=2, stop=7), Inject(layer=LAYER, source=str(recorded))]
    assert {type(i) for i in ivs} == set(KINDS.values())
    for iv in ivs:
        assert from_dict(json.loads(json.dumps(iv.to_dict()))) == iv
    assert from_dict({"kind": "prompt", "text": "x", "step": 3}).start == 3  # older episodes
    with pytest.raises(UnknownNameError):
        from_dict({"kind": "teleport"})
    with pytest.raises(VLAScopeError, match="unknown field"):
        from_dict({"kind": "steer", "layer": LAYER, "sae": "x", "feature": 0, "alpha": 1,
                   "strength": 2})


def test_policies_without_hook_points_refuse_layer_interventions(expert):
    with pytest.raises(PluginError, match="no hook points"):
        bind([AblateLayer(layer=LAYER)], expert)
    assert bind([Prompt(text="x")], expert).records()[0]["text"] == "x"


def test_step_means_average_the_tokens_of_each_frame():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    means, first = step_means(x, np.array([0, 0, 1, 1, 1, 0]), np.array([3, 3, 0, 0, 0, 5]))
    np.testing.assert_allclose(means, [[1, 2], [10, 11], [6, 7]])  # (ep 0, 3), (0, 5), (1, 0)
    assert first.tolist() == [0, 5, 2]


def test_measures():
    a, b = np.zeros((5, 3)), np.ones((5, 3))
    assert displacement(b, b, a) == pytest.approx(1.0)
    assert displacement(a, b, a) == pytest.approx(0.0)
    assert displacement(b[:2], b, a) == pytest.approx(1.0)  # a shorter run holds its last
    # a shared start (all three paths equal) carries no weight: the baseline scores 0
    shared = np.vstack([np.zeros((1, 3)), b])
    assert displacement(a[:1].repeat(6, 0), shared, a[:1].repeat(6, 0)) == 0.0
    assert np.isnan(displacement(a, a, a))
    assert action_cosine(b, b) == pytest.approx(1.0)
    assert action_cosine(a, a) == 1.0  # both still
    assert action_cosine(a, b) == 0.0  # one still, one moving: not the same action
    assert action_cosine(b, -b[:3]) == pytest.approx(-1.0)  # common steps only
    with pytest.raises(VLAScopeError):
        displacement(np.zeros(3), a, b)
    start = {"cube_a": np.zeros(3), "cube_b": np.zeros(3)}
    assert handled_object(start, {"cube_a": np.array([0, 0, 0.1]), "cube_b": np.zeros(3)}) \
        == "cube_a"
    assert handled_object(start, start) is None


def test_motion_phases_follow_the_expert(scene, expert, tmp_path):
    out = run_episode(scene, expert, "place_red_on_plate", 0, record_to=tmp_path / "e.h5")
    assert out.result.success and out.handled == "cube_a"
    with pytest.raises(VLAScopeError):
        motion_phases(np.zeros((3, 4)), np.zeros((2, 4)))
    with Episode(out.path) as ep:
        phases = motion_phases(ep.states(), ep.actions())
    first = {p: int(np.argmax(phases == p)) for p in ("reach", "grasp", "carry", "release")}
    assert first["reach"] == 0 < first["grasp"] < first["carry"] < first["release"]


def test_injection_table_runs_each_source_rollout_once(scene, policy, tmp_path, monkeypatch):
    from vlascope.core import experiments

    recorded_to = []
    real = experiments.run_episode

    def counting(*args, **kwargs):
        recorded_to.append(kwargs.get("record_to"))
        return real(*args, **kwargs)

    monkeypatch.setattr(experiments, "run_episode", counting)
    rows = experiments.injection_table(
        scene, policy, [("pick_red", "pick_blue"), ("place_red_on_plate", "pick_blue")],
        layer="trunk.1.resid", episodes=1, out_dir=tmp_path, conditions=("cross_task",))
    sources = [p for p in recorded_to if p is not None and p.name.endswith("__source.h5")]
    assert [p.name for p in sources] == ["pick_blue__seed0__source.h5"]  # shared by both
    assert {r["task"] for r in rows} >= {"pick_red", "place_red_on_plate"}
    for target in ("pick_red", "place_red_on_plate"):
        with Episode(tmp_path / f"{target}__from_pick_blue__seed0__cross_task.h5") as ep:
            assert ep.metadata["interventions"][0]["source"] == str(sources[0])
