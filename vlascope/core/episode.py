"""Recorded rollouts in HDF5: frames, region maps, states, action chunks, executed actions,
success, optional activations and saliency maps, and the metadata that reproduces the run.

Layout (schema 1)::

    /                       attrs: format="vlascope-episode", schema=1, metadata=<json>
    /steps/state            (T, S) float32
    /steps/action           (T, A) float32      executed action
    /steps/action_chunk     (T, H, A) float32   chunk the action came from
    /steps/chunk_index      (T,) int32          position of the action in its chunk
    /steps/success          (T,) bool           success after the action
    /steps/hand             (T, 3) float32      optional hand position (world m) when observed
    /steps/planned_hand     (T, H+1, 3) float32 optional hand path the step's chunk plans,
                                                from the step that predicted it (start first)
    /steps/sim_state        (T, N) float64      optional full simulator state when observed
                                                (MuJoCo's mj_getState, the layout named in
                                                metadata["sim_state"]; core/free_camera.py):
                                                any step re-renders from any viewpoint
    /camera_matrix/<camera> (T, 3, 4) float32   optional world -> pixel projection of the
                                                camera at its frames' size (projection.py)
    /frames/<camera>        (T, h, w, 3) uint8  one chunk per frame, gzip
    /display/<camera>       (T, H, W, 3) uint8  optional display render (the viewer's
                                                resolution), recorded only when asked
    /regions/<camera>       (T, h, w) uint8     labels, see regions.py
    /segments/<camera>      (T, h, w) int16     optional simulator object ids (0 = none);
                                                names in metadata["segment_names"]
    /activations/<name>     (T, ...) float32    optional
    /saliency/<method>/<camera> (T, h, w) float32 optional
    /open_loop/<policy>     (T, H, A) float32   optional chunks a policy predicts on the
                                                recorded frames (open_loop.py)

Writing goes to a temporary file beside the target, moved into place only when complete
(see atomic.py), so a crash leaves the previous file (or none), never a broken one. A
writer never replaces an existing episode unless asked to (``overwrite=True``), and takes
its name exclusively, so two recorders cannot both publish one file. A full disk is one
clear error, with the partial file removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
from PIL import Image

from .atomic import (
    atomic_path,
    exclusive_lock,
    json_default,
    partial_path,
    publish,
    reraise,
    sweep_once,
)
from .errors import EpisodeFormatError, OutputExistsError, VLAScopeError
from .policy import Observation

FORMAT = "vlascope-episode"
SCHEMA = 1
_COMPRESSION = {"compression": "gzip", "compression_opts": 1}


class EpisodeWriter:
    """Stream an episode to disk step by step; ``close()`` publishes it atomically.

    Without ``overwrite`` an existing ``path`` is refused up front (before any work) and
    again when publishing (``OutputExistsError``), so an episode is never replaced by
    accident."""

    def __init__(self, path: str | Path, metadata: dict[str, Any], *, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite
        if not overwrite and self.path.exists():
            raise OutputExistsError(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sweep_once(self.path.parent)
        self._tmp = partial_path(self.path)
        self._closed = False
        try:
            self._h5 = h5py.File(self._tmp, "w")
            # first, so it lands in the file's first kilobytes: desktops recognise episodes
            # by it (the MIME magic that vlascope/desktop_integration.py installs)
            self._h5.attrs["format"] = FORMAT
        except Exception as e:
            self._tmp.unlink(missing_ok=True)
            self._closed = True
            reraise(e, self.path)
        self._metadata = dict(metadata)
        self._datasets: dict[str, Any] = {}
        self._n = 0

    @property
    def n_steps(self) -> int:
        return self._n

    def _append(self, name: str, value: np.ndarray, dtype: Any, compress: bool = False) -> None:
        value = np.asarray(value, dtype=dtype)
        ds = self._datasets.get(name)
        if ds is None:  # kept open: HDF5 writes a dataset's cached chunks when its last
            # handle goes, and a write failing there (a full disk) cannot be reported
            ds = self._datasets[name] = self._h5.create_dataset(
                name, shape=(0, *value.shape), maxshape=(None, *value.shape), dtype=dtype,
                chunks=(1, *value.shape) if compress else None,
                **(_COMPRESSION if compress else {}))
        if ds.shape[1:] != value.shape:
            raise VLAScopeError(f"episode field '{name}' changed shape from {ds.shape[1:]} "
                                f"to {value.shape} at step {self._n}")
        ds.resize(self._n + 1, axis=0)
        ds[self._n] = value

    def append(self, *, state: np.ndarray, action: np.ndarray, action_chunk: np.ndarray,
               chunk_index: int, success: bool, images: dict[str, np.ndarray] | None = None,
               regions: dict[str, np.ndarray] | None = None,
               segments: dict[str, np.ndarray] | None = None,
               activations: dict[str, np.ndarray] | None = None,
               display: dict[str, np.ndarray] | None = None,
               hand: np.ndarray | None = None, planned_hand: np.ndarray | None = None,
               camera_matrices: dict[str, np.ndarray] | None = None,
               sim_state: np.ndarray | None = None) -> None:
        """Record one step: the observation that was acted on, and what happened (with the
        hand's position, its planned path and the cameras' projections where the scene can
        say: the planned-vs-executed overlay; the simulator's state where it can restore
        one: the free camera). A write that fails (a full disk) drops the partial file and
        raises."""
        try:
            self._append_step(state, action, action_chunk, chunk_index, success, images,
                              regions, segments, activations, display)
            self._append_path(hand, planned_hand, camera_matrices)
            self._append_sim_state(sim_state)
            self._n += 1
        except Exception as e:
            self.discard()
            reraise(e, self.path)

    def _append_step(self, state, action, action_chunk, chunk_index, success, images,
                     regions, segments, activations, display) -> None:
        self._append("steps/state", state, np.float32)
        self._append("steps/action", action, np.float32)
        self._append("steps/action_chunk", action_chunk, np.float32)
        self._append("steps/chunk_index", chunk_index, np.int32)
        self._append("steps/success", success, bool)
        for cam, img in (images or {}).items():
            self._append(f"frames/{cam}", img, np.uint8, compress=True)
        for cam, lab in (regions or {}).items():
            self._append(f"regions/{cam}", lab, np.uint8, compress=True)
        for cam, seg in (segments or {}).items():
            self._append(f"segments/{cam}", seg, np.int16, compress=True)
        for name, act in (activations or {}).items():
            self._append(f"activations/{name}", act, np.float32, compress=True)
        for cam, img in (display or {}).items():
            self._append(f"display/{cam}", img, np.uint8, compress=True)

    def _append_path(self, hand, planned_hand, camera_matrices) -> None:
        """Every step has the path data, or none does (a scene without the capability)."""
        given = [v is not None for v in (hand, planned_hand, camera_matrices)]
        before = "steps/hand" in self._datasets
        if any(given) != all(given) or (self._n and any(given) != before):
            raise VLAScopeError(f"step {self._n}: hand, planned hand path and camera matrices "
                                "are recorded together at every step or never")
        if all(given):
            self._append("steps/hand", np.reshape(hand, 3), np.float32)
            self._append("steps/planned_hand", planned_hand, np.float32)
            for cam, matrix in camera_matrices.items():
                self._append(f"camera_matrix/{cam}", matrix, np.float32)

    def _append_sim_state(self, sim_state: np.ndarray | None) -> None:
        """Every step has the simulator state, or none does."""
        if self._n and (sim_state is not None) != ("steps/sim_state" in self._datasets):
            raise VLAScopeError(f"step {self._n}: the simulator state is recorded at every "
                                "step or never")
        if sim_state is not None:
            self._append("steps/sim_state", np.reshape(sim_state, -1), np.float64)

    def close(self, extra_metadata: dict[str, Any] | None = None) -> Path:
        """Finish the file and move it into place (on failure nothing is left behind)."""
        if self._closed:
            return self.path
        try:
            self._metadata.update(extra_metadata or {})
            self._metadata["n_steps"] = self._n
            self._h5.attrs["schema"] = SCHEMA
            self._h5.attrs["metadata"] = json.dumps(self._metadata, default=json_default)
            self._h5.flush()  # a full disk fails here, cleanly (closing would crash h5py)
            self._datasets.clear()
            self._h5.close()
            publish(self._tmp, self.path, overwrite=self.overwrite)
        except Exception as e:
            self.discard()
            reraise(e, self.path)
        self._closed = True
        return self.path

    def discard(self) -> None:
        """Drop the partial file; the previous file at ``path`` stays untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._drop_unwritten()
            with contextlib.suppress(Exception):
                self._datasets.clear()
                self._h5.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def _drop_unwritten(self) -> None:
        """Point the file's descriptor at /dev/null before closing: the partial file is
        deleted anyway, and HDF5 would otherwise flush its cached chunks into a full disk
        again (and again at exit, from object finalisers: pages of errors, then a crash)."""
        with contextlib.suppress(Exception):
            fd = self._h5.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


