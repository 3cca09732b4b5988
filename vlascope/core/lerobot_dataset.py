"""LeRobot v3 datasets (a local folder), read without LeRobot.

A v3 dataset keeps many episodes in shared files: ``meta/info.json`` (features, fps, path
templates), ``meta/tasks.parquet`` (instructions; the text is the pandas index),
``meta/episodes/*/*.parquet`` (one row per episode: its rows in the data files and its time
span in each camera's video), ``data/*/*.parquet`` (state, action, timestamp per frame) and
``videos/<camera key>/*/*.mp4`` (one stream per camera, episodes back to back). We read the
tables with pyarrow and decode the videos with PyAV, as LeRobot itself encodes them: its own
reader needs ``torchvision.io.VideoReader`` (gone from torchvision 0.28) or torchcodec, and
importing it costs seconds. Nothing here writes to the dataset.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VLAScopeError

CAMERA_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
SUCCESS_KEYS = ("next.success", "success")
SEPARATOR = "#"  # DATASET#N names episode N of a dataset folder


class DatasetFormatError(VLAScopeError):
    """A folder that is not a LeRobot v3 dataset we can read, said with the reason."""


def is_lerobot_dataset(path: str | Path) -> bool:
    """A folder with ``meta/info.json`` (cheap: used to tell datasets from episode files)."""
    return (Path(path) / "meta" / "info.json").is_file()


def split_reference(spec: str) -> tuple[Path, int] | None:
    """``DATASET#N`` -> (dataset folder, N); None when ``spec`` names no dataset episode."""
    root, sep, number = str(spec).rpartition(SEPARATOR)
    if not sep or not is_lerobot_dataset(root):
        return None
    try:
        return Path(root), int(number)
    except ValueError:
        raise VLAScopeError(f"{spec}: after '{SEPARATOR}' comes an episode number "
                            f"(e.g. {root}{SEPARATOR}0)") from None


@dataclass(frozen=True)
class DatasetEpisode:
    """One episode's entry in ``meta/episodes``: where its rows and video spans are."""

    index: int
    length: int
    tasks: tuple[str, ...]
    row: dict[str, Any]

    @property
    def task(self) -> str:
        return self.tasks[0] if self.tasks else ""


@dataclass
class EpisodeData:
    """An episode's arrays, frame by frame (all of length ``length``)."""

    frames: dict[str, np.ndarray]  # camera name -> (T, H, W, 3) uint8
    states: np.ndarray  # (T, S) float32 (S = 0 when the dataset has no state)
    actions: np.ndarray  # (T, A) float32
    tasks: list[str]  # instruction per frame
    timestamps: np.ndarray  # (T,) seconds from the episode's start
    successes: np.ndarray | None  # (T,) bool where the dataset records it


def _read_table(path: Path, **kwargs: Any):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing (the dataset is incomplete)")
    try:
        return pq.read_table(path, **kwargs)
    except Exception as e:  # pyarrow raises its own types for damaged files
        raise DatasetFormatError(f"{path}: not a readable parquet file ({e})") from e


