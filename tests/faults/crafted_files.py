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
from cli_process import cli_process

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


def annotated_copy(base: Path, target: Path, label: int, corner: int) -> Path:
    """A copy of ``base`` with one good region edit (``label`` in the top-left
    ``corner`` x ``corner`` of the front camera's step 0) saved by the real store."""
    from vlascope.core.annotation import KEEP, AnnotationStore, annotation_dir

    target.write_bytes(base.read_bytes())
    edit = np.full((224, 224), KEEP, np.uint8)
    edit[:corner, :corner] = label
    AnnotationStore(annotation_dir(target)).save("front", 0, edit)
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m vlascope.cli ARGS`` whatever its exit status (tests of refusals)."""
    return cli_process(*args, timeout=timeout)


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


def read_toolkit_file(path: Path) -> str:
    """Read a toolkit heatmap (.npz) or mask (.npy) file as ``toolkit-import`` and
    ``nmr --masks`` do -> "ok", "refused: <message>", or "BUG <type>: <message>"."""
    from vlascope.core.errors import VLAScopeError
    from vlascope.core.toolkit_io import read_heatmaps, read_masks

    try:
        if path.suffix == ".npz":
            read_heatmaps(path)
        else:
            read_masks(path, [path.stem.removeprefix("mask_").removesuffix("_rgb")])
    except VLAScopeError as e:
        return f"refused: {e}"
    except Exception as e:  # noqa: BLE001 - what the fuzz pass looks for
        return f"BUG {type(e).__name__}: {e}"
    return "ok"


READERS = {"episode": read_everything, "toolkit": read_toolkit_file}


def fuzz_worker() -> None:
    """``READERS[argv[1]]`` on each path after it, one line each: ``[index, outcome]``."""
    import json as _json

    read = READERS[sys.argv[1]]
    for i, path in enumerate(sys.argv[2:]):
        print(_json.dumps([i, read(Path(path))]), flush=True)


def fuzz(reader: str, paths: list[Path], per_case_s: float) -> list[str]:
    """Each path read in one worker process, with a time limit per file: the outcomes in
    order; a hang or a crash of the worker fails the test naming the file."""
    import json as _json
    import select

    code = ("import sys, os; here = sys.argv.pop(1); "
            "sys.path[:0] = [here, os.path.dirname(here)]; "
            "from crafted_files import fuzz_worker; fuzz_worker()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), reader,
                             *map(str, paths)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    outcomes: list[str] = []
    try:
        for path in paths:
            ready, _, _ = select.select([proc.stdout], [], [], per_case_s)
            assert ready, f"reading {path} hung for {per_case_s} s"
            line = proc.stdout.readline()
            assert line, f"the reader died on {path}: {proc.stderr.read()[-3000:]}"
            outcomes.append(_json.loads(line)[1])
    finally:
        proc.kill()
        proc.wait()
    return outcomes


LIMITED_CALL = """
import importlib, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
from vlascope.core.errors import VLAScopeError
module, name = sys.argv[1].split(":")
try:
    getattr(importlib.import_module(module), name)(sys.argv[2])
    print("loaded")
except VLAScopeError as e:
    print("error:", e)
finally:
    print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def load_under_memory_limit(loader: str, folder: Path) -> tuple[str, int]:
    """``module:function`` called on ``folder`` in a child process limited to 6 GiB of
    address space -> (what it said: "loaded" or "error: ...", its peak memory in MiB), so
    a loader that would allocate what a file claims fails the test instead of the machine."""
    run = subprocess.run([sys.executable, "-c", LIMITED_CALL, loader, str(folder)],
                         capture_output=True, text=True, timeout=300)
    lines = run.stdout.splitlines()
    peak = [int(s.split()[1]) for s in lines if s.startswith("peak_kib")]
    assert peak, run.stderr[-2000:]
    said = "\n".join(s for s in lines if not s.startswith("peak_kib"))
    return said or run.stderr[-2000:], peak[0] // 1024
