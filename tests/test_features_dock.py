"""The Features dock with real events: train a small SAE from the GUI on the shown
episode's activations and see it listed, select a feature and see its top frames and map,
pin it and move its steering slider: the live rollout's next actions change by what the
core computes for the same intervention window."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from qt_events import plot_to_widget
from test_app import WAIT_MS, actions_of, errors_shown, idle, play_steps

from vlascope.app.docks.feature_table import COLUMNS, LABEL
from vlascope.app.docks.features import N_EFFECTS
from vlascope.core.experiments import ablation_effects
from vlascope.core.features import encode, frame_feature_map
from vlascope.core.runner import rollout

LAYER = "trunk.1.resid"


def train_from_gui(qtbot, window, steps=80):
    dock = window.features_dock
    dock.raise_()
    dock.layer.setCurrentText(LAYER)
    dock.steps.setValue(steps)
    dock.expansion.setValue(2)
    dock.k.setValue(8)
    qtbot.mouseClick(dock.train, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.features is not None, timeout=WAIT_MS)
    idle(qtbot, window)
    return dock


def steer_from_gui(qtbot, window, dock, plain_steps=3, page_ups=3):
    """Pin the selected feature, start a fresh rollout, play ``plain_steps`` unsteered, then
    move its steering slider with the keyboard (PageUp: 10 units = alpha 1)."""
    ws = window.workspace
    qtbot.mouseClick(dock.pin, Qt.MouseButton.LeftButton)
    slider = dock.steer_rows[0].slider
    window.controller.reset()
    qtbot.waitUntil(lambda: ws.n_steps == 0 and window.controller.live, timeout=WAIT_MS)
    idle(qtbot, window)
    for _ in range(plain_steps):
        window.controller.step_once()
        idle(qtbot, window)
    slider.setFocus()
    for _ in range(page_ups):
        qtbot.keyClick(slider, Qt.Key.Key_PageUp)
    idle(qtbot, window)


@pytest.mark.slow
def test_train_browse_and_steer_from_the_gui(qtbot, window, scene, tmp_path):
    ws = window.workspace
    play_steps(qtbot, window, 18)  # into the grasp, so there are phases to compare
    dock = train_from_gui(qtbot, window)
    fs = dock.features
    policy = window.engine.session.policy  # the worker is idle: safe to read
    assert LAYER in [dock.layer.itemText(i) for i in range(dock.layer.count())]
    assert dock.model.rowCount() == fs.n_features == 2 * policy.trunk.cfg.d_model
    assert len(fs.samples.x) == ws.n_steps * len(fs.positions)  # every visual token
    assert dock.loss_curve.getData()[0] is not None  # the live training plot was drawn
    assert "held-out FVE" in dock.status.text()
    # sorted by density, densest first; the cells say what the features hold
    shown = dock.shown_features()
    assert sorted(shown) == list(range(fs.n_features))
    assert (np.diff(fs.stats.density[shown]) <= 0).all()
    top = dock.model.index(0, LABEL)
    assert dock.model.data(top) == fs.stats.labels[shown[0]]
    assert dock.model.data(dock.model.index(0, 1)) == f"{fs.stats.density[shown[0]]:.3f}"
    # a header click sorts by that column (ascending, then descending)
    header = dock.table.horizontalHeader()
    mean_col = COLUMNS.index("mean")
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(header.sectionViewportPosition(mean_col) + 5,
                                header.height() // 2))
    means = fs.stats.mean_active[dock.shown_features()]
    assert (np.diff(means) >= 0).all() or (np.diff(means) <= 0).all()
    assert not np.array_equal(dock.shown_features(), shown)
    # the search box filters by id or label
    before = dock.shown_features()
    qtbot.keyClicks(dock.search, "3")
    visible = dock.shown_features()  # in the order they were sorted in
    assert 3 in visible
    assert visible == [f for f in before if f == 3 or "3" in fs.stats.labels[f]]
    dock.search.clear()
    assert sorted(dock.shown_features()) == list(range(fs.n_features))
    # select the densest feature by clicking its row
    densest = int(np.argmax(fs.stats.density))
    rect = dock.table.visualRect(dock.model.index(dock.model.row_of(densest), 0))
    qtbot.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dock.selected_feature() == densest
    xs, ys = dock.step_curve.getData()
    np.testing.assert_allclose(ys, fs.step_max[:, densest])
    assert not dock.thumbs[0].icon().isNull()
    # clicking the top frame jumps there, and the feature's map of that frame arrives
    step = fs.top_frames(densest, 1)[0][0]
    qtbot.mouseClick(dock.thumbs[0], Qt.MouseButton.LeftButton)
    assert ws.step == step
    qtbot.waitUntil(lambda: getattr(dock, "last_map", (None, None))[:2] == (densest, step),
                    timeout=WAIT_MS)
    idle(qtbot, window)
    expected = frame_feature_map(policy, fs.sae, LAYER, ws.recording.observation(step),
                                 densest)
    for cam, m in dock.last_map[2].items():
        np.testing.assert_allclose(m, expected[cam], rtol=1e-4, atol=1e-5)
    assert dock.frame_map.pixmap() is not None and not dock.frame_map.pixmap().isNull()
    # Cohen's d by motion phase, and the ablation effects measured on request
    phases = {str(p) for p in fs.d_phase if p}
    assert phases and phases <= {"reach", "grasp", "carry", "release"}
    assert np.all(fs.cohen_d >= 0) and fs.cohen_d.max() > 0
    qtbot.mouseClick(dock.effects, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: np.isfinite(fs.effects).sum() == N_EFFECTS, timeout=WAIT_MS)
    idle(qtbot, window)
    measured = np.flatnonzero(np.isfinite(fs.effects))
    frames = [ws.recording.observation(t) for t in range(ws.n_steps)]
    expected = ablation_effects(policy, frames, sae=fs.path, layer=LAYER, features=measured)
    np.testing.assert_allclose(fs.effects[measured], expected, rtol=1e-5, atol=1e-6)
    assert dock.selected_feature() == densest  # the table was refreshed, selection kept
    window.grab().save(str(tmp_path / "features.png"))

    # pin it, start a fresh rollout, play 3 steps, move the slider with the keyboard
    steer_from_gui(qtbot, window, dock)
    assert dock.steer_rows[0].alpha == pytest.approx(3.0)
    assert [i["kind"] for i in ws.interventions] == ["steer"]
    for _ in range(4):
        window.controller.step_once()
        idle(qtbot, window)
    window.controller.reset()  # publishes the steered recording
    idle(qtbot, window)
    recordings = sorted((tmp_path / "recordings").glob("*.h5"))
    assert len(recordings) == 2  # the first rollout and the steered one (the new is empty)
    (live_actions, meta), = [(a, m) for a, m in map(actions_of, recordings)
                             if m.get("interventions")]
    windows = [(i["kind"], i["start"], i["stop"], i["alpha"]) for i in meta["interventions"]]
    assert windows[-1] == ("steer", 3, None, 3.0)
    n = len(live_actions)
    rollout(scene, policy, "pick_red", 0, max_steps=n, record_to=tmp_path / "core.h5",
            interventions=meta["interventions"])
    rollout(scene, policy, "pick_red", 0, max_steps=n, record_to=tmp_path / "plain.h5")
    (core, _), (plain, _) = (actions_of(tmp_path / f) for f in ("core.h5", "plain.h5"))
    np.testing.assert_allclose(live_actions, core, atol=1e-6)
    np.testing.assert_allclose(live_actions[:3], plain[:3], atol=1e-6)
    assert np.abs(live_actions[3:] - plain[3:]).max() > 1e-4
    assert encode(fs.sae, fs.samples.x).shape[1] == fs.n_features
    assert not errors_shown(window)


@pytest.mark.slow
def test_the_atlas_follows_the_features(qtbot, window):
    """PCA at once; the background embedding (here a quick stand-in for UMAP) replaces it
    when the atlas is shown; clicking a point selects that feature in the browser, and a
    lasso lists only its group."""
    from vlascope.core.sae.atlas import pca_embedding

    play_steps(qtbot, window, 4)
    dock = train_from_gui(qtbot, window, steps=40)
    atlas = window.atlas_dock
    fs = dock.features
    directions = fs.sae.W_dec.detach().numpy()
    np.testing.assert_allclose(atlas.xy, pca_embedding(directions))
    assert atlas.method.text() == "PCA"
    atlas.embed_fn = lambda x, seed=0, n_neighbors=15: x[:, :2] * 10.0
    atlas.raise_()
    qtbot.waitUntil(lambda: atlas.method.text() == "UMAP", timeout=WAIT_MS)
    np.testing.assert_allclose(atlas.xy, directions[:, :2] * 10.0, rtol=1e-5)
    view = atlas.view
    target = int(np.argmax(view.xy[:, 0]))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=plot_to_widget(view, *view.xy[target]))
    assert dock.selected_feature() == target
    assert dock._top == fs.top_frames(target, len(dock.thumbs))  # its top frames shown
    assert all(not dock.thumbs[i].icon().isNull() for i in range(len(dock._top)))
    # as a lasso does (its mouse path is tested on the view): (layer, feature) pairs
    view.lassoed_keys.emit([(fs.layer, 1), (fs.layer, 2), (fs.layer, 5)])
    assert sorted(dock.shown_features()) == [1, 2, 5]
    assert not errors_shown(window)
