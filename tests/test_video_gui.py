"""Video from the window with real clicks: the record toggle captures the Scene dock while
the rollout plays (an H.264 file with one frame per shown step, written when toggled
off); the export dialog composes an A/B pair in the worker with progress, and its Cancel
leaves no file."""

import av
import numpy as np
import pytest
from PySide6.QtCore import Qt
from test_app import WAIT_MS, errors_shown, idle, play_steps

from vlascope.core.video import Composer, open_tracks


def decode(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, [f.to_ndarray(format="rgb24") for f in c.decode(s)]


@pytest.mark.slow
def test_record_toggle_captures_what_the_scene_dock_shows(qtbot, window, tmp_path):
    toolbar_action = window.actions_by_name["record-video"]
    toolbar_action.trigger()
    assert window.video.recording
    before = window.workspace.n_steps
    play_steps(qtbot, window, before + 5)
    shown = window.workspace.n_steps - before
    toolbar_action.trigger()
    assert not window.video.recording and not toolbar_action.isChecked()
    (video,) = (tmp_path / "recordings" / "videos").glob("*.mp4")
    codec, frames = decode(video)
    assert codec == "h264"
    assert shown <= len(frames) - 1 <= shown + 1  # the first frame, then one per step
    h, w = frames[0].shape[:2]
    assert h % 2 == w % 2 == 0 and all(f.shape == frames[0].shape for f in frames)
    assert h > 200 and w > 300 and frames[-1].std() > 10  # the scene, not a blank widget
    # the frames show the steps: consecutive frames differ (the robot moves)
    assert np.abs(frames[-1].astype(int) - frames[1].astype(int)).mean() > 0.5


@pytest.mark.slow
def test_export_dialog_writes_the_ab_pair_and_cancel_leaves_nothing(qtbot, window,
                                                                    tmp_path):
    dock = window.interventions_dock
    dock.kind.setCurrentText("visual perturbation")
    dock.perturbation.setCurrentText("gaussian_noise")
    with qtbot.waitSignal(window.controller.ab_ready, timeout=WAIT_MS) as got:
        qtbot.mouseClick(dock.run, Qt.MouseButton.LeftButton)
    idle(qtbot, window)
    result = got.args[0]
    dialog = window.export_video_dialog()
    assert dialog.compare.text() == str(result.baseline.path)  # A/B pair by default
    dialog.overlay.setCurrentText("regions")
    dialog.height_px.setValue(96)
    out = tmp_path / "ab.mp4"
    dialog.out.setText(str(out))
    # cancel as soon as the export starts: no file, the dialog usable again
    window.controller.video_progress.connect(
        lambda state, d, n, p: state == "running" and d >= 2 and
        window.controller.engine.cancel("video"))
    qtbot.mouseClick(dialog.export, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.export.isEnabled(), timeout=WAIT_MS)
    idle(qtbot, window)
    assert not out.exists() and not list(tmp_path.glob(".ab.mp4.partial*"))
    window.controller.video_progress.disconnect()
    dialog.controller.video_progress.connect(dialog._progress)
    with qtbot.waitSignal(dialog.accepted, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.export, Qt.MouseButton.LeftButton)
    assert dialog.result == str(out)
    codec, frames = decode(out)
    n = max(result.baseline.result.steps, result.intervened.result.steps)
    assert codec == "h264" and len(frames) == n
    tracks = open_tracks([result.baseline.path, result.intervened.path], ("A", "B"))
    try:
        comp = Composer(tracks, dialog.layout_settings())
        assert frames[0].shape == (comp.height, comp.width, 3)
        assert np.abs(frames[4].astype(int) - comp.frame(4).astype(int)).mean() < 8
    finally:
        for tr in tracks:
            tr.episode.close()
    assert not errors_shown(window)
