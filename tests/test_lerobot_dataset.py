"""LeRobot v3 datasets as episodes (issue 29, part 1), on a real dataset written by LeRobot's
own writer (its videos encoded by LeRobot) from two rollouts of the reference policy: the
reader gives back what was written, a dataset episode becomes a linked VLAScope episode
once (the dataset never changes), every command and the inspector take ``DATASET#N``, ISS /
NMR / open-loop actions run on its frames, the Regions dock paints them, the library lists
them, and bad datasets are clear errors."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_process import run_cli, run_cli_fails
from PySide6.QtCore import Qt

from vlascope.core.episode import Episode, fit_observation, policy_instruction
from vlascope.core.errors import OutputExistsError, VLAScopeError
from vlascope.core.lerobot_dataset import DatasetFormatError, LeRobotDatasetReader
from vlascope.core.linked_episode import (
    expand_episodes,
    fingerprint,
    import_episode,
    linked_path,
    resolve_episode,
    source_of,
)
from vlascope.core.open_loop import open_loop_name, run_open_loop
from vlascope.core.runner import rollout
from vlascope.policies.reference.policy import ReferencePolicy

WAIT_MS = 120_000
STEPS = (12, 9)  # two episodes of different lengths: the second starts mid-video
SIZE = 128  # the dataset's frames: larger than the policy's 96 px input, as real ones are
WRITER = Path(__file__).with_name("make_lerobot_dataset.py")


@pytest.fixture(scope="module")
def sources(scene, tmp_path_factory):
    """The rollouts the dataset is made of (ground truth for everything read back)."""
    folder = tmp_path_factory.mktemp("lerobot-sources")
    policy = ReferencePolicy(name="reference")
    paths = [folder / "ep0.h5", folder / "ep1.h5"]
    rollout(scene, policy, "pick_red", 3, max_steps=STEPS[0], record_to=paths[0],
            display_size=(SIZE, SIZE))
    rollout(scene, policy, "place_red_on_plate", 4, max_steps=STEPS[1], record_to=paths[1],
            display_size=(SIZE, SIZE))
    return paths


@pytest.fixture(scope="module")
def dataset(sources, tmp_path_factory):
    """Written by LeRobot itself (LeRobotDataset.create / add_frame / save_episode /
    finalize), AV1 videos as LeRobot encodes them by default, of the rollouts' SIZE px
    renders."""
    root = tmp_path_factory.mktemp("lerobot") / "tabletop-demos"
    done = subprocess.run([sys.executable, str(WRITER), str(root), *map(str, sources),
                           "--display"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {str(f.relative_to(root)): (hashlib.sha256(f.read_bytes()).hexdigest(),
                                       f.stat().st_mtime_ns)
            for f in sorted(root.rglob("*")) if f.is_file()}


def test_reader_gives_back_what_lerobot_wrote(dataset, sources):
    reader = LeRobotDatasetReader(dataset)
    assert reader.fps == 10 and sorted(reader.cameras.values()) == ["front", "wrist"]
    assert [e.length for e in reader.episodes.values()] == list(STEPS)
    for i, src in enumerate(sources):
        data = reader.load(i)
        with Episode(src) as ep:
            np.testing.assert_array_equal(data.actions, ep.actions())
            np.testing.assert_array_equal(data.states, ep.states())
            np.testing.assert_array_equal(data.successes, ep.successes())
            assert data.tasks == [policy_instruction(ep.metadata, t) for t in range(ep.n_steps)]
            for cam in ep.cameras:
                truth = np.stack([ep.display_frame(t, cam)
                                  for t in range(ep.n_steps)]).astype(float)
                got = data.frames[cam].astype(float)
                assert got.shape == truth.shape
                # lossy AV1, but every decoded frame is its own step's frame, in order
                err = np.abs(got[:, None] - truth[None]).mean(axis=(2, 3, 4))
                np.testing.assert_array_equal(err.argmin(axis=1), np.arange(ep.n_steps))
                assert err.diagonal().max() < 8.0


def test_a_dataset_episode_is_linked_once_and_the_dataset_never_changes(dataset, sources,
                                                                          tmp_path):
    before = snapshot(dataset)
    path = import_episode(dataset, 1, tmp_path)
    assert path.parent.parent == tmp_path / "lerobot" and path.name == "episode_000001.h5"
    with Episode(path) as ep, Episode(sources[1]) as src:
        source = source_of(ep.metadata)
        assert source["dataset"] == str(dataset.resolve()) and source["episode_index"] == 1
        assert ep.metadata["fps"] == 10 and ep.metadata["instruction"] == src.metadata[
            "instruction"]
        assert ep.cameras == ["front", "wrist"] and ep.n_steps == STEPS[1]
        np.testing.assert_array_equal(ep.actions(), src.actions())
        np.testing.assert_array_equal(ep.action_chunks()[:, 0], src.actions())
    stamp = path.stat().st_mtime_ns
    # the second time it is the same file (with whatever was stored in it since)
    assert import_episode(dataset, 1, tmp_path) == path and path.stat().st_mtime_ns == stamp
    assert resolve_episode(f"{dataset}#1", tmp_path) == str(path)
    assert resolve_episode(str(sources[0]), tmp_path) == str(sources[0])  # files as given
    assert expand_episodes([str(dataset)], tmp_path) == [
        str(linked_path(LeRobotDatasetReader(dataset), i, tmp_path)) for i in (0, 1)]
    assert snapshot(dataset) == before
    # a file at the linked name that we did not write for this episode is not taken
    other = linked_path(LeRobotDatasetReader(dataset), 0, tmp_path)
    other.unlink()
    shutil.copyfile(sources[0], other)
    with pytest.raises(OutputExistsError):
        import_episode(dataset, 0, tmp_path)
    assert snapshot(dataset) == before


def test_a_changed_dataset_gets_a_new_linked_episode(dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    first = import_episode(copy, 0, tmp_path / "rec")
    info = json.loads((copy / "meta" / "info.json").read_text())
    info["robot_type"] = "re-recorded"
    (copy / "meta" / "info.json").write_text(json.dumps(info))
    second = import_episode(copy, 0, tmp_path / "rec")
    assert second != first and first.is_file() and second.is_file()


def broken(dataset: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(dataset, copy)
    change(copy)
    return copy


@pytest.mark.parametrize("change, words", [
    (lambda d: (d / "meta" / "info.json").unlink(), "not a LeRobot dataset"),
    (lambda d: (d / "meta" / "info.json").write_text(
        json.dumps({**json.loads((d / "meta" / "info.json").read_text()),
                    "codebase_version": "v2.1"})), "v2.1"),
    (lambda d: (d / "meta" / "info.json").write_text("{not json"), "not readable JSON"),
    (lambda d: (d / "data" / "chunk-000" / "file-000.parquet").write_bytes(b"garbage"),
     "not a readable parquet file"),
    (lambda d: shutil.rmtree(d / "videos" / "observation.images.wrist"), "missing"),
    (lambda d: (d / "meta" / "info.json").write_text(
        json.dumps({**json.loads((d / "meta" / "info.json").read_text()),
                    "data_path": "../../outside/{chunk_index}-{file_index}.parquet"})),
     "outside the dataset"),
])
def test_bad_datasets_are_one_clear_error(dataset, tmp_path, change, words):
    root = broken(dataset, tmp_path, change)
    with pytest.raises(VLAScopeError, match=words):
        import_episode(root, 1, tmp_path / "rec")
    assert not list((tmp_path / "rec").rglob("*.h5"))  # nothing half-written


def test_truncated_video_and_unknown_episode(dataset, tmp_path):
    def cut(d):
        video = d / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4"
        video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])

    root = broken(dataset, tmp_path, cut)
    with pytest.raises(DatasetFormatError):
        import_episode(root, 1, tmp_path / "rec")
    with pytest.raises(DatasetFormatError, match="no episode 7"):
        import_episode(dataset, 7, tmp_path / "rec")
    with pytest.raises(VLAScopeError, match="episode number"):
        resolve_episode(f"{dataset}#last", tmp_path / "rec")
    with pytest.raises(VLAScopeError, match="name one as"):
        resolve_episode(str(dataset), tmp_path / "rec")


def test_open_loop_actions_are_the_policys_on_the_dataset_frames(dataset, tmp_path):
    from vlascope.core.capture import ActivationCapture
    from vlascope.core.episode import episode_observation
    from vlascope.core.policy import common_noise

    path = import_episode(dataset, 0, tmp_path)
    policy = ReferencePolicy(name="reference")
    summary = run_open_loop(path, policy, "reference")
    with Episode(path) as ep:
        stored = ep.open_loop(open_loop_name("reference"))
        assert stored.shape[:1] == (ep.n_steps,) and ep.open_loop_names() == ["reference"]
        for t in (0, 5, ep.n_steps - 1):  # one step at a time, its frame as stored
            obs = episode_observation(ep, t, ep.cameras, policy.image_size)
            with common_noise(policy):  # batched there, alone here: float rounding only
                np.testing.assert_allclose(stored[t], policy.batch_infer([obs])[0], atol=1e-4)
        diff = stored[:, 0] - ep.actions()
        assert summary["mse"] == pytest.approx(float(np.mean(diff ** 2)), rel=1e-6)
        assert ep.metadata["open_loop.reference"]["policy"]["name"] == "reference"
        assert not ep.activation_names
    # with a capture, each frame's activations are stored where a rollout's are
    run_open_loop(path, policy, "reference", layers=["trunk.1.resid"])
    with Episode(path) as ep:
        acts = ep.activations("trunk.1.resid")
        assert acts.shape[0] == ep.n_steps and ep.metadata["capture"]["pooling"] == "tokens"
        cap = ActivationCapture(policy, ["trunk.1.resid"])
        obs = episode_observation(ep, 4, ep.cameras, policy.image_size)
        with common_noise(policy), cap.hooks():
            policy.batch_infer([obs])
        np.testing.assert_allclose(acts[4], cap.last["trunk.1.resid"], rtol=1e-5, atol=1e-6)
        # the same chunks again (one frame per pass now: float rounding only)
        np.testing.assert_allclose(ep.open_loop("reference"), stored, atol=1e-4)


def test_commands_take_dataset_episodes(dataset, sources, tmp_path, monkeypatch):
    """``DATASET#N`` on the real command line: listing, info, ISS stored in the linked file,
    NMR from imported masks (no simulator ground truth), open loop."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    listed = json.loads(run_cli("dataset", "list", str(dataset), "--json"))
    assert [r["frames"] for r in listed["episodes"]] == list(STEPS)
    assert "name one as" in run_cli_fails("info", str(dataset))
    ref = f"{dataset}#1"
    assert "9 steps, cameras front, wrist" in run_cli("info", ref)
    run_cli("iss", ref, "--n", "6", "--bandwidth", "0")
    linked = Path(run_cli("dataset", "import", ref).strip())
    assert linked.is_relative_to(tmp_path / "data" / "vlascope" / "recordings" / "lerobot")
    with Episode(linked) as ep:
        (method,) = ep.saliency_methods()
        maps = ep.saliency(method, "front")
        # made at the policy's input size from the resized frames
        assert ep.frame(0, "front").shape == (SIZE, SIZE, 3)
        assert maps.shape == (STEPS[1], 96, 96) and np.isfinite(maps).all() and np.ptp(maps) > 0
    run_cli("iss", ref, "--method", "attention-rollout")
    with Episode(linked) as ep:
        assert sorted(ep.saliency_methods()) == sorted([method, "attention-rollout"])
    assert "no region maps" in run_cli_fails("nmr", ref)
    # masks painted elsewhere (here: the simulator's, in the toolkit's layout) come in
    from vlascope.core.metrics import episode_nmr_series
    from vlascope.core.regions import from_toolkit, to_toolkit
    from vlascope.core.toolkit_io import write_masks

    with Episode(sources[1]) as src:
        truth = {c: np.stack([src.regions(t, c) for t in range(src.n_steps)])
                 for c in src.cameras}
    masks = tmp_path / "masks"
    write_masks(masks, truth)
    rows = json.loads(run_cli("nmr", ref, "--masks", str(masks), "--json"))
    with Episode(linked) as ep:
        regions = {c: from_toolkit(to_toolkit(m)) for c, m in truth.items()}
        want = episode_nmr_series(ep, method, [10.0], regions=regions)[10.0].scores
    np.testing.assert_allclose(rows[0]["per_step"]["10.0"], want, rtol=1e-6)
    # open loop over the whole dataset, capturing a layer; an SAE trains on those frames
    out = json.loads(run_cli("open-loop", str(dataset), "--capture", "trunk.1.resid",
                             "--json"))
    assert [Path(r["episode"]).name for r in out] == ["episode_000000.h5", "episode_000001.h5"]
    assert out[1]["episode"] == str(linked) and out[1]["mse"] >= 0
    assert out[1]["captured"] == ["trunk.1.resid"]
    run_cli("sae", "train", "--episodes", str(dataset), "--layers", "trunk.1.resid",
            "--steps", "20", "--batch-size", "128", "--expansion", "2", "--k", "8",
            "--out", str(tmp_path / "sae"))
    assert (tmp_path / "sae" / "trunk.1.resid").is_dir()


