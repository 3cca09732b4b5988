"""openpi interop against openpi's own code, in its own virtualenv (numpy < 2): openpi's
``WebsocketPolicyServer`` driven by our ``remote`` plugin, and openpi's
``WebsocketClientPolicy`` driving ``vlascope serve``. Every check compares numbers made by
two processes on two code paths with the in-process reference policy's."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openpi_env import SCRIPTS, openpi_env_vars, openpi_python, openpi_served  # noqa: F401
from served import served

from vlascope.core.plugins import PluginRegistry
from vlascope.core.policy import Observation
from vlascope.core.runner import rollout
from vlascope.core.saliency.iss import ISSConfig, pixel_iss
from vlascope.policies.reference.policy import ReferencePolicy

pytestmark = pytest.mark.slow
TOL = 1e-5


@pytest.fixture(scope="module")
def reference() -> ReferencePolicy:
    return ReferencePolicy(device="cpu")


class Pinned:
    """The in-process reference policy as serve_with_openpi.py serves it: every call under
    common noise (an openpi request cannot ask for it, so that server always pins)."""

    def __init__(self, policy: ReferencePolicy):
        self.policy = policy
        self.cameras, self.image_size = policy.cameras, policy.image_size
        self.n_action_steps = 1  # the remote plugin replans every step on a plain server

    def reset(self) -> None:
        self.policy.reset()

    def batch_infer(self, observations: list[Observation]) -> np.ndarray:
        with self.policy.common_noise():
            return self.policy.batch_infer(observations)


def _chunks(scene, policy: Any, record_to: Path) -> np.ndarray:
    chunks: list[np.ndarray] = []
    result = rollout(scene, policy, "stack_red_on_blue", 3, max_steps=6, record_to=record_to,
                     on_step=lambda r: chunks.append(np.array(r.action_chunk)))
    assert result.steps == len(chunks) and Path(result.path).is_file()
    return np.stack(chunks)


def test_remote_plugin_against_openpi_server(openpi_python, reference, scene,  # noqa: F811
                                             tmp_path):
    with openpi_served(openpi_python) as url:
        remote = PluginRegistry.discover().create_policy(
            "remote", url=url, cameras="front,wrist", image_size="96x96")
        try:
            assert remote.served_by == "openpi"
            assert not hasattr(remote, "hook") and not hasattr(remote, "layers")
            assert "plain openpi server" in remote.unavailable
            assert "hook points" in remote.unavailable

            # (a) a closed-loop rollout on the tabletop scene, recorded
            theirs = _chunks(scene, remote, tmp_path / "remote.h5")
            ours = _chunks(scene, Pinned(reference), tmp_path / "local.h5")
            assert theirs.shape == ours.shape == (6, 8, 4)
            assert np.abs(theirs - ours).max() <= TOL
            assert np.abs(ours[1:] - ours[:-1]).max() > 1e-3  # the steps differ: a real test

            # (b) one pixel-ISS frame: one openpi request per perturbed frame
            scene.reset("stack_red_on_blue", 0)
            obs = scene.observe(cameras=reference.cameras, size=reference.image_size)
            cfg = ISSConfig(n_masks=20, batch_size=10, seed=4)
            far = pixel_iss(remote, obs.observation, cfg)
            near = pixel_iss(reference, obs.observation, cfg)
        finally:
            remote.close()
    assert far.n_forward == near.n_forward
    assert np.abs(far.base_actions - near.base_actions).max() <= TOL
    for cam in ("front", "wrist"):
        assert far.maps[cam].shape == near.maps[cam].shape == (96, 96)
        assert np.abs(far.maps[cam] - near.maps[cam]).max() <= TOL
        assert near.maps[cam].std() > 0


def _load_driver():
    spec = importlib.util.spec_from_file_location("drive_vlascope",
                                                  SCRIPTS / "drive_vlascope.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openpi_client_drives_vlascope_serve(openpi_python, tmp_path):  # noqa: F811
    out = tmp_path / "actions.npz"
    with served() as server:
        proc = subprocess.run([str(openpi_python), str(SCRIPTS / "drive_vlascope.py"),
                               server.url, str(out), "--n", "4", "--seed", "7"],
                              capture_output=True, text=True, env=openpi_env_vars(),
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        server.proc.terminate()
        server.proc.wait(timeout=30)
        log = server.proc.stderr.read()
    assert "Traceback" not in log, log[-3000:]  # a client leaving is no error
    got = np.load(out)
    meta = json.loads(str(got["metadata"]))
    d = meta["vlascope"]["policy"]
    assert d["plugin"] == "reference" and d["policy_id"] == "vlascope/reference"
    assert d["cameras"] == ["front", "wrist"] and d["image_size"] == [96, 96]
    assert "common_noise" in d["capabilities"]

    sent = _load_driver().observations(["front", "wrist"], (96, 96), 4, 4, 7)
    for cam in ("front", "wrist"):
        assert np.array_equal(got[f"observation__{cam}"],
                              np.stack([o[f"observation/{cam}"] for o in sent]))
    # A plain openpi request does not pin common noise: a fresh server's policy draws from
    # its noise stream from the start, one observation per call, as a fresh one here does.
    fresh = ReferencePolicy(device="cpu")
    want = np.stack([fresh.batch_infer([Observation(
        {c: o[f"observation/{c}"] for c in ("front", "wrist")}, o["observation/state"],
        o["prompt"])])[0] for o in sent])
    assert got["actions"].shape == want.shape == (4, 8, 4)
    assert np.abs(got["actions"] - want).max() <= TOL
    # the noise stream moved on: the same inputs again give other actions
    again = fresh.batch_infer([Observation({c: sent[0][f"observation/{c}"]
                                            for c in ("front", "wrist")},
                                           sent[0]["observation/state"], sent[0]["prompt"])])
    assert np.abs(again[0] - got["actions"][0]).max() > 1e-4
