"""The sparse autoencoder: config, module and report. Inputs are raw activations; the SAE
z-scores them per dimension itself, so callers never handle the statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from vlascope.core.errors import VLAScopeError

# "topk_signed" is Action Atlas's TopK (``core/sae/atlas_format.py``): the k largest
# pre-activations kept with their sign (no ReLU) and no ``b_dec`` subtracted before the
# encoder, so a published checkpoint loads bit for bit. It is read, not trained here.
KINDS = ("topk", "relu", "topk_signed")
TOPK_KINDS = ("topk", "topk_signed")
POOLINGS = ("tokens", "mean")
# How ``Steer`` moves a feature: "add" adds alpha x feature_scale x its direction (the
# same vector on every token); "scale" multiplies the feature's code on each token by
# (1 + alpha), Action Atlas's steering (its ``PerTokenSteeringHook``).
STEERINGS = ("add", "scale")


class SAEMismatchError(VLAScopeError):
    """A saved SAE opened for a different hook point or pooling than it was trained on, or
    given activations of another size."""


@dataclass
class SAEConfig:
    """What an SAE is and which activations it reads (``layer``/``pooling`` are checked when
    a saved SAE is loaded for a hook point, so features never get applied to the wrong one)."""

    d_in: int
    expansion: int = 8
    kind: str = "topk"  # "topk" (exactly k active), "relu" (ReLU + L1), "topk_signed"
    k: int = 64
    # relu only: loss per sample = (||z - zhat||^2 + l1_coeff * sum(codes)) / d_in, the
    # lambda of Anthropic's SAE recipe. 1.0 on the reference policy's trunk.2.resid: FVE 0.92
    # at L0 ~115 of 1024 after 600 steps (L0 still falling); 3.0: FVE 0.74 at L0 ~50.
    l1_coeff: float = 1.0
    layer: str = ""
    pooling: str = "tokens"
    steering: str = "add"  # see STEERINGS

    def __post_init__(self) -> None:
        if int(self.d_in) < 1 or int(self.expansion) < 1:
            raise VLAScopeError(f"SAE needs d_in >= 1 and expansion >= 1 "
                                f"(got d_in={self.d_in}, expansion={self.expansion})")
        self.d_in, self.expansion, self.k = int(self.d_in), int(self.expansion), int(self.k)
        if self.kind not in KINDS:
            raise VLAScopeError(f"unknown SAE kind '{self.kind}' (known: {', '.join(KINDS)})")
        if self.kind in TOPK_KINDS and not 1 <= self.k <= self.d_sae:
            raise VLAScopeError(f"TopK SAE needs 1 <= k <= d_sae={self.d_sae} (got k={self.k})")
        if not self.l1_coeff >= 0:
            raise VLAScopeError(f"l1_coeff must be >= 0 (got {self.l1_coeff})")
        if self.steering not in STEERINGS:
            raise VLAScopeError(f"unknown steering '{self.steering}' "
                                f"(known: {', '.join(STEERINGS)})")
        if self.pooling not in POOLINGS:
            raise VLAScopeError(f"unknown pooling '{self.pooling}' "
                                f"(known: {', '.join(POOLINGS)})")

    @property
    def d_sae(self) -> int:
        return self.d_in * self.expansion

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SAEConfig:
        """Unknown keys are ignored so newer files stay readable."""
        if not isinstance(d, dict) or "d_in" not in d:
            raise VLAScopeError(f"SAE config needs at least 'd_in' (got {d!r})")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class SAEReport:
    """Quality on some data: what the acceptance targets (FVE, L0, dead) are stated in."""

    fve: float  # 1 - SSE / total sum of squares, both in z-space
    l0: float  # mean number of active features per sample
    dead_fraction: float  # fraction of features never active on the data
    samples: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SAE(nn.Module):
    """Encoder ``relu|topk(W_enc (z - b_dec) + b_enc)`` (``topk_signed``: the k largest of
    ``W_enc z + b_enc`` with their sign), decoder ``codes @ W_dec + b_dec`` in
    z-space; ``encode``/``decode``/``forward`` take and give raw activations.

    ``W_dec`` rows are the features' directions (kept unit-norm by training); ``W_enc`` has
    the same (d_sae, d_in) layout. Buffers ``mean``/``std`` are the z-scoring statistics of the
    training inputs, ``feature_scale`` each feature's mean activation when active (the unit
    of steering strength) and ``feature_mean`` its mean over all training samples (zeros
    included: the value of mean-ablation). The methods are differentiable (for
    attribution); wrap plain inference in ``torch.no_grad()``.
    """

    mean: Tensor
    std: Tensor
    feature_scale: Tensor
    feature_mean: Tensor

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        d, m = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.empty(m, d))
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.W_dec = nn.Parameter(torch.empty(m, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.register_buffer("feature_scale", torch.zeros(m))
        self.register_buffer("feature_mean", torch.zeros(m))
        self.report: SAEReport | None = None  # set by train_sae / load_sae
        self.metadata: dict[str, Any] = {}  # ``extra`` of save_sae, restored by load_sae
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Unit-norm random decoder rows, encoder = decoder transpose (Gao et al. 2024): every
        feature starts out reading the direction it writes, which avoids early dead features."""
        w = torch.randn(self.W_dec.shape, generator=generator, dtype=torch.float32)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec.copy_(w)
        self.W_enc.copy_(w)
        self.b_enc.zero_()
        self.b_dec.zero_()

    # Z-scoring ------------------------------------------------------------------------
    def _check(self, x: Tensor) -> Tensor:
        x = torch.as_tensor(x)
        if x.shape[-1:] != (self.cfg.d_in,):
            raise SAEMismatchError(f"SAE for layer '{self.cfg.layer}' takes vectors of size "
                                   f"{self.cfg.d_in}, got shape {tuple(x.shape)} (an SAE "
                                   "of another layer or model?)")
        return x.to(self.W_dec.device, self.W_dec.dtype)

    def normalize(self, x_raw: Tensor) -> Tensor:
        return (self._check(x_raw) - self.mean) / self.std

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.std + self.mean

    # Codes ------------------------------------------------------------------------------
    def pre_activations(self, z: Tensor) -> Tensor:
        """Encoder pre-activations of z-scored inputs (N, d_sae)."""
        if self.cfg.kind == "topk_signed":  # as Atlas's nn.Linear computes it, to the bit
            return torch.nn.functional.linear(z, self.W_enc, self.b_enc)
        return (z - self.b_dec) @ self.W_enc.t() + self.b_enc

    def encode_z(self, z: Tensor) -> Tensor:
        pre = self.pre_activations(z)
        if self.cfg.kind == "relu":
            return torch.relu(pre)
        vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        if self.cfg.kind == "topk":
            vals = torch.relu(vals)
        return torch.zeros_like(pre).scatter(-1, idx, vals)

    def decode_z(self, codes: Tensor) -> Tensor:
        return codes @ self.W_dec + self.b_dec

    def encode(self, x_raw: Tensor) -> Tensor:
        """(..., d_in) raw activations -> (..., d_sae) codes (non-negative but for
        ``topk_signed``)."""
        return self.encode_z(self.normalize(x_raw))

    def decode(self, codes: Tensor) -> Tensor:
        """(..., d_sae) codes -> raw-space reconstruction."""
        codes = torch.as_tensor(codes).to(self.W_dec.device, self.W_dec.dtype)
        if codes.shape[-1:] != (self.cfg.d_sae,):
            raise VLAScopeError(f"SAE has {self.cfg.d_sae} features, got codes of shape "
                                f"{tuple(codes.shape)}")
        return self.denormalize(self.decode_z(codes))

    def forward(self, x_raw: Tensor) -> tuple[Tensor, Tensor]:
        codes = self.encode(x_raw)
        return self.denormalize(self.decode_z(codes)), codes

    # Features ---------------------------------------------------------------------------
    def _feature(self, feature: int) -> int:
        f = int(feature)
        if not 0 <= f < self.cfg.d_sae:
            raise VLAScopeError(f"feature {feature} out of range (SAE has {self.cfg.d_sae})")
        return f

    def direction(self, feature: int) -> Tensor:
        """(d_in,) what one unit of the feature adds to a raw activation: the decoder row
        scaled back by ``std``. Steering adds ``alpha * feature_scale[f] * direction(f)``."""
        return (self.W_dec[self._feature(feature)] * self.std).detach()

    def decoder_directions(self) -> Tensor:
        """(d_sae, d_in) unit-norm decoder rows in z-space (for the atlas' geometry)."""
        w = self.W_dec.detach()
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
