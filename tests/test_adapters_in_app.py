"""The inspector on the adapters for real VLA families, each on a tiny random-weight
checkpoint written by the family's own code: load it from its folder through the Plugins
dock, see its hook points in the layer picker, play the live scene, explain a frame with
ISS. Runs for every first-party adapter plugin installed (CI installs them all)."""

import time
from pathlib import Path

import numpy as np
import pytest
from envs import build_env, run_in_env
from PySide6.QtCore import Qt
from test_app import WAIT_MS, errors_shown, idle, new_window, play_steps, shown_map

from vlascope.app.launch import open_window


def tiny_pi0(folder, **shape):
    tiny = pytest.importorskip("vlascope_transformers.tiny")
    return tiny.write_tiny_pi0(folder, **shape)


def tiny_smolvla(folder, **shape):
    tiny = pytest.importorskip("vlascope_lerobot.tiny")
    return tiny.write_tiny_smolvla(folder, **shape)


def tiny_xvla(folder, **shape):
    """Written by X-VLA's own code in the lerobot environment (the tabletop's shape)."""
    assert shape["cameras"] == ("front", "wrist"), "the tiny X-VLA is built for the tabletop"
    pytest.importorskip("vlascope_lerobot")
    out = run_in_env(build_env("lerobot"), "-m", "vlascope_lerobot.xvla_build", str(folder),
                     plugin="vlascope-lerobot")
    return Path(out.strip())


WRITERS = {"pi0": tiny_pi0, "smolvla": tiny_smolvla, "xvla": tiny_xvla}
LIBERO_CAMERAS = ("agentview", "robot0_eye_in_hand")
SCENES = {  # scene -> task, the checkpoint's cameras / state / action sizes
    "tabletop": ("pick_red", {"cameras": ("front", "wrist"), "state_dim": 4,
                              "action_dim": 4}),
    "libero": ("libero_spatial/0", {"cameras": LIBERO_CAMERAS, "state_dim": 8,
                                    "action_dim": 7}),
}


@pytest.mark.slow
@pytest.mark.parametrize("policy, scene", [("pi0", "tabletop"), ("smolvla", "tabletop"),
                                           ("smolvla", "libero"), ("xvla", "tabletop")])
def test_tiny_adapter_runs_in_the_inspector(qtbot, tmp_path, policy, scene):
    if scene != "tabletop":
        pytest.importorskip(f"vlascope_{scene}")
    task, shape = SCENES[scene]
    folder = WRITERS[policy](tmp_path / policy, **shape)
    window = new_window(qtbot, tmp_path)
    ws = window.workspace
    ws.update_run(seed=0)
    ws.update_saliency(n_masks=16)
    window.resize(1400, 860)
    # as `vlascope app --policy P --scene S --task T --weights DIR`
    open_window(window=window, weights=str(folder), policy=policy, scene=scene, task=task)
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: ws.policy_label.startswith(policy), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: ws.recording is not None, timeout=WAIT_MS)
    idle(qtbot, window)
    picker = window.plugins_dock.hooks
    assert {"tokens.visual", "vlm.0.mlp", "expert.0.resid"} <= set(picker.names())
    # "Load policy checkpoint..." in the Plugins dock, with the folder the dialog returns
    picker.clear()
    window.plugins_dock.load_checkpoint(str(folder))
    qtbot.waitUntil(lambda: bool(picker.names()), timeout=WAIT_MS)
    idle(qtbot, window)
    play_steps(qtbot, window, 3)
    assert ws.n_steps >= 3
    cams = shape["cameras"]
    front = window.scene_dock.views[cams[0]]
    assert front.frame.image is not None and np.ptp(front.frame.image) > 0
    dock = window.saliency_dock
    dock.raise_()
    qtbot.mouseClick(dock.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ws.maps_at() is not None, timeout=WAIT_MS)
    maps = ws.maps_at()
    assert set(maps) == set(cams)
    np.testing.assert_allclose(front.overlay.image, shown_map(front, maps[cams[0]]))
    assert np.ptp(maps[cams[0]]) > 0
    window.grab().save(str(tmp_path / f"{policy}-{scene}.png"))
    window.plugins_dock.raise_()
    picker.select("vlm.0.resid")
    assert picker.current_name() == "vlm.0.resid"
    window.grab().save(str(tmp_path / f"{policy}-{scene}-hooks.png"))
    assert not errors_shown(window)
    served = getattr(window.engine.session.policy, "server_pid", None)
    if policy == "xvla":  # served from the lerobot environment, said in the status bar
        assert served is not None
        assert window.connection_label.text() == \
            f"Policy: served from the 'lerobot' environment (xvla:{folder})"
    window.close()
    if served is not None:  # a family served from its environment: the server went too
        assert not _running(served)


def _running(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return Path(f"/proc/{pid}").exists()


def test_picking_an_adapter_asks_for_its_checkpoint(qtbot, tmp_path):
    """A policy that ships no weights asks for a folder when picked; cancelling keeps the
    loaded policy and the picker shows it again."""
    folder = tiny_pi0(tmp_path / "pi0")
    window = new_window(qtbot, tmp_path)
    ws = window.workspace
    open_window(window=window, policy="reference", scene="tabletop", task="pick_red")
    qtbot.waitUntil(lambda: ws.policy_label == "reference", timeout=WAIT_MS)
    idle(qtbot, window)
    asked = []
    box = window.scene_dock.policy_box
    window.plugins_dock.choose_folder = lambda parent, title: asked.append(title) or ""
    box.setCurrentText("pi0")  # as picking it in the list
    assert asked == ["Checkpoint folder for the pi0 policy"]
    assert ws.run.policy == "reference" and box.currentText() == "reference"
    window.plugins_dock.choose_folder = lambda parent, title: str(folder)
    box.setCurrentText("pi0")
    qtbot.waitUntil(lambda: ws.policy_label == f"pi0 ({folder.name})", timeout=WAIT_MS)
    assert window.controller.weights == str(folder)
    assert "expert.1.mlp" in window.plugins_dock.hooks.names()
    assert not errors_shown(window)
    window.close()
