"""SAE features over a recorded episode's frames (what the inspector's feature browser
shows): capture by replaying the policy, train, statistics, top frames, per-frame maps."""

import numpy as np
import pytest
import torch

from vlascope.core.errors import CancelledError, VLAScopeError
from vlascope.core.features import (
    capture_frames,
    encode,
    frame_feature_map,
    token_cell,
    train_features,
    visual_positions,
)
from vlascope.core.recording import FileRecording
from vlascope.core.runner import rollout
from vlascope.policies.reference.policy import ReferencePolicy

LAYER = "trunk.1.resid"


@pytest.fixture(scope="module")
def policy():
    return ReferencePolicy(device="cpu")


@pytest.fixture(scope="module")
def episode(policy, scene, tmp_path_factory):
    path = tmp_path_factory.mktemp("ep") / "ep.h5"
    rollout(scene, policy, "pick_red", 0, max_steps=12, record_to=path, policy_name="reference")
    return path


@pytest.fixture(scope="module")
def frames(episode):
    rec = FileRecording(episode)
    yield [rec.observation(t) for t in range(rec.n_steps)]
    rec.close()


@pytest.fixture(scope="module")
def features(frames, policy):
    samples = capture_frames(policy, frames, LAYER)
    return train_features(samples, policy.visual_token_layout(),
                          visual_positions(policy, LAYER), expansion=2, k=8, steps=150,
                          task="pick_red")


def test_capture_keeps_every_visual_token_of_every_frame(policy, frames):
    positions = visual_positions(policy, LAYER)
    assert positions == policy.token_groups(LAYER)["visual"]
    done = []
    samples = capture_frames(policy, frames, LAYER, batch_size=5,
                             progress=lambda d, n: done.append((d, n)))
    assert samples.x.shape == (len(frames) * len(positions), policy.trunk.cfg.d_model)
    assert done[-1] == (len(frames), len(frames))
    assert list(samples.token[:len(positions)]) == positions
    assert set(samples.step) == set(range(len(frames)))
    # the same vectors as reading the hook directly on one frame
    seen = []
    with policy.common_noise(), policy.hook(LAYER, lambda x: seen.append(x.detach())):
        policy.batch_infer([frames[3]])
    direct = seen[0][0, positions].numpy()
    np.testing.assert_allclose(samples.x[samples.step == 3], direct, rtol=1e-4, atol=1e-4)


def test_capture_checks_and_cancels(policy, frames):
    with pytest.raises(VLAScopeError, match="no hook point 'nope'"):
        capture_frames(policy, frames, "nope")
    with pytest.raises(VLAScopeError, match="holds no visual tokens"):
        capture_frames(policy, frames, "tokens.language")
    with pytest.raises(CancelledError):
        capture_frames(policy, frames, LAYER, should_cancel=lambda: True)


def test_features_describe_the_episode(features, frames, policy):
    f = features
    assert f.n_features == 2 * policy.trunk.cfg.d_model
    assert f.step_max.shape == (len(frames), f.n_features)
    codes = encode(f.sae, f.samples.x)
    np.testing.assert_allclose(f.stats.density, (codes > 0).mean(0), atol=1e-9)
    live = int(np.argmax(f.stats.density))
    top = f.top_frames(live, n=4)
    assert top and [v for _s, _t, v in top] == sorted([v for _s, _t, v in top], reverse=True)
    assert len({s for s, _t, _v in top}) == len(top)  # one per step
    step, token, value = top[0]
    assert value == pytest.approx(f.step_max[step, live], rel=1e-5)
    # replaying that frame gives the same activation at that token
    again = capture_frames(policy, [frames[step]], LAYER)
    row = list(again.token).index(token)
    assert encode(f.sae, again.x)[row, live] == pytest.approx(value, rel=1e-4)
    columns = f.columns()
    assert all(len(v) == f.n_features for v in columns.values())
    assert columns["peak_step"][live] == int(f.step_max[:, live].argmax())
    assert f.result is not None and np.isfinite(f.result.report.fve)


