"""Real episode files for the fault tests: one short tabletop rollout recorded by the real
writer, and copies of it edited with h5py the way a crafted download would be."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from vlascope.core.episode import update_episode
from vlascope.core.runner import rollout


def record_small(folder: Path, scene, expert, steps: int = 4) -> Path:
    """A real recorded episode of ``steps`` steps, with stored saliency maps."""
    path = folder / "small.h5"
    rollout(scene, expert, "pick_blue", 0, max_steps=steps, record_to=path,
            policy_name="expert")
    rng = np.random.default_rng(0)
    with h5py.File(path, "r") as h5:
        n = h5["steps/action"].shape[0]
    update_episode(path, {f"saliency/iss/{c}": rng.random((n, 224, 224), np.float32)
                          for c in ("front", "wrist")},
                   {"saliency.iss": {"computed_steps": list(range(n))}})
    return path


def crafted(source: Path, target: Path, edit: Callable[[h5py.File], None]) -> Path:
    """A copy of ``source`` with ``edit`` applied to it in place."""
    shutil.copyfile(source, target)
    with h5py.File(target, "a") as h5:
        edit(h5)
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m vlascope.cli ARGS`` whatever its exit status (tests of refusals)."""
    return subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})


def assert_refused(out: subprocess.CompletedProcess, *needles: str) -> None:
    """One ``error:`` line, a non-zero exit, no traceback, and the message names the cause."""
    assert out.returncode != 0, out.stdout[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0], out.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def read_everything(path: Path) -> str:
    """Open ``path`` and read every part of it through the public API, as the CLI and the
    GUI would -> "ok", "refused: <message>" (our error), or "BUG <type>: <message>"."""
    from vlascope.core.annotation import annotated_regions
    from vlascope.core.episode import Episode, episode_observation, policy_instruction
    from vlascope.core.errors import VLAScopeError
    from vlascope.core.recording import FileRecording

    try:
        with Episode(path) as ep:
            for t in range(ep.n_steps):
                for c in ep.cameras:
                    ep.frame(t, c)
                    if ep.has_regions():
                        ep.regions(t, c)
                    if ep.has_segments():
                        ep.segments(t, c)
                for m in ep.saliency_methods():
                    for c in ep.saliency_cameras(m):
                        ep.saliency(m, c, t)
                policy_instruction(ep.metadata, t)
                episode_observation(ep, t, ep.cameras, (64, 64))
            for name in ep.activation_names:
                ep.activation_shape(name)
                ep.activations(name)
            for m in ep.saliency_methods():
                for c in ep.saliency_cameras(m):
                    ep.saliency(m, c)
            ep.states(), ep.actions(), ep.action_chunks(), ep.chunk_indices(), ep.successes()
            _ = ep.success, ep.metadata
            annotated_regions(ep)
        rec = FileRecording(path)
        try:
            for t in range(rec.n_steps):
                rec.regions(t), rec.segments(t), rec.observation(t)
                for m in rec.episode.saliency_methods():
                    rec.stored_saliency(m, t)
            _ = rec.title, rec.segment_names()
        finally:
            rec.close()
    except VLAScopeError as e:
        return f"refused: {e}"
    except Exception as e:  # noqa: BLE001 - what the fuzz pass looks for
        return f"BUG {type(e).__name__}: {e}"
    return "ok"


def fuzz_worker() -> None:
    """For each path given on the command line, one line: ``<index> <outcome>``."""
    import json as _json

    for i, path in enumerate(sys.argv[1:]):
        print(_json.dumps([i, read_everything(Path(path))]), flush=True)
