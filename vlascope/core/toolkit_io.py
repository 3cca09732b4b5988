"""Files of the ISS/NMR toolkit, both ways, so a result can be checked against it.

The toolkit stitches camera views side by side (left to right, in camera order) into one
image per frame, and so do its files:

- heatmaps ``.npz``: ``heatmaps`` (T, H, W_total) float32, ``frame_indices`` (T,) int, and,
  when we write it, ``views`` (camera names) and ``view_widths`` so the stitching can be
  undone without guessing. A file without them is split into equal widths.
- masks ``.npy``: (H, W_total) or (T, H, W_total) uint8 with 0 nuisance, 1 support,
  2 action-critical (``regions.to_toolkit`` / ``from_toolkit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .atomic import atomic_path
from .errors import EpisodeFormatError
from .regions import from_toolkit, to_toolkit


def stitch(per_view: Mapping[str, np.ndarray], cameras: Sequence[str]) -> np.ndarray:
    """Views side by side along the last axis, in ``cameras`` order (equal heights)."""
    heights = {per_view[c].shape[-2] for c in cameras}
    if len(heights) != 1:
        raise EpisodeFormatError(f"views of different heights cannot be stitched: {heights}")
    return np.concatenate([per_view[c] for c in cameras], axis=-1)


def unstitch(array: np.ndarray, cameras: Sequence[str],
             widths: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Split a stitched array (..., H, W_total) back into views."""
    total = array.shape[-1]
    if widths is None:
        if total % len(cameras):
            raise EpisodeFormatError(f"width {total} does not split into {len(cameras)} equal "
                                     "views; give the view widths")
        widths = [total // len(cameras)] * len(cameras)
    if sum(widths) != total or len(widths) != len(cameras):
        raise EpisodeFormatError(f"view widths {list(widths)} do not add up to the stitched "
                                 f"width {total} for cameras {list(cameras)}")
    edges = np.cumsum([0, *widths])
    return {c: array[..., a:b] for c, a, b in zip(cameras, edges[:-1], edges[1:], strict=True)}


def _atomic_save(path: Path, save: Callable[[BinaryIO], None]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # numpy adds no suffix to a file
        save(f)
    return path


def write_heatmaps(path: str | Path, maps: Mapping[str, np.ndarray], cameras: Sequence[str],
                   frame_indices: Sequence[int]) -> Path:
    """maps: camera -> (T, H, W) for the frames ``frame_indices``."""
    stitched = stitch({c: np.asarray(maps[c], np.float32) for c in cameras}, cameras)
    if stitched.ndim != 3 or len(frame_indices) != stitched.shape[0]:
        raise EpisodeFormatError(f"need one (H, W) map per frame: {stitched.shape} for "
                                 f"{len(frame_indices)} frames")
    arrays = {"heatmaps": stitched, "frame_indices": np.asarray(frame_indices, np.int64),
              "views": np.asarray(list(cameras)),
              "view_widths": np.asarray([maps[c].shape[-1] for c in cameras], np.int64)}
    return _atomic_save(Path(path), lambda f: np.savez_compressed(f, **arrays))


def read_heatmaps(path: str | Path, cameras: Sequence[str] | None = None
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """-> (camera -> (T, H, W) float32, frame indices). ``cameras`` names the views of a file
    that does not name them itself."""
    path = Path(path)
    if not path.is_file():
        raise EpisodeFormatError(f"{path}: no such heatmap file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise EpisodeFormatError(f"{path}: not a readable .npz heatmap file ({e})") from e
    if "heatmaps" not in data:
        raise EpisodeFormatError(f"{path}: no 'heatmaps' array (has: {sorted(data)})")
    heat = data["heatmaps"].astype(np.float32)
    if heat.ndim == 2:
        heat = heat[None]
    if heat.ndim != 3:
        raise EpisodeFormatError(f"{path}: heatmaps must be (T, H, W), got {heat.shape}")
    views = [str(v) for v in data["views"]] if "views" in data else list(cameras or [])
    if not views:
        raise EpisodeFormatError(f"{path}: the file does not name its views; give the cameras")
    if cameras is not None and list(cameras) != views:
        raise EpisodeFormatError(f"{path}: views {views} do not match cameras {list(cameras)}")
    widths = [int(w) for w in data["view_widths"]] if "view_widths" in data else None
    frames = data.get("frame_indices", np.arange(len(heat)))
    if len(frames) != len(heat):
        raise EpisodeFormatError(f"{path}: {len(frames)} frame indices for {len(heat)} maps")
    return unstitch(heat, views, widths), np.asarray(frames, np.int64)


def write_masks(path: str | Path, labels: Mapping[str, np.ndarray],
                cameras: Sequence[str]) -> Path:
    """Our region labels per camera ((H, W) or (T, H, W)) -> one stitched toolkit mask."""
    mask = to_toolkit(stitch(labels, cameras)).astype(np.uint8)
    return _atomic_save(Path(path), lambda f: np.save(f, mask, allow_pickle=False))


def read_masks(path: str | Path, cameras: Sequence[str],
               widths: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """A toolkit mask file -> our region labels per camera."""
    path = Path(path)
    if not path.is_file():
        raise EpisodeFormatError(f"{path}: no such mask file")
    try:
        mask = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EpisodeFormatError(f"{path}: not a readable .npy mask ({e})") from e
    if mask.ndim not in (2, 3) or not np.issubdtype(mask.dtype, np.integer):
        raise EpisodeFormatError(f"{path}: masks must be integer (H, W) or (T, H, W), got "
                                 f"{mask.dtype} {mask.shape}")
    return unstitch(from_toolkit(mask), cameras, widths)
