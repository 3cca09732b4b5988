"""Our ``toolkit`` ISS estimator and NMR counting against numbers the ISS/NMR toolkit's own
code produced (tests/data/toolkit/README.md says how): the same seed gives the same maps,
frame by frame and over an episode (stride and interpolation), and the same NMR with each of
its scalings and k rules. ``toolkit-improved`` converges to the toolkit's own map."""

from pathlib import Path

import numpy as np
import pytest

from vlascope.core.episode import Episode, EpisodeWriter
from vlascope.core.metrics import fit_labels, mask_step, nmr_at_k, top_k_count, top_k_mask
from vlascope.core.policy import Observation
from vlascope.core.saliency.iss import ISSConfig, pixel_iss
from vlascope.core.saliency.temporal import episode_iss

CAMS = ("front", "wrist")
KNOWN = np.load(Path(__file__).parent / "data" / "toolkit" / "known_answers.npz")


class BoxPolicy:
    """The fixture's policy: its actions read two boxes, one per camera (README)."""

    def batch_infer(self, observations):
        out = []
        for o in observations:
            m0 = o.images["front"][8:20, 10:26].astype(np.float32).mean() / np.float32(255)
            m1 = o.images["wrist"][16:28, 20:36].astype(np.float32).mean() / np.float32(255)
            h = np.arange(1, 5, dtype=np.float32)[:, None]
            out.append(h * np.array([m0, m1, m0 - m1], dtype=np.float32)[None, :])
        return np.stack(out)


def frame(t: int) -> Observation:
    return Observation({c: KNOWN[f"images_{c}"][t] for c in CAMS}, np.zeros(1, np.float32),
                       "pick the red block")


def assert_same_maps(ours: dict, key: str, index=0) -> None:
    for c in CAMS:
        ref = KNOWN[f"{key}_{c}"][index]
        scale = float(np.abs(ref).max())
        assert np.abs(ours[c] - ref).max() <= 1e-6 * scale, (key, c)


@pytest.mark.parametrize("key,config", [
    ("a1", ISSConfig(n_masks=300, p_keep=0.3, grid=7, sigma=10, batch_size=64, seed=0)),
    ("a2", ISSConfig(n_masks=100, p_keep=0.5, grid=5, sigma=4, batch_size=32, seed=3)),
])
def test_one_frame_as_the_toolkit_computes_it(key, config):
    assert_same_maps(pixel_iss(BoxPolicy(), frame(0), config).maps, key)


def test_other_seeds_and_estimators_differ():
    a1 = pixel_iss(BoxPolicy(), frame(0), ISSConfig(n_masks=300, seed=1, batch_size=64)).maps
    assert np.abs(a1["front"] - KNOWN["a1_front"][0]).max() > 1e-5
    rise = pixel_iss(BoxPolicy(), frame(0), ISSConfig(n_masks=300, estimator="rise")).maps
    assert np.abs(rise["front"] - KNOWN["a1_front"][0]).max() > 1e-5


def test_an_episode_with_the_toolkits_stride_and_interpolation(tmp_path):
    path = tmp_path / "ep.h5"
    with EpisodeWriter(path, {"instruction": "pick the red block"}) as w:
        for t in range(12):
            w.append(state=np.zeros(1), action=np.zeros(3), action_chunk=np.zeros((4, 3)),
                     chunk_index=0, success=False, images=frame(t).images)
    with Episode(path) as ep:
        result = episode_iss(BoxPolicy(), ep, ISSConfig(n_masks=64, batch_size=16, seed=1),
                             every=5, check=0)
    assert result.computed_steps == [0, 5, 10, 11]
    for t in range(12):
        assert_same_maps({c: result.maps[c][t] for c in CAMS}, "b", t)


def test_toolkit_improved_converges_to_the_toolkits_map():
    """The same expected map with less variance: at N = 100 it is nearer the toolkit's
    converged map (N = 20000, computed by its code) than the toolkit's own estimator at
    N = 400 (benchmarks/iss.py measures how many the toolkit needs)."""
    ref = np.concatenate([KNOWN[f"c0_{c}"][0].ravel() for c in CAMS])

    def corr(config: ISSConfig) -> float:
        maps = pixel_iss(BoxPolicy(), frame(0), config).maps
        return float(np.corrcoef(np.concatenate([maps[c].ravel() for c in CAMS]), ref)[0, 1])

    improved = np.mean([corr(ISSConfig(n_masks=100, estimator="toolkit-improved", seed=s))
                        for s in range(10, 13)])
    plain = np.mean([corr(ISSConfig(n_masks=400, estimator="toolkit", seed=s))
                     for s in range(10, 13)])
    assert improved > plain, (improved, plain)
    converged = corr(ISSConfig(n_masks=20000, estimator="toolkit-improved", seed=5,
                               batch_size=1000))
    assert converged >= 0.98  # two converged toolkit runs agree to 0.980 (README)


