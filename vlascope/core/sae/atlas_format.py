"""Action Atlas SAE checkpoints (github.com/CWRU-AISM/action-atlas) read as, and written
from, our ``SAE``, so their published per-layer SAEs work in ``sae stats``, ``steer``,
``ablate`` and the Features dock, and ours can be handed to their scripts.

Their ``experiments/train_sae.py`` writes ``<out>/<layer>/sae_best.pt``, a ``torch.save``
dict: ``sae_state_dict`` (``encoder``/``decoder`` of two ``nn.Linear``), the z-scoring
``activation_mean``/``activation_std``, ``config`` {input_dim, hidden_dim, expansion, k,
n_samples}, ``history`` and ``best_loss``. Their encoder keeps the k largest of
``encoder(xn)`` *with their sign* (no ReLU, no pre-encoder bias), ``xn = (x - mean) /
(std + 1e-8)``; their edits move each token by ``(dec(z') - dec(z)) * (std + 1e-8)``.

How the import stays exact, to the bit where it can:

- kind ``topk_signed`` computes ``F.linear(z, W_enc, b_enc)`` as their ``nn.Linear`` does,
  so ``W_enc``/``b_enc``/``b_dec`` are their tensors unchanged (folding ``W_enc @ b_dec``
  into ``b_enc`` would be equal only up to rounding, enough to swap near-tied top-k picks);
- our ``std`` is their ``activation_std + 1e-8`` (the same float32 sum their hooks form),
  so z-scoring, ``direction`` and every edit scale by exactly their divisor; the export
  writes back a float32 value whose ``+ 1e-8`` gives our ``std`` again;
- ablation is already their edit (``SaeAblation``: the error term stays); their steering
  scales a feature's code per token, so imported SAEs carry ``steering="scale"``.

Checkpoints are read with ``torch.load(weights_only=True)`` only: a file that needs any
pickled Python object is refused, never run.
"""

from __future__ import annotations

import math
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..atomic import atomic_path
from ..errors import VLAScopeError
from .model import SAE, SAEConfig, SAEMismatchError, SAEReport

ATLAS_FILE = "sae_best.pt"
STD_EPS = 1e-8  # their hooks divide by std + 1e-8
DEFAULT_K = 64  # their train_sae.py default, for files without a config
_STATE_KEYS = ("sae_state_dict", "model_state_dict")
_LINEAR_KEYS = ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")
_LABEL = re.compile(r"^(?P<group>[A-Za-z][A-Za-z0-9_]*?)_L(?P<index>\d+)$")
_METAWORLD = re.compile(r"^layer_(?P<index>\d+)$")

# Their layer groups (experiments/model_adapters.py ``get_layer_groups``; label
# ``{group}_L{i}``) as our hook points, per policy plugin: (our stack, point, index shift).
# SmolVLA: they hook ``layers[i].mlp`` and so do our ``.mlp`` points. Elsewhere they hook
# the decoder layer, whose output is the residual stream entering layer i + 1: our
# ``{stack}.{i+1}.resid`` (the last layer's output has no such point: pass a layer). That
# the two are the same numbers is measured on each family's tiny model
# (``adapters/layer_agreement.py``). GR00T N1.5: their model_adapters names
# the groups eagle / vlsa / dit, their GR00T collector eagle_lm / vl_sa / dit (zero-padded,
# ``dit_L03``); both hook the Eagle LM layer, the VL self-attention block, the DiT block.
ATLAS_LAYERS: dict[str, dict[str, tuple[str, str, int]]] = {
    "smolvla": {"expert": ("expert", "mlp", 0), "vlm": ("vlm", "mlp", 0)},
    "pi05": {"expert": ("expert", "resid", 1), "paligemma": ("vlm", "resid", 1)},
    "openvla-oft": {"llm": ("vlm", "resid", 1)},
    "xvla": {"transformer": ("expert", "resid", 1)},
    "groot": {"eagle": ("vlm", "resid", 1), "eagle_lm": ("vlm", "resid", 1),
              "vlsa": ("vlsa", "resid", 1), "vl_sa": ("vlsa", "resid", 1),
              "dit": ("expert", "resid", 1)},
}
# Adapters' ``family`` -> the plugin name above (the dock knows the loaded policy by it).
FAMILIES = {"SmolVLA": "smolvla", "pi0.5 (transformers)": "pi05",
            "OpenVLA-OFT": "openvla-oft", "X-VLA": "xvla", "GR00T N1.5": "groot"}


