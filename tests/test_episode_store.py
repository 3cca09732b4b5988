"""Episode files: round trip, provenance, random access, atomic writes, bad files."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from vlascope import __version__
from vlascope.core.episode import Episode, EpisodeWriter, update_episode
from vlascope.core.errors import EpisodeFormatError, VLAScopeError
from vlascope.core.regions import ACTION_CRITICAL
from vlascope.core.runner import rollout


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, scene, expert):
    path = tmp_path_factory.mktemp("ep") / "pick.h5"
    res = rollout(scene, expert, "pick_blue", 3, "diverse", record_to=path, policy_name="expert")
    return path, res


def test_round_trip(recorded, scene, expert):
    path, res = recorded
    with Episode(path) as ep:
        assert ep.n_steps == res.steps > 5
        assert ep.cameras == ["front", "wrist"]
        assert ep.frame(0, "front").shape == (224, 224, 3)
        assert ep.regions(0, "wrist").shape == (224, 224)
        assert ep.actions().shape == (ep.n_steps, 4)
        assert ep.action_chunks().shape == (ep.n_steps, 1, 4)
        assert ep.states().shape == (ep.n_steps, 4)
        assert ep.success and ep.successes()[-1] and not ep.successes()[0]
        md = ep.metadata
        assert md["scene"] == "tabletop" and md["task"] == "pick_blue"
        assert md["variant"] == "diverse" and md["seed"] == 3
        assert md["policy"]["name"] == "expert" and md["policy"]["id"] == "tabletop-expert"
        assert md["vlascope_version"] == __version__ and md["schema"] == 1
        assert md["instruction"] == "pick up the blue cube"
        # Random access: a late frame equals a re-simulation of the same run.
        last = ep.frame(-1, "front")
        t = ep.n_steps - 1
    scene.reset("pick_blue", 3, "diverse")
    for _ in range(t):
        f = scene.observe(cameras=())
        scene.step(expert.batch_infer([f.observation])[0, 0])
    np.testing.assert_array_equal(scene.observe().observation.images["front"], last)


def test_region_maps_mark_the_robot(recorded):
    path, _ = recorded
    with Episode(path) as ep:
        for t in (0, ep.n_steps // 2, ep.n_steps - 1):
            assert (ep.regions(t, "front") == ACTION_CRITICAL).sum() > 50


def test_no_partial_files_left(recorded):
    path, _ = recorded
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_step_out_of_range(recorded):
    with Episode(recorded[0]) as ep, pytest.raises(IndexError):
        ep.frame(ep.n_steps, "front")


def test_exception_keeps_previous_file(tmp_path, recorded):
    target = tmp_path / "keep.h5"
    target.write_bytes(recorded[0].read_bytes())
    with pytest.raises(RuntimeError), EpisodeWriter(target, {"x": 1},
                                                           overwrite=True) as w:
        w.append(state=np.zeros(4), action=np.zeros(4), action_chunk=np.zeros((1, 4)),
                 chunk_index=0, success=False)
        raise RuntimeError("crash in the middle")
    with Episode(target) as ep:
        assert ep.metadata["task"] == "pick_blue"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]


def test_kill_during_write_leaves_previous_file(tmp_path, recorded):
    """A process killed while recording never breaks the file already at the path."""
    target = tmp_path / "victim.h5"
    target.write_bytes(recorded[0].read_bytes())
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from vlascope.core.episode import EpisodeWriter
        w = EpisodeWriter({str(target)!r}, {{"task": "overwrite"}}, overwrite=True)
        for t in range(100000):
            w.append(state=np.zeros(4), action=np.zeros(4), action_chunk=np.zeros((1, 4)),
                     chunk_index=0, success=False,
                     images={{"front": np.random.randint(0, 255, (64, 64, 3), dtype=np.uint8)}})
            if t == 20:
                print("writing", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Episode(target) as ep:
        assert ep.metadata["task"] == "pick_blue"
        ep.frame(0, "front")


def test_corrupt_truncated_and_foreign_files(tmp_path, recorded):
    data = recorded[0].read_bytes()
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(data[: len(data) // 3])
    text = tmp_path / "notes.h5"
    text.write_text("not an episode")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    for path, msg in ((truncated, "truncated|damaged|cannot read"), (text, "not a readable"),
                      (foreign, "not a VLAScope episode"),
                      (tmp_path / "missing.h5", "no such episode")):
        with pytest.raises(EpisodeFormatError, match=msg), Episode(path) as ep:
            for t in range(ep.n_steps):
                ep.frame(t, "front")


def test_newer_schema_is_refused(tmp_path, recorded):
    path = tmp_path / "future.h5"
    path.write_bytes(recorded[0].read_bytes())
    with h5py.File(path, "a") as f:
        f.attrs["schema"] = 99
    with pytest.raises(EpisodeFormatError, match="newer"):
        Episode(path)


def test_update_adds_saliency_maps_atomically(tmp_path, recorded):
    path = tmp_path / "sal.h5"
    path.write_bytes(recorded[0].read_bytes())
    with Episode(path) as ep:
        n = ep.n_steps
        frame5 = ep.frame(5, "front")
    maps = np.random.default_rng(0).random((n, 224, 224)).astype(np.float32)
    reader = Episode(path)  # a reader (the GUI scrubbing) holds the file open meanwhile
    update_episode(path, {"saliency/iss/front": maps}, {"iss": {"n_masks": 100}})
    assert reader.saliency_methods() == []  # still sees the version it opened
    reader.close()
    with Episode(path) as ep:
        assert ep.saliency_methods() == ["iss"]
        np.testing.assert_array_equal(ep.saliency("iss", "front", 3), maps[3])
        np.testing.assert_array_equal(ep.frame(5, "front"), frame5)
        assert ep.metadata["iss"] == {"n_masks": 100} and ep.metadata["task"] == "pick_blue"
    with pytest.raises(VLAScopeError, match="steps"):
        update_episode(path, {"saliency/iss/front": maps[:3]})
    with pytest.raises(VLAScopeError, match="cannot be overwritten"):
        update_episode(path, {"frames/front": np.zeros((n, 2, 2, 3), np.uint8)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sal.h5"]