# the inspector ------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path):
    from test_app import make_window

    w = make_window(qtbot, tmp_path, tmp_path)
    yield w
    w.close()


def test_the_inspector_opens_a_dataset_episode_and_explains_it(qtbot, window, dataset,
                                                                tmp_path):
    from test_app import errors_shown, idle, shown_map

    from vlascope.core.saliency.iss import pixel_iss

    ws = window.workspace
    dialog = window.open_dataset(str(dataset))
    assert dialog.table.rowCount() == 2 and dialog.table.item(1, 1).text() == str(STEPS[1])
    dialog.grab().save(str(tmp_path / "dataset-dialog.png"))
    rect = dialog.table.visualRect(dialog.table.model().index(1, 3))
    qtbot.mouseClick(dialog.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dialog.selected_episode() == 1
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Open),
                     Qt.MouseButton.LeftButton)
    linked = linked_path(LeRobotDatasetReader(dataset), 1, window.record_dir)
    qtbot.waitUntil(lambda: str(getattr(ws.recording, "path", "")) == str(linked),
                    timeout=WAIT_MS)
    assert not dialog.isVisible() and ws.n_steps == STEPS[1]
    window.activateWindow()  # the dialog had the keys
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert ws.step == 2
    with Episode(linked) as ep:  # the shown frames are the dataset's, decoded
        for cam, view in window.scene_dock.views.items():
            np.testing.assert_array_equal(ws.recording.frame(2, cam), ep.frame(2, cam))
            assert view.frame.image is not None
    idle(qtbot, window)
    dock = window.saliency_dock
    dock.raise_()
    qtbot.mouseClick(dock.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ws.maps_at() is not None, timeout=WAIT_MS)
    policy = window.engine.session.policy  # its 96 px input: the frames resized first
    frame = ws.recording.observation(ws.step)
    assert frame.images["front"].shape[:2] == (SIZE, SIZE)
    want = pixel_iss(policy, fit_observation(frame, policy.image_size),
                     ws.saliency.iss_config()).maps
    for cam, view in window.scene_dock.views.items():
        np.testing.assert_allclose(ws.maps_at()[cam], want[cam], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(view.overlay.image, shown_map(view, want[cam]), rtol=1e-4,
                                   atol=1e-6)
    # Run > Predict actions on these frames: the policy's actions beside the recorded ones
    idle(qtbot, window)
    window.actions_by_name["open-loop"].trigger()
    timeline = window.timeline_dock
    qtbot.waitUntil(lambda: timeline.open_loop_gap is not None, timeout=WAIT_MS)
    with Episode(linked) as ep:
        predicted = ep.open_loop("reference")[:, 0]
        for i, curve in enumerate(timeline.open_loop_curves[:-1]):
            np.testing.assert_allclose(curve.getData()[1], predicted[:, i])
        np.testing.assert_allclose(timeline.open_loop_gap.getData()[1],
                                   np.linalg.norm(predicted - ep.actions(), axis=1), rtol=1e-5)
    assert ws.step == 2  # still where the user was
    window.grab().save(str(tmp_path / "dataset-window.png"))
    # the library lists it with the recordings
    library = window.library_dock
    qtbot.waitUntil(lambda: any(r.path == linked and r.readable and r.steps == STEPS[1]
                                for r in library.model.rows), timeout=WAIT_MS)
    assert not errors_shown(window)


def test_regions_dock_paints_dataset_frames_from_unlabeled(qtbot, window, dataset):
    from qt_events import drag
    from test_app import idle

    from vlascope.core.annotation import AnnotationStore, annotation_dir
    from vlascope.core.regions import ACTION_CRITICAL, UNLABELED

    assert window.open_episode(f"{dataset}#0")  # as `vlascope app DATASET#0` does
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.recording is not None and ws.n_steps == STEPS[0],
                    timeout=WAIT_MS)
    idle(qtbot, window)
    from vlascope.core.free_camera import NO_STATE_IN_DATASET

    window.free_camera_dock.raise_()  # a dataset has frames, not a simulator: said so
    qtbot.waitUntil(lambda: window.free_camera_dock.message.text() == NO_STATE_IN_DATASET,
                    timeout=WAIT_MS)
    dock = window.regions_dock
    dock.raise_()
    qtbot.waitUntil(dock.graphics.isVisible, timeout=WAIT_MS)
    cam = dock.camera
    assert (dock.annotation.labels(cam, 0) == UNLABELED).all()  # no ground truth to seed
    dock.set_label(ACTION_CRITICAL)
    dock.set_tool("brush")
    dock.size.setValue(2)
    drag(dock, [(20 + 4 * i, 30.5) for i in range(10)])
    lab = dock.annotation.labels(cam, 0)
    assert (lab[30, 21:56] == ACTION_CRITICAL).all()
    saved = AnnotationStore(annotation_dir(ws.recording.path)).load()
    assert (saved[(cam, 0)][30, 21:56] == ACTION_CRITICAL).all()


