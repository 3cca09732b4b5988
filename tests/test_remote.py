"""The reference policy served by ``vlascope serve`` (a child process, loopback) and driven by
the ``remote`` plugin computes what the same policy computes in process: action chunks
under common noise, rollouts, pixel and token ISS maps, captured activations, steered,
ablated and injected actions, attention baselines and SAE capture (max abs difference
<= 1e-5)."""

import numpy as np
import pytest
import torch
from served import served

from vlascope.core.episode import Episode
from vlascope.core.errors import PluginError, UnknownNameError
from vlascope.core.features import capture_frames
from vlascope.core.hook_ops import (
    AddVector,
    At,
    Capture,
    MeanReplace,
    ReplaceValues,
    WireFormatError,
    op_from_wire,
)
from vlascope.core.interventions import AblateFeatures, AblateLayer, Inject, Steer
from vlascope.core.plugins import PluginRegistry
from vlascope.core.policy import Observation, common_noise
from vlascope.core.runner import rollout
from vlascope.core.sae import SAEConfig
from vlascope.core.saliency.baselines import attention_saliency, token_norm_saliency
from vlascope.core.saliency.iss import ISSConfig, pixel_iss, token_iss, visual_token_mean
from vlascope.policies.reference.policy import ReferencePolicy
from vlascope.remote.wire import pack, unpack

LAYER = "trunk.1.resid"
TOL = 1e-5


@pytest.fixture(scope="module")
def server():
    with served() as s:
        yield s


@pytest.fixture(scope="module")
def remote(server):
    policy = PluginRegistry.discover().create_policy("remote", url=server.url)
    yield policy
    policy.close()


@pytest.fixture(scope="module")
def local():
    return ReferencePolicy(name="reference")


