"""Interventions as data: small, serialisable records that a closed-loop rollout applies
step by step, that episodes store in their metadata, and that the GUI toggles.

Two places an intervention can act, one mechanism each:

- the observation, before the policy sees it (counterfactual prompt, visual perturbation);
- an activation at a named hook point of the policy (steer, feature ablation, layer
  ablation, injection), through the policy's ``hook(name, fn)`` capability.

``bind(interventions, policy)`` checks everything up front (hook points exist, SAEs match
their layer, injection sources have the activations) and returns an ``Applied`` object
whose ``observation(obs, t)`` and ``hooks(t)`` the rollout calls at every step. Every
intervention acts on steps ``start <= t < stop`` (``stop`` None = to the end).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import PluginError, UnknownNameError, VLAScopeError
from .hook_ops import AddVector, At, ReplaceValues, SaeAblation, SaeScale, StepEdit
from .policy import Observation

if TYPE_CHECKING:
    from .sae import SAE

@dataclass(frozen=True, kw_only=True)
class Intervention:
    """Base: a step window and (de)serialisation; subclasses say what they change."""

    kind: ClassVar[str] = ""
    start: int = 0
    stop: int | None = None

    def active(self, t: int) -> bool:
        return t >= self.start and (self.stop is None or t < self.stop)

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, **asdict(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def observation(self, obs: Observation, t: int) -> Observation:
        """What the policy sees at step ``t`` (unchanged unless the subclass says so)."""
        return obs

    def validate(self) -> None:
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise VLAScopeError(f"{self.kind}: empty step window [{self.start}, {self.stop})")


# Observation-side ------------------------------------------------------------------------
COUNTERFACTUALS = ("null", "negation", "wrong_object", "paraphrase")
# The wrong object is the other cube (the scenes' pairs differ in the cube only, so the
# swapped prompt is the partner task's instruction).
_SWAPS = (("red", "blue"), ("green", "yellow"))
_PARAPHRASES = (("pick up", "grab"), ("put", "place"), ("stack", "set"), ("cube", "block"))


def counterfactual_prompt(instruction: str, kind: str) -> str:
    """The instruction rewritten as the paper's counterfactual prompts: empty, negated, with
    the wrong object named, or paraphrased (same meaning, other words)."""
    if kind == "null":
        return ""
    if kind == "negation":
        return f"do not {instruction}"
    if kind == "wrong_object":
        return _swap_words(instruction, _SWAPS)
    if kind == "paraphrase":
        text = instruction
        for a, b in _PARAPHRASES:
            text = text.replace(a, b)
        return text
    raise UnknownNameError("counterfactual prompt", kind, COUNTERFACTUALS)


def _swap_words(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    for a, b in pairs:
        text = text.replace(a, "\0").replace(b, a).replace("\0", b)
    return text


@dataclass(frozen=True, kw_only=True)
class Prompt(Intervention):
    """The policy reads ``text`` instead of the task's instruction (a counterfactual)."""

    kind: ClassVar[str] = "prompt"
    text: str
    variant: str = "custom"  # which counterfactual produced the text, for tables

    def observation(self, obs: Observation, t: int) -> Observation:
        return replace(obs, instruction=self.text)


@dataclass(frozen=True, kw_only=True)
class Perturb(Intervention):
    """A visual corruption of the policy's camera images (noise, blur, occlusion, ...)."""

    kind: ClassVar[str] = "perturb"
    perturbation: str
    severity: int = 3
    seed: int = 0
    cameras: tuple[str, ...] = ()  # empty: every camera

    def validate(self) -> None:
        super().validate()
        from .perturbations import perturbation_kinds

        if self.perturbation not in perturbation_kinds():
            raise UnknownNameError("perturbation", self.perturbation, perturbation_kinds())
        if not 1 <= int(self.severity) <= 5:
            raise VLAScopeError(f"perturb: severity {self.severity} outside 1..5")

    def observation(self, obs: Observation, t: int) -> Observation:
        from .perturbations import perturb_images

        images = perturb_images(obs.images, self.perturbation, int(self.severity),
                                seed=self.seed * 100_003 + t, cameras=self.cameras or None)
        return replace(obs, images=images)


# Activation-side -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LayerIntervention(Intervention):
    """Acts on the activation at hook point ``layer`` (tokens may restrict the positions)."""

    layer: str
    positions: tuple[int, ...] = ()  # token positions; empty: all

    def make_edit(self, policy: Any) -> StepEdit:
        """The edit as data (``core/hook_ops.py``), so it also acts on a remote policy."""
        raise NotImplementedError

    def limit(self) -> int | None:
        """The last step this intervention can serve (None: no limit)."""
        return None


def _finite(name: str, value: float) -> float:
    if not math.isfinite(float(value)):
        raise VLAScopeError(f"{name} must be a finite number, got {value}")
    return float(value)