class AtlasFormatError(VLAScopeError):
    """An Action Atlas checkpoint that is missing something, has the wrong shapes, or
    cannot (or may not) be read."""


# Finding and naming ----------------------------------------------------------------------
def atlas_file(path: str | Path) -> Path | None:
    """The checkpoint ``path`` names: a ``.pt`` file, or a folder holding ``sae_best.pt``
    (and no vlascope SAE); None when it is not one."""
    p = Path(path)
    if p.is_file():
        return p if p.suffix == ".pt" else None
    if p.is_dir() and (p / ATLAS_FILE).is_file() and not (p / "sae.json").exists():
        return p / ATLAS_FILE
    return None


def atlas_label(file: str | Path) -> str:
    """Their layer name of a checkpoint, from its folder: ``expert_L3`` for
    ``.../expert_L3/sae_best.pt``, ``expert_L3`` for MetaWorld's ``expert/layer_03/``."""
    folder = Path(file).absolute().parent
    m = _METAWORLD.match(folder.name)
    if m:
        return f"{folder.parent.name}_L{int(m['index'])}"
    return folder.name


def atlas_hook_points(label: str) -> dict[str, str]:
    """Our hook point for their layer ``label``, per policy plugin that has one."""
    m = _LABEL.match(label)
    if m is None:
        return {}
    group, i = m["group"], int(m["index"])
    return {policy: f"{stack}.{i + shift}.{point}"
            for policy, groups in ATLAS_LAYERS.items() if group in groups
            for stack, point, shift in [groups[group]]}


def atlas_hook_point(label: str, policy: str) -> str | None:
    """Our hook point for their layer ``label`` on ``policy`` (a plugin name or an
    adapter's family), or None when we know of none."""
    return atlas_hook_points(label).get(FAMILIES.get(policy, policy))