# Reading -----------------------------------------------------------------------------------
# An episode is a file users share and download, so the reader trusts nothing in it: every
# object is walked once at open, and anything that would make h5py read *another* file
# (soft, external or user links; external or virtual storage) is refused, as is a layout
# the rest of VLAScope could not read (wrong lengths, empty views, absurd sizes).

_PER_STEP = ("steps", "frames", "display", "regions", "segments", "activations",
             "saliency", "camera_matrix", "open_loop")
_MAX_DEPTH = 3  # saliency/<method>/<camera>
_MAX_OBJECTS = 10_000
_MAX_STEP_BYTES = 256 * 2**20  # one step of one dataset; a frame of 8k x 8k RGB is 192 MiB
# gzip, shuffle, fletcher32, szip, nbit, scale-offset (HDF5's own) and h5py's lzf
_BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
# What h5py and HDF5 raise on a damaged or hostile file, mapped to EpisodeFormatError here.
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError,
              IndexError, ArithmeticError, MemoryError)


def _walk_datasets(h5: h5py.File, path: Path) -> dict[str, h5py.Dataset]:
    """Every dataset of the file by name. Links are looked at, never followed, so a crafted
    episode cannot make us read a file it names."""
    found: dict[str, h5py.Dataset] = {}
    count = 0

    def walk(group: h5py.Group, prefix: str, depth: int) -> None:
        nonlocal count
        for name in group:  # iterates link names; does not resolve them
            full = prefix + name
            count += 1
            if count > _MAX_OBJECTS:
                raise EpisodeFormatError(f"{path}: more than {_MAX_OBJECTS} objects; not an "
                                         "episode VLAScope wrote")
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                raise EpisodeFormatError(f"{path}: '{full}' is a soft link to "
                                         f"'{link.path}'; episodes with links are refused")
            if isinstance(link, h5py.ExternalLink):
                raise EpisodeFormatError(f"{path}: '{full}' is an external link to "
                                         f"'{link.filename}'; episodes with links are refused")
            if not isinstance(link, h5py.HardLink):
                raise EpisodeFormatError(f"{path}: '{full}' is a {type(link).__name__}; "
                                         "episodes with links are refused")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                if depth >= _MAX_DEPTH:
                    raise EpisodeFormatError(f"{path}: '{full}' nests deeper than an episode "
                                             "does (a group linked into itself?)")
                walk(obj, full + "/", depth + 1)
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise EpisodeFormatError(f"{path}: '{full}' is a virtual dataset (its data "
                                             "lives in other files); refused")
                plist = obj.id.get_create_plist()
                if plist.get_external_count():
                    raise EpisodeFormatError(f"{path}: '{full}' stores its data in an external "
                                             "file; refused")
                for i in range(plist.get_nfilters()):
                    code = plist.get_filter(i)[0]
                    if code not in _BUILTIN_FILTERS:  # HDF5 would load a plugin library
                        raise EpisodeFormatError(f"{path}: '{full}' needs HDF5 filter {code}, "
                                                 "not one VLAScope reads; refused")
                found[full] = obj
            else:
                raise EpisodeFormatError(f"{path}: '{full}' is a {type(obj).__name__}, not a "
                                         "group or dataset")

    walk(h5, "", 0)
    return found