def _load_sae(path: str, layer: str, pooling: str | None = None) -> SAE:
    """The SAE at ``path``, checked against the hook point; loaded once per file version
    (a steering sweep binds the same SAE for every rollout)."""
    from .sae.io import sae_weights_file

    try:
        stamp = sae_weights_file(path).stat().st_mtime_ns
    except OSError:
        stamp = None  # load_sae says what is missing
    return _load_sae_cached(str(Path(path).resolve()), stamp, layer, pooling)


@lru_cache(maxsize=8)
def _load_sae_cached(path: str, stamp: int | None, layer: str, pooling: str | None) -> SAE:
    from .sae import load_sae

    return load_sae(path, layer=layer, pooling=pooling)


@dataclass(frozen=True, kw_only=True)
class Steer(LayerIntervention):
    """Add ``alpha`` x (the feature's mean active value) x its SAE decoder direction; for an
    SAE with ``steering="scale"`` (Action Atlas'), multiply the feature's code on every
    token by (1 + ``alpha``) instead (``SaeScale``)."""

    kind: ClassVar[str] = "steer"
    sae: str
    feature: int
    alpha: float

    def validate(self) -> None:
        super().validate()
        _finite("steer: alpha", self.alpha)

    def make_edit(self, policy: Any) -> StepEdit:
        sae = _load_sae(self.sae, self.layer)
        if not 0 <= self.feature < sae.cfg.d_sae:
            raise VLAScopeError(f"steer: feature {self.feature} outside 0..{sae.cfg.d_sae - 1}")
        if sae.cfg.steering == "scale":
            return SaeScale(sae, int(self.feature), float(self.alpha), self.positions)
        scale = float(sae.feature_scale[self.feature]) or 1.0
        delta = (self.alpha * scale * sae.direction(self.feature)).detach().float()
        return AddVector(delta.numpy(), self.positions)


@dataclass(frozen=True, kw_only=True)
class AblateFeatures(LayerIntervention):
    """Set SAE features to zero (or their mean over the SAE's training data) and move the
    activation by the matching decoder directions; the SAE's reconstruction error stays, so
    an inactive feature ablated to zero leaves the activation exactly as it was."""

    kind: ClassVar[str] = "ablate_features"
    sae: str
    features: tuple[int, ...]
    mode: str = "zero"  # "zero" or "mean"

    def validate(self) -> None:
        super().validate()
        if self.mode not in ("zero", "mean"):
            raise UnknownNameError("ablation mode", self.mode, ("zero", "mean"))
        if not self.features:
            raise VLAScopeError("ablate_features: no features given")

    def make_edit(self, policy: Any) -> StepEdit:
        # codes are per token: an SAE of mean-pooled vectors would encode the wrong thing
        sae = _load_sae(self.sae, self.layer, pooling="tokens")
        feats = [int(f) for f in self.features]
        if min(feats) < 0 or max(feats) >= sae.cfg.d_sae:
            raise VLAScopeError(f"ablate_features: features outside 0..{sae.cfg.d_sae - 1}")
        target = np.zeros(len(feats), np.float32)
        if self.mode == "mean":
            target = sae.feature_mean[feats].detach().float().numpy()
        return SaeAblation(sae, tuple(feats), target, self.positions)


@dataclass(frozen=True, kw_only=True)
class AblateLayer(LayerIntervention):
    """Replace a whole layer's output by zeros or by its mean over recorded episodes."""

    kind: ClassVar[str] = "ablate_layer"
    mode: str = "zero"
    mean_from: tuple[str, ...] = ()  # episode files with captured activations of ``layer``

    def validate(self) -> None:
        super().validate()
        if self.mode not in ("zero", "mean"):
            raise UnknownNameError("ablation mode", self.mode, ("zero", "mean"))
        if self.mode == "mean" and not self.mean_from:
            raise VLAScopeError("ablate_layer mode 'mean' needs episodes to take the mean "
                                "from (mean_from)")

    def make_edit(self, policy: Any) -> StepEdit:
        mean = layer_mean(self.mean_from, self.layer) if self.mode == "mean" else None
        return ReplaceValues(mean, False, self.positions, "ablate_layer")


ON_SHORT = ("hold", "stop")


