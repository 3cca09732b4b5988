"""Hand annotation of the causal regions over a recorded rollout.

Each frame's labels are the scene's ground truth (the *seed*) under a layer of the user's
edits (the *override*: a label per pixel, or ``KEEP`` where the seed shows through). The
seed can be re-read or replaced without touching the edits, and the edits are what is
saved, one small PNG per edited frame, each written atomically the moment an operation
ends: a crash or kill loses at most the operation in progress.

Operations (brush segment, eraser, flood fill, polygon, object, propagation, import) are
grouped into undo steps; ``begin()``/``commit()`` make a whole stroke one step, and an
operation outside them is a step of its own.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .atomic import atomic_path, write_json_atomic
from .errors import EpisodeFormatError, VLAScopeError
from .regions import LABEL_COLORS, NUISANCE, UNLABELED

KEEP = 255  # override value: no edit here, the seed shows through
MAX_PIXELS = 8192 * 8192  # a label PNG claiming more is refused before it is decoded
FORMAT = "vlascope-annotation"
SCHEMA = 1
HISTORY = 200  # undo steps kept (the issue asks for at least 50)

SeedSource = Callable[[int], "dict[str, np.ndarray] | None"]


def open_png(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A PNG's pixels, refusing from its header alone (before decoding) an image of the
    wrong (H, W) or of more than ``MAX_PIXELS``: a small file can claim a huge size."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if shape is not None and (h, w) != tuple(shape):
                    raise EpisodeFormatError(f"{path}: {w}x{h} pixels, this episode's frames "
                                             f"are {shape[1]}x{shape[0]}; refused, not resized")
                if w * h > MAX_PIXELS:
                    raise EpisodeFormatError(f"{path}: claims {w}x{h} pixels, more than a "
                                             "label map can have")
                if im.format != "PNG":
                    raise EpisodeFormatError(f"{path}: a {im.format} file, not a PNG")
                im.load()
                mode = im.mode
                if mode not in ("P", "L"):
                    return np.asarray(im.convert("RGB"))
                return np.asarray(im)
    except EpisodeFormatError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise EpisodeFormatError(f"{path}: not a readable PNG ({e})") from e


def annotation_dir(episode_path: str | Path) -> Path:
    """Where an episode's annotation lives: ``run.h5`` -> ``run.regions/``."""
    p = Path(episode_path)
    return p.with_name(p.stem + ".regions")


@dataclass
class _Patch:
    """One frame's changed rectangle of the override layer, before and after."""

    camera: str
    t: int
    y0: int
    x0: int
    before: np.ndarray
    after: np.ndarray


class AnnotationStore:
    """The override layer on disk: ``<dir>/<camera>/<t>.png`` (greyscale: 0-3 labels, 255
    no edit) for every edited frame, plus ``annotation.json`` naming the format."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _frame_path(self, camera: str, t: int) -> Path:
        return self.folder / camera / f"{t:06d}.png"

    def save(self, camera: str, t: int, edit: np.ndarray | None) -> None:
        """Write one frame's edits (or remove the file when none are left)."""
        path = self._frame_path(camera, t)
        if edit is None or not (edit != KEEP).any():
            path.unlink(missing_ok=True)
            return
        manifest = self.folder / "annotation.json"
        if not manifest.is_file():
            write_json_atomic(manifest, {"format": FORMAT, "schema": SCHEMA})
        with atomic_path(path) as tmp:
            Image.fromarray(np.ascontiguousarray(edit, np.uint8), mode="L").save(tmp,
                                                                                 format="PNG")

    def load(self, shapes: dict[str, tuple[int, int]] | None = None,
             n_steps: int | None = None) -> dict[tuple[str, int], np.ndarray]:
        """Every saved frame; a file that is not a label PNG of a camera in ``shapes``, of
        that camera's size, named by a step in ``0..n_steps-1``, is an error that names it
        (never silently dropped: the edits are what the user made)."""
        out: dict[tuple[str, int], np.ndarray] = {}
        if not self.folder.is_dir():
            return out
        manifest = self.folder / "annotation.json"
        if manifest.is_file():
            try:
                meta = json.loads(manifest.read_text(encoding="utf-8"))
                if not isinstance(meta, dict):
                    raise ValueError("not a JSON object")
                newer = int(meta.get("schema", 0)) > SCHEMA
            except (OSError, ValueError, TypeError) as e:
                raise EpisodeFormatError(f"{manifest}: unreadable ({e})") from e
            if meta.get("format") != FORMAT or newer:
                raise EpisodeFormatError(f"{manifest}: not a VLAScope annotation of schema "
                                         f"<= {SCHEMA}")
        for cam_dir in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            cam = cam_dir.name
            for f in sorted(cam_dir.glob("*.png")):
                if shapes is not None and cam not in shapes:
                    raise EpisodeFormatError(f"{f}: edits of camera '{cam}', which the "
                                             f"episode does not have ({sorted(shapes)})")
                if not (f.stem.isascii() and f.stem.isdigit()):
                    raise EpisodeFormatError(f"{f}: an annotation frame is named by its step "
                                             "(0 or more), e.g. 000012.png")
                t = int(f.stem)
                if n_steps is not None and t >= n_steps:
                    raise EpisodeFormatError(f"{f}: step {t} is past the episode's last step "
                                             f"{n_steps - 1}")
                arr = open_png(f, shapes[cam] if shapes is not None else None)
                if arr.ndim != 2:
                    raise EpisodeFormatError(f"{f}: not a greyscale annotation frame")
                bad = ~np.isin(arr, (0, 1, 2, 3, KEEP))
                if bad.any():
                    raise EpisodeFormatError(f"{f}: holds values other than 0-3 and 255")
                out[(cam, t)] = arr.astype(np.uint8)
        return out


