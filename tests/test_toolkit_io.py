"""The ISS toolkit's files both ways, in its own layout: files its code wrote
(tests/data/toolkit/episode/) are read and scored as it scores them, files we write have
exactly its names, keys, shapes and dtypes, a recorded episode's maps go out and come back
with the same NMR, and anything else is refused with a message that says what was expected."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_process import run_cli, run_cli_fails

from vlascope.core.annotation import AnnotationStore, RegionAnnotation, annotation_dir
from vlascope.core.episode import Episode
from vlascope.core.errors import EpisodeFormatError, VLAScopeError
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT, UNLABELED
from vlascope.core.toolkit_io import read_heatmaps, read_masks, write_heatmaps, write_masks

CAMS = ("front", "wrist")
TOOLKIT_FILES = Path(__file__).parent / "data" / "toolkit" / "episode"


def layout(folder: Path) -> dict[str, tuple]:
    """Every file under ``folder`` with its arrays' keys, shapes and dtypes."""
    out = {}
    for path in sorted(p for p in folder.rglob("*.np[yz]")):
        rel = str(path.relative_to(folder))
        if path.suffix == ".npz":
            with np.load(path) as z:
                out[rel] = tuple((k, z[k].shape, z[k].dtype.kind) for k in sorted(z.files))
        else:
            a = np.load(path)
            out[rel] = (a.shape, a.dtype)
    return out


def test_the_toolkits_own_files_are_read(tmp_path):
    maps, meta = read_heatmaps(TOOLKIT_FILES)  # the folder above iss/
    assert list(maps) == list(CAMS) and maps["front"].shape == (12, 32, 40)
    assert meta["n_masks"] == 64 and meta["views"] == {"front": "front", "wrist": "wrist"}
    same, _ = read_heatmaps(TOOLKIT_FILES / "iss" / "iss_heatmaps.npz")
    assert all(np.array_equal(maps[c], same[c]) for c in CAMS)
    masks = read_masks(TOOLKIT_FILES / "masks", CAMS)
    raw = np.load(TOOLKIT_FILES / "masks" / "mask_front_rgb.npy")
    assert masks["front"].shape == raw.shape
    assert ((raw == 2) == (masks["front"] == ACTION_CRITICAL)).all()
    assert ((raw == 0) == (masks["front"] == NUISANCE)).all()


def test_what_we_write_has_the_toolkits_layout(tmp_path):
    maps, meta = read_heatmaps(TOOLKIT_FILES)
    write_heatmaps(tmp_path, maps, meta)
    write_masks(tmp_path, read_masks(TOOLKIT_FILES, CAMS))
    ours, theirs = layout(tmp_path), layout(TOOLKIT_FILES)
    theirs = {k: v for k, v in theirs.items() if not k.startswith("nmr")}
    # the meta string's length differs with its content; everything else is identical
    strip = {k: tuple(x for x in v if not (isinstance(x, tuple) and x[0] == "meta_json"))
             if k.endswith(".npz") else v for k, v in ours.items()}
    assert strip == {k: tuple(x for x in v if not (isinstance(x, tuple)
                                                   and x[0] == "meta_json"))
                     if k.endswith(".npz") else v for k, v in theirs.items()}
    with np.load(tmp_path / "iss" / "iss_heatmaps.npz") as z:
        assert z["meta_json"].shape == () and json.loads(str(z["meta_json"])) == meta
        assert all(np.array_equal(z[c], maps[c]) for c in CAMS)
    for c in CAMS:
        assert np.array_equal(np.load(tmp_path / "masks" / f"mask_{c}_rgb.npy"),
                              np.load(TOOLKIT_FILES / "masks" / f"mask_{c}_rgb.npy"))
    assert not list(tmp_path.rglob("*.partial"))


def test_masks_round_trip_in_the_toolkit_convention(tmp_path):
    labels = {"front": np.array([[[ACTION_CRITICAL, SUPPORT], [NUISANCE, NUISANCE]]], np.uint8),
              "wrist": np.array([[[SUPPORT, SUPPORT], [ACTION_CRITICAL, UNLABELED]]], np.uint8)}
    paths = write_masks(tmp_path, labels)
    assert [p.name for p in paths] == ["mask_front_rgb.npy", "mask_wrist_rgb.npy"]
    assert np.load(paths[0]).tolist() == [[[2, 1], [0, 0]]]  # 0 nuisance, 1 support, 2 action
    back = read_masks(paths[1], CAMS)  # one of the files names its folder
    assert back["front"].tolist() == labels["front"].tolist()
    assert back["wrist"][0, 1, 1] == NUISANCE  # unlabeled counts as nuisance there


