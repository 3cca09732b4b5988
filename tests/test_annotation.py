"""Region annotation in the core: seed + override, every editing operation, undo/redo,
object identity through a real recorded episode, autosave that survives a kill, and exact
round trips with the toolkit's .npy masks and PNG label maps."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from vlascope.core.annotation import (
    KEEP,
    AnnotationStore,
    RegionAnnotation,
    annotation_dir,
    read_label_png,
    write_label_png,
)
from vlascope.core.errors import EpisodeFormatError, VLAScopeError
from vlascope.core.metrics import nmr_at_k
from vlascope.core.recording import FileRecording
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT, UNLABELED
from vlascope.core.runner import rollout
from vlascope.core.toolkit_io import read_masks, write_masks
from vlascope.core.workspace import Workspace

H, W = 24, 32


def blank(n_steps=3, seed_label=SUPPORT, store=None):
    seeds = lambda t: {"front": np.full((H, W), seed_label, np.uint8)}  # noqa: E731
    return RegionAnnotation(["front"], {"front": (H, W)}, n_steps, seeds, store=store)


@pytest.fixture(scope="module")
def episode(tmp_path_factory, scene, expert):
    """A real recorded rollout with ground-truth regions and object segments."""
    path = tmp_path_factory.mktemp("ann") / "ep.h5"
    rollout(scene, expert, "pick_red", 5, record_to=path, max_steps=10, image_size=(64, 64))
    return path


def test_brush_labels_the_pixels_under_the_stroke_and_nothing_else():
    ann = blank()
    changed = ann.paint("front", 1, (4.0, 10.5), (20.0, 10.5), 1.5, NUISANCE)
    lab = ann.labels("front", 1)
    assert changed == (lab == NUISANCE).sum() > 0
    assert (lab[10, 4:20] == NUISANCE).all()  # along the segment
    assert (lab[:8] == SUPPORT).all() and (lab[13:] == SUPPORT).all()  # not beyond radius
    assert (ann.labels("front", 0) == SUPPORT).all()  # other frames untouched
    assert ann.edit("front", 1)[0, 0] == KEEP  # the seed still shows elsewhere


def test_eraser_brings_the_seed_back_and_unlabeled_is_a_label():
    ann = blank()
    ann.paint("front", 0, (5, 5), (25, 5), 3, ACTION_CRITICAL)
    ann.paint("front", 0, (10, 5), (10, 5), 3, None)  # eraser dab
    lab = ann.labels("front", 0)
    assert lab[5, 10] == SUPPORT and lab[5, 20] == ACTION_CRITICAL
    ann.paint("front", 0, (20, 5), (20, 5), 1, UNLABELED)
    assert ann.labels("front", 0)[5, 20] == UNLABELED


def test_fill_takes_the_connected_area_of_the_clicked_label():
    ann = blank()
    ann.paint("front", 0, (16, -2), (16, H + 2), 1, ACTION_CRITICAL)  # a wall splits the frame
    ann.fill("front", 0, 2, 2, NUISANCE)
    lab = ann.labels("front", 0)
    assert (lab[:, :14] == NUISANCE).all() and (lab[:, 18:] == SUPPORT).all()
    assert (lab[:, 16] == ACTION_CRITICAL).all()


def test_polygon_fills_its_inside():
    ann = blank()
    ann.fill_polygon("front", 0, [(4, 4), (20, 4), (20, 16), (4, 16)], NUISANCE)
    lab = ann.labels("front", 0)
    assert (lab[5:16, 5:20] == NUISANCE).all()
    assert (lab[18:] == SUPPORT).all() and (lab[:, 22:] == SUPPORT).all()


def test_undo_redo_over_sixty_steps_and_a_stroke_is_one_step():
    ann = blank()
    states = [ann.labels("front", 0)]
    for i in range(60):
        ann.paint("front", 0, (i % W, i % H), (i % W, i % H), 1, [1, 2, 3, 0][i % 4])
        states.append(ann.labels("front", 0))
    for i in range(60, 0, -1):
        assert ann.undo()
        np.testing.assert_array_equal(ann.labels("front", 0), states[i - 1])
    assert not ann.undo()
    for i in range(1, 61):
        assert ann.redo()
        np.testing.assert_array_equal(ann.labels("front", 0), states[i])
    ann.begin()  # a stroke of many segments
    for x in range(0, 30, 3):
        ann.paint("front", 2, (x, 3), (x + 3, 3), 1, NUISANCE)
    ann.commit()
    assert (ann.labels("front", 2)[3, 1:30] == NUISANCE).all()
    ann.undo()
    assert (ann.labels("front", 2) == SUPPORT).all()
    assert ann.can_redo
    ann.paint("front", 0, (1, 1), (1, 1), 1, NUISANCE)  # a new edit drops the redo branch
    assert not ann.can_redo


def test_propagate_copies_a_frames_edits_over_a_range():
    ann = blank(n_steps=6)
    ann.paint("front", 2, (3, 3), (9, 3), 1, NUISANCE)
    ann.paint("front", 4, (3, 20), (9, 20), 1, ACTION_CRITICAL)  # an edit of its own
    ann.propagate("front", 2, range(1, 5))
    for t in (1, 3, 4):
        np.testing.assert_array_equal(ann.labels("front", t)[3], ann.labels("front", 2)[3])
    assert (ann.labels("front", 4)[20, 4:9] == ACTION_CRITICAL).all()  # kept
    assert (ann.labels("front", 0) == SUPPORT).all() and (ann.labels("front", 5) == SUPPORT).all()
    ann.undo()  # one step for the whole range
    assert (ann.labels("front", 3) == SUPPORT).all()


def test_object_click_follows_the_object_through_a_real_episode(episode):
    rec = FileRecording(episode)
    try:
        assert rec.segment_names() and rec.segments(0) is not None
        shapes = {c: rec.frame(0, c).shape[:2] for c in rec.cameras}
        ann = RegionAnnotation(rec.cameras, shapes, rec.n_steps, rec.regions, rec.segments)
        names = {v: k for k, v in rec.segment_names().items()}
        cube = names["cube_a"]
        ys, xs = np.nonzero(rec.segments(0)["front"] == cube)
        ann.assign_object("front", 0, int(xs[0]), int(ys[0]), NUISANCE)
        for t in range(rec.n_steps):
            for cam in rec.cameras:
                seg = rec.segments(t)[cam]
                lab = ann.labels(cam, t)
                assert (lab[seg == cube] == NUISANCE).all()  # wherever the cube moved
                np.testing.assert_array_equal(lab[seg != cube], rec.regions(t)[cam][seg != cube])
        without = RegionAnnotation(rec.cameras, shapes, rec.n_steps, rec.regions)
        with pytest.raises(VLAScopeError, match="no simulator object"):
            without.assign_object("front", 0, int(xs[0]), int(ys[0]), NUISANCE)
    finally:
        rec.close()


def test_edits_autosave_and_reload_beside_the_episode(tmp_path):
    folder = annotation_dir(tmp_path / "run.h5")
    assert folder.name == "run.regions"
    ann = blank(store=AnnotationStore(folder))
    ann.paint("front", 1, (2, 2), (12, 2), 2, NUISANCE)
    ann.paint("front", 2, (2, 9), (12, 9), 2, ACTION_CRITICAL)
    again = blank(store=AnnotationStore(folder))
    for t in range(3):
        np.testing.assert_array_equal(again.labels("front", t), ann.labels("front", t))
    ann.undo()
    assert not (folder / "front" / "000002.png").exists()  # no edits left: no file
    (folder / "front" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(EpisodeFormatError, match="000001.png"):
        AnnotationStore(folder).load()


def test_a_failed_save_keeps_the_edit_and_says_so(tmp_path):
    blocker = tmp_path / "ep.regions"
    blocker.write_text("a file where the annotation folder should be")
    ann = blank(store=AnnotationStore(blocker))
    with pytest.raises(VLAScopeError, match="kept but could not be saved"):
        ann.paint("front", 0, (3, 3), (9, 3), 1, NUISANCE)
    assert (ann.labels("front", 0)[3, 4:9] == NUISANCE).all()
    with pytest.raises(VLAScopeError, match="could not be saved"):
        ann.undo()  # still one undo step, and still not saved
    assert (ann.labels("front", 0) == SUPPORT).all() and ann.can_redo


KILL_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from vlascope.core.annotation import AnnotationStore, RegionAnnotation
    H, W = 40, 24
    seeds = lambda t: {"front": np.zeros((H, W), np.uint8)}
    ann = RegionAnnotation(["front"], {"front": (H, W)}, 1000, seeds,
                           store=AnnotationStore(sys.argv[1]))
    for i in range(100000):
        t, row = divmod(i, H)
        ann.begin()
        for x in range(0, W, 4):  # a stroke of several segments along row `row`
            ann.paint("front", t, (x, row + 0.5), (x + 4, row + 0.5), 0.5, 1 + i % 3)
        ann.commit()
        print(i, flush=True)
        time.sleep(0.002)
""")


