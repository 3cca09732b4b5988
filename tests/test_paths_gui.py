"""Planned vs executed in the inspector, driven by real key and mouse events: the Scene
dock's paths are the stored planned hand path and hand positions projected with the stored
camera matrices, the timeline's fan is the stored chunk, and View > Planned vs executed
path hides both."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from vlascope.core.episode import Episode
from vlascope.core.paths import chunk_origin
from vlascope.core.projection import project, scale_matrix
from vlascope.core.runner import rollout
from vlascope.policies.reference.policy import ReferencePolicy


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    from vlascope.scenes.tabletop import TabletopScene

    path = tmp_path_factory.mktemp("paths") / "ep.h5"
    with TabletopScene() as scene:
        rollout(scene, ReferencePolicy(name="reference"), "pick_red", 5, max_steps=16,
                record_to=path)
    return path


def expected_paths(path, t, cam, shown):
    """The stored planned path and hand positions, projected with the stored matrix."""
    with Episode(path) as ep:
        matrix = ep.camera_matrices(cam)[t]
        size = ep.frame(t, cam).shape[:2]
        origin = chunk_origin(t, ep.chunk_indices()[t])
        planned = ep.planned_hands()[t]
        executed = ep.hand_positions()[origin:origin + len(planned)]
        chunk = ep.action_chunks()[t]
    m = scale_matrix(matrix, size, shown)
    return project(m, planned), project(m, executed), chunk, origin


def click_plot(qtbot, window, step):
    """A real left click on the timeline plot at ``step`` (as a user scrubs)."""
    plot = window.timeline_dock.plot
    vb = plot.plotItem.vb
    view_pt = vb.mapSceneToView(vb.sceneBoundingRect().center())
    view_pt.setX(step)
    widget_pt = plot.mapFromScene(vb.mapViewToScene(view_pt))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(widget_pt))


def check_step(window, path, t):
    for cam, view in window.scene_dock.views.items():
        planned, executed, chunk, origin = expected_paths(path, t, cam, view.shape)
        assert view.path.planned.isVisible() and view.path.executed.isVisible()
        np.testing.assert_allclose(view.path.planned.points, planned, rtol=1e-6)
        np.testing.assert_allclose(view.path.executed.points, executed, rtol=1e-6)
    fan = window.timeline_dock.fan.lines
    assert len(fan) == chunk.shape[1]
    for d, line in enumerate(fan):
        assert line.isVisible()
        np.testing.assert_allclose(line.points[:, 0], origin + np.arange(len(chunk)))
        np.testing.assert_allclose(line.points[:, 1], chunk[:, d])


def test_scrubbing_draws_the_stored_paths_and_the_view_menu_hides_them(qtbot, window,
                                                                       episode):
    assert window.open_episode(str(episode))
    ws = window.workspace
    qtbot.keyClick(window, Qt.Key.Key_Home)
    for _ in range(5):
        qtbot.keyClick(window, Qt.Key.Key_Right)
    assert ws.step == 5
    check_step(window, episode, 5)
    # a click on the timeline plot at another step redraws the paths there
    before = {c: v.path.planned.points.copy() for c, v in window.scene_dock.views.items()}
    target = 11
    click_plot(qtbot, window, target)
    assert ws.step == target
    check_step(window, episode, target)
    assert any(not np.allclose(before[c], v.path.planned.points)
               for c, v in window.scene_dock.views.items())
    # View > Planned vs executed path: off hides both, on shows them again
    action = window.actions_by_name["paths"]
    assert action.isCheckable() and action.isChecked()
    action.trigger()
    assert not action.isChecked()
    for view in window.scene_dock.views.values():
        assert not view.path.planned.isVisible() and not view.path.executed.isVisible()
    assert all(len(line.points) == 0 for line in window.timeline_dock.fan.lines)
    qtbot.keyClick(window, Qt.Key.Key_Left)  # scrubbing while off keeps them hidden
    assert not any(v.path.planned.isVisible() for v in window.scene_dock.views.values())
    action.trigger()
    check_step(window, episode, target - 1)


def test_the_live_rollout_draws_its_paths_as_it_runs(qtbot, window):
    from test_app import play_steps

    play_steps(qtbot, window, 4)
    ws = window.workspace
    qtbot.keyClick(window, Qt.Key.Key_Home)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert ws.step == 1
    steps = ws.recording.steps
    for cam, view in window.scene_dock.views.items():
        record = steps[1]
        size = record.observation.images[cam].shape[:2]
        m = scale_matrix(record.camera_matrices[cam], size, view.shape)
        hands = [s.hand for s in steps[1:1 + len(record.planned_hand)]]
        assert view.path.planned.isVisible()
        np.testing.assert_allclose(view.path.planned.points, project(m, record.planned_hand))
        np.testing.assert_allclose(view.path.executed.points, project(m, np.array(hands)))
    np.testing.assert_allclose(window.timeline_dock.fan.lines[0].points[:, 1],
                               steps[1].action_chunk[:, 0])


def test_the_export_dialog_draws_the_path_unless_unticked(qtbot, window, episode, tmp_path):
    from PIL import Image

    from vlascope.core.video import Composer, open_tracks

    assert window.open_episode(str(episode))
    frames = {}
    for name, tick in (("on", True), ("off", False)):
        dialog = window.export_video_dialog()
        assert dialog.paths.isChecked()  # on by default
        if not tick:
            qtbot.mouseClick(dialog.paths, Qt.MouseButton.LeftButton)
        assert dialog.paths.isChecked() == tick and dialog.layout_settings().paths == tick
        dialog.overlay.setCurrentText("none")
        dialog.first.setValue(6)
        dialog.last.setValue(7)
        dialog.out.setText(str(tmp_path / name))
        with qtbot.waitSignal(dialog.accepted, timeout=120_000):
            qtbot.mouseClick(dialog.export, Qt.MouseButton.LeftButton)
        frames[name] = np.asarray(Image.open(tmp_path / name / "frame_00000.png"))
        tracks = open_tracks([episode])
        try:  # what was written is the composer's frame with that setting
            np.testing.assert_array_equal(frames[name],
                                          Composer(tracks, dialog.layout_settings()).frame(6))
        finally:
            tracks[0].episode.close()
    assert (frames["on"] != frames["off"]).any(axis=2).sum() > 30
