"""The Interventions dock with real clicks: an A/B run of a counterfactual prompt and of an
activation injection from a recorded source, each recorded, shown with the baseline's
actions on the timeline and the effect the core measures; and a re-run of the shown
episode from its own recorded interventions."""

import numpy as np
import pytest
from PySide6.QtCore import Qt
from test_app import WAIT_MS, actions_of, errors_shown, idle

from vlascope.core.episode import Episode
from vlascope.core.runner import rollout

LAYER = "trunk.1.resid"


def run_ab(qtbot, window, dock, button):
    with qtbot.waitSignal(window.controller.ab_ready, timeout=WAIT_MS) as got:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    idle(qtbot, window)
    return got.args[0]


@pytest.mark.slow
def test_prompt_and_injection_ab_runs_and_rerun(qtbot, window, scene, tmp_path):
    ws = window.workspace
    dock = window.interventions_dock
    dock.raise_()
    dock.kind.setCurrentText("counterfactual prompt")
    dock.prompt_kind.setCurrentText("wrong_object")
    dock.start.setValue(2)
    window.actions_by_name["record-display"].trigger()  # both runs keep crisp frames
    result = run_ab(qtbot, window, dock, dock.run)
    a, a_meta = actions_of(result.baseline.path)
    for path in (result.baseline.path, result.intervened.path):
        with Episode(path) as ep:
            assert ep.display_cameras == ["front", "wrist"]
            assert ep.display_frame(0, "front").shape[:2] == window.controller.display_size
    b, b_meta = actions_of(result.intervened.path)
    assert a_meta["seed"] == b_meta["seed"] == 0 and a_meta["interventions"] == []
    (prompt,) = b_meta["interventions"]
    assert prompt["kind"] == "prompt" and prompt["start"] == 2
    assert prompt["text"] == "pick up the blue cube"  # the wrong object named
    # the shown episode is B, the timeline draws A's actions under it
    assert str(ws.recording.path) == str(result.intervened.path)
    np.testing.assert_allclose(ws.baseline, a)
    tl = window.timeline_dock
    assert len(tl.baseline_curves) == a.shape[1] + 1  # A's dimensions and |B - A|
    np.testing.assert_allclose(tl.baseline_curves[0].getData()[1], a[:, 0])
    n = min(len(a), len(b))
    np.testing.assert_allclose(tl.gap_curve.getData()[1],
                               np.linalg.norm(b[:n] - a[:n], axis=1), rtol=1e-6)
    # ... and the Scene dock shows both runs side by side, A beside B
    assert set(window.scene_dock.other_views) == set(window.scene_dock.views)
    # the files hold float32 actions, the comparison the rollouts' own: float32 rounding
    np.testing.assert_allclose(result.action_diff, np.linalg.norm(a[:n] - b[:n], axis=1),
                               rtol=1e-6)
    np.testing.assert_allclose(a[:2], b[:2], atol=1e-6)  # nothing changed before step 2
    assert dock.diff_curve.getData()[1] is not None and "A (unmodified)" in \
        dock.summary.text()
    # re-run the shown episode from its recorded interventions: the same B
    again = run_ab(qtbot, window, dock, dock.rerun)
    b2, meta2 = actions_of(again.intervened.path)
    assert meta2["interventions"] == b_meta["interventions"]
    np.testing.assert_allclose(b2, b, atol=1e-6)

    # inject the trunk layer recorded in another task's episode
    policy = window.engine.session.policy
    source = tmp_path / "source.h5"
    rollout(scene, policy, "pick_blue", 0, max_steps=20, record_to=source, capture=[LAYER])
    dock.kind.setCurrentText("inject activations")
    dock.source.setText(str(source))
    dock.inject_layer.setCurrentText(LAYER)
    dock.start.setValue(0)
    injected = run_ab(qtbot, window, dock, dock.run)
    _b3, meta3 = actions_of(injected.intervened.path)
    assert meta3["interventions"][0]["kind"] == "inject"
    assert meta3["interventions"][0]["source"] == str(source)
    assert injected.action_diff.max() > 1e-3
    window.grab().save(str(tmp_path / "ab.png"))
    assert not errors_shown(window)


