"""The ISS toolkit's files both ways: heatmaps .npz and masks .npy round-trip, a recorded
episode's maps go out and come back with the same NMR, and bad files get clear errors."""

import json

import numpy as np
import pytest
from cli_process import run_cli

from vlascope.core.annotation import AnnotationStore, RegionAnnotation, annotation_dir
from vlascope.core.episode import Episode
from vlascope.core.errors import EpisodeFormatError, VLAScopeError
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT, UNLABELED
from vlascope.core.toolkit_io import (
    read_heatmaps,
    read_masks,
    stitch,
    unstitch,
    write_heatmaps,
    write_masks,
)

CAMS = ("front", "wrist")


def test_heatmaps_round_trip_with_unequal_views(tmp_path):
    rng = np.random.default_rng(0)
    maps = {"front": rng.random((3, 8, 10)).astype(np.float32),
            "wrist": rng.random((3, 8, 6)).astype(np.float32)}
    path = write_heatmaps(tmp_path / "h.npz", maps, CAMS, [0, 10, 19])
    with np.load(path) as z:  # the toolkit's layout: views side by side
        assert z["heatmaps"].shape == (3, 8, 16)
        assert np.array_equal(z["heatmaps"][:, :, :10], maps["front"])
    back, frames = read_heatmaps(path)
    assert list(frames) == [0, 10, 19]
    assert all(np.array_equal(back[c], maps[c]) for c in CAMS)
    assert not list(tmp_path.glob("*.partial"))


def test_a_bare_toolkit_file_splits_into_equal_views(tmp_path):
    heat = np.arange(2 * 4 * 8, dtype=np.float32).reshape(2, 4, 8)
    np.savez(tmp_path / "bare.npz", heatmaps=heat)
    with pytest.raises(EpisodeFormatError, match="does not name its views"):
        read_heatmaps(tmp_path / "bare.npz")
    back, frames = read_heatmaps(tmp_path / "bare.npz", cameras=CAMS)
    assert list(frames) == [0, 1] and np.array_equal(back["wrist"], heat[:, :, 4:])


def test_masks_round_trip_in_the_toolkit_convention(tmp_path):
    labels = {"front": np.array([[ACTION_CRITICAL, SUPPORT], [NUISANCE, NUISANCE]], np.uint8),
              "wrist": np.array([[SUPPORT, SUPPORT], [ACTION_CRITICAL, UNLABELED]], np.uint8)}
    path = write_masks(tmp_path / "m.npy", labels, CAMS)
    raw = np.load(path)
    assert raw.tolist() == [[2, 1, 1, 1], [0, 0, 2, 0]]  # 0 nuisance, 1 support, 2 action
    back = read_masks(path, CAMS)
    assert back["front"].tolist() == labels["front"].tolist()
    assert back["wrist"][1, 1] == NUISANCE  # unlabeled counts as nuisance there


@pytest.mark.parametrize("content,message", [
    (b"not a numpy file", "not a readable"),
    (None, "no such"),
])
def test_bad_files_give_clear_errors(tmp_path, content, message):
    for reader, name in ((lambda p: read_heatmaps(p, CAMS), "h.npz"),
                         (lambda p: read_masks(p, CAMS), "m.npy")):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(EpisodeFormatError, match=message):
            reader(path)


def test_mismatched_shapes_and_values_are_refused(tmp_path):
    with pytest.raises(EpisodeFormatError, match="do not add up"):
        unstitch(np.zeros((4, 10)), CAMS, [4, 4])
    with pytest.raises(EpisodeFormatError, match="equal views"):
        unstitch(np.zeros((4, 9)), CAMS)
    with pytest.raises(EpisodeFormatError, match="different heights"):
        stitch({"front": np.zeros((4, 4)), "wrist": np.zeros((5, 4))}, CAMS)
    np.save(tmp_path / "bad.npy", np.full((4, 8), 7, np.uint8))
    with pytest.raises(VLAScopeError, match="toolkit masks must hold"):
        read_masks(tmp_path / "bad.npy", CAMS)
    np.save(tmp_path / "float.npy", np.zeros((4, 8)))
    with pytest.raises(EpisodeFormatError, match="integer"):
        read_masks(tmp_path / "float.npy", CAMS)


@pytest.mark.slow
def test_cli_export_import_gives_the_same_nmr(tmp_path):
    ep = str(tmp_path / "ep.h5")
    run_cli("record", "--task", "pick_red", "--max-steps", "6", "--out", ep)
    run_cli("iss", ep, "--n", "10", "--every", "1", "--check", "0")
    run_cli("toolkit-export", ep, "--out", str(tmp_path / "tk"))
    with np.load(tmp_path / "tk" / "heatmaps.npz") as z:
        assert z["heatmaps"].shape[0] == 6 and list(z["views"]) == list(CAMS)
    assert np.load(tmp_path / "tk" / "masks.npy").max() <= 2
    run_cli("toolkit-import", ep, str(tmp_path / "tk" / "heatmaps.npz"), "--name", "toolkit")

    def nmr(*extra):
        return json.loads(run_cli("nmr", ep, "--k", "10,50", "--json", *extra))[0]["nmr"]

    ours = nmr()
    assert nmr("--method", "toolkit") == pytest.approx(ours)
    assert nmr("--masks", str(tmp_path / "tk" / "masks.npy")) == pytest.approx(ours)
    # an annotation saved beside the episode (as the region dock does) is what the CLI uses
    with Episode(ep) as opened:
        shapes = {c: opened.frame(0, c).shape[:2] for c in CAMS}
    ann = RegionAnnotation(CAMS, shapes, 6, lambda t: None,
                           store=AnnotationStore(annotation_dir(ep)))
    for t in range(6):
        ann.fill_polygon("front", t, [(0, 0), (200, 0), (200, 200), (0, 200)], ACTION_CRITICAL)
    annotated = nmr()
    assert annotated["10.0"] < ours["10.0"]
    assert nmr("--ground-truth") == pytest.approx(ours)
    run_cli("toolkit-export", ep, "--out", str(tmp_path / "tk2"))
    assert (np.load(tmp_path / "tk2" / "masks.npy")[:, :, :shapes["front"][1]] == 2).all()
