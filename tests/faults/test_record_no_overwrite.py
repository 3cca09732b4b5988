"""Issue 22, defect 6: `record` silently replaced episodes. Files are named by policy,
task, variant and seed; an existing episode is refused before any rollout unless
--overwrite; names are taken exclusively, so of two writers of one name only the first
publishes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from cli_process import run_cli

from vlascope.core.episode import Episode, EpisodeWriter
from vlascope.core.errors import VLAScopeError


def record(*args):
    out = subprocess.run([sys.executable, "-m", "vlascope.cli", "record", "--task",
                          "pick_red", "--max-steps", "3", *args], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    return out.returncode, out.stderr


def test_two_policies_into_one_folder_do_not_collide(tmp_path):
    run_cli("record", "--policy", "expert", "--task", "pick_red", "--max-steps", "3",
            "--out", str(tmp_path))
    run_cli("record", "--policy", "reference", "--task", "pick_red", "--max-steps", "3",
            "--out", str(tmp_path))
    names = sorted(p.name for p in tmp_path.glob("*.h5"))
    assert names == ["expert__pick_red__default__seed0.h5",
                     "reference__pick_red__default__seed0.h5"]
    with Episode(tmp_path / names[0]) as ep:
        assert ep.metadata["policy"] == "expert" or "expert" in str(ep.metadata)


def test_the_same_run_twice_is_refused_without_overwrite(tmp_path):
    ep = tmp_path / "mine.h5"
    run_cli("record", "--policy", "expert", "--task", "pick_red", "--max-steps", "3",
            "--out", str(ep))
    before = ep.read_bytes()
    rc, err = record("--policy", "expert", "--seed", "1", "--out", str(ep))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1 and "already exists" in lines[0], err
    assert ep.read_bytes() == before
    rc, err = record("--policy", "expert", "--seed", "1", "--out", str(ep), "--overwrite")
    assert rc == 0, err
    with Episode(ep) as got:
        assert got.metadata["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.h5"]


def _writer(path, value):
    w = EpisodeWriter(path, {"who": value})
    w.append(state=np.full(7, value), action=np.zeros(4), action_chunk=np.zeros((1, 4)),
             chunk_index=0, success=False)
    return w


def test_two_writers_of_one_name_cannot_both_publish(tmp_path):
    path = tmp_path / "ep.h5"
    first, second = _writer(path, 1), _writer(path, 2)  # both started before either ends
    first.close()
    with pytest.raises(VLAScopeError, match="already exists"):
        second.close()
    with Episode(path) as ep:
        assert ep.metadata["who"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5"]  # no partial left
    with pytest.raises(VLAScopeError, match="already exists"):
        EpisodeWriter(path, {})  # refused up front, before any rollout