def test_a_bad_setting_fails_with_a_dialog_and_keeps_the_app(qtbot, window):
    dock = window.interventions_dock
    dock.kind.setCurrentText("inject activations")
    dock.source.setText("/nowhere/source.h5")
    dock.inject_layer.setCurrentText(LAYER)
    qtbot.mouseClick(dock.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
    idle(qtbot, window)
    assert dock.run.isEnabled() and dock.summary.text() == "A/B run failed"


def test_two_episodes_side_by_side_in_sync(qtbot, window, scene, tmp_path):
    """File > Compare: B shown with A beside it at the same step, A's last frame once A
    has ended, the overlay of both computed by one Explain, the action gap on the timeline,
    and a screenshot of the A|B view."""
    from test_app import shown_map

    from vlascope.core.saliency.iss import pixel_iss

    policy = window.engine.session.policy
    a_path, b_path = tmp_path / "a.h5", tmp_path / "b.h5"
    rollout(scene, policy, "pick_red", 0, max_steps=12, record_to=a_path)
    rollout(scene, policy, "pick_red", 0, max_steps=18, record_to=b_path,
            instruction="pick up the blue cube")
    assert window.compare_episodes(str(a_path), str(b_path))
    ws, dock = window.workspace, window.scene_dock
    assert str(ws.recording.path) == str(b_path) and ws.comparison is not None
    a, _ = actions_of(a_path)
    b, _ = actions_of(b_path)
    assert set(dock.other_views) == set(dock.views) == {"front", "wrist"}
    for _ in range(5):
        qtbot.keyClick(window, Qt.Key.Key_Right)
    assert ws.step == 5
    with Episode(a_path) as ea, Episode(b_path) as eb:
        for cam in ("front", "wrist"):
            np.testing.assert_array_equal(dock.views[cam].frame.image, eb.frame(5, cam))
            np.testing.assert_array_equal(dock.other_views[cam].frame.image,
                                          ea.frame(5, cam))
        assert "A: " in dock.caption.text() and "B: " in dock.caption.text()
        # one Explain computes the shown step's map for both runs, as the core does
        window.saliency_dock.raise_()
        qtbot.mouseClick(window.saliency_dock.compute, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: ws.comparison_maps_at() is not None, timeout=WAIT_MS)
        idle(qtbot, window)
        cfg = ws.saliency.iss_config()
        want = pixel_iss(policy, ws.comparison.observation(5), cfg).maps
        for cam, view in dock.other_views.items():
            np.testing.assert_allclose(ws.comparison_maps_at()[cam], want[cam], rtol=1e-4,
                                       atol=1e-6)
            np.testing.assert_allclose(view.overlay.image, shown_map(view, want[cam]),
                                       rtol=1e-4, atol=1e-6)
        dock.grab().save(str(tmp_path / "ab-view.png"))
        # past A's end, A stays at its last frame and the caption says so
        qtbot.keyClick(window, Qt.Key.Key_End)
        assert ws.step == 17 and ws.comparison_step() == 11
        np.testing.assert_array_equal(dock.other_views["front"].frame.image,
                                      ea.frame(11, "front"))
        assert "A ended at step 12" in dock.caption.text()
    n = min(len(a), len(b))
    np.testing.assert_allclose(window.timeline_dock.gap_curve.getData()[1],
                               np.linalg.norm(b[:n] - a[:n], axis=1), rtol=1e-6)
    # File > Close the A|B comparison: back to one run
    window.actions_by_name["end-compare"].trigger()
    assert ws.comparison is None and dock.other_views == {}
    assert window.timeline_dock.gap_curve is None
    # a damaged A changes nothing and says why
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an episode")
    assert not window.compare_episodes(str(bad), str(a_path))
    assert str(ws.recording.path) == str(b_path) and errors_shown(window)
