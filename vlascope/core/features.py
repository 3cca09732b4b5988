"""SAE features of one layer over recorded frames, for the inspector's feature browser.

The inspector trains on the frames it already has (a live or opened recording): the policy
is run again on each stored observation with a read-only hook, so any episode can be
explained, not only those recorded with ``--capture``. What the browser shows comes from
that one capture: per-feature statistics (density, mean active value, labels), each
feature's activation over the episode's steps (the maximum over tokens), its top frames
with the token that fired, and one frame's per-token activations as an image overlay.
No Qt here: the app's Features dock runs these in its worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .capture import ActivationSet
from .errors import CancelledError, VLAScopeError
from .hook_ops import Capture
from .policy import Observation, common_noise
from .sae import SAE, SAEConfig, TrainResult, train_sae
from .sae.stats import FeatureStats, SampleInfo, cohens_d, feature_stats
from .saliency.iss import grid_scores_to_maps

Progress = Callable[[int, int], None]
TrainProgress = Callable[[int, int, dict], None]


def visual_positions(policy: Any, layer: str) -> list[int]:
    """Sequence positions of the visual tokens at ``layer`` (all of ``tokens.visual``; the
    ``visual`` group of a layer that holds the prompt sequence)."""
    if layer == "tokens.visual":
        layout = policy.visual_token_layout()
        return list(range(sum(len(c["positions"]) for c in layout.values())))
    groups = policy.token_groups(layer) if hasattr(policy, "token_groups") else {}
    positions = list(groups.get("visual", []))
    if not positions:
        raise VLAScopeError(f"hook point '{layer}' holds no visual tokens; pick a layer "
                            "that does (tokens.visual or a layer of the VLM/trunk)")
    return positions


def capture_frames(policy: Any, observations: Sequence[Observation], layer: str, *,
                   batch_size: int = 8, progress: Progress | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> ActivationSet:
    """Run ``policy`` on each observation (under common noise) and keep the visual tokens'
    vectors at ``layer``: one row per (step, visual token), ``token`` the sequence position
    (at ``tokens.visual``, the index among the visual tokens)."""
    if not observations:
        raise VLAScopeError("no frames to capture")
    if layer not in policy.layers():
        raise VLAScopeError(f"no hook point '{layer}' (known: {', '.join(policy.layers())})")
    positions = visual_positions(policy, layer)
    rows, steps = [], []
    grab = Capture(positions=tuple(positions))  # an action expert's layers fire once per
    # denoising step: the first firing of each call is the one that reads the frame

    with common_noise(policy), policy.hook(layer, grab):
        for start in range(0, len(observations), batch_size):
            if should_cancel is not None and should_cancel():
                raise CancelledError(f"capture cancelled after {start} of "
                                     f"{len(observations)} frames")
            grab.values.clear()
            batch = list(observations[start:start + batch_size])
            policy.batch_infer(batch)
            if not grab.values:
                raise VLAScopeError(f"hook point '{layer}' did not fire")
            grabbed = grab.values[0]
            rows.append(grabbed.reshape(-1, grabbed.shape[-1]))
            steps.append(np.repeat(np.arange(start, start + len(batch)), len(positions)))
            if progress is not None:
                progress(start + len(batch), len(observations))
    x = np.concatenate(rows).astype(np.float32)
    token = np.tile(np.asarray(positions), len(observations))
    return ActivationSet(x, np.zeros(len(x), np.int64), np.concatenate(steps), token, [],
                         layer, "tokens")


@dataclass
class FeatureSet:
    """An SAE over one layer's visual tokens and what the browser shows about it."""

    sae: SAE
    layer: str
    stats: FeatureStats
    step_max: np.ndarray  # (steps, F) each feature's largest activation at each step
    samples: ActivationSet  # the vectors it was trained on (for top frames)
    layout: dict[str, dict]  # the policy's visual token layout at capture time
    positions: list[int]  # visual token positions at the layer, in layout order
    result: TrainResult | None = None
    path: str = ""  # where the SAE is saved (steering refers to it)
    #: Cohen's d of each feature between the motion phase it prefers and the other steps
    cohen_d: np.ndarray | None = None
    d_phase: np.ndarray | None = None  # that phase
    #: largest action change when the feature alone is ablated (NaN: not measured)
    effects: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.sae.cfg.d_sae
        if self.cohen_d is None:
            self.cohen_d = np.zeros(n)
            self.d_phase = np.full(n, "", dtype=object)
        if self.effects is None:
            self.effects = np.full(n, np.nan)

    def cell(self, token: int) -> tuple[str, int, int, tuple[int, int]]:
        """Where a visual token sits: (camera, row, column, grid shape)."""
        return cell_of(self.layout, self.positions, token)

    @property
    def n_features(self) -> int:
        return self.sae.cfg.d_sae

    def top_frames(self, feature: int, n: int = 6) -> list[tuple[int, int, float]]:
        """(step, token position, activation) of the feature's strongest samples, one per
        step, strongest first."""
        out, seen = [], set()
        for row, value in zip(self.stats.top_samples[feature], self.stats.top_values[feature],
                              strict=True):
            if row < 0 or value <= 0:
                break
            step = int(self.samples.step[row])
            if step not in seen:
                seen.add(step)
                out.append((step, int(self.samples.token[row]), float(value)))
            if len(out) == n:
                break
        return out

    def columns(self) -> dict[str, np.ndarray]:
        """What the browser lists, one array per column over the features: density, mean
        active value, the step where it peaks, Cohen's d and its phase, ablation effect
        (NaN: not measured), label."""
        peak = self.step_max.argmax(0) if len(self.step_max) else np.zeros(self.n_features)
        return {"density": np.asarray(self.stats.density, np.float64),
                "mean": np.asarray(self.stats.mean_active, np.float64),
                "peak_step": np.asarray(peak, np.int64),
                "cohen_d": np.asarray(self.cohen_d, np.float64),
                "d_phase": np.array([str(p) for p in self.d_phase], dtype=object),
                "effect": np.asarray(self.effects, np.float64),
                "label": np.array([str(s) for s in self.stats.labels], dtype=object)}


