"""The free camera: a real tabletop rollout of the shipped reference policy, recorded with
its simulator state, looked around in through the dock with real mouse events."""

import shutil

import h5py
import mujoco
import numpy as np
import pytest
from free_camera_checks import free_camera_dock
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication
from qt_events import raw_drag

from vlascope.core.episode import Episode
from vlascope.core.free_camera import NO_STATE, FreeCamera, simulator_model
from vlascope.core.live import LiveRollout
from vlascope.scenes.tabletop import TabletopScene

LIVE_STEP = 5


def _show_all(cam: FreeCamera) -> None:
    cam.set_flag(mujoco.mjtVisFlag.mjVIS_CONTACTPOINT, True)
    cam.set_flag(mujoco.mjtVisFlag.mjVIS_CONTACTFORCE, True)
    cam.set_body_frames(True)


@pytest.fixture(scope="module")
def rollout(scene, tmp_path_factory):
    """Eight steps of the reference policy recorded to a file; at ``LIVE_STEP`` the live
    simulator (its MjData, not a stored state) rendered from a set viewpoint with contacts,
    forces and frames on: what a recorded step must reproduce."""
    from vlascope.policies.reference.policy import ReferencePolicy

    path = tmp_path_factory.mktemp("freecam") / "ep.h5"
    live = LiveRollout(scene, ReferencePolicy(name="reference"), "pick_red", 3, max_steps=8,
                       record_to=path)
    ref = {}
    with FreeCamera(simulator_model(scene), (240, 320)) as cam:
        _show_all(cam)
        while not live.done:
            if live.t == LIVE_STEP:
                cam.show_data(scene.data)
                cam.reset_view()
                cam.camera.azimuth += 30
                ref = {"image": cam.render(), "lookat": cam.camera.lookat.copy(),
                       "distance": cam.camera.distance, "azimuth": cam.camera.azimuth,
                       "elevation": cam.camera.elevation, "ncon": scene.data.ncon}
            live.step()
    live.close()
    return path, ref


@pytest.fixture(scope="module")
def replay_scene():
    with TabletopScene() as s:
        yield s


@pytest.fixture
def dock(qtbot, replay_scene):
    d = free_camera_dock(qtbot, replay_scene, (420, 390))
    yield d
    d.close()
    if d.ws.recording is not None:
        d.ws.recording.close()


def _open(qtbot, dock, path, step=0):
    before = dock.view.frames
    dock.ws.open_episode(path)
    dock.ws.set_step(step)
    qtbot.waitUntil(lambda: dock.view.frames > before and dock.camera is not None)
    qtbot.waitUntil(lambda: not dock._render_timer.isActive())
    return dock.view.image.copy()


def _frame(qtbot, dock, before):
    qtbot.waitUntil(lambda: dock.view.frames > before)
    qtbot.waitUntil(lambda: not dock._render_timer.isActive())
    return dock.render_now()


def test_episode_keeps_the_simulator_state_per_step(rollout):
    path, _ref = rollout
    with Episode(path) as ep:
        assert ep.has_sim_state()
        assert ep.metadata["sim_state"]["spec"] == int(mujoco.mjtState.mjSTATE_INTEGRATION)
        states = np.stack([ep.sim_state(t) for t in range(ep.n_steps)])
    assert states.dtype == np.float64 and states.shape[0] == 8
    assert np.abs(np.diff(states, axis=0)).max() > 0  # the state moves with the rollout


