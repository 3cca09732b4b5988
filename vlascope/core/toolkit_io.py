"""Files of the ISS/NMR toolkit, both ways, in exactly its layout (its ``io/artifacts.py`` and
``io/episode.py`` read and write these; checked against files its code wrote, in
tests/data/toolkit/episode/):

- ``iss/iss_heatmaps.npz``: one (T, H, W) float32 array per view name (every step of the
  episode) and ``meta_json``, a 0-d string holding a JSON object;
- ``masks/mask_{view}_rgb.npy``: one (T_m, H, W) integer array per view, 0 nuisance,
  1 support, 2 action-critical (``regions.to_toolkit`` / ``from_toolkit``); the toolkit
  takes mask frame round(t (T_m - 1) / (T - 1)) for step t and resizes nearest;
- ``nmr/nmr@{k}pct.json`` / ``.csv``: per-step NMR@k, per view, and top-k coverage.

Anything else is refused with a message that says what was expected.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, write_json_atomic, write_text_atomic
from .errors import EpisodeFormatError
from .metrics import k_pixels
from .regions import from_toolkit, to_toolkit

HEATMAPS = Path("iss") / "iss_heatmaps.npz"
MASKS = Path("masks")
META_KEY = "meta_json"
EXPECTED_HEATMAPS = ("the toolkit's iss/iss_heatmaps.npz: one (T, H, W) float array per view "
                     "name and a 'meta_json' string")
EXPECTED_MASKS = ("the toolkit's masks: a folder with mask_{view}_rgb.npy per view (or its "
                  "parent), each a (T, H, W) integer array of 0 nuisance, 1 support, 2 action")


# What numpy and zipfile raise on a damaged or hostile file, mapped to EpisodeFormatError.
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, MemoryError,
                zipfile.BadZipFile, zlib.error, UnicodeDecodeError)
MAX_BYTES = 4 * 2**30  # more than any episode's maps or masks; a file claiming more is refused


def _load_npz(path: Path, expected: str) -> dict[str, np.ndarray]:
    """Every array of an .npz, after checking what its members claim to hold."""
    try:
        with zipfile.ZipFile(path) as z:
            claimed = sum(info.file_size for info in z.infolist())
        if claimed > MAX_BYTES:
            raise EpisodeFormatError(f"{path}: its arrays claim {claimed / 2**30:.0f} GiB; "
                                     "refused")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except _READ_ERRORS as e:
        raise EpisodeFormatError(f"{path}: not a readable .npz file ({type(e).__name__}: "
                                 f"{e}); expected {expected}") from e


def _load_npy(path: Path, expected: str) -> np.ndarray:
    """An .npy array, after checking that its header's shape fits the file."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            data_bytes = path.stat().st_size - f.tell()
        need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if dtype.hasobject or need > min(data_bytes, MAX_BYTES):
            raise EpisodeFormatError(f"{path}: its header claims {dtype} {shape}, which the "
                                     f"file does not hold; expected {expected}")
        return np.load(path, allow_pickle=False)
    except _READ_ERRORS as e:
        raise EpisodeFormatError(f"{path}: not a readable .npy file ({type(e).__name__}: "
                                 f"{e}); expected {expected}") from e


def mask_name(view: str) -> str:
    return f"mask_{view}_rgb.npy"


def k_slug(k: float | str) -> str:
    """The toolkit's name for k in file names: 10 -> '10pct', 2.5 -> '2p5pct', '50px'."""
    if n := k_pixels(k):
        return f"{n}px"
    return f"{float(k):g}".replace(".", "p") + "pct"


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # numpy adds no suffix to a file
        np.save(f, array, allow_pickle=False)
    return path


def write_heatmaps(folder: str | Path, maps: Mapping[str, np.ndarray],
                   meta: Mapping[str, Any]) -> Path:
    """``folder/iss/iss_heatmaps.npz`` from camera -> (T, H, W) maps of every step."""
    arrays: dict[str, np.ndarray] = {}
    for view, m in maps.items():
        m = np.asarray(m, np.float32)
        if view == META_KEY or m.ndim != 3:
            raise EpisodeFormatError(f"view '{view}': need a (T, H, W) map per view, got "
                                     f"{m.shape}")
        arrays[view] = m
    if len({m.shape[0] for m in arrays.values()}) != 1:
        raise EpisodeFormatError("every view needs a map for the same number of steps")
    arrays[META_KEY] = np.asarray(json.dumps(dict(meta), indent=2))
    path = Path(folder) / HEATMAPS
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def heatmaps_file(path: str | Path) -> Path:
    """The heatmap file a user named: the .npz itself, its ``iss/`` folder, or the output
    folder above it."""
    path = Path(path)
    for candidate in (path, path / HEATMAPS.name, path / HEATMAPS):
        if candidate.is_file():
            return candidate
    raise EpisodeFormatError(f"{path}: no iss_heatmaps.npz there; expected {EXPECTED_HEATMAPS}")


