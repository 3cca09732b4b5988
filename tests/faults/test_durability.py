"""Issue 22, defect 10: durability of what we write. Modes follow the umask; the folder is
fsynced after the rename; orphaned partials of dead writers are swept, and nothing else;
`update_episode` holds a lock, so concurrent writers keep each other's additions; report
and ISS PNG writes go through atomic_path, so a failed write leaves the old file."""

import os
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from vlascope.core import atomic
from vlascope.core.atomic import write_text_atomic
from vlascope.core.episode import Episode, EpisodeWriter, update_episode
from vlascope.core.errors import VLAScopeError


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def tiny_episode(path, steps=3):
    with EpisodeWriter(path, {"task": "pick_red"}) as w:
        for _ in range(steps):
            w.append(state=np.zeros(7), action=np.zeros(4), action_chunk=np.zeros((1, 4)),
                     chunk_index=0, success=False,
                     images={"front": np.zeros((8, 8, 3), np.uint8)})
    return path


def test_file_modes_follow_the_umask(tmp_path, umask):
    umask(0o077)
    assert stat.S_IMODE(write_text_atomic(tmp_path / "private.json", "{}").stat().st_mode) \
        == 0o600
    assert stat.S_IMODE(tiny_episode(tmp_path / "private.h5").stat().st_mode) == 0o600
    umask(0o002)
    assert stat.S_IMODE(write_text_atomic(tmp_path / "shared.json", "{}").stat().st_mode) \
        == 0o664


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def recording_fsync(fd):
        st = os.fstat(fd)
        synced.append((stat.S_ISDIR(st.st_mode), st.st_ino))
        return real(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "out" / "result.json"
    write_text_atomic(target, "{}")
    folder = (True, target.parent.stat().st_ino)
    assert folder in synced and synced.index(folder) == len(synced) - 1  # after the file
    synced.clear()
    tiny_episode(tmp_path / "out" / "ep.h5")
    assert synced[-1] == folder


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_removes_only_our_stale_partials(tmp_path):
    old = time.time() - 3 * 24 * 3600
    dead = _dead_pid()
    ours_stale = tmp_path / f".ep.h5.{dead}.abc123_x.partial"
    ours_frames = tmp_path / f".clip.{dead}.zz9.partial"
    live = tmp_path / f".ep.h5.{os.getppid()}.abc123_y.partial"  # its writer still runs
    recent = tmp_path / f".ep.h5.{dead}.abc123_z.partial"  # maybe another machine's
    foreign = [tmp_path / "notes.partial", tmp_path / ".notes.partial",
               tmp_path / f".x.{dead}.partial", tmp_path / "ep.h5"]
    foreign_dir = tmp_path / f".mine.{dead}.q1.partial"  # looks like ours, holds user files
    ours_frames.mkdir()
    (ours_frames / ".vlascope-frames").write_text("")
    (ours_frames / "frame_00000.png").write_bytes(b"png")
    foreign_dir.mkdir()
    (foreign_dir / "thesis.tex").write_text("keep")
    for p in (ours_stale, live, recent, *foreign):
        p.write_text("x")
    for p in (ours_stale, ours_frames, live, *foreign, foreign_dir):
        os.utime(p, (old, old))
    write_text_atomic(tmp_path / "report.json", "{}")  # a write sweeps its folder
    left = {p.name for p in tmp_path.iterdir()}
    assert ours_stale.name not in left and ours_frames.name not in left
    assert {live.name, recent.name, foreign_dir.name, *(p.name for p in foreign)} <= left
    assert (foreign_dir / "thesis.tex").read_text() == "keep"
    assert atomic.sweep_partials(tmp_path) == []


def test_a_second_update_waits_for_the_first_or_fails_clearly(tmp_path):
    ep = tiny_episode(tmp_path / "ep.h5")
    with atomic.exclusive_lock(ep), pytest.raises(VLAScopeError, match="being updated"):
        update_episode(ep, {"saliency/a/front": np.zeros((3, 8, 8))}, lock_timeout_s=0.3)
    holder = atomic.exclusive_lock(ep)
    holder.__enter__()
    threading.Timer(0.5, holder.__exit__, (None, None, None)).start()
    t0 = time.monotonic()
    update_episode(ep, {"saliency/a/front": np.ones((3, 8, 8))}, lock_timeout_s=30)
    assert time.monotonic() - t0 >= 0.4  # it waited for the holder
    with Episode(ep) as got:
        assert got.saliency("a", "front", 0).max() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5"]  # no lock file left


UPDATE = ("import sys, numpy as np\n"
          "from vlascope.core.episode import update_episode\n"
          "update_episode(sys.argv[1], {'saliency/m%s/front' % sys.argv[2]: "
          "np.full((3, 64, 64), 1.0)}, {'by%s' % sys.argv[2]: True})\n")


def test_concurrent_updates_keep_every_writers_additions(tmp_path):
    ep = tiny_episode(tmp_path / "ep.h5")
    procs = [subprocess.Popen([sys.executable, "-c", UPDATE, str(ep), str(i)])
             for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    with Episode(ep) as got:
        assert sorted(got.saliency_methods()) == ["m0", "m1", "m2", "m3"]
        assert all(got.metadata[f"by{i}"] for i in range(4))


LIMITED = ("import resource, signal, sys\n"
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n")


def run_limited(code, *args):
    return subprocess.run([sys.executable, "-c", LIMITED + code, *args], capture_output=True,
                          text=True, timeout=120)


REPORT = ("from vlascope.core.report import Cell, write_report\n"
          "cells = [Cell('model', f'task{i}', 'v', episodes=4, successes=i) for i in range(5)]\n"
          "for c in cells: c.nmr = {'10': [0.1 * c.successes]}\n"
          "write_report(cells, [10.0], sys.argv[1], {})\n")


def test_a_failed_report_write_leaves_the_old_report(tmp_path):
    out = subprocess.run([sys.executable, "-c", "import sys\n" + REPORT, str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {"report.md", "report.json", "nmr_vs_success.png"} <= set(before)
    failed = run_limited(REPORT, str(tmp_path))
    assert failed.returncode != 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old, no debris


def test_a_failed_iss_png_write_leaves_the_old_image(tmp_path):
    png = tmp_path / "iss_t0000_front.png"
    code = ("import numpy as np\n"
            "from vlascope.core.saliency.explain_episode import overlay_png\n"
            "rng = np.random.default_rng(0)\n"
            f"overlay_png(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "
            f"rng.random((64, 64)), __import__('pathlib').Path({str(png)!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before = png.read_bytes()
    assert len(before) > 200
    failed = run_limited(code)
    assert failed.returncode != 0
    assert png.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [png.name]