def test_killing_the_process_mid_annotation_loses_at_most_the_last_stroke(tmp_path):
    folder = tmp_path / "ep.regions"
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(folder)],
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    done = -1
    deadline = time.monotonic() + 120
    while done < 150 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        done = int(line)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert done >= 150, "the child did not get going"
    saved = AnnotationStore(folder).load()  # every file readable: no torn writes
    for i in range(done + 1):  # every reported stroke is on disk, whole
        t, row = divmod(i, 40)
        assert (saved[("front", t)][row] == 1 + i % 3).all(), f"stroke {i} lost"


def test_toolkit_npy_round_trip_is_exact(tmp_path, episode):
    rec = FileRecording(episode)
    try:
        shapes = {c: rec.frame(0, c).shape[:2] for c in rec.cameras}
        ann = RegionAnnotation(rec.cameras, shapes, rec.n_steps, rec.regions)
        ann.paint("front", 3, (0, 5), (60, 40), 4, NUISANCE)
        ann.paint("wrist", 3, (30, 0), (30, 63), 3, ACTION_CRITICAL)
        for c in rec.cameras:  # unlabeled exports as nuisance in the toolkit: none here
            for t in range(rec.n_steps):
                ann.paint(c, t, (0, 0), (0, 0), 0.5, SUPPORT)
        steps = range(rec.n_steps)
        ours = {c: np.stack([ann.labels(c, t) for t in steps]) for c in rec.cameras}
        paths = write_masks(tmp_path, ours)
        back = read_masks(tmp_path, rec.cameras)
        for c in rec.cameras:
            np.testing.assert_array_equal(back[c], ours[c])
        fresh = RegionAnnotation(rec.cameras, shapes, rec.n_steps, rec.regions)
        fresh.import_labels(back, list(steps))
        for c in rec.cameras:
            for t in steps:
                np.testing.assert_array_equal(fresh.labels(c, t), ours[c][t])
        again = write_masks(tmp_path / "again", {c: np.stack(
            [fresh.labels(c, t) for t in steps]) for c in rec.cameras})
        for a, b in zip(again, paths, strict=True):  # file -> ours -> file, byte for byte
            assert a.read_bytes() == b.read_bytes()
        with pytest.raises(VLAScopeError, match="shape"):
            fresh.import_labels({"front": back["front"][:2]}, list(steps))
    finally:
        rec.close()


