"""ISS over an episode at a budget of forward passes per step, pooled over time
(core/saliency/pooled.py): held to a policy whose saliency is known in closed form, to the
per-frame estimator it is built on, and to how the live mode fills it step by step."""

import cv2
import numpy as np
import pytest

from vlascope.core.episode import Episode, EpisodeWriter, episode_observation
from vlascope.core.errors import VLAScopeError
from vlascope.core.saliency.iss import ISSConfig, pixel_iss
from vlascope.core.saliency.pooled import PooledMaps, choose_bandwidth
from vlascope.core.saliency.strip import toolkit_blur
from vlascope.core.saliency.temporal import pooled_episode_iss, step_config

CAMS = ("front", "wrist")
SIZE, GRID, P_KEEP, SIGMA = 28, 7, 0.3, 2.0
CONFIG = ISSConfig(grid=GRID, p_keep=P_KEEP, sigma=SIGMA, estimator="toolkit-improved",
                   batch_size=64)
# a pixel checkerboard: every pixel is far from its blur, so a policy can read back how much
# of each pixel a mask replaced
CLEAN = (np.indices((SIZE, SIZE)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
REGION_A = ("front", slice(2, 10), slice(3, 12))
REGION_B = ("wrist", slice(16, 26), slice(14, 25))


class RegionOracle:
    """Acts on one region only: its action is the fraction of the region a mask replaced
    (read back from the image), so its divergence is that fraction squared and its ISS map
    has a closed form. The region is A before step ``switch`` (the step is in the state)
    and B from it on."""

    cameras = CAMS

    def __init__(self, switch: int | None = None):
        self.switch = switch
        self.blur = toolkit_blur(CLEAN, SIGMA)

    def region(self, t: int):
        return REGION_B if self.switch is not None and t >= self.switch else REGION_A

    def batch_infer(self, observations):
        out = []
        for o in observations:
            cam, ys, xs = self.region(int(o.state[0]))
            seen = o.images[cam][ys, xs].astype(np.float64)
            clean = CLEAN[ys, xs].astype(np.float64)
            blur = self.blur[ys, xs].astype(np.float64)
            replaced = 1.0 - (seen - blur) / (clean - blur)
            out.append([[float(replaced.mean())]])
        return np.asarray(out)


def known_map(region) -> dict[str, np.ndarray]:
    """The oracle's exact ISS: with y_c = 1 - cell_c ~ Bernoulli(q), the replaced fraction
    is f = sum_c beta_c y_c (bilinear upsampling is linear) and the map at pixel x is
    sum_k B(x, k) E[f^2 y_k] / q, whose moments are powers of q."""
    q = 1.0 - P_KEEP
    n_cells = GRID * GRID * len(CAMS)
    impulses = np.eye(n_cells, dtype=np.float32).reshape(n_cells, GRID, GRID * len(CAMS))
    basis = np.stack([cv2.resize(i, (SIZE * len(CAMS), SIZE), interpolation=cv2.INTER_LINEAR)
                      for i in impulses])  # (cells, H, W V): B(x, k)
    cam, ys, xs = region
    v = CAMS.index(cam)
    beta = basis[:, ys, v * SIZE + xs.start:v * SIZE + xs.stop].mean(axis=(1, 2)).astype(float)
    total, squares = beta.sum(), (beta ** 2).sum()
    rest, rest_sq = total - beta, squares - beta ** 2
    moments = (beta ** 2 * q + rest_sq * q ** 2 + 2 * beta * rest * q ** 2
               + (rest ** 2 - rest_sq) * q ** 3)  # E[f^2 y_k] for every k
    strip = np.tensordot(moments, basis, axes=1) / q
    return {c: strip[:, i * SIZE:(i + 1) * SIZE] for i, c in enumerate(CAMS)}


def write_episode(path, n_steps: int) -> None:
    with EpisodeWriter(path, {"instruction": "watch the region"}) as w:
        for t in range(n_steps):
            w.append(state=np.array([t], np.float32), action=np.zeros(1),
                     action_chunk=np.zeros((1, 1)), chunk_index=0, success=False,
                     images={c: CLEAN for c in CAMS})


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pooled")
    write_episode(folder / "still.h5", 30)
    write_episode(folder / "switch.h5", 40)
    return folder


def flat(maps: dict, t: int | None = None) -> np.ndarray:
    return np.concatenate([(maps[c] if t is None else maps[c][t]).ravel() for c in CAMS])


def rel_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def shape_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """The error of the map's shape (its mean removed): what pooling averages; the level
    (the mean divergence) stays each step's own."""
    return rel_error(estimate - estimate.mean(), truth - truth.mean())


def test_the_closed_form_is_what_the_per_frame_estimator_converges_to(episodes):
    """The known answer itself, checked against 20000 masks on one frame."""
    with Episode(episodes / "still.h5") as ep:
        obs = episode_observation(ep, 0, CAMS, None)
    big = pixel_iss(RegionOracle(), obs, ISSConfig(**{**CONFIG.__dict__, "n_masks": 20000,
                                                       "batch_size": 2000})).maps
    assert rel_error(flat(big), flat(known_map(REGION_A))) < 0.03


def test_pooling_is_unbiased_where_the_map_holds_still(episodes):
    """120 runs at 6 passes per step: their mean is the known map (the error of one run is
    several times larger), and the shape of one pooled run is less than half as far from it
    as that of one per-frame run."""
    truth = flat(known_map(REGION_A))
    runs, single = [], []
    with Episode(episodes / "still.h5") as ep:
        for r in range(120):
            cfg = ISSConfig(**{**CONFIG.__dict__, "seed": 1000 * r})
            result = pooled_episode_iss(RegionOracle(), ep, cfg, budget=6)
            runs.append(flat(result.maps, 15))
            if r < 3:
                assert float(result.made["bandwidth"]) >= 16  # nothing changes: pool widely
                raw = pooled_episode_iss(RegionOracle(), ep, cfg, budget=6, bandwidth=0)
                single.append((shape_error(runs[-1], truth),
                               shape_error(flat(raw.maps, 15), truth)))
    mean_error = rel_error(np.mean(runs, axis=0), truth)
    spread = np.mean([rel_error(run, truth) for run in runs])
    assert mean_error < 0.04 and mean_error < spread / 3, (mean_error, spread)
    assert all(pooled < per_frame / 2 for pooled, per_frame in single), single


def test_pooling_follows_a_change_instead_of_smearing_it(episodes):
    """The region moves to the other camera at step 20: cross-validation picks a short
    bandwidth, each side keeps its own region, and the pooled maps are still nearer the
    truth than the per-frame ones."""
    truths = {t: flat(known_map(REGION_A if t < 20 else REGION_B)) for t in range(40)}
    with Episode(episodes / "switch.h5") as ep:
        cfg = ISSConfig(**{**CONFIG.__dict__, "seed": 7})
        pooled = pooled_episode_iss(RegionOracle(switch=20), ep, cfg, budget=11)
        raw = pooled_episode_iss(RegionOracle(switch=20), ep, cfg, budget=11, bandwidth=0)
    assert 0 < pooled.made["bandwidth"] <= 8, pooled.made["bandwidth"]
    for t in (0, 10, 17, 23, 30, 39):
        front, wrist = pooled.maps["front"][t].sum(), pooled.maps["wrist"][t].sum()
        assert (front > wrist) == (t < 20), t
    err = {name: np.mean([shape_error(flat(r.maps, t), truths[t]) for t in range(40)])
           for name, r in (("pooled", pooled), ("raw", raw))}
    assert err["pooled"] < 0.6 * err["raw"], err


def test_without_pooling_every_step_is_the_per_frame_estimator(episodes):
    with Episode(episodes / "switch.h5") as ep:
        result = pooled_episode_iss(RegionOracle(switch=20), ep, CONFIG, budget=5,
                                    bandwidth=0)
        assert result.computed_steps == list(range(40)) and result.made["budget"] == 5
        for t in (0, 19, 20, 39):
            cfg = step_config(CONFIG, 5, t)
            assert cfg.n_masks == 4 and cfg.seed == CONFIG.seed + t
            exact = pixel_iss(RegionOracle(switch=20), episode_observation(ep, t, CAMS, None),
                              cfg).maps
            for c in CAMS:
                np.testing.assert_array_equal(result.maps[c][t], exact[c])


def test_live_filling_in_any_order_gives_the_episode_result():
    rng = np.random.default_rng(0)
    raw = {t: {c: rng.random((12, 12)).astype(np.float32) + (t > 9) for c in CAMS}
           for t in range(20)}
    ordered, shuffled = PooledMaps(), PooledMaps()
    for t in range(20):
        ordered.add(t, raw[t])
    for t in rng.permutation(20):
        shuffled.add(int(t), raw[int(t)])
    whole = ordered.pooled()
    assert shuffled.bandwidth == ordered.bandwidth > 0
    for t in (0, 7, 19):
        for c in CAMS:
            np.testing.assert_allclose(shuffled.map_at(t)[c], whole[t][c], rtol=1e-5)
    # a later step refines an earlier step's map; its level (mean) stays the step's own
    live = PooledMaps(bandwidth=4.0)
    for t in range(5):
        live.add(t, raw[t])
    before = live.map_at(2)["front"].copy()
    live.add(5, raw[5])
    after = live.map_at(2)["front"]
    assert not np.allclose(before, after)
    level = np.mean([raw[2][c].mean() for c in CAMS])
    assert np.mean([live.map_at(2)[c].mean() for c in CAMS]) == pytest.approx(level, rel=1e-5)


def test_bandwidth_choice_and_bad_input(episodes):
    steps = list(range(30))
    noise = np.random.default_rng(1).normal(size=(30, 16))
    still = noise + np.linspace(-1, 1, 16)  # one map under heavy noise: pool everything
    assert choose_bandwidth(still, steps) >= 16
    angle = np.linspace(0, np.pi, 30)[:, None]  # the map's shape turns over the episode
    turning = (noise * 0.01 + np.cos(angle) * np.sign(np.arange(16) - 7.5)
               + np.sin(angle) * np.sign(np.arange(16) % 2 - 0.5))
    assert choose_bandwidth(turning, steps) <= 2  # a change much larger than the noise
    scaled = noise * 0.01 + np.linspace(1, 2, 30)[:, None] * np.sign(np.arange(16) - 7.5)
    assert choose_bandwidth(scaled, steps) >= 16  # only its size changes: same shape
    assert choose_bandwidth(still[:2], [0, 1]) == 0.0
    pool = PooledMaps()
    pool.add(0, {"front": np.zeros((4, 4))})
    with pytest.raises(VLAScopeError, match="cameras"):
        pool.add(1, {"wrist": np.zeros((4, 4))})
    with pytest.raises(VLAScopeError, match="not been explained"):
        pool.map_at(3)
    with Episode(episodes / "still.h5") as ep:
        with pytest.raises(VLAScopeError, match="at least 2 forward passes"):
            pooled_episode_iss(RegionOracle(), ep, CONFIG, budget=1)
        with pytest.raises(VLAScopeError, match="--every 1"):
            pooled_episode_iss(RegionOracle(), ep, CONFIG, budget=4, method="token-norm")