def read_heatmaps(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """-> (view -> (T, H, W) float32, meta). Refuses VLAScope's earlier stitched layout,
    non-finite maps, and views of different lengths."""
    path = heatmaps_file(path)
    data = _load_npz(path, EXPECTED_HEATMAPS)
    if "heatmaps" in data and "frame_indices" in data:
        raise EpisodeFormatError(f"{path}: this is VLAScope's earlier stitched layout "
                                 "(views side by side in one 'heatmaps' array); export it "
                                 f"again with `vlascope toolkit-export`. Expected "
                                 f"{EXPECTED_HEATMAPS}")
    meta = _meta(path, data.pop(META_KEY, None))
    if not data:
        raise EpisodeFormatError(f"{path}: no view arrays; expected {EXPECTED_HEATMAPS}")
    maps = {}
    for view, m in data.items():
        if m.ndim != 3 or not np.issubdtype(m.dtype, np.floating) or 0 in m.shape:
            raise EpisodeFormatError(f"{path}: '{view}' is {m.dtype} {m.shape}, not a (T, H, "
                                     f"W) float array; expected {EXPECTED_HEATMAPS}")
        if not np.all(np.isfinite(m)):
            raise EpisodeFormatError(f"{path}: '{view}' holds non-finite values (NaN or inf)")
        maps[view] = m.astype(np.float32)
    lengths = {v: len(m) for v, m in maps.items()}
    if len(set(lengths.values())) != 1:
        raise EpisodeFormatError(f"{path}: views have different numbers of steps {lengths}")
    return maps, meta


def _meta(path: Path, raw: np.ndarray | None) -> dict[str, Any]:
    if raw is None:
        raise EpisodeFormatError(f"{path}: no '{META_KEY}'; expected {EXPECTED_HEATMAPS}")
    try:
        meta = json.loads(str(raw[()]) if raw.ndim == 0 else "")
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise EpisodeFormatError(f"{path}: '{META_KEY}' is not a JSON string ({e})") from e
    if not isinstance(meta, dict):
        raise EpisodeFormatError(f"{path}: '{META_KEY}' is not a JSON object")
    return meta


def write_masks(folder: str | Path, labels: Mapping[str, np.ndarray]) -> list[Path]:
    """Our region labels per camera ((T, H, W)) -> ``folder/masks/mask_{view}_rgb.npy``."""
    paths = []
    for view, lab in labels.items():
        lab = np.asarray(lab)
        if lab.ndim != 3:
            raise EpisodeFormatError(f"view '{view}': masks need (T, H, W) labels, got "
                                     f"{lab.shape}")
        paths.append(_save_npy(Path(folder) / MASKS / mask_name(view),
                               to_toolkit(lab).astype(np.uint8)))
    return paths


def masks_folder(path: str | Path, views: Sequence[str]) -> Path:
    """The mask folder a user named: the folder itself, the output folder above it, or one
    of its mask_{view}_rgb.npy files."""
    path = Path(path)
    names = {mask_name(v) for v in views}
    if path.is_file():
        if path.name not in names:
            raise EpisodeFormatError(f"{path}: not a toolkit mask file name (expected one of "
                                     f"{sorted(names)}); expected {EXPECTED_MASKS}")
        return path.parent
    for candidate in (path, path / MASKS):
        if candidate.is_dir() and any((candidate / n).is_file() for n in names):
            return candidate
    raise EpisodeFormatError(f"{path}: no {', '.join(sorted(names))} there; expected "
                             f"{EXPECTED_MASKS}")


def read_masks(path: str | Path, views: Sequence[str]) -> dict[str, np.ndarray]:
    """The toolkit's mask files for ``views`` -> our region labels per view, (T_m, H, W)."""
    folder = masks_folder(path, views)
    out = {}
    for view in views:
        file = folder / mask_name(view)
        if not file.is_file():
            raise EpisodeFormatError(f"{folder}: missing {mask_name(view)} for view '{view}'; "
                                     f"expected {EXPECTED_MASKS}")
        mask = _load_npy(file, EXPECTED_MASKS)
        if (not isinstance(mask, np.ndarray) or mask.ndim != 3 or 0 in mask.shape
                or not np.issubdtype(mask.dtype, np.integer)):
            raise EpisodeFormatError(f"{file}: {getattr(mask, 'dtype', '?')} "
                                     f"{getattr(mask, 'shape', '?')} is not a (T, H, W) integer "
                                     f"mask; expected {EXPECTED_MASKS}")
        try:
            out[view] = from_toolkit(mask)
        except ValueError as e:
            raise EpisodeFormatError(f"{file}: {e}") from e
    return out


def write_nmr(folder: str | Path, k: float | str, scores: np.ndarray,
              per_view: Mapping[str, np.ndarray], scaling: str) -> tuple[Path, Path]:
    """``folder/nmr@{k}pct.json`` and ``.csv`` with the toolkit's keys and columns
    (coverage = 1 - NMR: the top-k share inside support and action regions)."""
    views = list(per_view)
    nmr = np.asarray(scores, np.float32)
    cov = (1.0 - np.asarray(scores, np.float64)).astype(np.float32)
    view_nmr = {v: np.asarray(per_view[v], np.float32) for v in views}
    view_cov = {v: (1.0 - np.asarray(per_view[v], np.float64)).astype(np.float32)
                for v in views}
    payload = {
        "scores": nmr.tolist(),
        "per_view_scores": {v: a.tolist() for v, a in view_nmr.items()},
        "coverage_scores": cov.tolist(),
        "per_view_coverage_scores": {v: a.tolist() for v, a in view_cov.items()},
        "mean_score": float(np.nanmean(nmr)),
        "mean_coverage": float(np.nanmean(cov)),
        "k_percent": 0.0 if k_pixels(k) else float(k),
        "k_pixels": k_pixels(k),
        "normalize": scaling,
        "definition": "nmr@k = 1 - fraction(ISS top-k pixels inside green+blue mask); "
                      "lower is better",
    }
    base = Path(folder) / f"nmr@{k_slug(k)}"
    json_path = write_json_atomic(base.with_suffix(".json"), payload)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["step", "nmr", *[f"nmr_{v}" for v in views], "coverage_green_blue",
                     *[f"coverage_green_blue_{v}" for v in views]])
    for t in range(len(nmr)):
        writer.writerow([t, float(nmr[t]), *[float(view_nmr[v][t]) for v in views],
                         float(cov[t]), *[float(view_cov[v][t]) for v in views]])
    return json_path, write_text_atomic(base.with_suffix(".csv"), text.getvalue())