def _check_layout(datasets: dict[str, h5py.Dataset], n_steps: int, path: Path) -> None:
    """Per-step datasets: one entry per step, numeric, of the shape their kind has."""
    for name, ds in datasets.items():
        parts = name.split("/")
        if parts[0] not in _PER_STEP:
            continue
        shape, kind = ds.shape, ds.dtype.kind
        expected = {"steps": 2, "frames": 2, "display": 2, "regions": 2, "segments": 2,
                    "activations": 2, "saliency": 3, "camera_matrix": 2,
                    "open_loop": 2}[parts[0]]
        if len(parts) != expected:
            raise EpisodeFormatError(f"{path}: unexpected dataset '{name}'")
        if shape is None or len(shape) == 0 or shape[0] != n_steps:
            raise EpisodeFormatError(f"{path}: '{name}' has {shape[0] if shape else 'no'} "
                                     f"steps, the episode has {n_steps}")
        pixels = parts[0] in ("frames", "display")
        allowed = {"frames": "u", "display": "u", "regions": "iu",
                   "segments": "iu"}.get(parts[0], "biuf")
        if kind not in allowed or (pixels and ds.dtype.itemsize != 1):
            raise EpisodeFormatError(f"{path}: '{name}' holds {ds.dtype}, not the "
                                     f"{'uint8 pixels' if pixels else 'numbers'}"
                                     " it should")
        ndim = {"frames": 4, "display": 4, "regions": 3, "segments": 3,
                "saliency": 3, "open_loop": 3}.get(parts[0])
        if ndim is not None:
            if len(shape) != ndim or (pixels and shape[3] != 3):
                raise EpisodeFormatError(f"{path}: '{name}' has shape {shape}, a "
                                         f"{parts[0]} dataset is (T, H, W"
                                         f"{', 3' if ndim == 4 else ''})")
            if 0 in shape[1:3]:
                raise EpisodeFormatError(f"{path}: '{name}' is an empty view {shape[1:3]}")
        if int(np.prod(shape[1:], dtype=np.float64)) * ds.dtype.itemsize > _MAX_STEP_BYTES:
            raise EpisodeFormatError(f"{path}: '{name}' claims {shape[1:]} per step, larger "
                                     "than VLAScope reads")
        _check_path_shape(name, shape, datasets, path)
        if parts[0] in ("regions", "segments"):
            frames = datasets.get(f"frames/{parts[1]}")
            if frames is not None and frames.shape[1:3] != shape[1:3]:
                raise EpisodeFormatError(f"{path}: '{name}' is {shape[1:3]}, its camera's "
                                         f"frames are {frames.shape[1:3]}")


