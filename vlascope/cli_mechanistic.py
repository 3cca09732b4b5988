"""Headless commands of the mechanistic toolkit: capture, sae train / stats, steer, ablate,
inject, perturb, probe. Each prints a table, writes a JSON result, and, where it runs
rollouts, episodes the inspector opens. The batch ones (capture, sae train, steer, inject,
perturb, ablate) cut their work into sweep cells (``core/sweep``): the same seeds give the
same table whatever ``--executor``, ``--jobs`` and block size."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .core.atomic import write_json_atomic
from .core.errors import VLAScopeError


# Shared helpers --------------------------------------------------------------------------
def episode_paths(items: Sequence[str]) -> list[str]:
    """Episode files given directly or as folders (every ``*.h5`` inside, sorted)."""
    paths: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += [str(f) for f in sorted(p.glob("*.h5")) if not f.name.startswith(".")]
        elif p.is_file():
            paths.append(str(p))
        else:
            raise VLAScopeError(f"{item}: no such episode file or folder")
    if not paths:
        raise VLAScopeError(f"no episode files in {', '.join(items)}")
    return paths


def _positions(policy: Any, spec: str, layer: str) -> tuple[int, ...]:
    """'all', a token group of the policy at ``layer`` ('language', 'visual', ...) or a
    comma list of positions."""
    if spec in ("", "all"):
        return ()
    token_groups = getattr(policy, "token_groups", None)
    groups = token_groups(layer) if token_groups else {}
    if spec in groups:
        return tuple(groups[spec])
    try:
        return tuple(int(v) for v in spec.split(","))
    except ValueError:
        raise VLAScopeError(f"--positions: '{spec}' is neither 'all', a token group at "
                            f"{layer} ({', '.join(groups) or 'none'}) nor a list of "
                            "positions") from None


def _floats(spec: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in spec.split(",") if v]
    except ValueError:
        raise VLAScopeError(f"{what}: '{spec}' is not a comma list of numbers") from None
    bad = [v for v in values if v != v or v in (float("inf"), float("-inf"))]
    if bad or not values:
        raise VLAScopeError(f"{what} must be finite numbers, got '{spec}'")
    return values


def _load_sae_for(args: argparse.Namespace, policy: str | None) -> Any:
    """``--sae`` loaded for ``--layer`` (an Action Atlas checkpoint's layer name is mapped
    to our hook point for ``policy`` when we know it; otherwise --layer is needed)."""
    from .core.sae import load_sae

    sae = load_sae(args.sae, layer=getattr(args, "layer", None), policy=policy)
    atlas = sae.metadata.get("atlas")
    if isinstance(atlas, dict) and getattr(args, "layer", None) is None and \
            "." not in sae.cfg.layer:  # their name, unmapped: ours all have dots
        raise VLAScopeError(
            f"{args.sae}: vlascope knows no hook point of policy '{policy}' for Action "
            f"Atlas' layer '{sae.cfg.layer}'; pass --layer HOOK_POINT (the layer the SAE "
            "was trained on)")
    return sae


def _abs(path: str | Path) -> str:
    """A path as every worker reads it, whatever its working folder (Ray)."""
    return str(Path(path).absolute())


def _sweep_source(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """The scene and policy every cell makes in its worker (names and options, checked
    here so an unknown plugin fails before any cell), and the registry."""
    from .cli import _policy_options, _registry, _scene_options

    reg = _registry()
    reg.get("policy", args.policy)
    return {"scene": args.scene, "scene_options": _scene_options(reg, args),
            "policy": args.policy, "policy_options": _policy_options(args)}, reg


def _tasks(reg: Any, args: argparse.Namespace, scene_options: dict,
           pairs: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """``--tasks`` (and ``--variant``, and ``--pairs`` if given) checked against the scene,
    which is closed again before the cells run."""
    from .cli import _tasks_and_variants

    with reg.create_scene(args.scene, **scene_options) as scene:
        tasks, _ = _tasks_and_variants(scene, args.tasks, args.variant or "default")
        found = _parse_pairs(scene, pairs, tasks) if pairs is not None else []
    return tasks, list(dict.fromkeys(found))


def _cell_positions(args: argparse.Namespace, spec: str, layer: str) -> list[int]:
    """``--positions`` as the positions the cells steer or inject at; a token group needs
    the policy (made here as the worker module's, so one in-process cell reuses it)."""
    if spec in ("", "all"):
        return []
    try:
        return [int(v) for v in spec.split(",")]
    except ValueError:
        pass
    from .cli import _policy_options
    from .core.sweep import worker

    return list(_positions(worker.policy(args.policy, _policy_options(args)), spec, layer))


def _block_cells(args: argparse.Namespace, fn: Callable, common: dict[str, Any],
                 parts: Sequence[tuple[str, dict[str, Any]]]) -> list:
    """One sweep cell per part and block of the command's seeds."""
    from .core.sweep import seed_block_cells

    return seed_block_cells(fn, common, parts, args.seed, args.episodes, args.seeds_per_cell)


def _done(outcome: Any) -> int:
    """The closing line (how many cells ran where) and the exit status."""
    print(outcome.summary())
    return 1 if outcome.failed else 0


def _table(rows: list[dict], columns: list[tuple[str, str, Callable[[Any], str]]]) -> str:
    """A markdown table of ``rows``: (header, key, format) per column."""
    head = "| " + " | ".join(h for h, _, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k)) for _, k, fmt in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.0%}"


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _partner_pairs(scene: Any, tasks: Sequence[str]) -> list[tuple[str, str]]:
    """Each task with the task whose instruction names the other object (shared scene)."""
    from .core.interventions import counterfactual_prompt

    by_instruction = {t.instruction: t.name for t in scene.tasks()}
    pairs = []
    for name in tasks:
        other = by_instruction.get(counterfactual_prompt(scene.task(name).instruction,
                                                         "wrong_object"))
        if other is None:
            raise VLAScopeError(f"task '{name}' has no partner task naming the other object; "
                                "give --pairs target:source")
        pairs.append((name, other))
    return pairs