# Reading ---------------------------------------------------------------------------------
def read_atlas_checkpoint(file: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded with ``weights_only=True``: tensors and plain values
    only. Anything that needs more is refused without running it."""
    file = Path(file)
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = re.search(r"Unsupported global: (?:GLOBAL )?(\S+)", str(e))
        if why is None:  # the weights-only unpickler met something that is no pickle
            reason = re.search(r"WeightsUnpickler error: \s*([^\n]+)", str(e))
            raise AtlasFormatError(f"{file} is corrupt or not a torch checkpoint "
                                   f"({reason[1] if reason else type(e).__name__})") from None
        raise AtlasFormatError(
            f"{file} holds pickled Python objects ({why[1]}), not only tensors and plain "
            "values; refused, since loading it would run code from the file") from None
    except FileNotFoundError:
        raise AtlasFormatError(f"no Action Atlas SAE at {file}: no such file") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            UnicodeDecodeError, IndexError, KeyError, TypeError, AttributeError,
            struct.error, OverflowError, MemoryError) as e:
        # torch's legacy reader fails on damaged bytes with whatever it meets first
        raise AtlasFormatError(f"{file} is corrupt or not a torch checkpoint "
                               f"({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict):
        raise AtlasFormatError(f"{file} holds a {type(ckpt).__name__}, not an Action Atlas "
                               "checkpoint dict")
    return ckpt


def _state(ckpt: dict[str, Any], file: Path) -> dict[str, Any]:
    for key in _STATE_KEYS:
        if key in ckpt:
            state = ckpt[key]
            if not isinstance(state, dict):
                raise AtlasFormatError(f"{file}: '{key}' is a {type(state).__name__}, not a "
                                       "state dict")
            return state
    if "encoder.weight" in ckpt:  # MetaWorld scripts also accept a bare state dict
        return ckpt
    raise AtlasFormatError(f"{file}: missing key 'sae_state_dict' (or 'model_state_dict'); "
                           f"found {sorted(map(str, ckpt))}")


def _tensor(d: dict[str, Any], key: str, shape: tuple[int, ...] | None, file: Path,
            where: str) -> Tensor:
    if key not in d:
        raise AtlasFormatError(f"{file}: missing key '{key}' in {where}")
    t = d[key]
    if not isinstance(t, Tensor) or not (t.is_floating_point() or t.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64)):
        raise AtlasFormatError(f"{file}: '{key}' in {where} is not a numeric tensor")
    if shape is not None and tuple(t.shape) != shape:
        raise AtlasFormatError(f"{file}: '{key}' has shape {tuple(t.shape)}, expected "
                               f"{shape}")
    t = t.detach().to(torch.float32).clone().contiguous()
    if not bool(torch.isfinite(t).all()):
        raise AtlasFormatError(f"{file}: '{key}' holds non-finite values")
    return t


def _first(ckpt: dict[str, Any], state: dict[str, Any], keys: tuple[str, ...],
           ) -> tuple[str, dict[str, Any]] | None:
    for key in keys:
        if key in ckpt:
            return key, ckpt
    if "mean" in keys and "mean" in state:  # MetaWorld: a 'mean' parameter of the SAE
        return "mean", state
    return None


def _plain(value: Any) -> Any:
    """``value`` if it is JSON-able plain data (their config's numbers and names)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Tensor) and value.numel() == 1:
        return _plain(value.item())
    return None


def _int(config: dict[str, Any], key: str, default: int, file: Path) -> int:
    value = config.get(key, default)
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise AtlasFormatError(f"{file}: config '{key}' is {value!r}, not an integer")
    return value


def _report(ckpt: dict[str, Any], n_samples: int) -> SAEReport | None:
    """Their training log's best epoch as our report (taken on their training data)."""
    history = ckpt.get("history")
    if not isinstance(history, list) or not history or not all(
            isinstance(h, dict) for h in history):
        return None
    best = ckpt.get("best_loss")
    try:
        row = min(history, key=lambda h: abs(float(h.get("loss", math.inf)) - float(best))) \
            if isinstance(best, int | float) else history[-1]
        return SAEReport(fve=float(row["explained_var"]), l0=float(row["l0"]),
                         dead_fraction=float(row["dead_features_frac"]), samples=n_samples)
    except (KeyError, TypeError, ValueError):
        return None


def load_atlas_sae(path: str | Path, *, layer: str | None = None,
                   policy: str | None = None) -> SAE:
    """An Action Atlas checkpoint (``sae_best.pt`` or its folder) as our ``SAE``, on the
    CPU. Its hook point: ``layer`` when given (checked against what their layer name maps
    to, else SAEMismatchError), else their name mapped for ``policy``, else the only
    mapping there is, else their name as it is (pass a layer to use it)."""
    file = atlas_file(path)
    if file is None:
        raise AtlasFormatError(f"no Action Atlas SAE at {path}: expected a .pt file or a "
                               f"folder holding {ATLAS_FILE}")
    ckpt = read_atlas_checkpoint(file)
    state = _state(ckpt, file)
    enc_w = _tensor(state, "encoder.weight", None, file, "the state dict")
    if enc_w.ndim != 2:
        raise AtlasFormatError(f"{file}: 'encoder.weight' has {enc_w.ndim} dimensions, "
                               "expected 2 (hidden_dim, input_dim)")
    h, d = (int(n) for n in enc_w.shape)
    if d < 1 or h < 1:
        raise AtlasFormatError(f"{file}: 'encoder.weight' is empty {tuple(enc_w.shape)}")
    enc_b = _tensor(state, "encoder.bias", (h,), file, "the state dict")
    dec_w = _tensor(state, "decoder.weight", (d, h), file, "the state dict")
    dec_b = _tensor(state, "decoder.bias", (d,), file, "the state dict")
    config = ckpt.get("config", {})
    if not isinstance(config, dict):
        raise AtlasFormatError(f"{file}: 'config' is a {type(config).__name__}, not a dict")
    for key, actual in (("input_dim", d), ("hidden_dim", h)):
        if key in config and _int(config, key, actual, file) != actual:
            raise AtlasFormatError(f"{file}: config says {key}={config[key]}, but the "
                                   f"weights have {actual}")
    if h % d:
        raise AtlasFormatError(f"{file}: hidden_dim {h} is not a multiple of input_dim {d}; "
                               "vlascope SAEs need a whole-number expansion")
    k = _int(config, "k", min(DEFAULT_K, h), file)
    if not 1 <= k <= h:
        raise AtlasFormatError(f"{file}: k={k} outside 1..hidden_dim={h}")
    found = _first(ckpt, state, ("activation_mean", "act_mean", "mean"))
    mean = (_tensor(found[1], found[0], (d,), file, "the checkpoint") if found
            else torch.zeros(d))
    found_std = _first(ckpt, state, ("activation_std", "act_std"))
    if found_std:
        std = _tensor(found_std[1], found_std[0], (d,), file, "the checkpoint") + STD_EPS
        if not bool((std > 0).all()):
            raise AtlasFormatError(f"{file}: '{found_std[0]}' has values <= -1e-8; a "
                                   "standard deviation cannot be negative")
    else:  # mean-only (MetaWorld SmolVLA): no scaling, as their SAE does it
        std = torch.ones(d)
    n_samples = config.get("n_samples", 0)
    n_samples = n_samples if isinstance(n_samples, int) and not isinstance(
        n_samples, bool) else 0

    label = atlas_label(file)
    candidates = atlas_hook_points(label)
    mapped = atlas_hook_point(label, policy) if policy else None
    if layer is not None:
        allowed = {*candidates.values(), label}
        # a folder named as one of our hook points (ours exported) says which it is
        if (candidates or "." in label) and layer not in allowed:
            known = ", ".join(f"{hp} on {p}" for p, hp in candidates.items()) or label
            raise SAEMismatchError(f"{file} is Action Atlas' SAE of '{label}' ({known}), "
                                   f"not of '{layer}'")
        hook = layer
    elif mapped is not None:
        hook = mapped
    elif len(set(candidates.values())) == 1:
        hook = next(iter(candidates.values()))
    else:
        hook = label

    cfg = SAEConfig(d_in=d, expansion=h // d, kind="topk_signed", k=k, layer=hook,
                    pooling="tokens", steering="scale")
    sae = SAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(enc_w)
        sae.b_enc.copy_(enc_b)
        sae.W_dec.copy_(dec_w.t())
        sae.b_dec.copy_(dec_b)
        sae.mean.copy_(mean)
        sae.std.copy_(std)
    sae.report = _report(ckpt, n_samples)
    best = ckpt.get("best_loss")
    sae.metadata = {"atlas": {
        "file": str(file.absolute()), "label": label, "hook_points": candidates,
        "config": _plain(config), "n_samples": n_samples,
        "best_loss": float(best) if isinstance(best, int | float) else None,
        "mean": found[0] if found else None, "std": found_std[0] if found_std else None}}
    return sae.eval()


# Writing ---------------------------------------------------------------------------------
def _atlas_std(std: Tensor) -> Tensor:
    """Float32 values ``a`` with ``a + 1e-8 == std`` (their hooks add it back), found by
    stepping from ``std - 1e-8``; where none exists (``std`` not such a sum) the nearest.
    Clamped to >= 1e-8 like theirs."""
    target = std.detach().to(torch.float32)
    a = target - STD_EPS
    for _ in range(64):
        got = a + STD_EPS
        low, high = got < target, got > target
        if not bool((low | high).any()):
            break
        a = torch.where(low, torch.nextafter(a, torch.full_like(a, math.inf)), a)
        a = torch.where(high, torch.nextafter(a, torch.full_like(a, -math.inf)), a)
    return a.clamp_min(STD_EPS)


def atlas_checkpoint(sae: SAE, *, allow_inexact: bool = False
                     ) -> tuple[dict[str, Any], list[str]]:
    """``sae`` as their checkpoint dict (plain tensors and values), and the warnings of an
    inexact export. Exact for ``topk_signed``; a ReLU-TopK SAE only with
    ``allow_inexact`` (their encoder keeps negative top-k values that ours zeroes); an L1
    ("relu") or mean-pooled SAE never (they have no such SAE)."""
    cfg = sae.cfg
    if cfg.kind == "relu":
        raise VLAScopeError("a ReLU (L1) SAE has no k: Action Atlas' format holds TopK SAEs "
                            "only")
    if cfg.pooling != "tokens":
        raise VLAScopeError(f"this SAE reads '{cfg.pooling}'-pooled activations; Action "
                            "Atlas applies SAEs to every token")
    warnings = []
    w_enc = sae.W_enc.detach().cpu().float()
    b_dec = sae.b_dec.detach().cpu().float()
    if cfg.kind == "topk":
        if not allow_inexact:
            raise VLAScopeError(
                "this is a ReLU-TopK SAE (kind 'topk'): Action Atlas' TopK keeps the negative "
                "top-k values that ours zeroes, so on their side it would encode differently "
                "wherever fewer than k pre-activations are positive; --allow-inexact "
                "exports it anyway")
        warnings.append("kind 'topk' exported as Action Atlas' signed TopK: codes differ "
                        "wherever fewer than k pre-activations are positive")
        b_enc = (sae.b_enc.detach().cpu().double() - w_enc.double() @ b_dec.double()).float()
    else:
        b_enc = sae.b_enc.detach().cpu().float()
    meta = sae.metadata.get("atlas") if isinstance(sae.metadata.get("atlas"), dict) else {}
    n_samples = meta.get("n_samples") or sae.metadata.get("vectors") or (
        sae.report.samples if sae.report is not None else 0)
    best = meta.get("best_loss")
    d, h = cfg.d_in, cfg.d_sae
    ckpt = {
        "sae_state_dict": {"encoder.weight": w_enc.clone().contiguous(),
                           "encoder.bias": b_enc.clone().contiguous(),
                           "decoder.weight": sae.W_dec.detach().cpu().float().t().contiguous(),
                           "decoder.bias": b_dec.clone().contiguous()},
        "activation_mean": sae.mean.detach().cpu().float().clone().contiguous(),
        "activation_std": _atlas_std(sae.std.detach().cpu()).contiguous(),
        "config": {"input_dim": int(d), "hidden_dim": int(h), "expansion": float(h / d),
                   "k": int(cfg.k), "n_samples": int(n_samples)},
        "history": [],
        "best_loss": float(best) if isinstance(best, int | float) else float("nan"),
    }
    return ckpt, warnings


def export_atlas(sae: SAE, out: str | Path, *, name: str | None = None,
                 overwrite: bool = False, allow_inexact: bool = False
                 ) -> tuple[Path, list[str]]:
    """Write ``sae`` as ``<out>/<name>/sae_best.pt`` (``name``: their layer name it came
    with, else its hook point), atomically; an existing file is replaced only with
    ``overwrite`` (else OutputExistsError). Returns the file and the inexactness warnings."""
    meta = sae.metadata.get("atlas") if isinstance(sae.metadata.get("atlas"), dict) else {}
    name = name or meta.get("label") or sae.cfg.layer
    parts = Path(str(name)).parts if name else ()
    if not parts or Path(str(name)).is_absolute() or any(p in ("..", ".") for p in parts):
        raise VLAScopeError(f"bad layer name '{name}' for the export folder (give --name)")
    ckpt, warnings = atlas_checkpoint(sae, allow_inexact=allow_inexact)
    target = Path(out) / Path(*parts) / ATLAS_FILE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, overwrite=overwrite) as tmp:
            torch.save(ckpt, tmp)
    except OSError as e:
        raise VLAScopeError(f"cannot write {target}: {e}") from e
    return target, warnings