def test_other_files_are_refused_saying_what_was_expected(tmp_path):
    np.savez(tmp_path / "old.npz", heatmaps=np.zeros((2, 4, 8), np.float32),
             frame_indices=np.arange(2))
    with pytest.raises(EpisodeFormatError, match="earlier stitched layout"):
        read_heatmaps(tmp_path / "old.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a numpy file")
    with pytest.raises(EpisodeFormatError, match="not a readable .npz.*iss_heatmaps.npz"):
        read_heatmaps(tmp_path / "junk.npz")
    np.savez(tmp_path / "nometa.npz", front=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(EpisodeFormatError, match="no 'meta_json'"):
        read_heatmaps(tmp_path / "nometa.npz")
    meta = np.asarray(json.dumps({}))
    np.savez(tmp_path / "nan.npz", front=np.full((2, 4, 4), np.nan, np.float32), meta_json=meta)
    with pytest.raises(EpisodeFormatError, match="non-finite"):
        read_heatmaps(tmp_path / "nan.npz")
    np.savez(tmp_path / "flat.npz", front=np.zeros((4, 4), np.float32), meta_json=meta)
    with pytest.raises(EpisodeFormatError, match=r"not a \(T, H, W\) float"):
        read_heatmaps(tmp_path / "flat.npz")
    with pytest.raises(EpisodeFormatError, match="no iss_heatmaps.npz there"):
        read_heatmaps(tmp_path / "missing")
    # masks: a combined side-by-side file, a 2-D mask, floats, labels beyond 2, a missing view
    np.save(tmp_path / "masks.npy", np.zeros((3, 4, 8), np.uint8))
    with pytest.raises(EpisodeFormatError, match="not a toolkit mask file name.*mask_front"):
        read_masks(tmp_path / "masks.npy", CAMS)
    m = tmp_path / "m"
    m.mkdir()
    np.save(m / "mask_front_rgb.npy", np.zeros((4, 8), np.uint8))
    np.save(m / "mask_wrist_rgb.npy", np.zeros((1, 4, 8), np.uint8))
    with pytest.raises(EpisodeFormatError, match=r"is not a \(T, H, W\) integer mask"):
        read_masks(m, CAMS)
    np.save(m / "mask_front_rgb.npy", np.zeros((1, 4, 8)))
    with pytest.raises(EpisodeFormatError, match="integer"):
        read_masks(m, CAMS)
    np.save(m / "mask_front_rgb.npy", np.full((1, 4, 8), 7, np.uint8))
    with pytest.raises(VLAScopeError, match="toolkit masks must hold"):
        read_masks(m, CAMS)
    (m / "mask_wrist_rgb.npy").unlink()
    np.save(m / "mask_front_rgb.npy", np.zeros((1, 4, 8), np.uint8))
    with pytest.raises(EpisodeFormatError, match="missing mask_wrist_rgb.npy"):
        read_masks(m, CAMS)


def toolkit_episode(tmp_path: Path) -> str:
    """A recorded episode holding the fixture's frames, so the toolkit's files fit it."""
    from vlascope.core.episode import EpisodeWriter

    z = np.load(TOOLKIT_FILES.parent / "known_answers.npz")
    path = tmp_path / "toolkit_ep.h5"
    with EpisodeWriter(path, {"instruction": "pick the red block", "cameras": list(CAMS)}) as w:
        for t in range(12):
            w.append(state=np.zeros(1), action=np.zeros(3), action_chunk=np.zeros((4, 3)),
                     chunk_index=0, success=False,
                     images={c: z[f"images_{c}"][t] for c in CAMS})
    return str(path)


def test_toolkit_files_import_and_score_the_toolkits_nmr(tmp_path):
    """Its heatmaps and masks, imported and scored here, give the NMR its code computed
    (nmr/nmr@10pct.json / .csv, written by the toolkit), and we write those files alike."""
    ep = toolkit_episode(tmp_path)
    run_cli("toolkit-import", ep, str(TOOLKIT_FILES))
    out = tmp_path / "nmr"
    rows = json.loads(run_cli("nmr", ep, "--method", "toolkit", "--masks",
                              str(TOOLKIT_FILES / "masks"), "--out", str(out), "--json"))
    err = run_cli_fails("nmr", ep, "--method", "toolkit", "--out", str(out))
    assert "nmr@10pct.json already exists" in err  # never replaced without --overwrite
    theirs = json.loads((TOOLKIT_FILES / "nmr" / "nmr@10pct.json").read_text())
    ours = json.loads((out / "nmr@10pct.json").read_text())
    assert list(ours) == list(theirs)
    for key in ("scores", "coverage_scores"):
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-6)
    for key in ("per_view_scores", "per_view_coverage_scores"):
        for c in CAMS:
            np.testing.assert_allclose(ours[key][c], theirs[key][c], atol=1e-6)
    assert rows[0]["nmr"]["10.0"] == pytest.approx(theirs["mean_score"], abs=1e-6)
    px = json.loads(run_cli("nmr", ep, "--method", "toolkit", "--masks",
                            str(TOOLKIT_FILES / "masks"), "--k", "50px", "--out", str(out),
                            "--json"))  # the toolkit's k_pixels
    written = json.loads((out / "nmr@50px.json").read_text())
    assert written["k_pixels"] == 50 and px[0]["nmr"]["50px"] == pytest.approx(
        float(np.load(TOOLKIT_FILES.parent / "known_answers.npz")["d5_mean_score"]), abs=1e-6)
    their_csv = (TOOLKIT_FILES / "nmr" / "nmr@10pct.csv").read_text().splitlines()
    our_csv = (out / "nmr@10pct.csv").read_text().splitlines()
    assert our_csv[0] == their_csv[0] and len(our_csv) == len(their_csv)
    for a, b in zip(our_csv[1:], their_csv[1:], strict=True):
        np.testing.assert_allclose([float(x) for x in a.split(",")],
                                   [float(x) for x in b.split(",")], atol=1e-6)