class LeRobotDatasetReader:
    """Random access to a local LeRobot v3 dataset's episodes; reads only what is asked."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise DatasetFormatError(f"{self.root}: not a LeRobot dataset (no meta/info.json)")
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text())
        except (OSError, ValueError) as e:
            raise DatasetFormatError(f"{info_path}: not readable JSON ({e})") from e
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise DatasetFormatError(
                f"{self.root}: LeRobot dataset format {version or 'unknown'}; VLAScope reads "
                "v3.0 (convert older ones with LeRobot's convert_dataset_v21_to_v30)")
        self.features: dict[str, dict[str, Any]] = dict(self.info.get("features") or {})
        self.fps = float(self.info.get("fps") or 0) or None
        if ACTION_KEY not in self.features:
            raise DatasetFormatError(f"{self.root}: the dataset has no '{ACTION_KEY}' feature")
        #: dataset key -> camera name (``observation.images.front`` -> ``front``)
        self.cameras = {k: k[len(CAMERA_PREFIX):] if k.startswith(CAMERA_PREFIX) else k
                        for k, f in self.features.items() if f.get("dtype") in ("video", "image")}
        self.tasks = self._read_tasks()
        self.episodes = self._read_episodes()

    @property
    def name(self) -> str:
        return self.info.get("repo_id") or self.root.name

    def _read_tasks(self) -> dict[int, str]:
        table = _read_table(self.root / "meta" / "tasks.parquet")
        # LeRobot writes the task text as the pandas index (its column name varies)
        index_cols = [c for c in ((table.schema.pandas_metadata or {}).get("index_columns") or [])
                      if isinstance(c, str)]
        text_col = next((c for c in [*index_cols, "task", "__index_level_0__"]
                         if c in table.column_names), None)
        if text_col is None or "task_index" not in table.column_names:
            raise DatasetFormatError(f"{self.root}/meta/tasks.parquet: no task text or index")
        return dict(zip(table.column("task_index").to_pylist(),
                        (str(t) for t in table.column(text_col).to_pylist()), strict=True))

    def _read_episodes(self) -> dict[int, DatasetEpisode]:
        files = sorted((self.root / "meta" / "episodes").glob("*/*.parquet"))
        if not files:
            raise DatasetFormatError(f"{self.root}: no meta/episodes/*/*.parquet")
        out: dict[int, DatasetEpisode] = {}
        for f in files:
            table = _read_table(f)
            keep = [c for c in table.column_names if not c.startswith("stats/")]
            for row in table.select(keep).to_pylist():
                i = int(row["episode_index"])
                out[i] = DatasetEpisode(i, int(row["length"]),
                                        tuple(str(t) for t in row.get("tasks") or ()), row)
        return dict(sorted(out.items()))

    def episode(self, index: int) -> DatasetEpisode:
        if index not in self.episodes:
            shown = f"0..{max(self.episodes)}" if self.episodes else "none"
            raise DatasetFormatError(f"{self.root}: no episode {index} (episodes: {shown})")
        return self.episodes[index]

    # data ----------------------------------------------------------------------------------
    def _file(self, template_key: str, ep: DatasetEpisode, prefix: str, **names: str) -> Path:
        template = self.info.get(template_key)
        if not isinstance(template, str):
            raise DatasetFormatError(f"{self.root}: meta/info.json has no '{template_key}'")
        try:
            rel = template.format(chunk_index=int(ep.row[f"{prefix}chunk_index"]),
                                  file_index=int(ep.row[f"{prefix}file_index"]), **names)
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetFormatError(f"{self.root}: episode {ep.index} does not say where its "
                                     f"{prefix.rstrip('/')} file is ({e})") from e
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:  # a template must not leave the dataset
            raise DatasetFormatError(f"{self.root}: '{rel}' points outside the dataset")
        return path

    def _rows(self, ep: DatasetEpisode):
        import pyarrow.compute as pc

        table = _read_table(self._file("data_path", ep, "data/"))
        rows = table.filter(pc.equal(table.column("episode_index"), ep.index))
        if "frame_index" in rows.column_names:
            rows = rows.sort_by("frame_index")
        if rows.num_rows != ep.length:
            raise DatasetFormatError(f"{self.root}: episode {ep.index} has {rows.num_rows} "
                                     f"rows in its data file, its metadata says {ep.length}")
        return rows

    def load(self, index: int) -> EpisodeData:
        """Every frame of episode ``index``: decoded camera images, state, action, task."""
        ep = self.episode(index)
        rows = self._rows(ep)
        actions = _matrix(rows, ACTION_KEY)
        states = (_matrix(rows, STATE_KEY) if STATE_KEY in rows.column_names
                  else np.zeros((ep.length, 0), np.float32))
        timestamps = (np.asarray(rows.column("timestamp").to_pylist(), np.float64)
                      if "timestamp" in rows.column_names
                      else np.arange(ep.length) / (self.fps or 1.0))
        task_ids = (rows.column("task_index").to_pylist() if "task_index" in rows.column_names
                    else [None] * ep.length)
        tasks = [self.tasks.get(i, ep.task) if i is not None else ep.task for i in task_ids]
        success_key = next((k for k in SUCCESS_KEYS if k in rows.column_names), None)
        successes = (np.asarray(rows.column(success_key).to_pylist(), bool).reshape(-1)
                     if success_key else None)
        frames = {}
        for key, cam in self.cameras.items():
            if self.features[key].get("dtype") == "video":
                frames[cam] = self._video_frames(ep, key, timestamps)
            else:
                frames[cam] = _image_column(rows, key, self.root)
        return EpisodeData(frames, states, actions, tasks, timestamps, successes)

    def _video_frames(self, ep: DatasetEpisode, key: str, timestamps: np.ndarray) -> np.ndarray:
        """The frames at ``from_timestamp + timestamp`` of the camera's shared video: seek to
        the episode's start, decode forward, take the frame nearest each wanted time (within
        half a frame; LeRobot asks for 1e-4 s)."""
        import av

        path = self._file("video_path", ep, f"videos/{key}/", video_key=key)
        start = float(ep.row.get(f"videos/{key}/from_timestamp") or 0.0)
        wanted = start + timestamps
        tolerance = 0.5 / (self.fps or 30.0)
        if not path.is_file():
            raise DatasetFormatError(f"{path}: missing (the dataset is incomplete)")
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                base = float(stream.time_base)
                container.seek(max(0, int((start - tolerance) / base)), stream=stream,
                               backward=True)
                times, images = [], []
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = frame.pts * base
                    if t < wanted[0] - tolerance:
                        continue
                    if t > wanted[-1] + tolerance:
                        break
                    times.append(t)
                    images.append(frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as e:
            raise DatasetFormatError(f"{path}: cannot decode ({e})") from e
        if not times:
            raise DatasetFormatError(f"{path}: no frames at {wanted[0]:.3f}-{wanted[-1]:.3f} s "
                                     f"for episode {ep.index}")
        times_arr = np.asarray(times)
        nearest = np.abs(times_arr[None, :] - wanted[:, None]).argmin(axis=1)
        off = np.abs(times_arr[nearest] - wanted)
        if (off > tolerance).any():
            bad = int(np.argmax(off > tolerance))
            raise DatasetFormatError(f"{path}: no frame near {wanted[bad]:.3f} s (episode "
                                     f"{ep.index}, frame {bad}); the video is shorter than "
                                     "its episode")
        return np.stack([images[i] for i in nearest])


def _matrix(rows, key: str) -> np.ndarray:
    """A fixed-size list column as (T, D) float32."""
    values = rows.column(key).to_pylist()
    return np.asarray([np.reshape(v, -1) for v in values], np.float32).reshape(len(values), -1)


def _image_column(rows, key: str, root: Path) -> np.ndarray:
    """``dtype: image`` features: PNG/JPEG bytes in the parquet ({bytes, path} structs)."""
    from PIL import Image

    images = []
    for i, cell in enumerate(rows.column(key).to_pylist()):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            raise DatasetFormatError(f"{root}: image '{key}' of frame {i} holds no bytes")
        with Image.open(io.BytesIO(data)) as im:
            images.append(np.asarray(im.convert("RGB")))
    return np.stack(images)