def test_frame_map_and_token_cell(features, frames, policy):
    live = int(np.argmax(features.stats.density))
    step, token, value = features.top_frames(live, 1)[0]
    maps = frame_feature_map(policy, features.sae, LAYER, frames[step], live)
    assert set(maps) == set(policy.cameras)
    cam, row, col, grid = token_cell(policy, LAYER, token)
    assert features.cell(token) == (cam, row, col, grid)
    h, w = maps[cam].shape
    cell = maps[cam][row * h // grid[0]:(row + 1) * h // grid[0],
                     col * w // grid[1]:(col + 1) * w // grid[1]]
    assert cell.max() == pytest.approx(max(m.max() for m in maps.values()), rel=1e-3)
    with pytest.raises(VLAScopeError, match="not a visual token"):
        token_cell(policy, LAYER, 0)  # a language position
    assert torch.is_tensor(features.sae.W_dec)


def test_steering_a_live_rollout_matches_the_windowed_replay(features, policy, scene,
                                                             tmp_path):
    """Moving a slider mid-rollout = an intervention that starts at that step: the live
    actions equal those of a rollout given the same window up front, and differ from the
    unmodified run only from that step on."""
    from vlascope.core.episode import Episode
    from vlascope.core.interventions import Steer
    from vlascope.core.live import LiveRollout
    from vlascope.core.sae import save_sae

    sae_dir = save_sae(features.sae, tmp_path / "sae")
    feature = int(np.argmax(features.stats.density))
    steer = Steer(sae=str(sae_dir), feature=feature, alpha=4.0, layer=LAYER)

    def actions(path):
        with Episode(path) as ep:
            return ep.actions(), ep.metadata

    live = LiveRollout(scene, policy, "pick_red", 0, max_steps=8, record_to=tmp_path / "a.h5")
    for t in range(8):
        if t == 3:
            live.set_interventions([steer])
        if t == 6:
            live.set_interventions([])
        live.step()
    steered, meta = actions(live.close())
    assert [(i["kind"], i["start"], i["stop"]) for i in meta["interventions"]] == [
        ("steer", 3, 6)]
    rollout(scene, policy, "pick_red", 0, max_steps=8, record_to=tmp_path / "b.h5",
            interventions=[meta["interventions"][0]])
    replayed, _ = actions(tmp_path / "b.h5")
    np.testing.assert_allclose(steered, replayed, atol=1e-6)
    rollout(scene, policy, "pick_red", 0, max_steps=8, record_to=tmp_path / "c.h5")
    plain, _ = actions(tmp_path / "c.h5")
    np.testing.assert_allclose(steered[:3], plain[:3], atol=1e-6)
    assert np.abs(steered[3:6] - plain[3:6]).max() > 1e-3
    live2 = LiveRollout(scene, policy, "pick_red", 0, max_steps=2)
    with pytest.raises(VLAScopeError):  # a bad one changes nothing
        live2.set_interventions([Steer(sae=str(sae_dir), feature=10**6, alpha=1.0,
                                       layer=LAYER)])
    assert live2.interventions == []


def test_phase_effect_sizes_name_the_preferred_phase():
    from vlascope.core.features import phase_effect_sizes

    rng = np.random.default_rng(0)
    phase = np.array(["reach"] * 50 + ["grasp"] * 50)
    codes = rng.random((100, 3)) * 0.1
    codes[50:, 1] += 2.0  # feature 1 fires in grasp
    codes[:50, 2] += 1.0  # feature 2 in reach
    d, which = phase_effect_sizes(codes, phase)
    assert which[1] == "grasp" and which[2] == "reach" and d[1] > 5 and d[2] > 5
    assert d[0] < 1
    d1, w1 = phase_effect_sizes(codes, np.array(["reach"] * 100))
    assert not d1.any() and set(w1) == {""}


def test_changing_interventions_keeps_the_typed_instruction(policy, scene):
    from vlascope.core.interventions import Perturb
    from vlascope.core.live import LiveRollout

    live = LiveRollout(scene, policy, "pick_red", 0, max_steps=6, instruction="grab it")
    live.step()
    live.set_interventions([Perturb(perturbation="gaussian_noise", severity=2)])
    live.step()
    live.set_interventions([])
    kinds = [(i["kind"], i["start"], i["stop"]) for i in live.interventions]
    assert kinds == [("prompt", 0, None), ("perturb", 1, 2)]
    assert live.step().observation.instruction == "grab it"


def test_stored_feature_maps_go_into_the_episode_and_the_video(features, policy, episode,
                                                               tmp_path):
    """A feature's maps over every step, stored like saliency maps, are what the video
    composer overlays."""
    import shutil

    from vlascope.core.colormap import blend
    from vlascope.core.episode import Episode
    from vlascope.core.features import store_feature_maps
    from vlascope.core.video import Composer, VideoLayout, open_tracks

    path = tmp_path / "ep.h5"
    shutil.copy(episode, path)
    live = int(np.argmax(features.stats.density))
    name = store_feature_maps(policy, features, str(path), live)
    assert name == f"feature-{live}@{LAYER}"
    step = features.top_frames(live, 1)[0][0]
    with Episode(path) as ep:
        assert name in ep.saliency_methods()
        stored = {c: ep.saliency(name, c, step) for c in ("front", "wrist")}
        frame = ep.frame(step, "front")
        obs = FileRecording(path)
        try:
            expected = frame_feature_map(policy, features.sae, LAYER, obs.observation(step),
                                         live)
        finally:
            obs.close()
    for cam in stored:
        np.testing.assert_allclose(stored[cam], expected[cam], rtol=1e-4, atol=1e-5)
    tracks = open_tracks([path])
    try:
        comp = Composer(tracks, VideoLayout(method=name, height=frame.shape[0],
                                            paths=False))  # the map alone, pixel for pixel
        img = comp.frame(step)
        h, w = frame.shape[:2]
        np.testing.assert_array_equal(img[comp.title_h:comp.title_h + h, :w],
                                      blend(frame, stored["front"], 0.6))
    finally:
        tracks[0].episode.close()
