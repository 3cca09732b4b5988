"""Batch experiments of the mechanistic toolkit, shared by the CLI (and later the GUI):
capture, steering sweeps, injection / counterfactual-prompt tables, perturbation sweeps,
concept ablation. Each runs closed-loop rollouts through ``runner.rollout`` with
interventions as data, writes the episodes where asked, and returns plain rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CancelledError, VLAScopeError
from .interventions import (
    COUNTERFACTUALS,
    AblateFeatures,
    Inject,
    Intervention,
    Perturb,
    Prompt,
    Steer,
    bind,
    counterfactual_prompt,
)
from .measures import (
    action_change,
    action_cosine,
    displacement,
    handled_object,
    zero_effect_rate,
)
from .policy import Policy, common_noise
from .runner import RolloutResult, rollout
from .scene import Scene

Tick = Callable[[], None]
CancelFn = Callable[[], bool]


@dataclass
class Outcome:
    """One rollout and what it did."""

    result: RolloutResult
    handled: str | None
    path: str | None
    hand: np.ndarray  # (T, 3) hand trajectory
    actions: np.ndarray  # (T, A)


def run_episode(scene: Scene, policy: Policy, task: str, seed: int, variant: str | None = None,
                *, interventions: Sequence[Intervention] = (), record_to: str | Path | None = None,
                capture: Sequence[str] = (), pooling: str = "tokens", policy_name: str = "",
                should_cancel: CancelFn | None = None, overwrite: bool = True) -> Outcome:
    """A rollout plus the object it handled and its hand trajectory. The batch experiments
    regenerate the episodes of their own results folder (``overwrite``); a caller writing
    where a user's episodes may be passes ``overwrite=False``."""
    scene.reset(task, seed, variant)
    start = scene.object_positions()
    hand, actions = [], []
    res = rollout(scene, policy, task, seed, variant, interventions=interventions,
                  record_to=record_to, capture=capture, pooling=pooling,
                  policy_name=policy_name, should_cancel=should_cancel, overwrite=overwrite,
                  on_step=lambda rec: (hand.append(rec.observation.state[:3]),
                                       actions.append(rec.action)))
    return Outcome(res, handled_object(start, scene.object_positions()), res.path,
                   np.asarray(hand, np.float64), np.asarray(actions, np.float64))


@dataclass
class Cell:
    """Aggregate of the rollouts of one condition."""

    condition: str
    task: str
    episodes: int = 0
    successes: int = 0
    handled_target: int = 0
    handled_other: int = 0
    displacement: list[float] = field(default_factory=list)
    cosine: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, out: Outcome, target: str) -> None:
        self.episodes += 1
        self.successes += int(out.result.success)
        self.handled_target += int(out.handled == target and bool(target))
        self.handled_other += int(out.handled not in (None, target))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        n = max(1, self.episodes)
        d["success_rate"] = self.successes / n
        d["handled_target_rate"] = self.handled_target / n
        d["handled_other_rate"] = self.handled_other / n
        d["displacement"] = float(np.mean(self.displacement)) if self.displacement else None
        d["cosine"] = float(np.mean(self.cosine)) if self.cosine else None
        return d


def _check(should_cancel: CancelFn | None) -> None:
    if should_cancel is not None and should_cancel():
        raise CancelledError("experiment cancelled")