def test_resized_masks_are_announced_and_wrong_files_refused(tmp_path):
    ep = toolkit_episode(tmp_path)
    run_cli("toolkit-import", ep, str(TOOLKIT_FILES / "iss"))
    half = tmp_path / "half"
    half.mkdir()
    for c in CAMS:  # the toolkit spreads 6 frames over 12 steps and resizes 16x20 to 32x40
        np.save(half / f"mask_{c}_rgb.npy",
                np.load(TOOLKIT_FILES / "masks" / f"mask_{c}_rgb.npy")[::2, ::2, ::2])
    proc = run_cli("nmr", ep, "--method", "toolkit", "--masks", str(half), "--json",
                   full=True)
    assert "resized nearest from 20x16 to 40x32" in proc.stderr
    assert "6 mask frames spread over 12 steps" in proc.stderr
    d6 = float(np.load(TOOLKIT_FILES.parent / "known_answers.npz")["d6_mean_score"])
    assert json.loads(proc.stdout)[0]["nmr"]["10.0"] == pytest.approx(d6, abs=1e-6)
    np.save(tmp_path / "stitched.npy", np.zeros((12, 32, 80), np.uint8))
    err = run_cli_fails("nmr", ep, "--method", "toolkit", "--masks",
                        str(tmp_path / "stitched.npy"))
    assert "not a toolkit mask file name" in err and "Traceback" not in err
    short = tmp_path / "short"
    shutil.copytree(TOOLKIT_FILES / "iss", short)
    with np.load(short / "iss_heatmaps.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(short / "iss_heatmaps.npz", **{**arrays, "front": arrays["front"][:5],
                                            "wrist": arrays["wrist"][:5]})
    err = run_cli_fails("toolkit-import", ep, str(short), "--name", "short")
    assert "5 maps per view, but" in err and "12 steps" in err


@pytest.mark.slow
def test_cli_export_import_gives_the_same_nmr(tmp_path):
    ep = str(tmp_path / "ep.h5")
    tk = tmp_path / "tk"
    run_cli("record", "--task", "pick_red", "--max-steps", "6", "--out", ep)
    run_cli("iss", ep, "--n", "10", "--every", "1", "--check", "0")
    run_cli("toolkit-export", ep, "--out", str(tk))
    assert sorted(layout(tk)) == ["iss/iss_heatmaps.npz", "masks/mask_front_rgb.npy",
                                  "masks/mask_wrist_rgb.npy"]
    with np.load(tk / "iss" / "iss_heatmaps.npz") as z:
        assert z["front"].shape[0] == 6 and z["front"].dtype == np.float32
        meta = json.loads(str(z["meta_json"]))
    assert meta["n_masks"] == 10 and meta["estimator"] == "toolkit-improved"
    assert np.load(tk / "masks" / "mask_front_rgb.npy").max() <= 2
    err = run_cli_fails("toolkit-export", ep, "--out", str(tk))
    assert "already exists; not replacing it (--overwrite replaces it)" in err
    run_cli("toolkit-export", ep, "--out", str(tk), "--overwrite")
    run_cli("toolkit-import", ep, str(tk), "--name", "toolkit")

    def nmr(*extra):
        return json.loads(run_cli("nmr", ep, "--k", "10,50", "--json", *extra))[0]["nmr"]

    ours = nmr()
    assert nmr("--method", "toolkit") == pytest.approx(ours)
    assert nmr("--masks", str(tk)) == pytest.approx(ours)
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
    assert (np.load(tmp_path / "tk2" / "masks" / "mask_front_rgb.npy") == 2).all()
