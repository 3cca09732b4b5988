"""A LeRobot dataset's episode as a VLAScope episode file linked to the dataset.

Everything in VLAScope reads episode files (the inspector, ``iss``, ``nmr``, ``capture``,
the SAE and video commands), and stores its results in them. So a dataset episode, named
``DATASET#N`` anywhere an episode file is accepted, is imported once into
``<recordings>/lerobot/<dataset>-<fingerprint>/episode_NNNNNN.h5`` (frames decoded, state,
actions, instructions, fps, and where it came from) and that file is used from then on. The
dataset is never written to; a dataset that changes gets a new fingerprint, hence a new
folder, and the results computed on the old frames stay with them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from .episode import SCHEMA, Episode, EpisodeWriter, safe_name
from .errors import CancelledError, OutputExistsError, VLAScopeError
from .lerobot_dataset import (
    SEPARATOR,
    LeRobotDatasetReader,
    is_lerobot_dataset,
    split_reference,
)

SOURCE_KIND = "lerobot"


def lerobot_folder(record_dir: str | Path | None = None) -> Path:
    """Where imported dataset episodes go (under the recordings folder, which the library
    lists)."""
    if record_dir is None:
        from .session import default_recordings_dir

        record_dir = default_recordings_dir()
    return Path(record_dir) / "lerobot"


def fingerprint(reader: LeRobotDatasetReader) -> str:
    """Identifies the dataset's content cheaply: its path, info.json, and the sizes of its
    tables and videos (an edited or re-recorded dataset changes at least one)."""
    h = hashlib.sha256(str(reader.root.resolve()).encode())
    h.update((reader.root / "meta" / "info.json").read_bytes())
    for sub in ("meta", "data", "videos"):
        for f in sorted((reader.root / sub).rglob("*")):
            if f.is_file():
                h.update(f"{f.relative_to(reader.root)}:{f.stat().st_size}".encode())
    return h.hexdigest()[:12]


def linked_path(reader: LeRobotDatasetReader, index: int, record_dir: str | Path | None = None,
                digest: str | None = None) -> Path:
    folder = (lerobot_folder(record_dir)
              / f"{safe_name(reader.name)}-{digest or fingerprint(reader)}")
    return folder / f"episode_{index:06d}.h5"


def source_of(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset an episode file was imported from (None for recorded rollouts)."""
    source = metadata.get("source")
    return source if isinstance(source, dict) and source.get("kind") == SOURCE_KIND else None


def import_episode(dataset: str | Path | LeRobotDatasetReader, index: int,
                   record_dir: str | Path | None = None, *,
                   progress: Callable[[int, int], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None,
                   digest: str | None = None) -> Path:
    """The VLAScope episode linked to episode ``index`` of ``dataset``: imported on first
    use, the existing file afterwards (with the results stored in it since). ``digest``:
    the dataset's ``fingerprint``, when the caller links several of its episodes."""
    reader = (dataset if isinstance(dataset, LeRobotDatasetReader)
              else LeRobotDatasetReader(dataset))
    ep = reader.episode(index)
    digest = digest or fingerprint(reader)
    path = linked_path(reader, index, record_dir, digest)
    if path.exists():
        _check_linked(path, reader, index)
        return path
    data = reader.load(index)
    instruction = data.tasks[0] if data.tasks else ep.task
    successes = data.successes
    metadata = {
        "scene": SOURCE_KIND, "task": instruction, "variant": reader.name, "seed": index,
        "instruction": instruction, "cameras": list(data.frames),
        "action_dim": int(data.actions.shape[1]), "fps": reader.fps,
        "interventions": [], "policy": {"name": f"recorded ({reader.info.get('robot_type')})"
                                        if reader.info.get("robot_type") else "recorded"},
        "source": {"kind": SOURCE_KIND, "dataset": str(reader.root.resolve()),
                   "name": reader.name, "episode_index": index,
                   "fingerprint": digest,
                   "codebase_version": reader.info.get("codebase_version"),
                   "camera_keys": {cam: key for key, cam in reader.cameras.items()},
                   "task_per_step": sorted(set(data.tasks)) != [instruction]},
        "vlascope_version": __version__, "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if successes is not None:
        metadata["success"] = bool(successes.any())
    writer = EpisodeWriter(path, metadata)
    try:
        for t in range(ep.length):
            if should_cancel is not None and should_cancel():
                raise CancelledError(f"import of {reader.root}#{index} cancelled at frame {t}")
            writer.append(state=data.states[t], action=data.actions[t],
                          action_chunk=data.actions[t][None], chunk_index=0,
                          success=bool(successes[t]) if successes is not None else False,
                          images={cam: frames[t] for cam, frames in data.frames.items()})
            if progress is not None:
                progress(t + 1, ep.length)
    except BaseException:
        writer.discard()
        raise
    try:
        return writer.close()
    except OutputExistsError:  # another process imported it meanwhile
        _check_linked(path, reader, index)
        return path


def _check_linked(path: Path, reader: LeRobotDatasetReader, index: int) -> None:
    """An existing file is reused only if we wrote it for this dataset episode."""
    with Episode(path) as existing:
        source = source_of(existing.metadata) or {}
    if (source.get("dataset") != str(reader.root.resolve())
            or source.get("episode_index") != index):
        raise OutputExistsError(path)


def resolve_episode(spec: str | Path, record_dir: str | Path | None = None, **kw: Any) -> str:
    """An episode file for ``spec``: an episode file as given, ``DATASET#N`` imported (see
    the module doc). A dataset folder alone is a clear error naming its episodes."""
    ref = split_reference(str(spec))
    if ref is not None:
        return str(import_episode(ref[0], ref[1], record_dir, **kw))
    if is_lerobot_dataset(spec):
        reader = LeRobotDatasetReader(spec)
        raise VLAScopeError(f"{spec} is a LeRobot dataset of {len(reader.episodes)} episodes: "
                            f"name one as {spec}{SEPARATOR}N (`vlascope dataset list {spec}` "
                            "lists them)")
    return str(spec)


def expand_episodes(items: Sequence[str | Path], record_dir: str | Path | None = None,
                    ) -> list[str]:
    """Episode files for a list of episode files, ``DATASET#N`` references and dataset
    folders (every episode of the dataset)."""
    out: list[str] = []
    for item in items:
        if is_lerobot_dataset(item):
            reader = LeRobotDatasetReader(item)
            digest = fingerprint(reader)  # hashes every file's size: once per dataset
            out += [str(import_episode(reader, i, record_dir, digest=digest))
                    for i in reader.episodes]
        else:
            out.append(resolve_episode(item, record_dir))
    return out


def describe(reader: LeRobotDatasetReader) -> list[dict[str, Any]]:
    """One row per episode for listings (index, frames, seconds, task)."""
    return [{"episode": i, "frames": e.length,
             "seconds": round(e.length / reader.fps, 2) if reader.fps else None,
             "task": e.task} for i, e in reader.episodes.items()]