def test_png_label_maps_round_trip_and_reject_foreign_colours(tmp_path):
    labels = np.random.default_rng(0).integers(0, 4, (H, W)).astype(np.uint8)
    path = write_label_png(tmp_path / "f.png", labels)
    np.testing.assert_array_equal(read_label_png(path), labels)
    from PIL import Image

    rgb = tmp_path / "rgb.png"
    Image.open(path).convert("RGB").save(rgb)  # a label map saved by an image editor
    np.testing.assert_array_equal(read_label_png(rgb), labels)
    arr = np.asarray(Image.open(rgb)).copy()
    arr[0, 0] = (1, 2, 3)
    Image.fromarray(arr).save(rgb)
    with pytest.raises(EpisodeFormatError, match="colours"):
        read_label_png(rgb)


def test_workspace_nmr_follows_the_edits(episode):
    ws = Workspace()
    ws.open_episode(episode)
    rec = ws.recording
    maps = {c: np.random.default_rng(1).random(rec.frame(0, c).shape[:2]).astype(np.float32)
            for c in rec.cameras}
    ws.put_maps(2, ws.saliency.key(), maps)
    before = ws.nmr_at(2)
    assert before == pytest.approx(nmr_at_k(maps, rec.regions(2), ws.saliency.k))
    seen = []
    ws.regions_changed.connect(seen.append)
    ws.annotation.fill_polygon("front", 2, [(0, 0), (63, 0), (63, 63), (0, 63)], NUISANCE)
    assert seen and ("front", 2) in seen[0]
    after = ws.nmr_at(2)
    assert after == pytest.approx(nmr_at_k(maps, ws.annotation.labels_at(2), ws.saliency.k))
    assert after > before
    mean, n = ws.nmr_episode()
    assert n == 1 and mean == pytest.approx(after)
    ws.recording.close()