@dataclass(frozen=True, kw_only=True)
class Inject(LayerIntervention):
    """Replace a layer's activations by those recorded at the same step of another episode
    (another task's, or the same task's under a null prompt). When the source is shorter
    than the rollout: ``hold`` keeps injecting its last step, ``stop`` ends the rollout."""

    kind: ClassVar[str] = "inject"
    source: str
    on_short: str = "hold"

    def validate(self) -> None:
        super().validate()
        if self.on_short not in ON_SHORT:
            raise UnknownNameError("injection policy for a short source", self.on_short,
                                   ON_SHORT)

    def _source(self) -> np.ndarray:
        from .episode import Episode

        with Episode(self.source) as ep:
            if self.layer not in ep.activation_names:
                raise VLAScopeError(
                    f"inject: {self.source} has no activations of '{self.layer}' (recorded: "
                    f"{', '.join(ep.activation_names) or 'none'}); record the source with "
                    f"`vlascope capture --layers {self.layer}`")
            pooling = ep.metadata.get("capture", {}).get("pooling", "tokens")
            if pooling != "tokens":
                raise VLAScopeError(f"inject: {self.source} holds '{pooling}'-pooled "
                                    "activations; injection needs them per token")
            return ep.activations(self.layer)

    def limit(self) -> int | None:
        if self.on_short != "stop":
            return None
        from .episode import Episode

        with Episode(self.source) as ep:
            return ep.n_steps

    def make_edit(self, policy: Any) -> StepEdit:
        src = self._source()
        if len(src) == 0:
            raise VLAScopeError(f"inject: {self.source} has no steps")
        return ReplaceValues(src.astype(np.float32, copy=False), True, self.positions,
                             f"inject into '{self.layer}'")


KINDS: dict[str, type[Intervention]] = {
    c.kind: c for c in (Prompt, Perturb, Steer, AblateFeatures, AblateLayer, Inject)}


def from_dict(d: dict[str, Any]) -> Intervention:
    """Rebuild an intervention from its ``to_dict`` form (episode metadata, JSON files)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in KINDS:
        raise UnknownNameError("intervention", str(kind), list(KINDS))
    cls = KINDS[kind]
    if kind == "prompt" and "step" in d:  # episodes before interventions were data
        d["start"] = d.pop("step")
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise VLAScopeError(f"{kind}: unknown field(s) {sorted(unknown)} (known: "
                            f"{sorted(names)})")
    for f in fields(cls):
        if f.name in d and isinstance(d[f.name], list):
            d[f.name] = tuple(d[f.name])
    try:
        iv = cls(**d)
    except TypeError as e:
        raise VLAScopeError(f"{kind}: {e}") from e
    iv.validate()
    return iv


def layer_mean(episodes: Sequence[str | Path], layer: str) -> np.ndarray:
    """Mean of a layer's recorded activations over every step of ``episodes``."""
    from .episode import Episode

    total, n = None, 0
    for path in episodes:
        with Episode(path) as ep:
            if layer not in ep.activation_names:
                raise VLAScopeError(f"{path} has no activations of '{layer}'")
            a = ep.activations(layer).astype(np.float64)
        if total is not None and a.shape[1:] != total.shape:
            raise VLAScopeError(f"{path}: '{layer}' recorded as {a.shape[1:]} per step, the "
                                f"other episodes as {total.shape} (per-token vs mean pooling?)")
        total = a.sum(0) if total is None else total + a.sum(0)
        n += len(a)
    if not n:
        raise VLAScopeError(f"no recorded steps of '{layer}' to take the mean from")
    return (total / n).astype(np.float32)


# Binding to a policy ---------------------------------------------------------------------
@dataclass
class Applied:
    """Interventions bound to one policy: what the rollout calls at every step."""

    interventions: list[Intervention]
    policy: Any
    _edits: list[tuple[LayerIntervention, StepEdit]] = field(default_factory=list)

    def observation(self, obs: Observation, t: int) -> Observation:
        for iv in self.interventions:
            if iv.active(t):
                obs = iv.observation(obs, t)
        return obs

    def limit(self) -> int | None:
        limits = [iv.limit() for iv in self.interventions if isinstance(iv, LayerIntervention)]
        limits = [x for x in limits if x is not None]
        return min(limits) if limits else None

    @contextmanager
    def hooks(self, t: int) -> Iterator[None]:
        """Register the activation edits active at step ``t`` for one forward pass."""
        with ExitStack() as stack:
            for iv, edit in self._edits:
                if iv.active(t):
                    stack.enter_context(self.policy.hook(iv.layer, At(edit, t)))
            yield

    def records(self) -> list[dict[str, Any]]:
        return [iv.to_dict() for iv in self.interventions]


def bind(interventions: Sequence[Intervention | dict], policy: Any) -> Applied:
    """Check the interventions against ``policy`` and prepare their edits (loads SAEs and
    injection sources once, not per step)."""
    ivs = [from_dict(i) if isinstance(i, dict) else i for i in interventions]
    for iv in ivs:
        iv.validate()
    applied = Applied(ivs, policy)
    layered = [iv for iv in ivs if isinstance(iv, LayerIntervention)]
    if layered:
        layers = getattr(policy, "layers", None)
        if layers is None or not hasattr(policy, "hook"):
            raise PluginError(f"{type(policy).__name__} exposes no hook points, so it cannot "
                              f"take {layered[0].kind} interventions")
        known = list(layers())
        for iv in layered:
            if iv.layer not in known:
                raise UnknownNameError("hook point", iv.layer, known)
            applied._edits.append((iv, iv.make_edit(policy)))
    return applied