class RegionAnnotation:
    """Seed + override per (camera, step), with undo/redo and autosave.

    ``seeds(t)`` gives the ground-truth labels per camera (None: no ground truth, the seed
    is unlabeled); ``segments(t)`` gives simulator object ids per camera, for object clicks.
    ``shapes`` is (H, W) per camera; ``n_steps`` may grow (a live rollout) through
    ``set_n_steps``.
    """

    def __init__(self, cameras: Sequence[str], shapes: dict[str, tuple[int, int]],
                 n_steps: int, seeds: SeedSource,
                 segments: SeedSource | None = None, store: AnnotationStore | None = None,
                 history: int = HISTORY):
        self.cameras = list(cameras)
        self.shapes = {c: tuple(int(v) for v in shapes[c]) for c in self.cameras}
        self.n_steps = int(n_steps)
        self._seeds, self._segments = seeds, segments
        self.store = store
        self.history = int(history)
        self._edits: dict[tuple[str, int], np.ndarray] = {}
        self._seed_cache: OrderedDict[int, tuple[bool, dict[str, np.ndarray]]] = OrderedDict()
        self._segment_cache: tuple[int, dict[str, np.ndarray]] = (-1, {})
        self._undo: list[list[_Patch]] = []
        self._redo: list[list[_Patch]] = []
        self._open: dict[tuple[str, int], np.ndarray] | None = None  # frames before the step
        self._depth = 0
        self.listeners: list[Callable[[set[tuple[str, int]]], None]] = []
        if store is not None:  # a frame of the wrong size or camera is an error, not skipped
            self._edits.update(store.load(self.shapes))

    # reading ----------------------------------------------------------------------------
    def seed(self, camera: str, t: int) -> np.ndarray:
        self._check(camera, t)
        return self._seed_at(t)[1][camera]

    def has_ground_truth(self, t: int) -> bool:
        """Whether step ``t`` has a ground-truth map (else its seed is all unlabeled)."""
        return self._seed_at(t)[0]

    def _seed_at(self, t: int) -> tuple[bool, dict[str, np.ndarray]]:
        if t not in self._seed_cache:
            got = self._seeds(t)
            maps = {c: np.asarray(got[c], np.uint8) if got and c in got
                    else np.zeros(self.shapes[c], np.uint8) for c in self.cameras}
            self._seed_cache[t] = (bool(got), maps)
            while len(self._seed_cache) > 64:
                self._seed_cache.popitem(last=False)
        return self._seed_cache[t]

    def reseed(self, seeds: SeedSource | None = None) -> None:
        """Read the seed again (or from a new source); the edits stay as they are."""
        if seeds is not None:
            self._seeds = seeds
        self._seed_cache.clear()
        self._notify({(c, t) for c in self.cameras for t in range(self.n_steps)})

    def edit(self, camera: str, t: int) -> np.ndarray | None:
        """The override layer of a frame (KEEP where not edited), None if never edited."""
        return self._edits.get((camera, t))

    def labels(self, camera: str, t: int) -> np.ndarray:
        """Seed with the edits on top: the map NMR is computed from."""
        seed = self.seed(camera, t)
        e = self._edits.get((camera, t))
        return seed.copy() if e is None else np.where(e != KEEP, e, seed)

    def labels_at(self, t: int) -> dict[str, np.ndarray]:
        return {c: self.labels(c, t) for c in self.cameras}

    def edited_frames(self) -> list[tuple[str, int]]:
        return sorted(k for k, e in self._edits.items() if (e != KEEP).any())

    def label_at(self, camera: str, t: int, x: int, y: int) -> tuple[int, bool]:
        """(label, edited?) of one pixel, without building the frame's map (hover)."""
        e = self._edits.get((camera, t))
        if e is not None and e[y, x] != KEEP:
            return int(e[y, x]), True
        return int(self.seed(camera, t)[y, x]), False

    def object_at(self, camera: str, t: int, x: int, y: int) -> int:
        seg = self._segment(camera, t)
        return int(seg[y, x]) if seg is not None and self._inside(camera, x, y) else 0

    @property
    def has_segments(self) -> bool:
        return self.n_steps > 0 and self._segment(self.cameras[0], 0) is not None

    def set_n_steps(self, n: int) -> None:
        self.n_steps = int(n)

    # undo steps -------------------------------------------------------------------------
    def begin(self) -> None:
        """Start an undo step that lasts until ``commit()`` (a whole brush stroke)."""
        if self._depth == 0:
            self._open = {}
        self._depth += 1

    def commit(self) -> int:
        """End the step: record what changed, save the changed frames. -> pixels changed."""
        if self._depth == 0:
            raise VLAScopeError("commit() without begin()")
        self._depth -= 1
        if self._depth:
            return 0
        opened, self._open = self._open or {}, None
        patches, changed = [], 0
        for (cam, t), before in opened.items():
            after = self._edits.get((cam, t))
            after = np.full(self.shapes[cam], KEEP, np.uint8) if after is None else after
            diff = before != after
            if not diff.any():
                continue
            changed += int(diff.sum())
            ys, xs = np.nonzero(diff)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            patches.append(_Patch(cam, t, int(y0), int(x0), before[y0:y1, x0:x1].copy(),
                                  after[y0:y1, x0:x1].copy()))
        if patches:
            self._undo.append(patches)
            del self._undo[:-self.history]
            self._redo.clear()
            self._saved({(p.camera, p.t) for p in patches})
        return changed

    def _touch(self, camera: str, t: int) -> np.ndarray:
        """The frame's override, writable, remembered as it was when the step began."""
        if self._open is None:
            raise VLAScopeError("edit outside an undo step")
        self._check(camera, t)
        key = (camera, t)
        e = self._edits.get(key)
        if e is None:
            e = self._edits[key] = np.full(self.shapes[camera], KEEP, np.uint8)
        if key not in self._open:
            self._open[key] = e.copy()
        return e

    def _operation(self, apply: Callable[[], None]) -> int:
        self.begin()
        try:
            apply()
        finally:
            changed = self.commit()
        return changed

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        return self._replay(self._undo, self._redo, "before")

    def redo(self) -> bool:
        return self._replay(self._redo, self._undo, "after")

    def _replay(self, source: list, target: list, side: str) -> bool:
        if not source or self._depth:
            return False
        patches = source.pop()
        for p in patches:
            e = self._edits.setdefault((p.camera, p.t),
                                       np.full(self.shapes[p.camera], KEEP, np.uint8))
            block = getattr(p, side)
            e[p.y0:p.y0 + block.shape[0], p.x0:p.x0 + block.shape[1]] = block
        target.append(patches)
        self._saved({(p.camera, p.t) for p in patches})
        return True

    def _saved(self, frames: set[tuple[str, int]]) -> None:
        """Write the changed frames, then tell the views; a failed write keeps the edit in
        memory (and in the undo history) and says so."""
        failed = None
        if self.store is not None:
            for cam, t in sorted(frames):
                try:
                    self.store.save(cam, t, self._edits.get((cam, t)))
                except OSError as e:
                    failed = e
        self._notify(frames)
        if failed is not None:
            raise VLAScopeError(f"the edit is kept but could not be saved to "
                                f"{self.store.folder}: {failed}") from failed

    def _notify(self, frames: set[tuple[str, int]]) -> None:
        for listener in list(self.listeners):
            listener(frames)

    # operations -------------------------------------------------------------------------
    def paint(self, camera: str, t: int, p0: tuple[float, float], p1: tuple[float, float],
              radius: float, label: int | None) -> int:
        """Brush (``label`` 0-3) or eraser (``label`` None: the seed shows again) along the
        segment p0 -> p1 (x, y in pixels), ``radius`` pixels either side."""
        value = KEEP if label is None else self._label(label)

        def apply() -> None:
            e = self._touch(camera, t)
            h, w = e.shape
            (x0, y0), (x1, y1) = p0, p1
            r = max(float(radius), 0.5)
            xa, xb = int(np.floor(min(x0, x1) - r)), int(np.ceil(max(x0, x1) + r)) + 1
            ya, yb = int(np.floor(min(y0, y1) - r)), int(np.ceil(max(y0, y1) + r)) + 1
            xa, xb, ya, yb = max(xa, 0), min(xb, w), max(ya, 0), min(yb, h)
            if xa >= xb or ya >= yb:
                return
            yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32) + 0.5  # pixel centres
            dx, dy = x1 - x0, y1 - y0
            den = dx * dx + dy * dy
            s = np.clip(((xx - x0) * dx + (yy - y0) * dy) / den, 0, 1) if den > 0 else 0.0
            d2 = (xx - (x0 + s * dx)) ** 2 + (yy - (y0 + s * dy)) ** 2
            e[ya:yb, xa:xb][d2 <= r * r] = value
        return self._operation(apply)

    def fill(self, camera: str, t: int, x: int, y: int, label: int) -> int:
        """Flood fill: the 4-connected area of the clicked pixel's current label."""
        value = self._label(label)
        if not self._inside(camera, x, y):
            return 0

        def apply() -> None:
            current = self.labels(camera, t)
            parts, _ = ndimage.label(current == current[y, x])
            self._touch(camera, t)[parts == parts[y, x]] = value
        return self._operation(apply)

    def fill_polygon(self, camera: str, t: int, points: Sequence[tuple[float, float]],
                     label: int) -> int:
        """Fill the inside of a polygon or lasso path (x, y vertices, at least three)."""
        value = self._label(label)
        if len(points) < 3:
            return 0
        h, w = self.shapes[camera]
        mask_img = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask_img).polygon([(float(x), float(y)) for x, y in points], fill=1,
                                         outline=1)
        mask = np.asarray(mask_img, bool)
        return self._operation(lambda: self._touch(camera, t).__setitem__(mask, value))

    def assign_object(self, camera: str, t: int, x: int, y: int, label: int,
                      steps: Iterable[int] | None = None) -> int:
        """Give the simulator object under (x, y) the label wherever it appears, in every
        camera, on ``steps`` (default: the whole episode). Follows the object as it moves."""
        value = self._label(label)
        obj = self.object_at(camera, t, x, y)
        if obj == 0:
            raise VLAScopeError("no simulator object under the cursor (the episode has no "
                                "segments, or this is background)")
        steps = range(self.n_steps) if steps is None else steps

        def apply() -> None:
            for s in steps:
                for cam in self.cameras:
                    seg = self._segment(cam, s)
                    if seg is not None:
                        hit = seg == obj
                        if hit.any():
                            self._touch(cam, s)[hit] = value
        return self._operation(apply)

    def propagate(self, camera: str, t: int, steps: Iterable[int]) -> int:
        """Copy frame ``t``'s edits (pixel for pixel) onto ``steps``; their other edits stay."""
        src = self._edits.get((camera, t))
        if src is None or not (src != KEEP).any():
            return 0
        src = src.copy()
        mask = src != KEEP

        def apply() -> None:
            for s in steps:
                if s != t:
                    self._touch(camera, s)[mask] = src[mask]
        return self._operation(apply)

    def clear(self, camera: str, t: int) -> int:
        """Remove a frame's edits: back to the seed."""
        return self._operation(lambda: self._touch(camera, t).fill(KEEP))

    def import_labels(self, labels: dict[str, np.ndarray], steps: Sequence[int]) -> int:
        """Labels from a file, per camera (T, H, W) for ``steps``: stored as edits where they
        differ from the seed, so a later seed change still shows where they agreed."""
        for cam, arr in labels.items():
            if cam not in self.shapes:
                raise VLAScopeError(f"camera '{cam}' is not in this episode {self.cameras}")
            if arr.shape != (len(steps), *self.shapes[cam]):
                raise VLAScopeError(f"labels for '{cam}' have shape {arr.shape}, this episode "
                                    f"needs {(len(steps), *self.shapes[cam])}")
            if arr.size and (arr.min() < 0 or arr.max() > NUISANCE):
                raise VLAScopeError("region labels must be in 0..3")

        def apply() -> None:
            for cam, arr in labels.items():
                for i, s in enumerate(steps):
                    new = np.asarray(arr[i], np.uint8)
                    e = self._touch(cam, s)
                    e[...] = np.where(new != self.seed(cam, s), new, KEEP)
        return self._operation(apply)

    # helpers ----------------------------------------------------------------------------
    def _segment(self, camera: str, t: int) -> np.ndarray | None:
        if self._segments is None:
            return None
        if self._segment_cache[0] != t:  # hover asks for the same step many times
            self._segment_cache = (t, self._segments(t) or {})
        got = self._segment_cache[1]
        return np.asarray(got[camera]) if camera in got else None

    def _inside(self, camera: str, x: int, y: int) -> bool:
        h, w = self.shapes[camera]
        return 0 <= x < w and 0 <= y < h

    def _check(self, camera: str, t: int) -> None:
        if camera not in self.shapes:
            raise VLAScopeError(f"unknown camera '{camera}' (episode has {self.cameras})")
        if not 0 <= t < self.n_steps:
            raise VLAScopeError(f"step {t} outside 0..{self.n_steps - 1}")

    @staticmethod
    def _label(label: int) -> int:
        if not UNLABELED <= int(label) <= NUISANCE:
            raise VLAScopeError(f"region label must be 0..3, got {label}")
        return int(label)