def lively_feature(fs: FeatureSet, min_density: float = 0.02) -> int:
    """The feature whose activation changes most over the episode (among those that fire
    on at least ``min_density`` of the tokens): a more telling one than the densest."""
    spread = np.where(fs.stats.density >= min_density, fs.step_max.std(0), -1.0)
    return int(np.argmax(spread))


def encode(sae: SAE, x: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """(N, d) raw activations -> (N, F) codes, in chunks."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            out.append(sae.encode(torch.as_tensor(x[i:i + chunk])).numpy())
    return np.concatenate(out) if out else np.zeros((0, sae.cfg.d_sae), np.float32)


def describe(sae: SAE, samples: ActivationSet, layout: dict[str, dict],
             positions: list[int], task: str = "", result: TrainResult | None = None,
             phases: Sequence[str] | None = None) -> FeatureSet:
    """Statistics, per-step maxima and top samples of every feature of ``sae``; with the
    motion phase of each step (``measures.motion_phases``), labels name the phase a
    feature prefers and Cohen's d says how strongly."""
    codes = encode(sae, samples.x)
    phase = None if phases is None else np.asarray(phases, dtype=str)[samples.step]
    info = SampleInfo(samples.episode, samples.step, samples.token,
                      np.full(len(codes), task or "episode"), phase=phase)
    stats = feature_stats(codes, info, n_top=32)
    n_steps = int(samples.step.max()) + 1
    step_max = np.zeros((n_steps, codes.shape[1]), np.float32)
    np.maximum.at(step_max, samples.step, codes)
    fs = FeatureSet(sae, samples.layer, stats, step_max, samples, layout, list(positions),
                    result)
    if phase is not None:
        fs.cohen_d, fs.d_phase = phase_effect_sizes(codes, phase)
    return fs


def phase_effect_sizes(codes: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the largest Cohen's d of one phase's samples against all others, and
    that phase (0 and "" with a single phase)."""
    names = sorted(set(phase.tolist()))
    best = np.zeros(codes.shape[1])
    which = np.full(codes.shape[1], "", dtype=object)
    if len(names) < 2:
        return best, which
    for name in names:
        d = np.nan_to_num(cohens_d(codes, np.where(phase == name, "in", "out"), "in", "out"))
        better = d > best
        best[better], which[better] = d[better], name
    return best, which


def train_features(samples: ActivationSet, layout: dict[str, dict], positions: list[int], *,
                   expansion: int = 4, k: int = 16, steps: int = 300, seed: int = 0,
                   task: str = "", phases: Sequence[str] | None = None,
                   progress: TrainProgress | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> FeatureSet:
    """Train a TopK SAE on captured vectors and describe its features."""
    d = samples.x.shape[1]
    k = max(1, min(int(k), d * int(expansion)))
    cfg = SAEConfig(d_in=d, expansion=int(expansion), k=k, layer=samples.layer,
                    pooling="tokens")
    sae, result = train_sae(samples.x, cfg, steps=int(steps),
                            batch_size=min(256, len(samples.x)), seed=seed, holdout=0.1,
                            progress=progress, should_cancel=should_cancel)
    return describe(sae.eval(), samples, layout, positions, task, result, phases)


def frame_feature_map(policy: Any, sae: SAE, layer: str, obs: Observation,
                      feature: int) -> dict[str, np.ndarray]:
    """The feature's activation on each visual token of one frame, spread over each
    camera image (as a saliency map is): camera -> (H, W)."""
    samples = capture_frames(policy, [obs], layer)
    scores = encode(sae, samples.x)[:, feature].astype(np.float64)
    return grid_scores_to_maps(scores, policy.visual_token_layout(), obs)


def token_cell(policy: Any, layer: str, token: int) -> tuple[str, int, int, tuple[int, int]]:
    """Where a visual token of ``layer`` sits on the frames: (camera, row, column, grid)."""
    return cell_of(policy.visual_token_layout(), visual_positions(policy, layer), token)


def cell_of(layout: dict[str, dict], positions: list[int], token: int
            ) -> tuple[str, int, int, tuple[int, int]]:
    """``token`` (a sequence position among ``positions``, the visual tokens in layout
    order) -> (camera, row, column, grid shape)."""
    if token not in positions:
        raise VLAScopeError(f"token {token} is not a visual token here")
    index = positions.index(token)
    for cam, spec in layout.items():
        n = len(spec["positions"])
        if index < n:
            rows, cols = spec["grid"]
            return cam, index // cols, index % cols, (int(rows), int(cols))
        index -= n
    raise VLAScopeError(f"token {token} lies outside the visual token layout")


def feature_map_name(layer: str, feature: int) -> str:
    """The saliency-method name a feature's maps are stored under in an episode."""
    return f"feature-{feature}@{layer}".replace("/", "_")


def store_feature_maps(policy: Any, features: FeatureSet, path: str, feature: int,
                       progress: Progress | None = None,
                       should_cancel: Callable[[], bool] | None = None) -> str:
    """The feature's map over every step of an episode, written into it beside its
    saliency maps (so the timeline, NMR and video export can show it like one); returns
    the stored name."""
    from .episode import Episode, episode_observation, update_episode

    sae, layer = features.sae, features.layer
    with Episode(path) as ep:
        cams = list(policy.visual_token_layout())
        size = getattr(policy, "image_size", None)
        frames = [episode_observation(ep, t, cams, size) for t in range(ep.n_steps)]
        shapes = {c: ep.frame(0, c).shape[:2] for c in cams}
    samples = capture_frames(policy, frames, layer, progress=progress,
                             should_cancel=should_cancel)
    scores = encode(sae, samples.x)[:, feature].astype(np.float64)
    per_step = scores.reshape(len(frames), -1)
    layout = policy.visual_token_layout()
    maps: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    for t, obs in enumerate(frames):
        for cam, m in grid_scores_to_maps(per_step[t], layout, obs).items():
            if m.shape != shapes[cam]:  # the policy saw resized frames: back to the file's
                m = np.asarray(Image.fromarray(m.astype(np.float32)).resize(
                    shapes[cam][::-1], Image.Resampling.BILINEAR))
            maps[cam].append(m.astype(np.float32))
    name = feature_map_name(layer, feature)
    update_episode(path, {f"saliency/{name}/{c}": np.stack(v) for c, v in maps.items()},
                   {f"saliency.{name}": {"sae": features.path, "layer": layer,
                                         "feature": int(feature)}})
    return name