def _parse_pairs(scene: Any, spec: str, tasks: Sequence[str]) -> list[tuple[str, str]]:
    if spec == "auto":
        return _partner_pairs(scene, tasks)
    pairs = []
    for item in spec.split(","):
        target, _, source = item.partition(":")
        if not source:
            raise VLAScopeError(f"--pairs: '{item}' is not target:source")
        pairs.append((scene.task(target).name, scene.task(source).name))
    return pairs


# Commands --------------------------------------------------------------------------------
def cmd_capture(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .core.experiments import capture_cell
    from .core.interventions import Prompt, from_dict

    layers = [v for v in args.layers.split(",") if v]
    ivs = [from_dict(d) for d in _load_interventions(args.interventions)]
    if args.prompt is not None:
        ivs.insert(0, Prompt(text=args.prompt))
    src, reg = _sweep_source(args)
    tasks, _ = _tasks(reg, args, src["scene_options"])
    common = {**src, "out_dir": _abs(args.out), "layers": layers, "pooling": args.pooling,
              "variant": args.variant, "interventions": [i.to_dict() for i in ivs]}
    cells = _block_cells(args, capture_cell, common, [(t, {"task": t}) for t in tasks])
    outcome = run_cells(args, cells, "capture", Path(args.out) / "cells")
    rows = [row for r in outcome.results() if r is not None for row in r["rows"]]
    result = {"command": "capture", "policy": args.policy, "layers": layers,
              "pooling": args.pooling, "interventions": [i.to_dict() for i in ivs],
              "episodes": rows, "cells": outcome.as_json()}
    path = write_json_atomic(Path(args.out) / "capture.json", result)
    ok = sum(r["success"] for r in rows)
    print(f"captured {', '.join(layers)} ({args.pooling}) in {len(rows)} episodes "
          f"({ok} successes) -> {args.out}; summary {path}")
    return _done(outcome)


def _concepts(path: Path) -> dict:
    """The concept features of a ``sae_stats.json``: kind -> group -> [(feature, score)]."""
    from .core.jsonfile import read_json

    concepts = read_json(path).get("concepts")
    if not isinstance(concepts, dict) or not all(isinstance(g, dict)
                                                 for g in concepts.values()):
        raise VLAScopeError(f"{path}: no 'concepts' mapping; run `vlascope sae stats` again")
    return concepts


def _load_interventions(path: str | None) -> list[dict]:
    if not path:
        return []
    from .core.jsonfile import read_json

    data = read_json(path, expect=None)
    return data if isinstance(data, list) else [data]


def cmd_sae_train(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .core.experiments import sae_train_cell
    from .core.sweep import SweepCell

    paths = [_abs(p) for p in episode_paths(args.episodes)]
    layers = list(dict.fromkeys(v for v in args.layers.split(",") if v))
    common = {"episodes": paths, "out": _abs(args.out), "expansion": args.expansion,
              "kind": args.kind, "k": args.k, "steps": args.steps,
              "batch_size": args.batch_size, "lr": args.lr, "max_vectors": args.max_vectors,
              "seed": args.seed, "device": args.device or "cpu"}
    cells = [SweepCell(f"layer__{layer}", sae_train_cell, {**common, "layer": layer},
                       f"sae {layer}") for layer in layers]
    outcome = run_cells(args, cells, "sae train", Path(args.out) / "cells")
    results = {}
    for r in outcome.results():
        if r is None:
            continue
        layer, res = r["layer"], r["result"]
        results[layer] = res
        print(f"{layer}: {res['vectors']} vectors, FVE {res['fve']:.3f}, L0 {res['l0']:.1f}, "
              f"dead {res['dead_fraction']:.1%} ({res['seconds']:.0f} s) -> {res['folder']}")
    write_json_atomic(Path(args.out) / "sae_train.json", {
        "command": "sae train", "saes": results, "cells": outcome.as_json()})
    return _done(outcome)


def cmd_sae_export(args: argparse.Namespace) -> int:
    import sys

    from .core.sae import export_atlas, load_sae

    sae = load_sae(args.sae)
    path, warnings = export_atlas(sae, args.out, name=args.name, overwrite=args.overwrite,
                                  allow_inexact=args.allow_inexact)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{sae.cfg.layer} ({sae.cfg.kind}, {sae.cfg.d_sae} features, k={sae.cfg.k}) -> "
          f"{path}" + (" (inexact)" if warnings else ""))
    return 0


def _sample_info(acts: Any):
    """Task, target object and motion phase of every activation vector."""
    import numpy as np

    from .core.episode import Episode
    from .core.measures import motion_phases
    from .core.sae.stats import SampleInfo

    tasks, objects, phases = [], [], []
    for path in acts.paths:
        with Episode(path) as ep:
            md = ep.metadata
            tasks.append(md.get("task", ""))
            objects.append(md.get("target_object", ""))
            phases.append(motion_phases(ep.states(), ep.actions()))
    ep_idx = acts.episode
    return SampleInfo(episode=ep_idx, step=acts.step, token=acts.token,
                      task=np.asarray(tasks)[ep_idx], object=np.asarray(objects)[ep_idx],
                      phase=np.asarray([phases[e][s] for e, s in zip(ep_idx, acts.step,
                                                                      strict=True)]))


def cmd_sae_stats(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .core.capture import load_activations, step_means
    from .core.sae import sae_folder
    from .core.sae.atlas import atlas
    from .core.sae.stats import concept_features, feature_stats

    sae = _load_sae_for(args, args.policy)
    positions = None
    if args.positions != "all":
        if sae.cfg.pooling != "tokens":
            raise VLAScopeError("--positions needs an SAE trained on per-token activations")
        from .cli import _registry

        positions = _positions(_registry().create_policy(args.policy), args.positions,
                               sae.cfg.layer)
    acts = load_activations(episode_paths(args.episodes), sae.cfg.layer,
                            max_vectors=args.max_vectors, seed=args.seed, positions=positions)
    if acts.pooling != sae.cfg.pooling:
        raise VLAScopeError(f"the episodes hold '{acts.pooling}'-pooled activations, the SAE "
                            f"was trained on '{sae.cfg.pooling}'")
    with torch.no_grad():
        codes = np.concatenate([sae.encode(torch.from_numpy(acts.x[i:i + 8192])).numpy()
                                for i in range(0, len(acts.x), 8192)])
    if args.aggregate == "steps" and acts.token[0] >= 0:
        # one row per frame: the mean code over the chosen tokens. A concept carried by one
        # token of many (the colour word of an instruction) stands out per frame, while per
        # token it is diluted by all the tokens that never carry it.
        codes, first = step_means(codes, acts.episode, acts.step)
        acts.episode, acts.step = acts.episode[first], acts.step[first]
        acts.token = np.full(len(first), -1)
    info = _sample_info(acts)
    stats = feature_stats(codes, info, n_top=args.top)
    out = Path(args.out) if args.out else sae_folder(args.sae)
    stats.save(out / "stats")
    concepts = {}
    # an object's features must pick it out in every task that names it
    for name, groups, within in (("task", info.task, None), ("object", info.object, info.task),
                                 ("phase", info.phase, None)):
        concepts[name] = {str(g): [(int(f), float(d)) for f, d in concept_features(
                                   codes, groups, str(g), top=args.concepts, within=within)]
                          for g in sorted(set(groups.tolist()))}
    maps = {}  # features by decoder direction, and by what they respond to
    for source, x in (("decoder", sae.decoder_directions().detach().numpy()),
                      ("stats", stats.profile())):
        emb, method = atlas(x, out / f"atlas_{source}.npz", source=source, wait=args.umap,
                            background=False)
        maps[source] = {"method": method, "points": int(len(emb))}
    result = {"command": "sae stats", "sae": str(args.sae), "vectors": int(len(acts.x)),
              "positions": args.positions, "aggregate": args.aggregate,
              "samples": int(len(codes)),
              "dead_fraction": float((stats.density == 0).mean()),
              "concepts": concepts, "atlas": maps}
    write_json_atomic(out / "sae_stats.json", result)
    for name, by_group in concepts.items():
        for g, feats in by_group.items():
            shown = ", ".join(f"{f} (d={d:.1f}, {stats.labels[f]})" for f, d in feats[:3])
            print(f"{name} {g}: {shown or 'no feature with d >= 0.8'}")
    where = (f"cached in {out}/atlas_decoder.npz, atlas_stats.npz"
             if maps["decoder"]["method"] == "umap" else "--umap computes and caches UMAP")
    print(f"stats -> {out}; atlas by decoder direction and by statistics: "
          f"{maps['decoder']['method']} ({where})")
    return 0


def _concept_feature(sae_dir: str, concept: str) -> int:
    """The top feature of a concept ('object:cube_b', 'task:pick_red', ...) from sae stats."""
    from .core.sae import sae_folder

    kind, _, group = concept.partition(":")
    path = sae_folder(sae_dir) / "sae_stats.json"
    if not path.is_file():
        raise VLAScopeError(f"{path} missing: run `vlascope sae stats --sae {sae_dir}` first")
    concepts = _concepts(path)
    feats = concepts.get(kind, {}).get(group)
    if not feats:
        raise VLAScopeError(f"no feature identifies '{concept}' (known: " + ", ".join(
            f"{k}:{g}" for k, gs in concepts.items() for g, f in gs.items() if f) + ")")
    return int(feats[0][0])


def cmd_steer(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .core.experiments import merge_cell_results, steer_cell

    if (args.feature is None) == (args.concept is None):
        raise VLAScopeError("give either --feature N or --concept kind:group")
    sae = _load_sae_for(args, args.policy)
    feature = args.feature if args.feature is not None else _concept_feature(args.sae,
                                                                             args.concept)
    alphas = list(dict.fromkeys(_floats(args.alphas, "--alphas")))
    src, reg = _sweep_source(args)
    tasks, _ = _tasks(reg, args, src["scene_options"])
    common = {**src, "sae": _abs(args.sae), "layer": sae.cfg.layer, "feature": feature,
              "variant": args.variant, "out_dir": _abs(args.out),
              "positions": _cell_positions(args, args.positions, sae.cfg.layer)}
    cells = _block_cells(args, steer_cell, common, [
        (f"{t}__alpha{a:g}", {"task": t, "alpha": a}) for t in tasks for a in alphas])
    outcome = run_cells(args, cells, "steer", Path(args.out) / "cells")
    rows = merge_cell_results(outcome.results())
    result = {"command": "steer", "policy": args.policy, "sae": args.sae,
              "layer": sae.cfg.layer, "feature": feature, "concept": args.concept,
              "positions": args.positions, "rows": rows, "cells": outcome.as_json()}
    print(f"feature {feature} of {sae.cfg.layer} ({args.concept or 'given'}), "
          f"{args.episodes} episodes per cell")
    print(_table(rows, [("task", "task", str), ("alpha", "extra", lambda e: f"{e['alpha']:g}"),
                        ("success", "success_rate", _pct),
                        ("handled named", "handled_target_rate", _pct),
                        ("handled other", "handled_other_rate", _pct)]))
    write_json_atomic(Path(args.out) / "steer.json", result)
    return _done(outcome)


def cmd_inject(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .core.experiments import (
        INJECTION_CONDITIONS,
        check_conditions,
        inject_cell,
        merge_cell_results,
    )

    conditions = (list(INJECTION_CONDITIONS) if args.conditions == "all"
                  else list(dict.fromkeys(c for c in args.conditions.split(",") if c)))
    if "baseline" not in conditions:
        conditions.insert(0, "baseline")
    check_conditions(conditions)
    src, reg = _sweep_source(args)
    _, pairs = _tasks(reg, args, src["scene_options"], args.pairs)
    common = {**src, "layer": args.layer, "out_dir": _abs(args.out), "variant": args.variant,
              "positions": _cell_positions(args, args.positions, args.layer),
              "conditions": conditions, "on_short": args.on_short}
    # each cell runs its own source rollouts (the same file for pairs sharing a source)
    cells = _block_cells(args, inject_cell, common, [
        (f"{t}__from_{s}", {"target": t, "source": s}) for t, s in pairs])
    outcome = run_cells(args, cells, "inject", Path(args.out) / "cells")
    rows = merge_cell_results(outcome.results())
    result = {"command": "inject", "policy": args.policy, "layer": args.layer,
              "positions": args.positions, "pairs": pairs, "rows": rows,
              "cells": outcome.as_json()}
    write_json_atomic(Path(args.out) / "inject.json", result)
    print(_table(rows, [("task", "task", str), ("condition", "condition", str),
                        ("success", "success_rate", _pct),
                        ("handled named", "handled_target_rate", _pct),
                        ("handled other", "handled_other_rate", _pct),
                        ("displacement", "displacement", _num),
                        ("action cosine", "cosine", _num)]))
    return _done(outcome)


def cmd_perturb(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .core.experiments import check_perturbations, merge_cell_results, perturb_cell
    from .core.perturbations import perturbation_kinds

    kinds = list(dict.fromkeys(perturbation_kinds() if args.kinds == "all"
                               else [k for k in args.kinds.split(",") if k]))
    check_perturbations(kinds, args.severity, args.seed)
    src, reg = _sweep_source(args)
    tasks, _ = _tasks(reg, args, src["scene_options"])
    common = {**src, "severity": args.severity, "perturb_seed": args.seed,
              "variant": args.variant, "out_dir": _abs(args.out)}
    cells = _block_cells(args, perturb_cell, common, [
        (f"{t}__{k}", {"task": t, "kind": k}) for t in tasks for k in ("none", *kinds)])
    outcome = run_cells(args, cells, "perturb", Path(args.out) / "cells")
    rows = merge_cell_results(outcome.results())
    write_json_atomic(Path(args.out) / "perturb.json", {
        "command": "perturb", "policy": args.policy, "severity": args.severity, "rows": rows,
        "cells": outcome.as_json()})
    print(_table(rows, [("task", "task", str), ("perturbation", "condition", str),
                        ("success", "success_rate", _pct),
                        ("handled named", "handled_target_rate", _pct)]))
    return _done(outcome)


def _ablate_cells_folder(json_out: str) -> Path:
    """The default record folder of ``ablate``: beside ``--json-out``."""
    p = Path(json_out)
    return p.with_name(f"{p.stem}-cells")


def cmd_ablate(args: argparse.Namespace) -> int:
    from .cli import _registry
    from .cli_sweep import run_cells
    from .core.experiments import ablate_cell, merge_ablation, zero_effect_summary
    from .core.sae import sae_folder
    from .core.sweep import SweepCell

    sae = _load_sae_for(args, args.policy)
    if args.features:
        features = [int(v) for v in args.features.split(",")]
    else:  # every concept feature found by `sae stats`
        path = sae_folder(args.sae) / "sae_stats.json"
        if not path.is_file():
            raise VLAScopeError(f"{path} missing: give --features or run `vlascope sae stats`")
        concepts = _concepts(path)
        features = sorted({int(f) for gs in concepts.values() for fs in gs.values()
                           for f, _ in fs})
    if not features:
        raise VLAScopeError("no features to ablate")
    if args.features_per_cell < 1:
        raise VLAScopeError("--features-per-cell must be at least 1")
    _registry().get("policy", args.policy)  # an unknown plugin fails here, not in a worker
    common = {"policy": args.policy,
              "policy_options": {"device": args.device} if args.device else {},
              "episodes": [_abs(p) for p in episode_paths(args.episodes)],
              "frames": args.frames, "seed": args.seed, "sae": _abs(args.sae),
              "layer": sae.cfg.layer, "mode": args.mode}
    size = args.features_per_cell
    cells = [SweepCell(f"features{i:05d}-{i + len(b) - 1:05d}", ablate_cell,
                       {**common, "features": b}, f"features {b[0]}..{b[-1]}")
             for i in range(0, len(features), size) for b in [features[i:i + size]]]
    outcome = run_cells(args, cells, "ablate", _ablate_cells_folder(args.json_out))
    done, effects = merge_ablation(outcome.results())
    if not done:
        return _done(outcome)
    frames = next(r["frames"] for r in outcome.results() if r is not None)
    summary = zero_effect_summary(effects, done)
    result = {"command": "ablate", "policy": args.policy, "sae": args.sae,
              "layer": sae.cfg.layer, "mode": args.mode, "frames": frames, **summary,
              "cells": outcome.as_json()}
    write_json_atomic(args.json_out, result)
    rates = ", ".join(f"{v:.0%} within {k}" for k, v in summary["zero_effect_rate"].items())
    print(f"{len(done)} concept features of {sae.cfg.layer} ablated one at a time "
          f"({args.mode}) on {frames} frames: zero-effect rate {rates}")
    return _done(outcome)


def cmd_probe(args: argparse.Namespace) -> int:
    import numpy as np

    from .core.capture import load_activations, step_means
    from .core.probes import probe_layers

    paths = episode_paths(args.episodes)
    acts, info = {}, None
    for layer in [v for v in args.layers.split(",") if v]:
        a = load_activations(paths, layer)
        if a.token[0] >= 0:  # per token: one vector per step, the mean over tokens
            a.x, first = step_means(a.x, a.episode, a.step)
            a.episode, a.step, a.token = a.episode[first], a.step[first], np.full(len(first), -1)
        acts[layer] = a.x
        info = info or _sample_info(a)
    targets = {"task": info.task, "object": info.object, "phase": info.phase}
    targets = {k: v for k, v in targets.items() if k in args.targets.split(",")}
    results = probe_layers(acts, targets, groups=info.episode, seed=args.seed)
    rows = [r.to_dict() for r in results]
    write_json_atomic(args.json_out, {"command": "probe", "episodes": paths, "rows": rows})
    for r in rows:
        r["split"] = f"{r['n_train']} / {r['n_test']}"
    print(_table(rows, [("layer", "layer", str), ("target", "target", str),
                        ("held-out accuracy", "accuracy", _pct), ("chance", "chance", _pct),
                        ("train / test frames", "split", str)]))
    return 0


# Parser ----------------------------------------------------------------------------------
def _add_rollout_options(p: argparse.ArgumentParser, *, tasks: str, episodes: int,
                         what: str) -> None:
    """The options every command that runs rollouts shares: which tasks, variant, how many
    seeds from which, and the folder the recorded episodes go to."""
    p.add_argument("--tasks", default=tasks, help="comma-separated, or 'all'")
    p.add_argument("--variant", default=None)
    p.add_argument("--episodes", type=int, default=episodes, help="per task (seeds)")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--out", required=True, help=f"folder for {what}")


def register(sub: argparse._SubParsersAction, add_common: Callable) -> None:
    """Add the mechanistic commands to the main parser."""
    from .cli_sweep import add_sweep_options

    p = sub.add_parser("capture", help="roll out and record activations of hook points")
    add_common(p)
    p.add_argument("--layers", required=True, help="comma-separated hook points")
    p.add_argument("--pooling", default="tokens", choices=("tokens", "mean"))
    _add_rollout_options(p, tasks="all", episodes=5, what="the episodes")
    p.add_argument("--prompt", default=None, help="counterfactual prompt for every episode")
    p.add_argument("--interventions", default=None, help="JSON file of interventions")
    add_sweep_options(p, cells_default="OUT/cells")
    p.set_defaults(func=cmd_capture)

    sae = sub.add_parser("sae", help="sparse autoencoders: train, stats, export").add_subparsers(
        dest="sae_command", required=True)
    p = sae.add_parser("train", help="train an SAE per layer on captured activations")
    p.add_argument("--episodes", nargs="+", required=True, help="episode files or folders")
    p.add_argument("--layers", required=True)
    p.add_argument("--kind", default="topk", choices=("topk", "relu"))
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--expansion", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="default: the trainer's")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--max-vectors", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="folder; one SAE per layer inside")
    add_sweep_options(p, seeds=False, cells_default="OUT/cells")  # a cell per layer
    p.set_defaults(func=cmd_sae_train)

    p = sae.add_parser("stats", help="feature statistics, concepts (Cohen's d), atlas")
    p.add_argument("--sae", required=True, help="an SAE folder, or an Action Atlas "
                   "sae_best.pt (or its folder)")
    p.add_argument("--layer", default=None, help="hook point of an Action Atlas SAE whose "
                   "layer name vlascope does not map for --policy (vlascope SAEs name theirs)")
    p.add_argument("--episodes", nargs="+", required=True)
    p.add_argument("--max-vectors", type=int, default=200_000)
    p.add_argument("--top", type=int, default=16, help="top-activating samples per feature")
    p.add_argument("--concepts", type=int, default=10, help="features per concept")
    p.add_argument("--positions", default="all", help="token positions the statistics are "
                   "taken over: all, a token group of --policy (language, visual, ...) or a list")
    p.add_argument("--policy", default="reference", help="whose token groups --positions "
                   "names (and whose hook point an Action Atlas layer name maps to)")
    p.add_argument("--aggregate", default="tokens", choices=("tokens", "steps"),
                   help="statistics per token, or per step over the mean code of the tokens")
    p.add_argument("--umap", action="store_true", help="compute the UMAP atlas (slow the "
                   "first time: numba compiles); otherwise the cached UMAP map or PCA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default: the SAE folder")
    p.set_defaults(func=cmd_sae_stats)

    p = sae.add_parser("export", help="write an SAE in another tool's format "
                       "(Action Atlas: <out>/<layer>/sae_best.pt)")
    p.add_argument("sae", help="an SAE folder")
    p.add_argument("--format", default="atlas", choices=("atlas",))
    p.add_argument("--out", required=True, help="folder; the SAE goes to OUT/NAME/sae_best.pt")
    p.add_argument("--name", default=None, help="layer name of the export folder (default: "
                   "the Action Atlas name it was imported with, else its hook point)")
    p.add_argument("--allow-inexact", action="store_true", help="export a ReLU-TopK SAE "
                   "(kind topk) although Action Atlas' signed TopK encodes it differently")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_sae_export)

    p = sub.add_parser("steer", help="steering sweep: success and handled object per alpha")
    add_common(p)
    p.add_argument("--sae", required=True, help="an SAE folder, or an Action Atlas "
                   "sae_best.pt (their SAEs steer by scaling: --alphas -2,-1,1,2)")
    p.add_argument("--layer", default=None, help="hook point of an Action Atlas SAE whose "
                   "layer name vlascope does not map for --policy (vlascope SAEs name theirs)")
    p.add_argument("--feature", type=int, default=None)
    p.add_argument("--concept", default=None, help="e.g. object:cube_b (from sae stats)")
    p.add_argument("--alphas", default="0,8,16,24,32", help="steering strengths; 0 is the "
                   "unsteered policy on the same seeds")
    p.add_argument("--positions", default="all", help="all, a token group or a list")
    _add_rollout_options(p, tasks="pick_red,pick_blue", episodes=5,
                         what="the episodes and steer.json")
    add_sweep_options(p, cells_default="OUT/cells")
    p.set_defaults(func=cmd_steer)

    p = sub.add_parser("inject", help="cross-task / null-language injection and "
                       "counterfactual prompts: success and displacement per condition")
    add_common(p)
    p.add_argument("--layer", default="trunk.1.resid")
    p.add_argument("--positions", default="all")
    _add_rollout_options(p, tasks="pick_red,pick_blue", episodes=5,
                         what="the episodes and inject.json")
    p.add_argument("--pairs", default="auto", help="target:source,...; auto: the task "
                   "naming the other object")
    p.add_argument("--conditions", default="all")
    p.add_argument("--on-short", default="hold", choices=("hold", "stop"),
                   help="when the source episode is shorter than the target's")
    add_sweep_options(p, cells_default="OUT/cells")
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser("perturb", help="success under visual corruptions")
    add_common(p)
    p.add_argument("--kinds", default="all")
    p.add_argument("--severity", type=int, default=3, choices=range(1, 6))
    _add_rollout_options(p, tasks="pick_red", episodes=3,
                         what="the episodes and perturb.json")
    add_sweep_options(p, cells_default="OUT/cells")
    p.set_defaults(func=cmd_perturb)

    p = sub.add_parser("ablate", help="zero-effect rate of concept-feature ablation")
    p.add_argument("--policy", default="reference")
    p.add_argument("--device", default=None)
    p.add_argument("--sae", required=True)
    p.add_argument("--layer", default=None, help="hook point of an Action Atlas SAE whose "
                   "layer name vlascope does not map for --policy (vlascope SAEs name theirs)")
    p.add_argument("--features", default=None, help="default: the concept features")
    p.add_argument("--mode", default="zero", choices=("zero", "mean"))
    p.add_argument("--episodes", nargs="+", required=True, help="frames to ablate on")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default="ablate.json")
    p.add_argument("--features-per-cell", type=int, default=16,
                   help="features per sweep cell (each cell picks the same frames)")
    add_sweep_options(p, seeds=False, cells_default="JSON_OUT-cells beside --json-out")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("probe", help="linear probes per layer: task, object, phase")
    p.add_argument("--episodes", nargs="+", required=True)
    p.add_argument("--layers", required=True)
    p.add_argument("--targets", default="task,object,phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default="probe.json")
    p.set_defaults(func=cmd_probe)