def annotated_regions(episode) -> dict[str, np.ndarray] | None:
    """An episode's region maps with the edits saved beside it, camera -> (T, H, W); None
    when nobody annotated it. What the headless commands use, so the CLI and the dock agree.
    An edit that does not fit the episode (size, camera, step) is refused, not dropped."""
    edits = AnnotationStore(annotation_dir(episode.path)).load(episode_shapes(episode),
                                                               episode.n_steps)
    if not edits:
        return None
    out = {}
    for cam in episode.cameras:
        steps = range(episode.n_steps)
        if episode.has_regions():
            labels = np.stack([episode.regions(t, cam) for t in steps]).astype(np.uint8)
        else:
            labels = np.zeros((episode.n_steps, *episode.frame(0, cam).shape[:2]), np.uint8)
        for (c, t), e in edits.items():
            if c == cam:
                labels[t] = np.where(e != KEEP, e, labels[t])
        out[cam] = labels
    return out


def episode_shapes(recording) -> dict[str, tuple[int, int]]:
    """(H, W) of each camera's frames of an episode or recording with at least one step."""
    if recording.n_steps == 0:
        return {}
    return {c: tuple(int(v) for v in recording.frame(0, c).shape[:2])
            for c in recording.cameras}


# PNG label maps ---------------------------------------------------------------------------
_PALETTE = [v for k in sorted(LABEL_COLORS) for v in LABEL_COLORS[k]]