def test_the_library_lists_dataset_episodes_and_never_trashes_them(dataset, tmp_path):
    from vlascope.core.library import Library

    holder = tmp_path / "data"
    holder.mkdir()
    shutil.copytree(dataset, holder / "demos")
    before = snapshot(holder / "demos")
    lib = Library([holder])
    lib.scan()
    rows = {r.rel: r for r in lib.rows()}
    assert sorted(rows) == ["demos#0", "demos#1"]
    assert [rows[f"demos#{i}"].steps for i in (0, 1)] == list(STEPS)
    assert rows["demos#1"].task == "put the red cube on the plate" and rows["demos#1"].readable
    assert str(rows["demos#0"].path) == f"{holder / 'demos'}#0"  # what opening resolves
    with pytest.raises(VLAScopeError, match="never deletes"):
        lib.move_to_trash(rows["demos#0"])
    reads = lib.reads
    lib.scan()  # unchanged: nothing read again
    assert lib.reads == reads
    with pytest.raises(VLAScopeError, match="add the folder that holds it"):
        lib.add_folder(holder / "demos")
    assert snapshot(holder / "demos") == before  # no index, marks or trash in the dataset
    # opened once, an episode is listed once: by the file linked to it (its results live
    # there), not also as demos#1
    linked = import_episode(holder / "demos", 1, holder)  # the recordings are listed too
    lib.scan()
    rows = {r.rel: r for r in lib.rows()}
    assert sorted(rows) == ["demos#0", linked.relative_to(holder).as_posix()]
    assert rows[linked.relative_to(holder).as_posix()].steps == STEPS[1]
    assert rows["demos#0"].source.endswith("#0@" + fingerprint(LeRobotDatasetReader(
        holder / "demos")))
    # the dataset changed since: the linked file holds results of other frames, so both
    info = json.loads((holder / "demos" / "meta" / "info.json").read_text())
    info["robot_type"] = "re-recorded"
    (holder / "demos" / "meta" / "info.json").write_text(json.dumps(info))
    lib.scan()
    assert sorted(r.rel for r in lib.rows()) == ["demos#0", "demos#1",
                                                  linked.relative_to(holder).as_posix()]