def _check_path_shape(name: str, shape: tuple, datasets: dict[str, h5py.Dataset],
                      path: Path) -> None:
    """The planned-vs-executed datasets have the shapes the overlay reads."""
    chunk = datasets.get("steps/action_chunk")
    horizon = chunk.shape[1] if chunk is not None and len(chunk.shape) == 3 else None
    expected = None
    if name == "steps/hand":
        expected, ok = "(T, 3)", shape[1:] == (3,)
    elif name == "steps/planned_hand":
        expected = "(T, H + 1, 3)" + (f" with H = {horizon}" if horizon else "")
        ok = len(shape) == 3 and shape[2] == 3 and shape[1] >= 1 and (
            horizon is None or shape[1] == horizon + 1)
    elif name.startswith("camera_matrix/"):
        expected, ok = "(T, 3, 4)", shape[1:] == (3, 4)
    elif name == "steps/sim_state":
        kind = datasets[name].dtype.kind
        expected, ok = "(T, N) floats", len(shape) == 2 and shape[1] > 0 and kind == "f"
    if expected is not None and not ok:
        raise EpisodeFormatError(f"{path}: '{name}' has shape {shape}, it should be "
                                 f"{expected}")


def _step_list(value: Any, n_steps: int) -> bool:
    return (isinstance(value, list) and all(type(v) is int and 0 <= v < n_steps for v in value)
            and len(set(value)) == len(value))


