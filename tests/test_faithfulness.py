"""Issue 28, part 5: deletion and insertion curves of a saliency map in action space. A
policy that reads one known region of the image is the oracle: the map of that region must
move its actions at once under deletion and bring them back at once under insertion, and
beat a random map; then the curves of the reference policy's own ISS maps through
`vlascope iss --faithfulness`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlascope.core.errors import VLAScopeError
from vlascope.core.policy import Observation
from vlascope.core.saliency.faithfulness import (
    FaithfulnessCurves,
    faithfulness_curves,
    top_masks,
)

SIZE = 40
REGION = (slice(0, 10), slice(0, 10))  # 100 of 1600 pixels: 6.25%


class RegionReader:
    """Actions = mean intensity of REGION of the front camera (deterministic)."""

    cameras = ("front",)

    def batch_infer(self, observations):
        vals = [o.images["front"][REGION].astype(np.float64).mean() / 255 for o in observations]
        return np.asarray(vals, np.float32)[:, None, None].repeat(2, axis=2)


def frame() -> Observation:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    img[REGION] = 255  # a bright patch the fill darkens
    return Observation({"front": img}, np.zeros(3, np.float32), "read the corner")


def test_top_masks_are_nested_and_rank_by_saliency():
    sal = np.arange(16, dtype=np.float32).reshape(4, 4)
    masks = top_masks(sal, [0, 25, 50, 100], np.random.default_rng(0))
    assert [int(m.sum()) for m in masks] == [0, 4, 8, 16]
    assert masks[1][3].all() and not masks[1][:3].any()  # the 4 largest: the last row
    assert all((a <= b).all() for a, b in zip(masks[:-1], masks[1:], strict=True))


def test_the_map_of_what_the_policy_reads_is_faithful_and_a_random_one_is_not():
    obs = frame()
    truth = np.zeros((SIZE, SIZE), np.float32)
    truth[REGION] = 1.0
    ks = [0, 5, 10, 25, 50, 100]
    c = faithfulness_curves(RegionReader(), obs, {"front": truth}, ks)
    full = c.deletion[-1]
    assert full > 0 and c.deletion[0] == pytest.approx(0, abs=1e-9)
    # 10% of the pixels hold the whole region: deleting them is deleting everything ...
    assert c.deletion[2] == pytest.approx(full, rel=1e-6)
    # ... and showing only them brings the actions back exactly
    assert c.insertion[0] == pytest.approx(full, rel=1e-6)
    assert c.insertion[2] == pytest.approx(0, abs=1e-9)
    areas = c.areas()
    assert areas["deletion"] > 1.5 * areas["random_deletion"]
    assert areas["insertion"] < 0.5 * areas["random_insertion"]
    # a map at another resolution is resized to the camera's image first
    small = faithfulness_curves(RegionReader(), obs, {"front": truth[::2, ::2]}, ks)
    assert small.deletion[2] == pytest.approx(full, rel=1e-6)


def test_area_and_bad_input():
    assert FaithfulnessCurves.area([0, 50, 100], [0, 1, 1]) == pytest.approx(0.75)
    with pytest.raises(VLAScopeError, match="percentages"):
        faithfulness_curves(RegionReader(), frame(), {"front": np.zeros((SIZE, SIZE))}, [150])
    with pytest.raises(VLAScopeError, match="no map"):
        faithfulness_curves(RegionReader(), frame(), {"wrist": np.zeros((SIZE, SIZE))})


@pytest.mark.slow
def test_cli_iss_faithfulness_on_a_reference_rollout(tmp_path):
    from cli_process import run_cli

    from vlascope.core.episode import Episode

    ep = tmp_path / "ref.h5"
    run_cli("record", "--task", "pick_red", "--max-steps", "6", "--out", str(ep))
    summary = json.loads(run_cli("iss", str(ep), "--budget", "6", "--faithfulness", "2",
                                 "--json"))
    f = summary["faithfulness"]
    assert f["steps"] == [0, 5] and len(f["ks"]) == 11
    for t in ("0", "5"):
        curves = f["per_step"][t]
        assert curves["deletion"][0] == pytest.approx(0, abs=1e-6)
        # k = 100 deleted and k = 0 inserted are the same fully filled frame
        assert curves["deletion"][-1] == pytest.approx(curves["insertion"][0], rel=1e-4)
        assert curves["random_deletion"][-1] == pytest.approx(curves["deletion"][-1], rel=1e-4)
    with Episode(ep) as stored:
        assert stored.metadata["saliency.iss-toolkit-improved"]["faithfulness"][
            "mean_areas"] == f["mean_areas"]
