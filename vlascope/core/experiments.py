"""Batch experiments of the mechanistic toolkit, shared by the CLI (and later the GUI):
capture, steering sweeps, injection / counterfactual-prompt tables, perturbation sweeps,
concept ablation. Each runs closed-loop rollouts through ``runner.rollout`` with
interventions as data, writes the episodes where asked, and returns plain rows.

Every experiment is built on one per-block helper (a task and condition on a list of
seeds, a block of features, one layer), so the in-process functions here and the sweep
cells of the CLI (``*_cell``: JSON-able arguments, the worker's scene and policy, a
JSON-able result) run the same code; ``merge_cells`` puts the blocks back together."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Sequence
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
from .sweep import worker

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
                should_cancel: CancelFn | None = None, overwrite: bool = True,
                display_size: tuple[int, int] | None = None) -> Outcome:
    """A rollout plus the object it handled and its hand trajectory. The batch experiments
    regenerate the episodes of their own results folder (``overwrite``); a caller writing
    where a user's episodes may be passes ``overwrite=False``."""
    scene.reset(task, seed, variant)
    start = scene.object_positions()
    hand, actions = [], []
    res = rollout(scene, policy, task, seed, variant, interventions=interventions,
                  record_to=record_to, capture=capture, pooling=pooling,
                  policy_name=policy_name, should_cancel=should_cancel, overwrite=overwrite,
                  display_size=display_size,
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        """A cell back from its ``asdict`` form (a sweep cell's result; not ``as_dict``,
        whose displacement and cosine are means)."""
        return cls(d["condition"], d["task"], int(d["episodes"]), int(d["successes"]),
                   int(d["handled_target"]), int(d["handled_other"]),
                   [float(v) for v in d["displacement"]], [float(v) for v in d["cosine"]],
                   copy.deepcopy(d.get("extra") or {}))

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two blocks of seeds the same row: task, condition and the settings in
        ``extra`` (alpha, source, severity; not the counts such as ``handled``)."""
        settings = {k: v for k, v in self.extra.items() if not isinstance(v, dict)}
        return self.task, self.condition, json.dumps(settings, sort_keys=True, default=str)

    def merge(self, other: Cell) -> Cell:
        """Add ``other``'s rollouts (another block of seeds of the same row) to this cell:
        counts summed, per-episode lists concatenated in order, count mappings in ``extra``
        (``handled``) summed. Returns ``self``."""
        if other.key != self.key:
            raise ValueError(f"cannot merge cell {other.key} into {self.key}")
        self.episodes += other.episodes
        self.successes += other.successes
        self.handled_target += other.handled_target
        self.handled_other += other.handled_other
        self.displacement += other.displacement
        self.cosine += other.cosine
        for k, v in other.extra.items():
            if isinstance(v, dict):
                counts = self.extra.setdefault(k, {})
                for name, n in v.items():
                    counts[name] = counts.get(name, 0) + n
            else:
                self.extra.setdefault(k, v)
        return self

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        n = max(1, self.episodes)
        d["success_rate"] = self.successes / n
        d["handled_target_rate"] = self.handled_target / n
        d["handled_other_rate"] = self.handled_other / n
        d["displacement"] = float(np.mean(self.displacement)) if self.displacement else None
        d["cosine"] = float(np.mean(self.cosine)) if self.cosine else None
        return d


def merge_cells(cells: Iterable[Cell | dict[str, Any] | None]) -> list[Cell]:
    """Blocks of seeds back into one ``Cell`` per row (``Cell.key``), in the order the rows
    first appear; cells may be given in their ``asdict`` form, failed blocks (None) are
    left out (the row then counts fewer episodes)."""
    rows: dict[tuple[str, str, str], Cell] = {}
    for c in cells:
        if c is None:
            continue
        c = Cell.from_dict(c) if isinstance(c, dict) else c
        if c.key in rows:
            rows[c.key].merge(c)
        else:
            rows[c.key] = Cell.from_dict(asdict(c))  # a copy: the inputs stay as they were
    return list(rows.values())


def merge_cell_results(results: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The rows of the sweep cells' results (``{"cells": [...]}`` each, None if failed)."""
    return [c.as_dict() for c in merge_cells(
        c for r in results if r is not None for c in r["cells"])]


def _seeds(seed: int, episodes: int) -> list[int]:
    return list(range(seed, seed + episodes))


def _check(should_cancel: CancelFn | None) -> None:
    if should_cancel is not None and should_cancel():
        raise CancelledError("experiment cancelled")


# Capture ---------------------------------------------------------------------------------
def capture_block(scene: Scene, policy: Policy, task: str, seeds: Sequence[int],
                  out_dir: str | Path, layers: Sequence[str], *, pooling: str = "tokens",
                  variant: str | None = None, interventions: Sequence[Intervention] = (),
                  policy_name: str = "", tick: Tick | None = None,
                  should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """``task`` on ``seeds``, recorded with the activations of ``layers``: one row each."""
    out = Path(out_dir)
    rows = []
    for s in seeds:
        _check(should_cancel)
        o = run_episode(scene, policy, task, s, variant, interventions=interventions,
                        record_to=out / f"{task}__seed{s}.h5", capture=layers, pooling=pooling,
                        policy_name=policy_name, should_cancel=should_cancel)
        rows.append({"task": task, "seed": s, "path": o.path, "success": o.result.success,
                     "steps": o.result.steps})
        if tick:
            tick()
    return rows


def capture_episodes(scene: Scene, policy: Policy, tasks: Sequence[str], episodes: int,
                     out_dir: str | Path, layers: Sequence[str], *, pooling: str = "tokens",
                     variant: str | None = None, seed: int = 0,
                     interventions: Sequence[Intervention] = (), policy_name: str = "",
                     tick: Tick | None = None,
                     should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """Record ``episodes`` rollouts per task with the activations of ``layers``."""
    return [row for task in tasks for row in capture_block(
        scene, policy, task, _seeds(seed, episodes), out_dir, layers, pooling=pooling,
        variant=variant, interventions=interventions, policy_name=policy_name, tick=tick,
        should_cancel=should_cancel)]


def capture_cell(scene: str, scene_options: dict, policy: str, policy_options: dict,
                 task: str, seeds: Sequence[int], out_dir: str, layers: Sequence[str],
                 pooling: str, variant: str | None,
                 interventions: Sequence[dict]) -> dict[str, Any]:
    """Sweep cell of ``vlascope capture``: one task on a block of seeds."""
    from .interventions import from_dict

    sc, pol = worker.scene_and_policy(scene, scene_options, policy, policy_options)
    return {"rows": capture_block(sc, pol, task, seeds, out_dir, layers, pooling=pooling,
                                  variant=variant,
                                  interventions=[from_dict(d) for d in interventions],
                                  policy_name=policy)}


# Steering --------------------------------------------------------------------------------
def _episode_path(out_dir: str | Path | None, *parts: Any) -> Path | None:
    return None if out_dir is None else Path(out_dir) / ("__".join(map(str, parts)) + ".h5")


def steer_block(scene: Scene, policy: Policy, task: str, alpha: float, seeds: Sequence[int],
                *, sae: str, layer: str, feature: int, variant: str | None = None,
                positions: Sequence[int] = (), out_dir: str | Path | None = None,
                policy_name: str = "", tick: Tick | None = None,
                should_cancel: CancelFn | None = None) -> Cell:
    """``task`` steered by ``alpha`` on ``seeds``: one cell, with the objects handled."""
    target = scene.task(task).target_object
    cell = Cell(f"alpha={alpha:g}", task, extra={"alpha": float(alpha)})
    ivs = [Steer(layer=layer, sae=sae, feature=feature, alpha=float(alpha),
                 positions=tuple(positions))] if alpha != 0 else []
    handled: dict[str, int] = {}
    for s in seeds:
        _check(should_cancel)
        o = run_episode(scene, policy, task, s, variant, interventions=ivs,
                        record_to=_episode_path(out_dir, task, f"alpha{alpha:g}", f"seed{s}"),
                        policy_name=policy_name, should_cancel=should_cancel)
        cell.add(o, target)
        handled[str(o.handled)] = handled.get(str(o.handled), 0) + 1
        if tick:
            tick()
    cell.extra["handled"] = handled
    return cell


def steering_sweep(scene: Scene, policy: Policy, tasks: Sequence[str], alphas: Sequence[float],
                   *, sae: str, layer: str, feature: int, episodes: int, seed: int = 0,
                   variant: str | None = None, positions: Sequence[int] = (),
                   out_dir: str | Path | None = None, policy_name: str = "",
                   tick: Tick | None = None,
                   should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """Success and which object was handled, per task and steering strength (α = 0 is the
    unsteered policy, on the same seeds); each rollout recorded in ``out_dir`` if given."""
    return [steer_block(scene, policy, task, alpha, _seeds(seed, episodes), sae=sae,
                        layer=layer, feature=feature, variant=variant, positions=positions,
                        out_dir=out_dir, policy_name=policy_name, tick=tick,
                        should_cancel=should_cancel).as_dict()
            for task in tasks for alpha in alphas]


def steer_cell(scene: str, scene_options: dict, policy: str, policy_options: dict, task: str,
               alpha: float, seeds: Sequence[int], sae: str, layer: str, feature: int,
               variant: str | None, positions: Sequence[int],
               out_dir: str | None) -> dict[str, Any]:
    """Sweep cell of ``vlascope steer``: one task and alpha on a block of seeds."""
    sc, pol = worker.scene_and_policy(scene, scene_options, policy, policy_options)
    cell = steer_block(sc, pol, task, alpha, seeds, sae=sae, layer=layer, feature=feature,
                       variant=variant, positions=positions, out_dir=out_dir,
                       policy_name=policy)
    return {"cells": [asdict(cell)]}


# Injection and counterfactual prompts ----------------------------------------------------
INJECTION_CONDITIONS = ("baseline", "cross_task", "null_language",
                        *(f"prompt_{k}" for k in COUNTERFACTUALS))


def check_conditions(conditions: Sequence[str]) -> None:
    unknown = [c for c in conditions if c not in INJECTION_CONDITIONS]
    if unknown:
        raise VLAScopeError(f"unknown condition(s) {unknown} (known: "
                            f"{', '.join(INJECTION_CONDITIONS)})")


def inject_block(scene: Scene, policy: Policy, target_task: str, source_task: str,
                 seeds: Sequence[int], *, layer: str, out_dir: str | Path,
                 variant: str | None = None, positions: Sequence[int] = (),
                 conditions: Sequence[str] = INJECTION_CONDITIONS, on_short: str = "hold",
                 policy_name: str = "", sources: dict[tuple[str, int], Outcome] | None = None,
                 tick: Tick | None = None,
                 should_cancel: CancelFn | None = None) -> list[Cell]:
    """One (target, source) pair on ``seeds``: a cell per condition, in their order. A
    source rollout already in ``sources`` (task, seed) is reused, a new one added to it."""
    check_conditions(conditions)
    out = Path(out_dir)
    sources = {} if sources is None else sources
    target_obj = scene.task(target_task).target_object
    cells = {c: Cell(c, target_task, extra={"source": source_task}) for c in conditions}
    for s in seeds:
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
            elif cond in ("cross_task", "null_language"):
                if cond == "null_language":
                    toward = null
                o = run_episode(scene, policy, target_task, s, variant, interventions=[
                    Inject(layer=layer, source=toward.path, on_short=on_short,
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
            cell = cells[cond]
            cell.add(o, target_obj)
            cell.displacement.append(displacement(o.hand, toward.hand, base.hand))
            cell.cosine.append(action_cosine(o.actions, base.actions))
            if tick:
                tick()
    return list(cells.values())


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
    check_conditions(conditions)
    sources: dict[tuple[str, int], Outcome] = {}  # a source rollout serves every pair
    cells = [c for target, source in pairs for c in inject_block(
        scene, policy, target, source, _seeds(seed, episodes), layer=layer, out_dir=out_dir,
        variant=variant, positions=positions, conditions=conditions, on_short=on_short,
        policy_name=policy_name, sources=sources, tick=tick, should_cancel=should_cancel)]
    return [c.as_dict() for c in merge_cells(cells)]


def inject_cell(scene: str, scene_options: dict, policy: str, policy_options: dict,
                target: str, source: str, seeds: Sequence[int], layer: str, out_dir: str,
                variant: str | None, positions: Sequence[int], conditions: Sequence[str],
                on_short: str) -> dict[str, Any]:
    """Sweep cell of ``vlascope inject``: one (target, source) pair on a block of seeds,
    with its own source rollouts."""
    sc, pol = worker.scene_and_policy(scene, scene_options, policy, policy_options)
    cells = inject_block(sc, pol, target, source, seeds, layer=layer, out_dir=out_dir,
                         variant=variant, positions=positions, conditions=conditions,
                         on_short=on_short, policy_name=policy)
    return {"cells": [asdict(c) for c in cells]}


# Perturbations ---------------------------------------------------------------------------
def check_perturbations(kinds: Sequence[str], severity: int, seed: int) -> None:
    """A typo fails now, not after the clean episodes have run."""
    for kind in kinds:
        Perturb(perturbation=kind, severity=severity, seed=seed).validate()


def perturb_block(scene: Scene, policy: Policy, task: str, kind: str, seeds: Sequence[int], *,
                  severity: int, perturb_seed: int = 0, variant: str | None = None,
                  out_dir: str | Path | None = None, policy_name: str = "",
                  tick: Tick | None = None, should_cancel: CancelFn | None = None) -> Cell:
    """``task`` under the corruption ``kind`` ("none": clean) on ``seeds``; the corruption's
    own noise is drawn from ``perturb_seed`` (the sweep's first seed, whatever the block)."""
    target = scene.task(task).target_object
    cell = Cell(kind, task, extra={"severity": severity})
    ivs = [] if kind == "none" else [Perturb(perturbation=kind, severity=severity,
                                             seed=perturb_seed)]
    for s in seeds:
        _check(should_cancel)
        cell.add(run_episode(scene, policy, task, s, variant, interventions=ivs,
                             record_to=_episode_path(out_dir, task, kind, f"seed{s}"),
                             policy_name=policy_name, should_cancel=should_cancel), target)
        if tick:
            tick()
    return cell


def perturbation_sweep(scene: Scene, policy: Policy, tasks: Sequence[str],
                       kinds: Sequence[str], *, severity: int, episodes: int, seed: int = 0,
                       variant: str | None = None, out_dir: str | Path | None = None,
                       policy_name: str = "", tick: Tick | None = None,
                       should_cancel: CancelFn | None = None) -> list[dict[str, Any]]:
    """Success per task and visual corruption ("none" = clean, same seeds); each rollout
    recorded in ``out_dir`` if given."""
    check_perturbations(kinds, severity, seed)
    return [perturb_block(scene, policy, task, kind, _seeds(seed, episodes), severity=severity,
                          perturb_seed=seed, variant=variant, out_dir=out_dir,
                          policy_name=policy_name, tick=tick,
                          should_cancel=should_cancel).as_dict()
            for task in tasks for kind in ("none", *kinds)]


def perturb_cell(scene: str, scene_options: dict, policy: str, policy_options: dict, task: str,
                 kind: str, seeds: Sequence[int], severity: int, perturb_seed: int,
                 variant: str | None, out_dir: str | None) -> dict[str, Any]:
    """Sweep cell of ``vlascope perturb``: one task and corruption on a block of seeds."""
    sc, pol = worker.scene_and_policy(scene, scene_options, policy, policy_options)
    cell = perturb_block(sc, pol, task, kind, seeds, severity=severity,
                         perturb_seed=perturb_seed, variant=variant, out_dir=out_dir,
                         policy_name=policy)
    return {"cells": [asdict(cell)]}


# Concept ablation ------------------------------------------------------------------------
def pick_frames(paths: Sequence[str | Path], policy: Any, n: int, seed: int) -> list:
    """``n`` recorded observations spread over the episodes (seeded: the same paths, ``n``
    and ``seed`` give the same frames in any process)."""
    from itertools import groupby

    from .episode import Episode, episode_observation

    index = []
    for p in paths:
        with Episode(p) as ep:
            index += [(p, t) for t in range(ep.n_steps)]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(index), min(n, len(index)), replace=False).tolist())
    cams = getattr(policy, "cameras", None)
    size = getattr(policy, "image_size", None)
    obs = []
    for p, items in groupby((index[i] for i in pick), key=lambda item: item[0]):
        with Episode(p) as ep:  # picks are sorted: each episode is opened once
            obs += [episode_observation(ep, t, cams or ep.cameras, size) for _, t in items]
    return obs


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


def ablate_cell(policy: str, policy_options: dict, episodes: Sequence[str], frames: int,
                seed: int, sae: str, layer: str, features: Sequence[int],
                mode: str) -> dict[str, Any]:
    """Sweep cell of ``vlascope ablate``: a block of features, on the frames every cell
    picks alike (``pick_frames``)."""
    pol = worker.policy(policy, policy_options)
    obs = pick_frames(episodes, pol, frames, seed)
    effects = ablation_effects(pol, obs, sae=sae, layer=layer, features=features, mode=mode)
    return {"features": [int(f) for f in features], "effects": effects.tolist(),
            "frames": len(obs)}


def merge_ablation(results: Iterable[dict[str, Any] | None]) -> tuple[list[int], np.ndarray]:
    """The features and their effects, concatenated in the cells' order (failed cells,
    None, left out with their features)."""
    done = [r for r in results if r is not None]
    return ([int(f) for r in done for f in r["features"]],
            np.asarray([float(e) for r in done for e in r["effects"]]))


# SAE training ----------------------------------------------------------------------------
def sae_train_cell(episodes: Sequence[str], layer: str, out: str, expansion: int, kind: str,
                   k: int, steps: int | None, batch_size: int, lr: float, max_vectors: int,
                   seed: int, device: str) -> dict[str, Any]:
    """Sweep cell of ``vlascope sae train``: one layer's SAE, trained and saved in
    ``out/<layer>``; its results as ``sae_train.json`` lists them."""
    from tqdm import tqdm

    from .capture import load_activations
    from .sae import SAEConfig, save_sae, train_sae

    acts = load_activations(episodes, layer, max_vectors=max_vectors, seed=seed)
    cfg = SAEConfig(d_in=acts.x.shape[1], expansion=expansion, kind=kind, k=k, layer=layer,
                    pooling=acts.pooling)
    with tqdm(desc=f"sae {layer}", unit="step", disable=None, leave=False) as bar:
        def progress(step: int, total: int, metrics: dict) -> None:
            bar.total = total
            bar.update(step - bar.n)
            bar.set_postfix({name: f"{v:.3f}" for name, v in metrics.items()
                             if isinstance(v, float)})

        sae, res = train_sae(acts.x, cfg, steps=steps, batch_size=batch_size, lr=lr,
                             seed=seed, device=device, progress=progress)
    folder = save_sae(sae, Path(out) / layer, extra={"episodes": list(episodes),
                                                     "vectors": int(len(acts.x))})
    return {"layer": layer, "result": {
        "folder": str(folder), "vectors": int(len(acts.x)), **res.report.as_dict(),
        "seconds": res.seconds, "samples_per_s": res.samples_per_s}}


def zero_effect_summary(effects: np.ndarray, features: Sequence[int],
                        tols: Sequence[float] = (1e-3, 1e-2, 5e-2)) -> dict[str, Any]:
    return {"features": [int(f) for f in features], "max_action_change": effects.tolist(),
            "zero_effect_rate": {f"{t:g}": zero_effect_rate(effects, t) for t in tols}}
