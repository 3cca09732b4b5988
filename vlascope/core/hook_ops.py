"""Hook functions that are data: what the analyses install at a policy's hook points.

``policy.hook(name, fn)`` calls ``fn`` on the activation at ``name``. In process any
callable works; across a process boundary (``vlascope serve``) only data can travel, so
every hook the analyses install is one of these small objects: a ``Capture`` that keeps
what it saw, or an edit that returns a replacement. Each has ``to_wire()`` (plain values and
numpy arrays) and is rebuilt, checked, by ``op_from_wire`` on the other side, where the
server installs the very same object on its in-process policy. So one implementation runs
in both places and a remote policy computes exactly what the local one does.

Edits that depend on the rollout step (``StepEdit``) are installed as ``At(edit, t)``; the
edit's arrays (an SAE, an injection source) travel once and are referred to afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from .errors import VLAScopeError

Wire = dict[str, Any]


class WireFormatError(VLAScopeError):
    """A hook operation received over the wire that does not say what it should."""


# Checked readers of a wire dict ----------------------------------------------------------
def _field(d: Wire, key: str, kinds: type | tuple[type, ...], what: str) -> Any:
    if key not in d:
        raise WireFormatError(f"{what}: missing '{key}'")
    value = d[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise WireFormatError(f"{what}: '{key}' must not be a boolean")
    if not isinstance(value, kinds):
        raise WireFormatError(f"{what}: '{key}' has type {type(value).__name__}")
    return value


def _positions(d: Wire, what: str) -> tuple[int, ...]:
    raw = d.get("positions", [])
    if not isinstance(raw, list | tuple) or len(raw) > 1_000_000 or not all(
            isinstance(p, int) and not isinstance(p, bool) for p in raw):
        raise WireFormatError(f"{what}: 'positions' must be a list of integers")
    return tuple(int(p) for p in raw)


def _array(d: Wire, key: str, what: str, ndim: int | tuple[int, ...],
           optional: bool = False) -> np.ndarray | None:
    value = d.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise WireFormatError(f"{what}: '{key}' must be a numeric array")
    if value.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise WireFormatError(f"{what}: '{key}' has {value.ndim} dimensions, expected {ndim}")
    if not np.all(np.isfinite(value)):
        raise WireFormatError(f"{what}: '{key}' holds non-finite values")
    return value


def _select(act: torch.Tensor, positions: Sequence[int]) -> torch.Tensor | slice:
    """Index of the token axis to edit (activations are (B, tokens, d) or (B, d))."""
    if not positions or act.ndim < 3:
        return slice(None)
    n = act.shape[1]
    bad = [p for p in positions if not -n <= p < n]
    if bad:
        raise VLAScopeError(f"token positions {bad} outside 0..{n - 1}")
    return torch.as_tensor(list(positions), device=act.device)


class HookOp:
    """Base: a hook function with a wire form."""

    kind: ClassVar[str] = ""

    def __call__(self, act: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError

    def to_wire(self) -> Wire:
        raise NotImplementedError

    @classmethod
    def from_wire(cls, d: Wire) -> HookOp:
        raise NotImplementedError


class StepEdit:
    """An activation edit that may depend on the rollout step; installed as ``At(edit, t)``."""

    kind: ClassVar[str] = ""

    def apply(self, act: torch.Tensor, t: int) -> torch.Tensor:
        raise NotImplementedError

    def to_wire(self) -> Wire:
        raise NotImplementedError

    @classmethod
    def from_wire(cls, d: Wire) -> StepEdit:
        raise NotImplementedError


@dataclass(eq=False)
class At(HookOp):
    """``edit`` at rollout step ``t``."""

    edit: StepEdit
    t: int
    kind: ClassVar[str] = "at"

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        return self.edit.apply(act, self.t)


# Reading ---------------------------------------------------------------------------------
POOLS = ("tokens", "mean")


@dataclass(eq=False)
class Capture(HookOp):
    """Keep a float32 copy of every activation seen (``values``, one array per firing, the
    batch axis kept): the first ``rows`` batch rows, the token ``positions`` only, or the
    mean over tokens."""

    rows: int | None = None
    positions: tuple[int, ...] = ()
    pool: str = "tokens"
    values: list[np.ndarray] = field(default_factory=list)
    kind: ClassVar[str] = "capture"

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise WireFormatError(f"capture: pool must be one of {POOLS}, got '{self.pool}'")
        if self.rows is not None and self.rows < 1:
            raise WireFormatError("capture: rows must be at least 1")

    def __call__(self, act: torch.Tensor) -> None:
        a = act.detach()
        if self.rows is not None:
            a = a[:self.rows]
        if self.positions and a.ndim >= 3:
            a = a[:, _select(a, self.positions)]
        a = a.float()
        if self.pool == "mean" and a.ndim >= 3:
            a = a.mean(1)
        self.values.append(a.cpu().numpy())

    def to_wire(self) -> Wire:
        return {"kind": self.kind, "rows": self.rows, "positions": list(self.positions),
                "pool": self.pool}

    @classmethod
    def from_wire(cls, d: Wire) -> Capture:
        rows = d.get("rows")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)):
            raise WireFormatError("capture: 'rows' must be an integer or nil")
        pool = d.get("pool", "tokens")
        if not isinstance(pool, str):
            raise WireFormatError("capture: 'pool' must be a string")
        return cls(rows, _positions(d, "capture"), pool)


# Editing ---------------------------------------------------------------------------------
@dataclass(eq=False)
class MeanReplace(HookOp):
    """Token ISS: where ``keep`` (B, tokens) is 0, the token becomes ``mean`` (d,)."""

    mean: np.ndarray
    keep: np.ndarray
    kind: ClassVar[str] = "mean_replace"

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        if act.ndim != 3 or tuple(act.shape[:2]) != self.keep.shape or \
                act.shape[2] != self.mean.shape[0]:
            raise VLAScopeError(f"mean replacement: masks {self.keep.shape} and a "
                                f"{self.mean.shape[0]}-d mean do not fit tokens "
                                f"{tuple(act.shape)}")
        k = torch.from_numpy(self.keep).to(act.device, act.dtype)[:, :, None]
        return act * k + torch.from_numpy(self.mean).to(act.device, act.dtype)[None, None] * (1 - k)

    def to_wire(self) -> Wire:
        return {"kind": self.kind, "mean": self.mean, "keep": self.keep}

    @classmethod
    def from_wire(cls, d: Wire) -> MeanReplace:
        return cls(_array(d, "mean", "mean_replace", 1).astype(np.float32),
                   _array(d, "keep", "mean_replace", 2).astype(np.float32))


@dataclass(eq=False)
class AddVector(StepEdit):
    """Steering: add ``delta`` (d,) at the token ``positions`` (all when empty)."""

    delta: np.ndarray
    positions: tuple[int, ...] = ()
    kind: ClassVar[str] = "add_vector"

    def apply(self, act: torch.Tensor, t: int) -> torch.Tensor:
        if act.shape[-1] != self.delta.shape[0]:
            raise VLAScopeError(f"steer: a {self.delta.shape[0]}-d direction does not fit "
                                f"activations {tuple(act.shape)}")
        out = act.clone()
        out[:, _select(act, self.positions)] += torch.from_numpy(self.delta).to(
            act.device, act.dtype)
        return out

    def to_wire(self) -> Wire:
        return {"kind": self.kind, "delta": self.delta, "positions": list(self.positions)}

    @classmethod
    def from_wire(cls, d: Wire) -> AddVector:
        return cls(_array(d, "delta", "add_vector", 1).astype(np.float32),
                   _positions(d, "add_vector"))


@dataclass(eq=False)
class ReplaceValues(StepEdit):
    """Set the activation at ``positions`` to zero (``values`` None), to one array of the
    activation's shape (a mean), or, ``per_step``, to ``values[t]`` (the last step once the
    recording is shorter): layer ablation and injection."""

    values: np.ndarray | None = None
    per_step: bool = False
    positions: tuple[int, ...] = ()
    label: str = "replace"
    kind: ClassVar[str] = "replace"

    def apply(self, act: torch.Tensor, t: int) -> torch.Tensor:
        idx = _select(act, self.positions)
        out = act.clone()
        if self.values is None:
            out[:, idx] = 0
            return out
        v = self.values[min(t, len(self.values) - 1)] if self.per_step else self.values
        if tuple(v.shape) != tuple(act.shape[1:]):
            raise VLAScopeError(f"{self.label}: values of shape {tuple(v.shape)} do not fit "
                                f"activations {tuple(act.shape[1:])}")
        out[:, idx] = torch.from_numpy(np.ascontiguousarray(v)).to(
            act.device, act.dtype).expand_as(act)[:, idx]
        return out

    def to_wire(self) -> Wire:
        return {"kind": self.kind, "values": self.values, "per_step": self.per_step,
                "positions": list(self.positions), "label": self.label}

    @classmethod
    def from_wire(cls, d: Wire) -> ReplaceValues:
        per_step = bool(d.get("per_step", False))
        values = _array(d, "values", "replace", (1, 2, 3, 4), optional=True)
        if per_step and (values is None or len(values) == 0):
            raise WireFormatError("replace: per-step values need at least one step")
        label = d.get("label", "replace")
        return cls(None if values is None else values.astype(np.float32), per_step,
                   _positions(d, "replace"), str(label)[:64])


@dataclass(eq=False)
class SaeAblation(StepEdit):
    """Move SAE ``features`` to ``target`` (zeros or their means) along their decoder
    directions, the reconstruction error left in place."""

    sae: Any  # vlascope.core.sae.SAE
    features: tuple[int, ...]
    target: np.ndarray  # (k,)
    positions: tuple[int, ...] = ()
    kind: ClassVar[str] = "sae_ablation"

    def __post_init__(self) -> None:
        d_sae = self.sae.cfg.d_sae
        if not self.features or min(self.features) < 0 or max(self.features) >= d_sae:
            raise VLAScopeError(f"ablate_features: features outside 0..{d_sae - 1}")
        if self.target.shape != (len(self.features),):
            raise WireFormatError("sae_ablation: one target per feature")
        feats = torch.as_tensor(list(self.features), dtype=torch.long)
        self._feats = feats
        self._dirs = torch.stack([self.sae.direction(int(f)) for f in feats]).detach()

    def apply(self, act: torch.Tensor, t: int) -> torch.Tensor:
        idx = _select(act, self.positions)
        sel = act[:, idx]
        flat = sel.reshape(-1, sel.shape[-1]).float().cpu()
        with torch.no_grad():
            codes = self.sae.encode(flat)[:, self._feats]
        change = (torch.from_numpy(self.target)[None] - codes) @ self._dirs
        out = act.clone()
        out[:, idx] = sel + change.reshape(sel.shape).to(act.device, act.dtype)
        return out

    def to_wire(self) -> Wire:
        return {"kind": self.kind, **_sae_to_wire(self.sae),
                "features": list(self.features), "target": self.target,
                "positions": list(self.positions)}

    @classmethod
    def from_wire(cls, d: Wire) -> SaeAblation:
        sae = _sae_from_wire(d, "sae_ablation")
        target = _array(d, "target", "sae_ablation", 1).astype(np.float32)
        return cls(sae, _features(d, "sae_ablation"), target, _positions(d, "sae_ablation"))


@dataclass(eq=False)
class SaeScale(StepEdit):
    """Action Atlas' steering: each token's code of ``feature`` times (1 + ``strength``),
    the activation moved by the change along the decoder direction (its error term left in
    place): ``x + strength * z_f(x) * direction(f)``, token by token."""

    sae: Any  # vlascope.core.sae.SAE
    feature: int
    strength: float
    positions: tuple[int, ...] = ()
    kind: ClassVar[str] = "sae_scale"

    def __post_init__(self) -> None:
        d_sae = self.sae.cfg.d_sae
        if not 0 <= int(self.feature) < d_sae:
            raise VLAScopeError(f"steer: feature {self.feature} outside 0..{d_sae - 1}")
        if not np.isfinite(self.strength):
            raise WireFormatError("sae_scale: strength must be finite")
        self._dir = self.sae.direction(int(self.feature)).detach()

    def apply(self, act: torch.Tensor, t: int) -> torch.Tensor:
        idx = _select(act, self.positions)
        sel = act[:, idx]
        flat = sel.reshape(-1, sel.shape[-1]).float().cpu()
        with torch.no_grad():
            code = self.sae.encode(flat)[:, int(self.feature)]
        change = (float(self.strength) * code)[:, None] * self._dir[None]
        out = act.clone()
        out[:, idx] = sel + change.reshape(sel.shape).to(act.device, act.dtype)
        return out

    def to_wire(self) -> Wire:
        return {"kind": self.kind, **_sae_to_wire(self.sae), "feature": int(self.feature),
                "strength": float(self.strength), "positions": list(self.positions)}

    @classmethod
    def from_wire(cls, d: Wire) -> SaeScale:
        sae = _sae_from_wire(d, "sae_scale")
        feature = _field(d, "feature", int, "sae_scale")
        strength = _field(d, "strength", (int, float), "sae_scale")
        return cls(sae, int(feature), float(strength), _positions(d, "sae_scale"))


def _sae_to_wire(sae: Any) -> Wire:
    state = {k: v.detach().cpu().numpy() for k, v in sae.state_dict().items()}
    return {"config": sae.cfg.to_dict(), "state": state}


def _features(d: Wire, what: str) -> tuple[int, ...]:
    features = d.get("features")
    if not isinstance(features, list) or not all(
            isinstance(f, int) and not isinstance(f, bool) for f in features):
        raise WireFormatError(f"{what}: 'features' must be a list of integers")
    return tuple(features)


def _sae_from_wire(d: Wire, what: str) -> Any:
    """The SAE an edit carries, its config and every tensor checked."""
    from .sae import SAE, SAEConfig

    config = _field(d, "config", dict, what)
    state = _field(d, "state", dict, what)
    try:
        cfg = SAEConfig.from_dict(config)
    except (TypeError, ValueError, VLAScopeError) as e:
        raise WireFormatError(f"{what}: bad SAE config ({e})") from None
    enc = state.get("W_enc")  # sizes checked against the data before allocating any
    if not isinstance(enc, np.ndarray) or enc.shape != (cfg.d_sae, cfg.d_in):
        raise WireFormatError(f"{what}: 'W_enc' must be ({cfg.d_sae}, {cfg.d_in}) "
                              "as the config says")
    sae = SAE(cfg)
    expected = sae.state_dict()
    if set(state) != set(expected):
        raise WireFormatError(f"{what}: SAE state must hold {sorted(expected)}")
    tensors = {}
    for key, ref in expected.items():
        arr = _array(state, key, what, ref.ndim)
        if tuple(arr.shape) != tuple(ref.shape):
            raise WireFormatError(f"{what}: '{key}' is {arr.shape}, the config "
                                  f"says {tuple(ref.shape)}")
        tensors[key] = torch.from_numpy(np.array(arr, np.float32))
    sae.load_state_dict(tensors)
    return sae.eval()


HOOK_OPS: dict[str, type[HookOp]] = {c.kind: c for c in (Capture, MeanReplace)}
STEP_EDITS: dict[str, type[StepEdit]] = {
    c.kind: c for c in (AddVector, ReplaceValues, SaeAblation, SaeScale)}


def op_from_wire(d: Any) -> HookOp | StepEdit:
    """Rebuild a hook operation or step edit from its wire form, checking every field."""
    if not isinstance(d, dict):
        raise WireFormatError(f"a hook operation must be a map, got {type(d).__name__}")
    kind = d.get("kind")
    cls = HOOK_OPS.get(kind) or STEP_EDITS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise WireFormatError(f"unknown hook operation '{kind}' (known: "
                              f"{', '.join([*HOOK_OPS, *STEP_EDITS])})")
    try:
        return cls.from_wire(d)
    except WireFormatError:
        raise
    except VLAScopeError as e:
        raise WireFormatError(str(e)) from None
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise WireFormatError(f"{kind}: {type(e).__name__}: {e}") from None
