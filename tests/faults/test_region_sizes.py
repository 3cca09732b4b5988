"""Defect 7: an annotation PNG that does not fit the episode (another size, a camera it
lacks, a step past its end) is refused with its name, never dropped while the output still
says "annotation"."""

import numpy as np
import pytest
from crafted_files import annotated_copy, assert_refused, cli, record_small
from PIL import Image

from vlascope.core.annotation import annotated_regions, annotation_dir
from vlascope.core.episode import Episode
from vlascope.core.errors import EpisodeFormatError
from vlascope.core.workspace import Workspace


@pytest.fixture(scope="module")
def base(tmp_path_factory, scene, expert):
    return record_small(tmp_path_factory.mktemp("sizes"), scene, expert)


@pytest.fixture
def episode(tmp_path, base):
    """A copy of the episode with one good edit saved by the real store."""
    return annotated_copy(base, tmp_path / "run.h5", 1, 20)


def _bad_frame(episode, name="000001.png", camera="front", size=(100, 80)):
    bad = annotation_dir(episode) / camera / name
    bad.parent.mkdir(exist_ok=True)
    Image.fromarray(np.ones(size[::-1], np.uint8), mode="L").save(bad)
    return bad


def test_reader_refuses_wrong_size(episode):
    bad = _bad_frame(episode)
    with Episode(episode) as ep, pytest.raises(EpisodeFormatError) as err:
        annotated_regions(ep)
    assert str(bad) in str(err.value) and "100x80" in str(err.value)


@pytest.mark.parametrize("where", ["size", "camera", "step"])
def test_nmr_refuses_instead_of_dropping(episode, where):
    bad = {"size": lambda: _bad_frame(episode),
           "camera": lambda: _bad_frame(episode, camera="ceiling", size=(224, 224)),
           "step": lambda: _bad_frame(episode, name="000999.png", size=(224, 224))}[where]()
    out = cli("nmr", str(episode), "--method", "iss")
    assert_refused(out, str(bad))
    assert "annotation" not in out.stdout


def test_good_annotation_still_used(episode):
    out = cli("nmr", str(episode), "--method", "iss")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "annotation" in out.stdout


def test_toolkit_export_refuses_and_writes_nothing(episode, tmp_path):
    bad = _bad_frame(episode)
    out_dir = tmp_path / "export"
    assert_refused(cli("toolkit-export", str(episode), "--method", "iss", "--out",
                              str(out_dir)), str(bad))
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_workspace_refuses_to_open(episode):
    """The GUI's opener (the controller shows the error in a dialog): the episode is not
    shown with the edit silently missing."""
    bad = _bad_frame(episode)
    ws = Workspace()
    with pytest.raises(EpisodeFormatError, match="100x80"):
        ws.open_episode(episode)
    assert ws.recording is None
    bad.unlink()
    ws.open_episode(episode)
    assert ws.annotation.edit("front", 0) is not None
    ws.recording.close()


def test_regions_dock_import_refuses_wrong_size(qtbot, episode, tmp_path):
    """The Regions dock's PNG import: the error is shown, the frame's edits stay as they
    were (nothing resized or cropped into them)."""
    from vlascope.app.docks.regions import RegionDock

    ws = Workspace()
    ws.open_episode(episode)
    dock = RegionDock(ws)
    qtbot.addWidget(dock)
    png = tmp_path / "labels.png"
    Image.fromarray(np.ones((80, 100), np.uint8), mode="L").save(png)
    before = ws.annotation.labels(dock.camera, ws.step).copy()
    dock._guard(lambda: dock.import_file(png), "imported")
    assert "100x80" in dock.under_cursor.text() and str(png) in dock.under_cursor.text()
    np.testing.assert_array_equal(ws.annotation.labels(dock.camera, ws.step), before)
    ws.recording.close()