def _check_metadata(metadata: Any, n_steps: int, path: Path) -> dict[str, Any]:
    """The metadata is a mapping, and the parts other code reads have the types it reads."""
    if not isinstance(metadata, dict):
        raise EpisodeFormatError(f"{path}: metadata is not a mapping (a JSON "
                                 f"{type(metadata).__name__})")
    for key, kind in (("policy", dict), ("segment_names", dict), ("interventions", list)):
        if key in metadata and not isinstance(metadata[key], kind):
            raise EpisodeFormatError(f"{path}: metadata '{key}' is not a {kind.__name__}")
    if not all(isinstance(i, dict) for i in metadata.get("interventions", [])):
        raise EpisodeFormatError(f"{path}: metadata 'interventions' holds a non-mapping")
    if "n_steps" in metadata and metadata["n_steps"] != n_steps:
        raise EpisodeFormatError(f"{path}: metadata says {metadata['n_steps']!r} steps, the "
                                 f"datasets hold {n_steps}")
    for key, value in metadata.items():
        if not key.startswith("saliency."):
            continue
        if not isinstance(value, dict):
            raise EpisodeFormatError(f"{path}: metadata '{key}' is not a mapping")
        for field in ("computed_steps", "check_steps", "frames"):
            if field in value and not _step_list(value[field], n_steps):
                raise EpisodeFormatError(
                    f"{path}: metadata '{key}.{field}' must list distinct steps in "
                    f"0..{n_steps - 1} (duplicate or out-of-range frame indices)")
    return metadata


