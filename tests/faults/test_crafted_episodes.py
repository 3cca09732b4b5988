"""Defect 8: crafted inputs give one clear ``error:`` line and a non-zero exit, never a
traceback, and leave the file they name as it was."""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from crafted_files import annotated_copy, assert_refused, cli, crafted, digest, record_small
from PIL import Image

from vlascope.core.annotation import (
    annotation_dir,
    read_label_png,
)
from vlascope.core.errors import EpisodeFormatError, PluginError
from vlascope.policies.reference.policy import load_checkpoint

LATIN1 = '{"name": "caf\xe9"}'.encode("latin-1")  # valid JSON in latin-1, not UTF-8


@pytest.fixture(scope="module")
def base(tmp_path_factory, scene, expert):
    return record_small(tmp_path_factory.mktemp("crafted"), scene, expert)


def _metadata(value):
    def edit(h5):
        h5.attrs["metadata"] = json.dumps(value)
    return edit


def _shorten(name):
    def edit(h5):
        h5[name].resize(h5[name].shape[0] - 1, axis=0)
    return edit


def _zero_width(h5):
    n = h5["frames/front"].shape[0]
    del h5["frames/front"]
    h5.create_dataset("frames/front", shape=(n, 224, 0, 3), dtype=np.uint8)


def _duplicate_frames(h5):
    meta = json.loads(h5.attrs["metadata"])
    meta["saliency.iss"] = {"computed_steps": [0, 0, 1]}
    h5.attrs["metadata"] = json.dumps(meta)


def _non_finite(h5):
    maps = h5["saliency/iss/front"][()]
    maps[1, 5, 5] = np.nan
    maps[2, 7, 7] = np.inf
    h5["saliency/iss/front"][...] = maps


EPISODES = {  # case -> (edit, words the error names, command)
    "metadata is a list": (_metadata([1, 2, 3]), "metadata", "info"),
    "metadata is a string": (_metadata("hello"), "metadata", "info"),
    "interventions not mappings": (_metadata({"interventions": [3]}), "interventions",
                                   "info"),
    "steps shorter": (_shorten("steps/state"), "steps/state", "info"),
    "frames shorter": (_shorten("frames/wrist"), "frames/wrist", "video"),
    "saliency shorter": (_shorten("saliency/iss/front"), "saliency/iss/front", "nmr"),
    "duplicate frame indices": (_duplicate_frames, "saliency.iss", "info"),
    "zero-width view": (_zero_width, "frames/front", "video"),
    "non-finite saliency": (_non_finite, "saliency/iss/front", "nmr"),
}


def _command(kind, path, tmp_path):
    return {"info": ["info", str(path)],
            "video": ["video", str(path), "--out", str(tmp_path / "frames")],
            "nmr": ["nmr", str(path), "--method", "iss"]}[kind]


@pytest.mark.parametrize("case", list(EPISODES))
def test_crafted_episode(case, base, tmp_path):
    edit, words, kind = EPISODES[case]
    path = crafted(base, tmp_path / "crafted.h5", edit)
    before = digest(path)
    assert_refused(cli(*_command(kind, path, tmp_path)), str(path), words)
    assert digest(path) == before
    assert not (tmp_path / "frames").exists() or not any((tmp_path / "frames").iterdir())


def test_non_finite_saliency_not_exported(base, tmp_path):
    path = crafted(base, tmp_path / "crafted.h5", _non_finite)
    out = tmp_path / "export"
    assert_refused(cli("toolkit-export", str(path), "--method", "iss", "--out", str(out)),
                   "non-finite")
    assert not out.exists() or not any(out.iterdir())


def test_duplicate_frame_indices_on_import(base, tmp_path):
    """Two maps for one frame, in the stitched layout with frame indices that VLAScope once
    wrote: refused (the toolkit's layout has one map per step, no indices to repeat), and
    the episode is not touched."""
    path = tmp_path / "ep.h5"
    path.write_bytes(base.read_bytes())
    heat = tmp_path / "heat.npz"
    np.savez(heat, heatmaps=np.random.default_rng(0).random((2, 224, 448), np.float32),
             views=np.array(["front", "wrist"]), frame_indices=np.array([1, 1]))
    before = digest(path)
    assert_refused(cli("toolkit-import", str(path), str(heat)), "earlier stitched layout")
    assert digest(path) == before


# annotation files ---------------------------------------------------------------------------
@pytest.fixture
def annotated(base, tmp_path):
    return annotated_copy(base, tmp_path / "run.h5", 2, 10)


