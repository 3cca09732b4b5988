"""Issue 22, defect 5: a full disk while recording gave a segmentation fault at exit, pages
of HDF5 errors and an orphan partial file. Now: one line, exit non-zero, the partial
removed, earlier episodes intact. The full disk is a real one as far as the process can
tell: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes write() fail with EFBIG."""

import os
import subprocess
import sys

import pytest
from cli_process import run_cli

from vlascope.core.episode import Episode

LIMITED = ("import resource, signal, sys\n"
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, ({n}, {n}))\n"
           "from vlascope.cli import main\n"
           "sys.exit(main(sys.argv[1:]))\n")


def test_disk_full_while_recording_is_one_line_and_leaves_no_partial(tmp_path):
    run_cli("record", "--policy", "expert", "--task", "pick_red", "--max-steps", "4",
            "--out", str(tmp_path))
    (earlier,) = tmp_path.glob("*.h5")
    before = earlier.read_bytes()
    assert len(before) > 60_000  # so the limit below stops the next one mid-way
    out = subprocess.run(
        [sys.executable, "-c", LIMITED.format(n=50_000), "record", "--policy", "expert",
         "--task", "pick_red", "--max-steps", "4", "--seed", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, out.stderr[-3000:]  # an error, not a crash (negative: signal)
    assert len(lines) == 1 and lines[0].startswith("vlascope: error: disk full while "
                                                   "writing"), out.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [earlier.name]  # no partial
    assert earlier.read_bytes() == before
    with Episode(earlier) as ep:
        assert ep.n_steps == 4


@pytest.mark.parametrize("name", ["demo.mp4", "demo.gif", "frames"])
def test_disk_full_while_exporting_a_video_is_one_line(tmp_path, name):
    """The same for `vlascope video`, whichever encoder meets the full disk (PyAV for MP4,
    Pillow for GIF and PNG frames): it printed their tracebacks."""
    episode = tmp_path / "ep.h5"
    run_cli("record", "--policy", "expert", "--task", "pick_red", "--max-steps", "4",
            "--out", str(episode))
    out = subprocess.run(
        [sys.executable, "-c", LIMITED.format(n=20_000), "video", str(episode), "--overlay",
         "none", "--out", str(tmp_path / name)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("vlascope: error: disk full while "
                                                   "writing"), out.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5"]  # no partial, no output
