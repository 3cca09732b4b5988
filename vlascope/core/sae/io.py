"""Saving and loading SAEs: a folder with ``sae.safetensors`` (weights and z-scoring stats)
and ``sae.json`` (config, report, metadata), written atomically as a pair: both to
temporaries, then renamed, each carrying one pair id that the loader checks. The loader
reads the tensor shapes from the weights' header and checks the config against them before
it allocates anything of the config's size. ``load_sae`` also takes an Action Atlas
``sae_best.pt`` (or its folder): ``atlas_format.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_paths
from ..errors import VLAScopeError
from ..tensor_files import PAIR_KEY, check_pair, check_shapes, new_pair_id, read_header
from .model import SAE, SAEConfig, SAEMismatchError, SAEReport

FORMAT = "vlascope-sae"
VERSION = 1
WEIGHTS, META = "sae.safetensors", "sae.json"
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec", "mean", "std", "feature_scale", "feature_mean")
# Far above any model's width (SmolVLA 960, pi0 2048, OpenVLA 4096) and any expansion used;
# a config beyond them is a damaged or hostile file, refused before anything is allocated.
MAX_D_IN, MAX_EXPANSION = 1 << 16, 1 << 10


__all__ = ["SAEMismatchError", "load_sae", "sae_folder", "sae_weights_file", "save_sae"]


def save_sae(sae: SAE, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``sae`` to the folder ``path`` (created if needed); ``extra`` (JSON-able) is
    merged over ``sae.metadata`` and comes back as ``load_sae(...).metadata``."""
    from safetensors.torch import save_file

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VLAScopeError(f"cannot create the SAE folder {folder}: {e}") from e
    state = {name: getattr(sae, name).detach().to("cpu", torch.float32).contiguous()
             for name in TENSORS}
    metadata = {**sae.metadata, **(extra or {})}
    pair = new_pair_id()
    meta = {"format": FORMAT, "version": VERSION, PAIR_KEY: pair, "config": sae.cfg.to_dict(),
            "report": sae.report.as_dict() if sae.report is not None else None,
            "metadata": metadata}
    try:
        text = json.dumps(meta, indent=2, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise VLAScopeError(f"SAE metadata for {folder} is not JSON-serialisable: {e}") from e
    try:
        with atomic_paths(folder / WEIGHTS, folder / META) as (weights, config):
            save_file(state, str(weights), metadata={"format": FORMAT, PAIR_KEY: pair})
            config.write_text(text + "\n", encoding="utf-8")
    except OSError as e:
        raise VLAScopeError(f"cannot write the SAE to {folder}: {e}") from e
    return folder


def _read_meta(folder: Path) -> dict[str, Any]:
    meta_path = folder / META
    if not meta_path.is_file():
        raise VLAScopeError(f"no SAE at {folder}: {META} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VLAScopeError(f"{meta_path} is corrupt or unreadable ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise VLAScopeError(f"{meta_path} is not a vlascope SAE file")
    if int(meta.get("version", 0)) > VERSION:
        raise VLAScopeError(f"{meta_path} has SAE format version {meta.get('version')}; "
                            f"this vlascope reads up to {VERSION}, update it")
    return meta


def expected_shapes(cfg: SAEConfig) -> dict[str, tuple[int, ...]]:
    """The tensor shapes an SAE of ``cfg`` has (as ``SAE(cfg)`` would make them)."""
    d, m = cfg.d_in, cfg.d_sae
    return {"W_enc": (m, d), "b_enc": (m,), "W_dec": (m, d), "b_dec": (d,), "mean": (d,),
            "std": (d,), "feature_scale": (m,), "feature_mean": (m,)}


def sae_folder(path: str | Path) -> Path:
    """The folder of an SAE given as its folder or a file in it: where ``sae stats``
    writes and ``steer``/``ablate`` read ``sae_stats.json``."""
    p = Path(path)
    return p.parent if p.is_file() else p


def sae_weights_file(path: str | Path) -> Path:
    """The file whose change means a changed SAE (for caches of loaded SAEs)."""
    from .atlas_format import atlas_file

    return atlas_file(path) or sae_folder(path) / WEIGHTS


def load_sae(path: str | Path, *, layer: str | None = None, pooling: str | None = None,
             device: str = "cpu", policy: str | None = None) -> SAE:
    """Read an SAE saved by ``save_sae`` (the folder, or a file in it) or an Action Atlas
    checkpoint (``sae_best.pt`` or its folder; ``policy`` maps its layer name to our hook
    point). ``layer``/``pooling`` when given must match what it was trained on, else
    SAEMismatchError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .atlas_format import atlas_file, load_atlas_sae

    if atlas_file(path) is not None:
        sae = load_atlas_sae(path, layer=layer, policy=policy)
        if pooling is not None and pooling != sae.cfg.pooling:
            raise SAEMismatchError(f"the Action Atlas SAE at {path} reads every token, not "
                                   f"'{pooling}'-pooled activations")
        from vlascope.core.device import pick_device

        return sae.to(pick_device(device)).eval()
    folder = Path(path)
    if folder.is_file() and folder.name in (WEIGHTS, META):
        folder = folder.parent
    if not folder.is_dir():
        raise VLAScopeError(f"no SAE at {folder}: not a folder")
    meta = _read_meta(folder)
    try:
        cfg = SAEConfig.from_dict(meta.get("config"))
    except (TypeError, ValueError, VLAScopeError) as e:
        raise VLAScopeError(f"{folder / META} has a bad SAE config: {e}") from e
    if layer is not None and layer != cfg.layer:
        raise SAEMismatchError(f"the SAE in {folder} was trained on layer '{cfg.layer}', "
                               f"not '{layer}'")
    if pooling is not None and pooling != cfg.pooling:
        raise SAEMismatchError(f"the SAE in {folder} was trained on '{cfg.pooling}' pooled "
                               f"activations, not '{pooling}'")
    if cfg.d_in > MAX_D_IN or cfg.expansion > MAX_EXPANSION:
        raise VLAScopeError(f"{folder / META} asks for an SAE of d_in={cfg.d_in}, expansion="
                            f"{cfg.expansion} (at most {MAX_D_IN} and {MAX_EXPANSION}): "
                            "damaged or not an SAE config")
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise VLAScopeError(f"no SAE weights at {weights}")
    header = read_header(weights)
    check_pair(header, meta.get(PAIR_KEY), weights, folder / META)
    check_shapes(header, expected_shapes(cfg), weights, folder / META)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise VLAScopeError(f"{weights} is corrupt or not a safetensors file ({e})") from e
    sae = SAE(cfg)
    if not all(bool(torch.isfinite(state[k]).all()) for k in TENSORS):
        raise VLAScopeError(f"{weights} holds non-finite values")
    sae.load_state_dict({k: state[k].float() for k in TENSORS}, strict=True)
    report = meta.get("report")
    if isinstance(report, dict):
        try:
            sae.report = SAEReport(**report)
        except TypeError:
            sae.report = None
    sae.metadata = dict(meta.get("metadata") or {})
    from vlascope.core.device import pick_device

    return sae.to(pick_device(device)).eval()