def write_label_png(path: str | Path, labels: np.ndarray) -> Path:
    """A label map as a paletted PNG: pixel values are the labels (0-3), the palette shows
    them in the fixed colours, so the file is exact and readable at a glance."""
    labels = np.asarray(labels, np.uint8)
    if labels.ndim != 2 or labels.max(initial=0) > NUISANCE:
        raise VLAScopeError(f"a label map is (H, W) of 0..3, got {labels.shape}")
    im = Image.fromarray(labels, mode="P")
    im.putpalette(_PALETTE + [0] * (768 - len(_PALETTE)))
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return Path(path)


def read_label_png(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Paletted or greyscale PNG of labels 0-3, or an RGB image in the fixed colours;
    of (H, W) ``shape`` when given (checked from the header, before decoding)."""
    arr = open_png(path, shape)
    if arr.ndim == 2:
        if arr.max(initial=0) > NUISANCE:
            raise EpisodeFormatError(f"{path}: label values above 3")
        return arr.astype(np.uint8)
    out = np.full(arr.shape[:2], KEEP, np.uint8)
    for k, rgb in LABEL_COLORS.items():
        out[(arr == rgb).all(-1)] = k
    if (out == KEEP).any():
        raise EpisodeFormatError(f"{path}: colours other than the four label colours")
    return out