class Episode:
    """Random-access reader of an episode file; opens lazily, reads only what is asked for.

    Opening checks the whole layout (see ``_walk_datasets``), so every later read either
    returns an array of the promised shape or raises ``EpisodeFormatError`` naming the file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise EpisodeFormatError(f"{self.path}: no such episode file")
        try:
            self._h5 = h5py.File(self.path, "r")
        except _H5_ERRORS as e:
            raise EpisodeFormatError(
                f"{self.path}: not a readable HDF5 file (truncated or corrupt?)") from e
        try:
            fmt = self._h5.attrs.get("format")
            if not isinstance(fmt, str) or fmt != FORMAT:
                raise EpisodeFormatError(f"{self.path}: not a VLAScope episode "
                                         f"(format attribute {fmt!r})")
            schema = int(self._h5.attrs.get("schema", -1))
            if schema > SCHEMA:
                raise EpisodeFormatError(f"{self.path}: episode schema {schema} is newer than "
                                         f"this VLAScope reads ({SCHEMA}); upgrade VLAScope")
            self._datasets = _walk_datasets(self._h5, self.path)
            if "steps/action" not in self._datasets:
                raise EpisodeFormatError(f"{self.path}: episode has no 'steps/action'")
            self.n_steps = int(self._datasets["steps/action"].shape[0])
            _check_layout(self._datasets, self.n_steps, self.path)
            raw = self._h5.attrs["metadata"]
            if not isinstance(raw, (str, bytes)):
                raise EpisodeFormatError(f"{self.path}: metadata is not a JSON string")
            self.metadata: dict[str, Any] = _check_metadata(json.loads(raw), self.n_steps,
                                                            self.path)
        except EpisodeFormatError:
            self._h5.close()
            raise
        except _H5_ERRORS as e:  # missing groups, bad JSON, unreadable headers
            self._h5.close()
            raise EpisodeFormatError(f"{self.path}: damaged episode file ({e})") from e

    def _names(self, group: str) -> list[str]:
        """Direct members of a top-level group that hold datasets, in file order."""
        out: list[str] = []
        for name in self._datasets:
            parts = name.split("/")
            if parts[0] == group and len(parts) > 1 and parts[1] not in out:
                out.append(parts[1])
        return out

    @property
    def cameras(self) -> list[str]:
        return self._names("frames")

    @property
    def activation_names(self) -> list[str]:
        return self._names("activations")

    def _check_step(self, t: int) -> int:
        if not -self.n_steps <= t < self.n_steps:
            raise IndexError(f"step {t} outside 0..{self.n_steps - 1}")
        return t % self.n_steps

    def _read(self, name: str, t: int | None = None) -> np.ndarray:
        ds = self._datasets.get(name)
        if ds is None:
            raise EpisodeFormatError(f"{self.path}: episode has no '{name}'")
        index = () if t is None else self._check_step(t)
        try:
            return ds[index]
        except _H5_ERRORS as e:  # a damaged chunk shows only when it is read
            raise EpisodeFormatError(f"{self.path}: cannot read '{name}' ({e})") from e

    def frame(self, t: int, camera: str) -> np.ndarray:
        return self._read(f"frames/{camera}", t)

    @property
    def display_cameras(self) -> list[str]:
        """Cameras with a recorded display render (none unless the user asked for it)."""
        return self._names("display")

    def display_frame(self, t: int, camera: str) -> np.ndarray:
        return self._read(f"display/{camera}", t)

    def regions(self, t: int, camera: str) -> np.ndarray:
        return self._read(f"regions/{camera}", t)

    def has_regions(self) -> bool:
        return bool(self._names("regions"))

    def segments(self, t: int, camera: str) -> np.ndarray:
        return self._read(f"segments/{camera}", t)

    def has_segments(self) -> bool:
        return bool(self._names("segments"))

    def activations(self, name: str, t: int | None = None) -> np.ndarray:
        return self._read(f"activations/{name}", t)

    def activation_shape(self, name: str) -> tuple[int, ...]:
        """Shape of a recorded layer without reading it."""
        key = f"activations/{name}"
        if key not in self._datasets:
            raise EpisodeFormatError(f"{self.path}: episode has no '{key}'")
        return tuple(self._datasets[key].shape)

    def saliency_methods(self) -> list[str]:
        return self._names("saliency")

    def saliency_cameras(self, method: str) -> list[str]:
        prefix = f"saliency/{method}/"
        return [n[len(prefix):] for n in self._datasets if n.startswith(prefix)]

    def saliency(self, method: str, camera: str, t: int | None = None) -> np.ndarray:
        """Stored maps; NaN or infinity in them is damage, not a map to rank pixels by."""
        name = f"saliency/{method}/{camera}"
        maps = self._read(name, t)
        if not np.isfinite(maps).all():
            raise EpisodeFormatError(f"{self.path}: '{name}' holds non-finite values"
                                     + (f" at step {t}" if t is not None else ""))
        return maps

    def open_loop_names(self) -> list[str]:
        """Policies whose open-loop predictions on these frames are stored."""
        return self._names("open_loop")

    def open_loop(self, name: str) -> np.ndarray:
        """(T, H, A) the chunks policy ``name`` predicts on each recorded frame."""
        return self._read(f"open_loop/{name}")

    def states(self) -> np.ndarray:
        return self._read("steps/state")

    def actions(self) -> np.ndarray:
        return self._read("steps/action")

    def action_chunks(self) -> np.ndarray:
        return self._read("steps/action_chunk")

    def chunk_indices(self) -> np.ndarray:
        return self._read("steps/chunk_index")

    def successes(self) -> np.ndarray:
        return self._read("steps/success")

    def has_paths(self) -> bool:
        """Whether the planned-vs-executed hand path was recorded (newer episodes of scenes
        that can project; older files have none and open as before)."""
        return "steps/hand" in self._datasets and "steps/planned_hand" in self._datasets

    def hand_positions(self) -> np.ndarray:
        """(T, 3) hand position at each observed step."""
        return self._read("steps/hand")

    def planned_hands(self) -> np.ndarray:
        """(T, H + 1, 3) the hand path each step's chunk plans."""
        return self._read("steps/planned_hand")

    def has_sim_state(self) -> bool:
        """Whether each step's simulator state was recorded (the free camera re-renders it;
        older files and scenes that cannot restore a state have none)."""
        return "steps/sim_state" in self._datasets

    def sim_state(self, t: int) -> np.ndarray:
        """(N,) float64 the simulator's state at step ``t`` (see core/free_camera.py)."""
        return np.asarray(self._read("steps/sim_state", t), np.float64)

    def matrix_cameras(self) -> list[str]:
        return self._names("camera_matrix")

    def camera_matrices(self, camera: str) -> np.ndarray:
        """(T, 3, 4) the camera's projection at its frames' size, per step."""
        return self._read(f"camera_matrix/{camera}")

    @property
    def success(self) -> bool:
        return bool(self.metadata.get("success", False))

    def iter_frames(self, camera: str) -> Iterator[np.ndarray]:
        for t in range(self.n_steps):
            yield self.frame(t, camera)

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> Episode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def safe_name(text: str) -> str:
    """A task or variant name as one file-name component (``libero_spatial/0`` ->
    ``libero_spatial-0``): plugin names may hold path separators."""
    return re.sub(r"[^\w.-]+", "-", text).strip("-") or "-"