def _frames(n: int, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    return [Observation({c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
                         for c in ("front", "wrist")},
                        rng.normal(size=4).astype(np.float32), "pick up the red cube")
            for _ in range(n)]


def _close(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL)


def test_describes_the_served_policy(remote, local):
    assert remote.policy_id == "remote:vlascope/reference"
    assert remote.weights_hash == local.weights_hash
    assert remote.cameras == local.cameras and tuple(remote.image_size) == local.image_size
    assert remote.n_action_steps == local.n_action_steps
    assert list(remote.layers()) == list(local.layers())
    assert remote.token_groups(LAYER) == local.token_groups(LAYER)
    assert remote.readout_positions() == local.readout_positions()
    layout = remote.visual_token_layout()
    assert {c: (tuple(v["grid"]), list(v["positions"])) for c, v in layout.items()} == \
        {c: (tuple(v["grid"]), list(v["positions"]))
         for c, v in local.visual_token_layout().items()}
    assert remote.description["action_dim"] == 4 and remote.unavailable == ""
    assert remote.device == f"{local.device} (server)"


def test_action_chunks_under_common_noise_and_episode_noise(remote, local):
    frames = _frames(5)
    with common_noise(remote), common_noise(local):
        _close(remote.batch_infer(frames), local.batch_infer(frames))
    remote.reset()
    local.reset()  # the episode's noise stream: the same draws in the same order
    for f in frames[:3]:
        _close(remote.batch_infer([f]), local.batch_infer([f]))


def test_rollout_with_captured_activations(scene, remote, local, tmp_path):
    eps = []
    for name, policy in (("remote", remote), ("local", local)):
        path = tmp_path / f"{name}.h5"
        rollout(scene, policy, "pick_red", 2, max_steps=8, record_to=path,
                capture=[LAYER, "tokens.visual"])
        eps.append(Episode(path))
    with eps[0] as a, eps[1] as b:
        _close(a.actions(), b.actions())
        for layer in (LAYER, "tokens.visual"):
            _close(a.activations(layer), b.activations(layer))
        assert a.metadata["policy"]["id"] == "remote:vlascope/reference"


def test_pixel_and_token_iss_maps(remote, local):
    obs = _frames(1, seed=3)[0]
    config = ISSConfig(n_masks=30, batch_size=16, seed=2)
    r, l_ = pixel_iss(remote, obs, config), pixel_iss(local, obs, config)
    for cam in ("front", "wrist"):
        _close(r.maps[cam], l_.maps[cam])
    mean_r = visual_token_mean(remote, _frames(4, seed=5))
    mean_l = visual_token_mean(local, _frames(4, seed=5))
    _close(mean_r, mean_l)
    r, l_ = token_iss(remote, obs, mean_l, config), token_iss(local, obs, mean_l, config)
    assert np.ptp(r.maps["front"]) > 0
    for cam in ("front", "wrist"):
        _close(r.maps[cam], l_.maps[cam])


def test_attention_and_token_norm_baselines(remote, local):
    obs = _frames(1, seed=4)[0]
    for method in (lambda p: attention_saliency(p, obs, "rollout"),
                   lambda p: token_norm_saliency(p, obs)):
        r, l_ = method(remote), method(local)
        for cam in ("front", "wrist"):
            _close(r.maps[cam], l_.maps[cam])


def test_steer_ablate_inject_act_as_in_process(scene, remote, local, recorded, sae_dir,
                                               tmp_path):
    cases = {
        "steer": [Steer(layer=LAYER, sae=str(sae_dir), feature=1, alpha=8.0)],
        "ablate_features": [AblateFeatures(layer=LAYER, sae=str(sae_dir), features=(0, 1, 2),
                                           mode="mean", start=2)],
        "ablate_layer": [AblateLayer(layer=LAYER, mode="mean", mean_from=(str(recorded),),
                                     positions=(0, 1, 2))],
        "inject": [Inject(layer=LAYER, source=str(recorded), start=1, stop=5)],
    }
    base = None
    for name, ivs in cases.items():
        got = []
        for who, policy in (("remote", remote), ("local", local)):
            path = tmp_path / f"{name}-{who}.h5"
            rollout(scene, policy, "pick_red", 4, max_steps=6, record_to=path,
                    interventions=ivs)
            with Episode(path) as ep:
                got.append(ep.action_chunks())
        _close(got[0], got[1])
        if name == "steer":
            path = tmp_path / "plain.h5"
            rollout(scene, local, "pick_red", 4, max_steps=6, record_to=path)
            with Episode(path) as ep:
                base = ep.action_chunks()
            assert np.abs(got[1] - base).max() > 1e-3  # the steering did something


def test_sae_capture_of_frames(remote, local):
    frames = _frames(6, seed=8)
    r = capture_frames(remote, frames, LAYER, batch_size=4)
    l_ = capture_frames(local, frames, LAYER, batch_size=4)
    _close(r.x, l_.x)
    assert np.array_equal(r.step, l_.step) and np.array_equal(r.token, l_.token)


def test_only_data_hooks_cross_and_names_are_checked(remote):
    with pytest.raises(PluginError, match="cannot act on a policy in another process"), \
            remote.hook(LAYER, lambda a: None):
        pass
    with pytest.raises(UnknownNameError), remote.hook("trunk.99.resid", Capture()):
        pass


def test_hook_ops_round_trip_through_the_wire():
    act = torch.randn(2, 5, 3)
    ops = [Capture(rows=1, positions=(0, 2), pool="mean"),
           MeanReplace(np.ones(3, np.float32), np.array([[1, 0, 1, 1, 0]] * 2, np.float32)),
           At(AddVector(np.array([1, 2, 3], np.float32), (1,)), 0),
           At(ReplaceValues(np.random.rand(4, 5, 3).astype(np.float32), True, (), "inject"),
              7)]
    for op in ops:
        target = op.edit if isinstance(op, At) else op
        again = op_from_wire(unpack(pack(target.to_wire())))
        if isinstance(op, At):
            again = At(again, op.t)
        a, b = op(act.clone()), again(act.clone())
        if isinstance(op, Capture):
            a, b = op.values[-1], again.values[-1]
        _close(a, b)
    for bad in ({"kind": "add_vector", "delta": np.array([np.nan], np.float32)},
                {"kind": "add_vector", "delta": "1,2"},
                {"kind": "capture", "positions": ["x"]},
                {"kind": "exec", "code": "print(1)"}, [1, 2],
                # a config claiming a giant SAE is refused before anything is allocated
                {"kind": "sae_ablation", "features": [0], "target": np.zeros(1, np.float32),
                 "config": SAEConfig(d_in=100_000, expansion=1000, k=8, layer=LAYER).to_dict(),
                 "state": {"W_enc": np.zeros((2, 2), np.float32)}}):
        with pytest.raises(WireFormatError):
            op_from_wire(bad)


def test_two_clients_at_once_each_get_their_own_answers(server, local):
    """One server, two connections calling from two threads: the server runs one forward
    pass at a time and each client's hooks act on its own calls only."""
    import threading

    clients = [PluginRegistry.discover().create_policy("remote", url=server.url)
               for _ in range(2)]
    frames = [_frames(3, seed=20), _frames(3, seed=21)]
    with common_noise(local):
        want = [local.batch_infer(f) for f in frames]
        grab = Capture(rows=1)
        with local.hook(LAYER, grab):
            local.batch_infer(frames[1])
    got: dict[int, list] = {0: [], 1: []}
    captured = Capture(rows=1)

    def work(i: int) -> None:
        with common_noise(clients[i]):
            for _ in range(4):
                if i == 1:
                    with clients[i].hook(LAYER, captured):
                        got[i].append(clients[i].batch_infer(frames[i]))
                else:
                    got[i].append(clients[i].batch_infer(frames[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i in range(2):
        assert len(got[i]) == 4
        for actions in got[i]:
            _close(actions, want[i])
    assert len(captured.values) == 4  # client 0's calls fired nothing into client 1's hook
    _close(captured.values[-1], grab.values[0])
    for c in clients:
        c.close()


def test_adapter_conformance_check_passes_through_the_served_path(remote):
    """The conformance check of adapters (shapes, every hook point fires, a visual-token
    edit acts, noise, reset, pixel and token ISS, an SAE on captured activations) runs on
    the remote policy: what issue 25's served families are held to."""
    from vlascope.adapters.conformance import check_adapter

    report = check_adapter(remote, _frames(1, seed=9)[0], sae_layer=LAYER)
    assert report.chunk_shape == (2, 8, 4)
    assert report.hooks_fired == list(remote.layers())
    assert report.token_edit_effect > 0 and np.isfinite(report.sae_fve)
