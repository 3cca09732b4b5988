"""Defect 4: an episode whose datasets live elsewhere (external storage, soft and external
links, virtual datasets) must not make VLAScope read another file into a video."""

import h5py
import numpy as np
import pytest
from crafted_files import assert_refused, cli, crafted, digest, record_small

from vlascope.core.episode import Episode
from vlascope.core.errors import EpisodeFormatError
from vlascope.core.recording import FileRecording

SECRET = b"TOP-SECRET-KEY!"


@pytest.fixture(scope="module")
def base(tmp_path_factory, scene, expert):
    return record_small(tmp_path_factory.mktemp("links"), scene, expert)


@pytest.fixture
def secret(tmp_path, base):
    """A private local file as large as the front camera's frames, and an HDF5 file with
    the same bytes as a dataset."""
    with h5py.File(base, "r") as h5:
        shape = h5["frames/front"].shape
    size = int(np.prod(shape))
    raw = tmp_path / "secret.bin"
    raw.write_bytes((SECRET * (size // len(SECRET) + 1))[:size])
    other = tmp_path / "secret.h5"
    with h5py.File(other, "w") as h5:
        h5["data"] = np.frombuffer(raw.read_bytes(), np.uint8).reshape(shape)
    return raw, other, shape


def _external_storage(secret):
    raw, _other, shape = secret

    def edit(h5):
        del h5["frames/front"]
        h5.create_dataset("frames/front", shape=shape, dtype=np.uint8,
                          external=[(str(raw), 0, int(np.prod(shape)))])
    return edit


def _soft_link(secret):
    _raw, _other, shape = secret

    def edit(h5):
        h5["hidden"] = h5["frames/front"][()]
        del h5["frames/front"]
        h5["frames/front"] = h5py.SoftLink("/hidden")
    return edit


def _external_link(secret):
    _raw, other, _shape = secret

    def edit(h5):
        del h5["frames/front"]
        h5["frames/front"] = h5py.ExternalLink(str(other), "/data")
    return edit


def _virtual(secret):
    _raw, other, shape = secret

    def edit(h5):
        layout = h5py.VirtualLayout(shape=shape, dtype=np.uint8)
        layout[...] = h5py.VirtualSource(str(other), "data", shape=shape)
        del h5["frames/front"]
        h5.create_virtual_dataset("frames/front", layout)
    return edit


def _plugin_filter(secret):
    """A dataset whose filter HDF5 would look for as a plugin library on disk."""
    _raw, _other, shape = secret

    def edit(h5):
        data = h5["frames/front"][()]
        del h5["frames/front"]
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1, *shape[1:]))
        dcpl.set_filter(32123, h5py.h5z.FLAG_OPTIONAL)
        space = h5py.h5s.create_simple(shape)
        dsid = h5py.h5d.create(h5.id, b"frames/front", h5py.h5t.STD_U8LE, space, dcpl=dcpl)
        h5py.Dataset(dsid)[...] = data
    return edit


CASES = {"external storage": (_external_storage, "external file"),
         "soft link": (_soft_link, "soft link"),
         "external link": (_external_link, "external link"),
         "virtual dataset": (_virtual, "virtual dataset"),
         "plugin filter": (_plugin_filter, "filter 32123")}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_by_the_reader(case, base, secret, tmp_path):
    make, words = CASES[case]
    ep_path = crafted(base, tmp_path / "crafted.h5", make(secret))
    with pytest.raises(EpisodeFormatError) as err:
        Episode(ep_path)
    assert str(ep_path) in str(err.value) and "frames/front" in str(err.value)
    assert words in str(err.value)
    with pytest.raises(EpisodeFormatError):  # the GUI's opener is the same reader
        FileRecording(ep_path)


@pytest.mark.parametrize("case", list(CASES))
def test_video_refuses_and_never_shows_the_secret(case, base, secret, tmp_path):
    make, words = CASES[case]
    ep_path = crafted(base, tmp_path / "crafted.h5", make(secret))
    before = digest(ep_path)
    out_dir = tmp_path / "frames"
    out = cli("video", str(ep_path), "--out", str(out_dir))
    assert_refused(out, str(ep_path), "frames/front", words)
    assert SECRET.decode() not in out.stdout + out.stderr
    written = list(out_dir.rglob("*")) if out_dir.exists() else []
    assert written == []
    assert digest(ep_path) == before