def masks_at(t: int, masks: dict) -> dict:
    out = {}
    for c in CAMS:
        m = masks[c]
        lab = m[mask_step(len(m), t, 12)]
        out[c] = fit_labels(lab, (32, 40))
    return out


def our_labels(toolkit_masks: dict) -> dict:
    from vlascope.core.regions import from_toolkit

    return {c: from_toolkit(m) for c, m in toolkit_masks.items()}


@pytest.mark.parametrize("case,k,scaling,sub", [
    ("d1", 10, "joint", False), ("d2", 10, "per_view", False), ("d3", 10, "none", False),
    ("d4", 5, "joint", False), ("d5", "50px", "joint", False), ("d6", 10, "joint", True),
])
def test_nmr_as_the_toolkit_counts_it(case, k, scaling, sub):
    masks = {c: KNOWN[f"masks_{c}"] for c in CAMS}
    if sub:  # 6 frames of 16 x 20: picked in time and resized nearest as the toolkit does
        masks = {c: m[::2, ::2, ::2] for c, m in masks.items()}
    labels = our_labels(masks)
    for t in range(12):
        maps = {c: KNOWN[f"b_{c}"][t] for c in CAMS}
        regions = masks_at(t, labels)
        opts = {"counting": "toolkit", "scaling": scaling}
        assert nmr_at_k(maps, regions, k, **opts) == pytest.approx(
            float(KNOWN[f"{case}_scores"][t]), abs=1e-6)
        per_view = nmr_at_k(maps, regions, k, per_view=True, **opts)
        for c in CAMS:
            assert per_view[c] == pytest.approx(float(KNOWN[f"{case}_{c}_scores"][t]),
                                                abs=1e-6, nan_ok=True)


def test_k_is_counted_with_ceil_and_round_is_the_other_rule():
    assert top_k_count(2560, 10) == 256 and top_k_count(2561, 10) == 257
    assert top_k_count(2560, "50px") == 50 and top_k_count(20, "50px") == 20
    assert top_k_count(2561, 10, "round") == 256 and top_k_count(5, 1) == 1
    maps = {"front": np.arange(11, dtype=np.float32).reshape(1, 11)}
    assert top_k_mask(maps, 10)["front"].sum() == 2  # ceil(1.1)
    assert top_k_mask(maps, 10, counting="round")["front"].sum() == 1


def test_ties_are_picked_by_argpartition():
    """Step 0 of the quantised maps: 829 pixels tie at the top for k = 256. Which 256 the
    toolkit takes is numpy's argpartition order (CPU-dependent; README), so we check the
    facts that do not depend on it and that our pick is argpartition's here."""
    maps = {c: KNOWN[f"d7_heatmaps_{c}"][0] for c in CAMS}
    top = top_k_mask(maps, 10)
    chosen = np.concatenate([top[c].ravel() for c in CAMS])
    assert chosen.sum() == int(KNOWN["d7_k"]) == 256
    flat = np.concatenate([maps[c].ravel() / max(m.max() for m in maps.values())
                           for c in CAMS])
    assert (flat[chosen] == flat.max()).all()
    assert int((flat == flat.max()).sum()) == int(KNOWN["d7_step0_n_at_threshold"])
    expected = np.zeros(flat.size, bool)
    expected[np.argpartition(flat.astype(np.float32), -256)[-256:]] = True
    assert np.array_equal(chosen, expected)
    # the rule that does not depend on the CPU takes the first tied pixels in order
    first = np.concatenate([top_k_mask(maps, 10, counting="round")[c].ravel() for c in CAMS])
    assert np.array_equal(np.flatnonzero(first), np.flatnonzero(flat == flat.max())[:256])


def test_non_finite_maps_are_refused():
    maps = {c: KNOWN[f"b_{c}"][0].copy() for c in CAMS}
    maps["wrist"][0, 0] = np.nan
    with pytest.raises(Exception, match="non-finite"):
        top_k_mask(maps, 10)