def test_orbit_pan_and_zoom_with_the_mouse_change_the_view(qtbot, dock, rollout):
    first = _open(qtbot, dock, rollout[0], step=2)
    cam = dock.camera.camera
    az, el = cam.azimuth, cam.elevation
    w, h = dock.view.width(), dock.view.height()
    before = dock.view.frames
    raw_drag(dock.view, [(w // 2, h // 2), (w // 2 + 40, h // 2 + 10), (w // 2 + 80, h // 2 + 25)])
    orbited = _frame(qtbot, dock, before)
    assert cam.azimuth != pytest.approx(az) and cam.elevation != pytest.approx(el)
    assert np.mean(np.any(orbited != first, axis=-1)) > 0.2  # most of the view moved

    lookat = cam.lookat.copy()
    before = dock.view.frames
    raw_drag(dock.view, [(w // 2, h // 2), (w // 2 + 30, h // 2)], Qt.MouseButton.RightButton)
    _frame(qtbot, dock, before)
    assert np.linalg.norm(cam.lookat - lookat) > 1e-3
    lookat = cam.lookat.copy()
    raw_drag(dock.view, [(w // 2, h // 2), (w // 2, h // 2 + 30)],
          modifiers=Qt.KeyboardModifier.ShiftModifier)
    assert np.linalg.norm(cam.lookat - lookat) > 1e-3

    distance = cam.distance
    before = dock.view.frames
    ev = QWheelEvent(QPointF(w / 2, h / 2), QPointF(dock.view.mapToGlobal(QPoint(w // 2, h // 2))),
                     QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(dock.view, ev)
    _frame(qtbot, dock, before)
    assert cam.distance < distance

    dock.reset_button.click()
    assert cam.azimuth == pytest.approx(az) and cam.elevation == pytest.approx(el)


def test_a_click_names_the_body_as_the_scenes_segmentation(qtbot, dock, rollout,
                                                           replay_scene):
    """Looking through the policy's front camera, a click at a pixel names the object the
    scene's own segmentation puts there, with its region class and the Regions dock's id."""
    _open(qtbot, dock, rollout[0], step=0)
    dock.look_from.setCurrentText("front")
    qtbot.waitUntil(lambda: not dock._render_timer.isActive())
    h, w = dock.camera.size
    assert (h, w) == (dock.view.height(), dock.view.width())
    # the replay scene was just reset to the episode's start: step 0's state
    frame = replay_scene.observe(cameras=["front"], size=(h, w), regions=True)
    seg, lab = frame.segments["front"], frame.regions["front"]
    names = dock.ws.recording.segment_names()
    checked = set()
    for name in ("cube_a", "cube_b", "table", "robot_bridge", "plate", "wall_back"):
        obj = next(k for k, v in names.items() if v == name)
        inside = seg == obj
        for _ in range(3):  # away from the edges (the camera and the render differ by
            inside[1:-1, 1:-1] &= (inside[:-2, 1:-1] & inside[2:, 1:-1]  # a substep there)
                                   & inside[1:-1, :-2] & inside[1:-1, 2:])
        ys, xs = np.nonzero(inside[1:-1, 1:-1])
        if not len(ys):
            continue
        y, x = ys[len(ys) // 2] + 1, xs[len(xs) // 2] + 1
        raw_drag(dock.view, [(x, y)])
        sel = dock.selection
        assert sel is not None, name
        assert (sel.object_id, sel.object_name, sel.label) == (obj, name, lab[y, x])
        assert sel.label_name in dock.message.text() and name in dock.message.text()
        checked.add(name)
    assert {"cube_a", "table", "robot_bridge"} <= checked


def test_a_recorded_step_rerenders_as_the_live_simulator_drew_it(qtbot, dock, rollout):
    path, ref = rollout
    _open(qtbot, dock, path, step=LIVE_STEP)
    for box in (dock.contacts, dock.forces, dock.frames):
        box.setChecked(True)
    dock.set_paths(False)  # the live reference had no path drawn
    cam = dock.camera
    cam.resize(ref["image"].shape[:2])
    cam.camera.lookat[:] = ref["lookat"]
    cam.camera.distance, cam.camera.azimuth = ref["distance"], ref["azimuth"]
    cam.camera.elevation = ref["elevation"]
    state = dock.ws.recording.sim_state(LIVE_STEP)
    cam.set_state(state)
    image = cam.render()
    assert ref["ncon"] > 0
    assert np.array_equal(image, ref["image"])
    # and another step does not (the test can fail)
    cam.set_state(dock.ws.recording.sim_state(LIVE_STEP - 3))
    assert not np.array_equal(cam.render(), ref["image"])


def test_contact_toggle_draws_contacts_where_they_are(qtbot, dock, rollout):
    """Through the front camera (a known projection), ticking Contacts changes the picture
    only around the simulator's contact points, and unticking it takes the marks away."""
    from vlascope.core.projection import mujoco_camera_matrix

    _open(qtbot, dock, rollout[0], step=LIVE_STEP)
    dock.set_paths(False)
    dock.look_from.setCurrentText("front")
    plain = dock.render_now()
    cam = dock.camera
    m, d = cam.model, cam.data
    assert d.ncon > 0
    matrix = mujoco_camera_matrix(m, d, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA,
                                                          "front"), cam.size)
    uvw = np.c_[d.contact.pos[:d.ncon], np.ones(d.ncon)] @ matrix.T
    contacts = uvw[:, :2] / uvw[:, 2:]  # pixels (u right, v down)
    qtbot.mouseClick(dock.contacts, Qt.MouseButton.LeftButton)
    assert dock.contacts.isChecked()
    with_contacts = dock.render_now()
    ys, xs = np.nonzero(np.any(with_contacts != plain, axis=-1))
    assert len(ys) > 0
    near = np.min(np.hypot(xs[:, None] - contacts[None, :, 0],
                           ys[:, None] - contacts[None, :, 1]), axis=1)
    assert np.mean(near < 12) > 0.95  # the marks sit on the contacts
    qtbot.mouseClick(dock.contacts, Qt.MouseButton.LeftButton)
    assert np.array_equal(dock.render_now(), plain)



def test_force_arrows_scale_with_the_cm_per_newton_box(qtbot, dock, rollout):
    """Longer arrows per newton cover more of the picture; back to the default, the
    picture is the default's again."""
    _open(qtbot, dock, rollout[0], step=LIVE_STEP)
    dock.set_paths(False)
    dock.look_from.setCurrentText("front")
    plain = dock.render_now()
    qtbot.mouseClick(dock.forces, Qt.MouseButton.LeftButton)
    default = dock.render_now()
    changed = np.any(default != plain, axis=-1).sum()
    assert changed > 0 and dock.force_scale.value() == 5.0
    dock.force_scale.selectAll()
    qtbot.keyClicks(dock.force_scale, "40")
    assert dock.force_scale.value() == 40.0
    longer = np.any(dock.render_now() != plain, axis=-1).sum()
    assert longer > 2 * changed
    dock.force_scale.setValue(5.0)
    assert np.array_equal(dock.render_now(), default)

def test_planned_path_drawn_in_3d_with_the_overlay(qtbot, dock, rollout):
    _open(qtbot, dock, rollout[0], step=1)
    path = dock.ws.recording.hand_path(1)
    assert path is not None and len(path.planned) > 2
    dock.set_paths(False)
    off = dock.render_now()
    dock.set_paths(True)
    on = dock.render_now()

    def lime(img):
        r, g, b = (img[..., i].astype(int) for i in range(3))
        return (g > 150) & (g > r + 40) & (g > b + 60)

    assert lime(on).sum() > lime(off).sum() + 30


def test_an_old_episode_without_state_says_so(qtbot, dock, rollout, tmp_path):
    old = tmp_path / "old.h5"
    shutil.copy(rollout[0], old)
    with h5py.File(old, "r+") as f:  # what an episode of an earlier VLAScope holds
        del f["steps/sim_state"]
        import json

        meta = json.loads(f.attrs["metadata"])
        meta.pop("sim_state")
        f.attrs["metadata"] = json.dumps(meta)
    dock.ws.open_episode(old)
    assert dock.message.text() == NO_STATE
    assert dock.camera is None
    w, h = dock.view.width(), dock.view.height()
    raw_drag(dock.view, [(10, 10), (w // 2, h // 2)])  # nothing to move: nothing breaks
    raw_drag(dock.view, [(w // 2, h // 2)])
    dock.contacts.setChecked(True)
    dock.ws.set_step(3)
    assert dock.render_now() is None and dock.message.text() == NO_STATE
    # and a file with the state opened next draws again
    _open(qtbot, dock, rollout[0], step=1)
    assert dock.camera is not None and "Step 1" in dock.message.text()


def test_the_window_shows_the_live_rollout_in_the_free_camera(qtbot, window):
    """In the inspector: the dock sits beside the Scene dock, builds its simulator on the
    worker thread, and follows the live rollout step by step."""
    from test_app import WAIT_MS, play_steps

    dock = window.free_camera_dock
    assert dock in window.docks and dock.toggleViewAction().text() == "Free camera"
    dock.raise_()
    play_steps(qtbot, window, 3)
    qtbot.waitUntil(lambda: dock.camera is not None and dock.view.frames > 0, timeout=WAIT_MS)
    rec = window.workspace.recording
    assert rec.sim_state(window.workspace.step) is not None
    first = dock.render_now()
    window.workspace.set_step(0)
    assert not np.array_equal(dock.render_now(), first)  # the hand moved since step 0
    window.actions_by_name["paths"].trigger()  # View > Planned vs executed: off
    assert not dock.paths_on


def test_a_scene_that_cannot_restore_a_state_says_so(qtbot, dock, rollout):
    """A scene without a simulator to hand out (here the tabletop before its first reset)
    is refused with a reason; a live rollout of such a scene (no state in its metadata)
    tells the user, and draws nothing."""
    from vlascope.core.free_camera import FreeCameraUnavailable

    with TabletopScene() as fresh:
        assert fresh.simulator() is None and fresh.sim_state() is None
        with pytest.raises(FreeCameraUnavailable, match="cannot restore a simulator state"):
            simulator_model(fresh)
    with Episode(rollout[0]) as ep:
        meta = {k: v for k, v in ep.metadata.items() if k != "sim_state"}
    dock.ws.begin_live(meta, ["front", "wrist"], None)
    assert "cannot restore a simulator state" in dock.message.text()
    assert dock.camera is None and dock.render_now() is None


def test_a_malformed_state_dataset_is_refused_on_open(rollout, tmp_path):
    from vlascope.core.errors import EpisodeFormatError

    bad = tmp_path / "bad.h5"
    shutil.copy(rollout[0], bad)
    with h5py.File(bad, "r+") as f:
        n = f["steps/sim_state"].shape[0]
        del f["steps/sim_state"]
        f["steps/sim_state"] = np.zeros(n, np.float64)  # (T,), not (T, N)
    with pytest.raises(EpisodeFormatError, match="sim_state"):
        Episode(bad)