def _png_claiming(path, width, height):
    """A tiny valid PNG whose header then claims ``width`` x ``height`` (CRC fixed up)."""
    Image.fromarray(np.zeros((2, 2), np.uint8), mode="L").save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_negative_step_in_annotation_name(annotated):
    bad = annotation_dir(annotated) / "front" / "-00001.png"
    Image.fromarray(np.ones((224, 224), np.uint8), mode="L").save(bad)
    assert_refused(cli("nmr", str(annotated), "--method", "iss"), str(bad), "step")


@pytest.mark.parametrize("size", [(100_000, 100_000), (20_000, 20_000)])
def test_png_header_claims_huge_size(annotated, tmp_path, size):
    bad = _png_claiming(annotation_dir(annotated) / "front" / "000001.png", *size)
    assert_refused(cli("nmr", str(annotated), "--method", "iss"), str(bad))
    other = _png_claiming(tmp_path / "labels.png", *size)  # the Regions dock's import
    with pytest.raises(EpisodeFormatError, match="labels.png"):
        read_label_png(other)


def test_decompression_bomb(tmp_path):
    """A real, small file that decodes to more pixels than any label map has."""
    side = 9000  # 81 M pixels, under Pillow's own bomb limit, over a label map's
    bomb = tmp_path / "bomb.png"
    Image.new("L", (side, side), 0).save(bomb, optimize=True)
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(EpisodeFormatError, match="bomb.png"):
        read_label_png(bomb)


def test_annotation_manifest_not_utf8(annotated):
    manifest = annotation_dir(annotated) / "annotation.json"
    manifest.write_bytes(LATIN1)
    assert_refused(cli("nmr", str(annotated), "--method", "iss"), str(manifest))


# configs ------------------------------------------------------------------------------------
def test_policy_config_not_utf8(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"")
    (ckpt / "config.json").write_bytes(LATIN1)
    with pytest.raises(PluginError, match="UTF-8"):
        load_checkpoint(ckpt)
    out = cli("record", "--policy", "reference", "--weights", str(ckpt), "--task",
              "pick_blue", "--max-steps", "2", "--out", str(tmp_path / "ep.h5"))
    assert_refused(out, "config.json", "UTF-8")
    assert not (tmp_path / "ep.h5").exists()


def test_interventions_file_not_utf8(tmp_path):
    spec = tmp_path / "interventions.json"
    spec.write_bytes(LATIN1)
    out = cli("capture", "--policy", "reference", "--layers", "trunk.0", "--tasks",
              "pick_blue", "--episodes", "1", "--out", str(tmp_path / "caps"),
              "--interventions", str(spec))
    assert_refused(out, str(spec), "UTF-8")


def test_sae_stats_not_utf8(tmp_path):
    sae = tmp_path / "sae"
    sae.mkdir()
    (sae / "sae_stats.json").write_bytes(LATIN1)
    from vlascope.cli_mechanistic import _concepts
    from vlascope.core.errors import VLAScopeError

    with pytest.raises(VLAScopeError, match="UTF-8"):
        _concepts(sae / "sae_stats.json")


def test_plugin_folder_not_utf8(tmp_path):
    """A plugin file in latin-1 and a file name that is not UTF-8: listed as broken."""
    (tmp_path / "latin.py").write_bytes(b"# caf\xe9\nSCENES = {'x': 1}\n")
    (Path(os.fsdecode(bytes(tmp_path)) + "/" + os.fsdecode(b"caf\xe9.py"))).write_bytes(
        b"SCENES = {'y': 1}\n")
    out = subprocess.run([sys.executable, "-m", "vlascope.cli", "plugins"],
                         capture_output=True, text=True, errors="replace", timeout=120,
                         env={**os.environ, "VLASCOPE_PLUGIN_PATH": str(tmp_path)})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "latin" in out.stdout and "ERROR" in out.stdout


def test_non_finite_saliency_in_the_inspector(base, tmp_path):
    """The GUI's workspace shows damaged stored maps as none and says so once, instead of
    raising out of a paint handler or ranking NaN pixels."""
    from vlascope.core.episode import update_episode
    from vlascope.core.workspace import Workspace

    path = tmp_path / "ep.h5"
    path.write_bytes(base.read_bytes())
    ws = Workspace()
    name = ws._stored_name()
    maps = np.random.default_rng(1).random((3, 224, 224), np.float32)
    with h5py.File(path, "r") as h5:
        maps = np.resize(maps, (h5["steps/action"].shape[0], 224, 224))
    maps[1, 3, 3] = np.nan
    update_episode(path, {f"saliency/{name}/front": maps})
    told = []
    ws.file_damaged.connect(told.append)
    ws.open_episode(path)
    assert ws.maps_at(0) is not None
    assert ws.maps_at(1) is None and ws.maps_at(1) is None
    assert len(told) == 1 and "non-finite" in told[0] and str(path) in told[0]
    ws.recording.close()
