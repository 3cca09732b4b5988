"""ISS over recorded episodes: sparse-in-time computation with measured interpolation error,
storage in the episode file, NMR from stored maps, and the CLI around it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vlascope.core.episode import Episode
from vlascope.core.errors import EpisodeFormatError, VLAScopeError
from vlascope.core.metrics import episode_nmr, nmr_at_k
from vlascope.core.runner import rollout
from vlascope.core.saliency.iss import ISSConfig, pixel_iss
from vlascope.core.saliency.temporal import (
    episode_iss,
    episode_observation,
    interpolate,
    steps_to_compute,
    store,
)


class GripperPolicy:
    """Reads only the central band of the wrist image (where the fingers are)."""

    cameras = ("front", "wrist")

    def batch_infer(self, observations):
        out = []
        for o in observations:
            band = o.images["wrist"][150:224, 40:184].astype(np.float64)
            out.append([[band.std() / 50.0, band.mean() / 255.0]])
        return np.asarray(out)


@pytest.fixture(scope="module")
def episode_path(tmp_path_factory, scene, expert):
    path = tmp_path_factory.mktemp("sal") / "ep.h5"
    rollout(scene, expert, "pick_red", 2, record_to=path, max_steps=13)
    return path


def test_steps_and_interpolation():
    assert steps_to_compute(13, 5) == [0, 5, 10, 12]
    assert steps_to_compute(11, 5) == [0, 5, 10]
    a, b = np.zeros((2, 2)), np.ones((2, 2))
    out = interpolate({0: a, 4: b}, 6)
    np.testing.assert_allclose(out[2], 0.5)
    np.testing.assert_allclose(out[5], 1.0)


def test_episode_iss_matches_per_frame_iss_and_reports_error(episode_path, tmp_path):
    cfg = ISSConfig(n_masks=20, sigma=5, estimator="toolkit-improved", seed=3)
    path = tmp_path / "ep.h5"
    path.write_bytes(episode_path.read_bytes())
    with Episode(path) as ep:
        res = episode_iss(GripperPolicy(), ep, cfg, every=5, check=2)
        assert res.computed_steps == [0, 5, 10, 12]
        assert len(res.check_steps) == 2 and res.interpolation_error is not None
        assert res.maps["wrist"].shape == (13, 224, 224)
        exact = pixel_iss(GripperPolicy(), episode_observation(ep, 5, ["front", "wrist"], None),
                          cfg)
    np.testing.assert_allclose(res.maps["wrist"][5], exact.maps["wrist"], rtol=1e-5)
    store(str(path), res)
    with Episode(path) as ep:
        assert ep.saliency_methods() == ["iss-toolkit-improved"]
        meta = ep.metadata["saliency.iss-toolkit-improved"]
        assert meta["every"] == 5 and meta["computed_steps"] == [0, 5, 10, 12]
        nmr = episode_nmr(ep, "iss-toolkit-improved", ks=(10, 50))
        assert nmr[10].shape == (13,) and np.all((nmr[10] >= 0) & (nmr[10] <= 1))
        direct = nmr_at_k({c: ep.saliency("iss-toolkit-improved", c, 5)
                           for c in ("front", "wrist")},
                          {c: ep.regions(5, c) for c in ("front", "wrist")}, 10)
        assert nmr[10][5] == pytest.approx(direct)
    # The policy reads a band of the wrist image (21% of its pixels): with only 20 masks of
    # 32-px cells, well over half of the map's top 5% already falls in that band.
    wrist = res.maps["wrist"][0]
    top = wrist >= np.quantile(wrist, 0.95)
    assert top[150:224, 40:184].sum() / top.sum() > 0.5


def test_episode_errors(episode_path, tmp_path):
    with Episode(episode_path) as ep:
        with pytest.raises(EpisodeFormatError, match="no saliency"):
            episode_nmr(ep, "iss-toolkit-improved")
        with pytest.raises(VLAScopeError, match="every"):
            episode_iss(GripperPolicy(), ep, every=0)
        with pytest.raises(EpisodeFormatError, match="top"):
            episode_iss(GripperPolicy(), ep, cameras=["top"])


def run_cli(*args):
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": ""}
    return subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.mark.slow
def test_cli_iss_and_nmr_on_a_reference_rollout(tmp_path):
    ep = tmp_path / "ref.h5"
    assert run_cli("record", "--task", "pick_blue", "--max-steps", "8", "--out",
                   str(ep)).returncode == 0
    out = run_cli("iss", str(ep), "--n", "20", "--every", "4", "--png", str(tmp_path / "png"),
                  "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["computed_steps"] == [0, 4, 7] and summary["interpolation_error"] is not None
    assert len(list((tmp_path / "png").glob("*.png"))) == 6
    out = run_cli("nmr", str(ep), "--k", "1,10,50", "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)[0]
    assert set(row["nmr"]) == {"1.0", "10.0", "50.0"} and len(row["per_step"]["10.0"]) == 8
    bad = run_cli("nmr", str(ep), "--k", "0")
    assert bad.returncode == 2 and "k must be in (0, 100]" in bad.stderr
    # the default: every step at a budget of passes, pooled in time (pooled.py)
    out = run_cli("iss", str(ep), "--budget", "4", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["budget"] == 4 and summary["computed_steps"] == list(range(8))
    assert summary["bandwidth"] is not None and "every" not in summary
    with Episode(ep) as stored:
        assert stored.metadata["saliency.iss-toolkit-improved"]["budget"] == 4
        assert stored.metadata["saliency.iss-toolkit-improved"]["config"]["n_masks"] == 3
        maps = [stored.saliency("iss-toolkit-improved", "front", t) for t in range(8)]
        assert all(np.ptp(m) > 0 for m in maps)
    out = run_cli("iss", str(ep), "--budget", "4", "--bandwidth", "0")
    assert out.returncode == 0 and "not pooled (per-frame maps)" in out.stdout, out.stderr
    empty = tmp_path / "nothing.h5"
    empty.write_text("x")
    bad = run_cli("iss", str(empty))
    assert bad.returncode == 2 and "nothing.h5" in bad.stderr
