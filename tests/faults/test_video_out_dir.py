"""Issue 22, defect 1: `vlascope video --out DIR` deleted DIR. An output path is typed by a
user: a folder of their files (or `..`) is refused whatever the flags, an existing video
or frame folder of ours is replaced only with --overwrite (CLI) or a confirmation (GUI)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from cli_process import run_cli
from PySide6.QtWidgets import QMessageBox

from vlascope.core.episode import EpisodeWriter


def tiny_episode(path, steps=3):
    """A real three-step episode file, small enough to encode in a moment."""
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, {"scene": "tabletop", "task": "pick_red"}) as w:
        for t in range(steps):
            w.append(state=np.zeros(7), action=np.zeros(4), action_chunk=np.zeros((2, 4)),
                     chunk_index=0, success=t == steps - 1,
                     images={"front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)})
    return path


def video(*args, cwd=None):
    """`vlascope video` in a fresh process; (exit status, stderr)."""
    out = subprocess.run([sys.executable, "-m", "vlascope.cli", "video", *args,
                          "--overlay", "none", "--plot", "none", "--height", "32"],
                         capture_output=True, text=True, timeout=300, cwd=cwd,
                         env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    return out.returncode, out.stderr


def one_error_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vlascope: error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_folder_of_user_files_survives(tmp_path):
    ep = tiny_episode(tmp_path / "ep.h5")
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    for flags in ((), ("--overwrite",)):
        rc, err = video(str(ep), "--out", str(mine), *flags)
        assert rc != 0
        assert "did not write" in one_error_line(err)
        assert (mine / "chapter1.tex").read_text() == "years of work"
        assert sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5", "thesis"]  # no debris


def test_out_dotdot_is_refused_and_the_parent_keeps_its_files(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    ep = tiny_episode(work / "ep.h5")
    (tmp_path / "notes.txt").write_text("keep me")
    rc, err = video(str(ep), "--out", "..", "--overwrite", cwd=work)
    assert rc != 0 and "did not write" in one_error_line(err)
    assert (tmp_path / "notes.txt").read_text() == "keep me" and ep.is_file()


def test_overwrite_replaces_only_our_own_frame_folder(tmp_path):
    ep = tiny_episode(tmp_path / "ep.h5")
    frames = tmp_path / "frames"
    run_cli("video", str(ep), "--out", str(frames), "--overlay", "none", "--plot", "none",
            "--height", "32")
    first = sorted(p.name for p in frames.iterdir())
    assert "frame_00000.png" in first and len([n for n in first if n.endswith(".png")]) == 3
    rc, err = video(str(ep), "--out", str(frames), "--steps", "0:2")
    assert rc != 0 and "--overwrite" in one_error_line(err)  # ours, but not without asking
    assert sorted(p.name for p in frames.iterdir()) == first
    run_cli("video", str(ep), "--out", str(frames), "--steps", "0:2", "--overwrite",
            "--overlay", "none", "--plot", "none", "--height", "32")
    assert len(list(frames.glob("frame_*.png"))) == 2
    # a user's file put into our folder makes it theirs: refused even with --overwrite
    (frames / "notes.txt").write_text("mine now")
    rc, err = video(str(ep), "--out", str(frames), "--overwrite")
    assert rc != 0 and (frames / "notes.txt").read_text() == "mine now"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5", "frames"]


def test_an_existing_video_file_needs_overwrite(tmp_path):
    ep = tiny_episode(tmp_path / "ep.h5")
    out = tmp_path / "talk.gif"
    out.write_bytes(b"the user's own gif")
    rc, err = video(str(ep), "--out", str(out))
    assert rc != 0 and "already exists" in one_error_line(err)
    assert out.read_bytes() == b"the user's own gif"
    run_cli("video", str(ep), "--out", str(out), "--overwrite", "--overlay", "none",
            "--plot", "none", "--height", "32")
    assert out.read_bytes()[:3] == b"GIF"


@pytest.fixture
def dialog(qtbot, window, tmp_path):
    from vlascope.app.video import ExportDialog

    ep = tiny_episode(tmp_path / "ep.h5")
    d = ExportDialog(window.controller, str(ep), 3)
    qtbot.addWidget(d)
    d.overlay.setCurrentText("none")
    d.plot.setCurrentText("none")
    d.height_px.setValue(32)
    return d


def test_export_dialog_refuses_a_user_folder_and_asks_before_replacing(qtbot, dialog,
                                                                        tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    dialog.out.setText(str(mine))
    dialog.export.click()
    assert dialog.message is not None and "did not write" in dialog.message.text()
    assert dialog.export.isEnabled()  # nothing started
    qtbot.wait(200)
    assert sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]

    out = tmp_path / "clip.gif"
    out.write_bytes(b"the user's own gif")
    dialog.out.setText(str(out))
    dialog.export.click()
    box = dialog.message
    assert box.objectName() == "confirm-replace" and "Replace" in box.text()
    box.button(QMessageBox.StandardButton.No).click()
    qtbot.wait(200)
    assert out.read_bytes() == b"the user's own gif" and dialog.export.isEnabled()
    dialog.export.click()
    with qtbot.waitSignal(dialog.accepted, timeout=60_000):
        dialog.message.button(QMessageBox.StandardButton.Yes).click()
    assert out.read_bytes()[:3] == b"GIF" and dialog.result == str(out)
