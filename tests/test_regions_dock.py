"""The region dock, driven by real mouse and key events in an offscreen Qt on a real recorded
episode: brush, eraser, fill, polygon, object click, undo/redo, propagation, live NMR equal
to the core's, files in and out, and a screenshot of it mid-annotation."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from qt_events import at, drag, send

from vlascope.app.docks.regions import RegionDock
from vlascope.core.annotation import AnnotationStore, annotation_dir
from vlascope.core.errors import VLAScopeError
from vlascope.core.metrics import nmr_at_k
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT, from_toolkit, to_toolkit
from vlascope.core.runner import rollout
from vlascope.core.workspace import Workspace

SIZE = 96  # the reference policy's resolution


@pytest.fixture(scope="module")
def episode_path(tmp_path_factory, scene, expert):
    path = tmp_path_factory.mktemp("regions") / "ep.h5"
    rollout(scene, expert, "place_red_on_plate", 2, record_to=path, max_steps=12,
            image_size=(SIZE, SIZE))
    return path


@pytest.fixture
def dock(qtbot, episode_path, tmp_path):
    import shutil

    path = tmp_path / "ep.h5"
    shutil.copyfile(episode_path, path)  # each test annotates its own copy
    ws = Workspace()
    ws.open_episode(path)
    d = RegionDock(ws)
    qtbot.addWidget(d)
    d.resize(640, 760)
    d.show()
    qtbot.waitExposed(d)
    yield d
    ws.recording.close()


def click(qtbot, dock, x, y):
    qtbot.mouseClick(dock.graphics.viewport(), Qt.MouseButton.LeftButton, pos=at(dock, x, y))


def key(qtbot, dock, k, mods=Qt.KeyboardModifier.NoModifier):
    dock.graphics.setFocus()
    qtbot.keyClick(dock.graphics, k, mods)


def test_stroke_labels_the_pixels_under_it_and_keys_pick_tool_and_class(qtbot, dock):
    ann, cam = dock.annotation, dock.camera
    seed = ann.labels(cam, 0)
    key(qtbot, dock, Qt.Key.Key_B)
    key(qtbot, dock, Qt.Key.Key_1)
    assert dock.tool == "brush" and dock.label == ACTION_CRITICAL
    dock.size.setValue(2)
    drag(dock, [(10 + 5 * i, 40.5) for i in range(15)])
    lab = ann.labels(cam, 0)
    assert (lab[40, 11:79] == ACTION_CRITICAL).all()
    untouched = np.ones_like(lab, bool)
    untouched[37:44, 7:83] = False
    np.testing.assert_array_equal(lab[untouched], seed[untouched])
    shown = dock.label_item.image
    np.testing.assert_array_equal(shown, lab)  # what is drawn is the annotation
    # the stroke is on disk already, as one frame file
    saved = AnnotationStore(annotation_dir(dock.ws.recording.path)).load()
    edit = saved[(cam, 0)]
    np.testing.assert_array_equal(np.where(edit != 255, edit, seed), lab)


def test_eraser_fill_and_undo_redo_by_keys(qtbot, dock):
    ann, cam = dock.annotation, dock.camera
    seed = ann.labels(cam, 0)
    dock.size.setValue(3)
    drag(dock, [(20, 20), (60, 20)])  # nuisance by default
    painted = ann.labels(cam, 0)
    key(qtbot, dock, Qt.Key.Key_E)
    drag(dock, [(30, 20), (40, 20)])
    lab = ann.labels(cam, 0)
    np.testing.assert_array_equal(lab[20, 30:40], seed[20, 30:40])  # seed back
    assert (lab[20, 50:60] == NUISANCE).all()
    key(qtbot, dock, Qt.Key.Key_F)
    key(qtbot, dock, Qt.Key.Key_2)
    click(qtbot, dock, 55, 20)  # fill the painted nuisance blob
    lab = ann.labels(cam, 0)
    assert (lab[20, 50:60] == SUPPORT).all() and (lab[20, 20:26] == SUPPORT).all()
    key(qtbot, dock, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (ann.labels(cam, 0)[20, 50:60] == NUISANCE).all()  # fill undone
    key(qtbot, dock, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(ann.labels(cam, 0), painted)  # eraser undone
    key(qtbot, dock, Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(ann.labels(cam, 0)[20, 30:40], seed[20, 30:40])  # redone


def test_polygon_by_clicks_and_enter_and_lasso_by_drag(qtbot, dock):
    ann, cam = dock.annotation, dock.camera
    key(qtbot, dock, Qt.Key.Key_P)
    key(qtbot, dock, Qt.Key.Key_3)
    for x, y in ((10, 10), (40, 10), (40, 30), (10, 30)):
        click(qtbot, dock, x, y)
    key(qtbot, dock, Qt.Key.Key_Return)
    assert (ann.labels(cam, 0)[12:29, 12:39] == NUISANCE).all()
    key(qtbot, dock, Qt.Key.Key_1)
    drag(dock, [(60, 60), (90, 60), (90, 90), (60, 90), (60, 61)])
    assert (ann.labels(cam, 0)[62:89, 62:89] == ACTION_CRITICAL).all()


def test_object_click_assigns_the_whole_segment_in_every_step(qtbot, dock):
    ann, cam, rec = dock.annotation, dock.camera, dock.ws.recording
    cube = {v: k for k, v in rec.segment_names().items()}["cube_a"]
    ys, xs = np.nonzero(rec.segments(0)[cam] == cube)
    key(qtbot, dock, Qt.Key.Key_O)
    key(qtbot, dock, Qt.Key.Key_3)
    click(qtbot, dock, xs[len(xs) // 2] + 0.5, ys[len(ys) // 2] + 0.5)
    for t in range(rec.n_steps):
        for c in rec.cameras:
            seg = rec.segments(t)[c]
            assert (ann.labels(c, t)[seg == cube] == NUISANCE).all()
    send(dock, QEvent.Type.MouseMove, at(dock, xs[0] + 0.5, ys[0] + 0.5), Qt.MouseButton.NoButton)
    assert "nuisance (edited)" in dock.under_cursor.text()
    assert "object: cube_a" in dock.under_cursor.text()


def test_propagation_over_a_range(qtbot, dock):
    ann, cam, ws = dock.annotation, dock.camera, dock.ws
    ws.set_step(3)
    dock.size.setValue(2)
    drag(dock, [(5, 70), (50, 70)])
    dock.range_from.setValue(2)
    dock.range_to.setValue(7)
    qtbot.mouseClick(dock.propagate_button, Qt.MouseButton.LeftButton)
    row = ann.labels(cam, 3)[70, 6:49]
    assert (row == NUISANCE).all()
    for t in range(2, 8):
        assert (ann.labels(cam, t)[70, 6:49] == NUISANCE).all()
    for t in (0, 1, 8):
        np.testing.assert_array_equal(ann.labels(cam, t), ann.seed(cam, t))


def test_nmr_in_the_dock_equals_the_core_for_the_saved_map(qtbot, dock, tmp_path):
    ws, cam = dock.ws, dock.camera
    rec = ws.recording
    rng = np.random.default_rng(4)
    maps = {c: rng.random((SIZE, SIZE)).astype(np.float32) for c in rec.cameras}
    maps["front"][:, :32] += 2.0  # the top pixels sit on the left of the front view
    ws.put_maps(0, ws.saliency.key(), maps)
    dock.k.setValue(5.0)
    assert ws.saliency.k == 5.0
    assert dock.outline_item.image is not None and dock.outline_item.image.any()
    before = dock.nmr_frame.text()
    dock.size.setValue(6)
    key(qtbot, dock, Qt.Key.Key_1)
    for y in range(0, SIZE, 8):
        drag(dock, [(0, y + 4), (32, y + 4)])  # the salient strip becomes action-critical
    ann = dock.annotation
    saved = AnnotationStore(annotation_dir(rec.path)).load()  # what is on disk
    labels = {c: np.where(saved[(c, 0)] != 255, saved[(c, 0)], rec.regions(0)[c])
              if (c, 0) in saved else rec.regions(0)[c] for c in rec.cameras}
    expected = nmr_at_k(maps, labels, 5.0)
    assert dock.nmr_frame.text() == f"NMR@5: {expected:.3f}"
    assert dock.nmr_frame.text() != before
    assert expected < nmr_at_k(maps, rec.regions(0), 5.0)
    assert dock.nmr_episode.text() == f"episode: {expected:.3f} (1 steps)"
    np.testing.assert_array_equal(labels[cam], ann.labels(cam, 0))
    dock.grab().save(str(tmp_path / "regions.png"))


def test_files_in_and_out(qtbot, dock, tmp_path):
    ann, cam = dock.annotation, dock.camera
    drag(dock, [(10, 10), (80, 80)])
    folder = dock.export_file(tmp_path / "toolkit")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"mask_{c}_rgb.npy" for c in ann.cameras)
    png = dock.export_file(tmp_path / "frame.png")
    expected = {c: [ann.labels(c, t) for t in range(ann.n_steps)] for c in ann.cameras}
    ann.clear(cam, 0)
    dock.import_file(png)
    np.testing.assert_array_equal(ann.labels(cam, 0), expected[cam][0])
    ann.clear(cam, 0)
    dock.import_file(folder / f"mask_{cam}_rgb.npy")  # one file of the folder names it
    for c in ann.cameras:
        for t in range(ann.n_steps):
            np.testing.assert_array_equal(ann.labels(c, t),
                                          from_toolkit(to_toolkit(expected[c][t])))
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((5, 5), np.uint8))
    with pytest.raises(VLAScopeError, match="not a toolkit mask file name"):
        dock.import_file(bad)
    np.save(folder / f"mask_{cam}_rgb.npy", np.zeros((5, 5), np.uint8))  # no time axis
    with pytest.raises(VLAScopeError, match=r"\(T, H, W\) integer"):
        dock.import_file(folder)