# Capture ---------------------------------------------------------------------------------
def capture_episodes(scene: Scene, policy: Policy, tasks: Sequence[str], episodes: int,
                     out_dir: str | Path, layers: Sequence[str], *, pooling: str = "tokens",
                     variant: str | None = None, seed: int = 0,
                     interventions: Sequence[Intervention] = (), policy_name: str = "",
                     tick: Tick | None = None,
                     should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """Record ``episodes`` rollouts per task with the activations of ``layers``."""
    out = Path(out_dir)
    rows = []
    for task in tasks:
        for k in range(episodes):
            _check(should_cancel)
            path = out / f"{task}__seed{seed + k}.h5"
            o = run_episode(scene, policy, task, seed + k, variant, interventions=interventions,
                            record_to=path, capture=layers, pooling=pooling,
                            policy_name=policy_name, should_cancel=should_cancel)
            rows.append({"task": task, "seed": seed + k, "path": o.path,
                         "success": o.result.success, "steps": o.result.steps})
            if tick:
                tick()
    return rows


# Steering --------------------------------------------------------------------------------
def _episode_path(out_dir: str | Path | None, *parts: Any) -> Path | None:
    return None if out_dir is None else Path(out_dir) / ("__".join(map(str, parts)) + ".h5")


def steering_sweep(scene: Scene, policy: Policy, tasks: Sequence[str], alphas: Sequence[float],
                   *, sae: str, layer: str, feature: int, episodes: int, seed: int = 0,
                   variant: str | None = None, positions: Sequence[int] = (),
                   out_dir: str | Path | None = None, policy_name: str = "",
                   tick: Tick | None = None,
                   should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """Success and which object was handled, per task and steering strength (α = 0 is the
    unsteered policy, on the same seeds); each rollout recorded in ``out_dir`` if given."""
    rows = []
    for task in tasks:
        target = scene.task(task).target_object
        for alpha in alphas:
            cell = Cell(f"alpha={alpha:g}", task, extra={"alpha": float(alpha)})
            ivs = [Steer(layer=layer, sae=sae, feature=feature, alpha=float(alpha),
                         positions=tuple(positions))] if alpha != 0 else []
            handled: dict[str, int] = {}
            for k in range(episodes):
                _check(should_cancel)
                o = run_episode(scene, policy, task, seed + k, variant, interventions=ivs,
                                record_to=_episode_path(out_dir, task, f"alpha{alpha:g}",
                                                        f"seed{seed + k}"),
                                policy_name=policy_name, should_cancel=should_cancel)
                cell.add(o, target)
                handled[str(o.handled)] = handled.get(str(o.handled), 0) + 1
                if tick:
                    tick()
            cell.extra["handled"] = handled
            rows.append(cell.as_dict())
    return rows


# Injection and counterfactual prompts ----------------------------------------------------
INJECTION_CONDITIONS = ("baseline", "cross_task", "null_language",
                        *(f"prompt_{k}" for k in COUNTERFACTUALS))


def injection_table(scene: Scene, policy: Policy, pairs: Sequence[tuple[str, str]], *,
                    layer: str, episodes: int, out_dir: str | Path, seed: int = 0,
                    variant: str | None = None, positions: Sequence[int] = (),
                    conditions: Sequence[str] = INJECTION_CONDITIONS, on_short: str = "hold",
                    policy_name: str = "", tick: Tick | None = None,
                    should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """The paper's table: per target task and condition, success, which object was handled,
    displacement toward the source trajectory and action cosine to the unperturbed run.

    For each (target, source) pair and seed, the source task's rollout and the target's
    rollout under a null prompt are recorded with ``layer``'s activations; ``cross_task``
    injects the former into the target task, ``null_language`` the latter. Displacement is
    measured toward the source task's trajectory (cross-task, prompts) or the null-prompt
    rollout's (null_language)."""
    unknown = [c for c in conditions if c not in INJECTION_CONDITIONS]
    if unknown:
        raise VLAScopeError(f"unknown condition(s) {unknown} (known: "
                            f"{', '.join(INJECTION_CONDITIONS)})")
    out = Path(out_dir)
    cells: dict[tuple[str, str, str], Cell] = {}
    sources: dict[tuple[str, int], Any] = {}  # a source rollout serves every pair that uses it
    for target_task, source_task in pairs:
        target_obj = scene.task(target_task).target_object
        for k in range(episodes):
            s = seed + k
            stem = f"{target_task}__from_{source_task}__seed{s}"
            _check(should_cancel)
            scene.reset(target_task, s, variant)
            instruction = scene.instruction()  # the variant's wording (cube colours)
            base = run_episode(scene, policy, target_task, s, variant,
                               record_to=out / f"{stem}__baseline.h5", capture=[layer],
                               policy_name=policy_name, should_cancel=should_cancel)
            if (source_task, s) not in sources:
                sources[(source_task, s)] = run_episode(
                    scene, policy, source_task, s, variant,
                    record_to=out / f"{source_task}__seed{s}__source.h5", capture=[layer],
                    policy_name=policy_name, should_cancel=should_cancel)
            src = sources[(source_task, s)]
            null = None
            if "null_language" in conditions:
                null = run_episode(scene, policy, target_task, s, variant,
                                   interventions=[Prompt(text="", variant="null")],
                                   record_to=out / f"{stem}__null_source.h5", capture=[layer],
                                   policy_name=policy_name, should_cancel=should_cancel)
            for cond in conditions:
                _check(should_cancel)
                toward = src
                if cond == "baseline":
                    o = base
                elif cond == "cross_task":
                    o = run_episode(scene, policy, target_task, s, variant, interventions=[
                        Inject(layer=layer, source=src.path, on_short=on_short,
                               positions=tuple(positions))],
                        record_to=out / f"{stem}__{cond}.h5", policy_name=policy_name,
                        should_cancel=should_cancel)
                elif cond == "null_language":
                    toward = null
                    o = run_episode(scene, policy, target_task, s, variant, interventions=[
                        Inject(layer=layer, source=null.path, on_short=on_short,
                               positions=tuple(positions))],
                        record_to=out / f"{stem}__{cond}.h5", policy_name=policy_name,
                        should_cancel=should_cancel)
                else:
                    kind = cond.removeprefix("prompt_")
                    text = counterfactual_prompt(instruction, kind)
                    o = run_episode(scene, policy, target_task, s, variant,
                                    interventions=[Prompt(text=text, variant=kind)],
                                    record_to=out / f"{stem}__{cond}.h5",
                                    policy_name=policy_name, should_cancel=should_cancel)
                cell = cells.setdefault((target_task, source_task, cond),
                                        Cell(cond, target_task, extra={"source": source_task}))
                cell.add(o, target_obj)
                cell.displacement.append(displacement(o.hand, toward.hand, base.hand))
                cell.cosine.append(action_cosine(o.actions, base.actions))
                if tick:
                    tick()
    return [c.as_dict() for c in cells.values()]


# Perturbations ---------------------------------------------------------------------------
def perturbation_sweep(scene: Scene, policy: Policy, tasks: Sequence[str],
                       kinds: Sequence[str], *, severity: int, episodes: int, seed: int = 0,
                       variant: str | None = None, out_dir: str | Path | None = None,
                       policy_name: str = "", tick: Tick | None = None,
                       should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """Success per task and visual corruption ("none" = clean, same seeds); each rollout
    recorded in ``out_dir`` if given."""
    for kind in kinds:  # a typo fails now, not after the clean episodes have run
        Perturb(perturbation=kind, severity=severity, seed=seed).validate()
    rows = []
    for task in tasks:
        target = scene.task(task).target_object
        for kind in ("none", *kinds):
            cell = Cell(kind, task, extra={"severity": severity})
            ivs = [] if kind == "none" else [Perturb(perturbation=kind, severity=severity,
                                                     seed=seed)]
            for k in range(episodes):
                _check(should_cancel)
                cell.add(run_episode(scene, policy, task, seed + k, variant, interventions=ivs,
                                     record_to=_episode_path(out_dir, task, kind,
                                                             f"seed{seed + k}"),
                                     policy_name=policy_name, should_cancel=should_cancel),
                         target)
                if tick:
                    tick()
            rows.append(cell.as_dict())
    return rows


# Concept ablation ------------------------------------------------------------------------
def ablation_effects(policy: Policy, observations: Sequence[Any], *, sae: str, layer: str,
                     features: Sequence[int], mode: str = "zero", batch: int = 32,
                     tick: Tick | None = None,
                     should_cancel: CancelFn | None = None) -> np.ndarray:
    """Largest action change over ``observations`` when each feature alone is ablated
    (open loop on recorded frames; one value per feature)."""
    if not observations:
        raise VLAScopeError("no frames to ablate on")

    def infer(applied=None) -> np.ndarray:
        hooks = applied.hooks(0) if applied is not None else nullcontext()
        # the same sampling noise (flow heads) for the clean and the ablated runs
        with common_noise(policy), hooks:
            return np.concatenate([policy.batch_infer(list(observations[i:i + batch]))
                                   for i in range(0, len(observations), batch)])

    clean = infer()
    effects = []
    for f in features:
        _check(should_cancel)
        applied = bind([AblateFeatures(layer=layer, sae=sae, features=(int(f),), mode=mode)],
                       policy)
        effects.append(float(action_change(infer(applied), clean).max()))
        if tick:
            tick()
    return np.asarray(effects)


def zero_effect_summary(effects: np.ndarray, features: Sequence[int],
                        tols: Sequence[float] = (1e-3, 1e-2, 5e-2)) -> dict[str, Any]:
    return {"features": [int(f) for f in features], "max_action_change": effects.tolist(),
            "zero_effect_rate": {f"{t:g}": zero_effect_rate(effects, t) for t in tols}}