def policy_instruction(metadata: dict[str, Any], t: int | None = None) -> str:
    """The words the policy was given (at step ``t``; without it, the last prompt of the
    episode): a counterfactual prompt overrides the task's instruction in its step window."""
    prompts = [i for i in metadata.get("interventions", []) if i.get("kind") == "prompt"]
    if t is not None:
        prompts = [i for i in prompts if i.get("start", i.get("step", 0)) <= t
                   and (i.get("stop") is None or t < i["stop"])]
    return str(prompts[-1]["text"]) if prompts else str(metadata.get("instruction", ""))


def episode_observation(ep: Episode, t: int, cameras: Sequence[str],
                        size: tuple[int, int] | None) -> Observation:
    """The observation the policy saw at step ``t`` (frames resized to ``size`` if needed)."""
    obs = Observation({c: ep.frame(t, c) for c in cameras}, ep.states()[t],
                      policy_instruction(ep.metadata, t))
    return fit_observation(obs, size)


def fit_observation(obs: Observation, size: Sequence[int] | None) -> Observation:
    """``obs`` with every image resized (bilinear) to ``size`` = (H, W) where it differs: a
    dataset's frames are larger than a policy's input, and its maps are made at the input's
    size (the views upsample them onto the frame)."""
    if size is None or all(img.shape[:2] == tuple(size) for img in obs.images.values()):
        return obs
    images = {c: img if img.shape[:2] == tuple(size) else np.asarray(
        Image.fromarray(img).resize((size[1], size[0]), Image.BILINEAR))
        for c, img in obs.images.items()}
    return replace(obs, images=images)


def open_episode(path: str | Path) -> Episode:
    return Episode(path)


def update_episode(path: str | Path, arrays: dict[str, np.ndarray],
                   metadata: dict[str, Any] | None = None, *,
                   lock_timeout_s: float = 600.0) -> None:
    """Add or replace per-step datasets (e.g. ``saliency/iss/front``) and metadata keys.

    Works on a copy that replaces the file only when complete: a crash leaves the episode as
    it was, and a reader that has the old file open keeps reading the old version. Holds
    the episode's update lock, so a second writer waits (up to ``lock_timeout_s``, then a
    clear error) instead of replacing the first one's additions with its own copy.
    """
    path = Path(path)
    if not path.is_file():
        raise EpisodeFormatError(f"{path}: no such episode file")
    with exclusive_lock(path, lock_timeout_s):
        _update_locked(path, arrays, metadata)


def _update_locked(path: Path, arrays: dict[str, np.ndarray],
                   metadata: dict[str, Any] | None) -> None:
    with Episode(path) as ep:  # validates the file and gives the step count
        n_steps = ep.n_steps
    for name, value in arrays.items():
        if np.shape(value)[:1] != (n_steps,):
            raise VLAScopeError(f"'{name}' has {np.shape(value)[:1] or 'no'} steps, "
                                f"the episode has {n_steps}")
        if name.split("/")[0] in ("steps", "frames", "regions", "segments", "camera_matrix"):
            raise VLAScopeError(f"'{name}': recorded data cannot be overwritten")
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as h5:
            for name, value in arrays.items():
                if name in h5:
                    del h5[name]
                value = np.asarray(value)
                h5.create_dataset(name, data=value, chunks=(1, *value.shape[1:]),
                                  **_COMPRESSION)
            if metadata:
                merged = json.loads(h5.attrs["metadata"])
                merged.update(metadata)
                h5.attrs["metadata"] = json.dumps(merged, default=json_default)