def test_double_click_on_a_dataset_row_opens_it_in_the_window(qtbot, window, dataset,
                                                              tmp_path):
    from test_library import double_click_cell, quiet, row_of

    from vlascope.core.library import COLUMNS

    holder = tmp_path / "data"
    holder.mkdir()
    shutil.copytree(dataset, holder / "demos")
    dock = window.library_dock
    dock.add_folder(holder)
    qtbot.waitUntil(lambda: any(r.rel == "demos#1" for r in dock.model.rows), timeout=WAIT_MS)
    dock.raise_()
    qtbot.waitUntil(dock.table.isVisible, timeout=WAIT_MS)
    quiet(qtbot, dock)
    double_click_cell(qtbot, dock, row_of(dock, "demos#1"), COLUMNS.index("task"))
    linked = linked_path(LeRobotDatasetReader(holder / "demos"), 1, window.record_dir)
    qtbot.waitUntil(lambda: str(getattr(window.workspace.recording, "path", "")) == str(linked),
                    timeout=WAIT_MS)
    assert window.workspace.n_steps == STEPS[1]
    # two dataset episodes side by side (A read first, then B, then compared)
    assert window.compare_episodes(f"{holder / 'demos'}#0", f"{holder / 'demos'}#1")
    first = linked_path(LeRobotDatasetReader(holder / "demos"), 0, window.record_dir)
    qtbot.waitUntil(lambda: window.workspace.comparison is not None, timeout=WAIT_MS)
    assert window.workspace.comparison.path == first
    assert str(window.workspace.recording.path) == str(linked)
    # a dataset folder itself cannot be a library folder: the status line says why
    dock.add_folder(holder / "demos")
    assert "add the folder that holds it" in dock.status.text()
    assert [str(f.folder) for f in dock.library.folders][1:] == [str(holder)]
