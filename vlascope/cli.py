"""Headless command line: everything the GUI does, in batch, on the same core code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering without a display

from . import __version__  # noqa: E402
from .app.screenshot import PANELS  # noqa: E402
from .cli_sweep import add_sweep_options  # noqa: E402
from .core.errors import VLAScopeError  # noqa: E402
from .core.metrics import COUNTINGS, SCALINGS  # noqa: E402
from .core.saliency import ESTIMATORS, METHODS  # noqa: E402

DEFAULT_SCENE = "tabletop"
DEFAULT_POLICY = "reference"


def _registry():
    from .core.plugins import PluginRegistry

    return PluginRegistry.discover()


def _open(args: argparse.Namespace):
    reg = _registry()
    scene = reg.create_scene(args.scene, **_scene_options(reg, args))
    return scene, reg.create_policy(args.policy, **_policy_options(args))


def _scene_options(reg, args: argparse.Namespace) -> dict[str, object]:
    """``--size`` for scenes whose factory takes an image size."""
    from .core.plugins import accepts

    sizing = accepts(reg.get("scene", args.scene).factory, "image_size")
    return {"image_size": (args.size, args.size)} if sizing else {}


def _policy_options(args: argparse.Namespace) -> dict[str, object]:
    """``--policy``'s ``--device``, ``--weights`` (a checkpoint folder, as the GUI's "Load
    checkpoint") and any ``--policy-option KEY=VALUE``."""
    options = {"device": args.device} if getattr(args, "device", None) else {}
    if getattr(args, "weights", None):
        options["weights"] = args.weights
    options.update(parse_options(getattr(args, "policy_option", None) or []))
    return options


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings to plugin options; integers and floats become numbers."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VLAScopeError(f"--policy-option expects KEY=VALUE, got '{pair}'")
        for cast in (int, float):
            try:
                out[key.replace("-", "_")] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key.replace("-", "_")] = value
    return out


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy-option", action="append", metavar="KEY=VALUE",
                   help="an option for the policy plugin, e.g. cameras=agentview,wrist or "
                   "n_action_steps=5 (repeatable; see docs/adapters.md)")


def _tasks_and_variants(scene, tasks: str, variants: str) -> tuple[list[str], list[str]]:
    """Comma lists (or 'all'; tasks also by group, e.g. mt10) checked against the scene, so
    a typo fails before any work."""
    names = [v.name for v in scene.variants()]
    variant_names = names if variants == "all" else [v for v in variants.split(",") if v]
    for v in variant_names:
        scene.variant(v)
    return scene.resolve_tasks(tasks), variant_names


def cmd_scenes(args: argparse.Namespace) -> int:
    reg = _registry()
    out = []
    for name in reg.names("scene"):
        try:
            scene = reg.create_scene(name)
        except VLAScopeError as e:
            out.append({"scene": name, "error": str(e)})
            continue
        with scene:
            out.append({
                "scene": name, "cameras": list(scene.cameras), "action_dim": scene.action_dim,
                "tasks": [{"name": t.name, "instruction": t.instruction,
                           "max_steps": t.max_steps} for t in scene.tasks()],
                "variants": [{"name": v.name, "description": v.description}
                             for v in scene.variants()],
            })
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for s in out:
        if "error" in s:
            print(f"{s['scene']}: ERROR {s['error']}")
            continue
        print(f"scene {s['scene']}  cameras: {', '.join(s['cameras'])}  "
              f"action_dim: {s['action_dim']}")
        print("  tasks:")
        for t in s["tasks"]:
            print(f"    {t['name']:<22} {t['instruction']!r} (max {t['max_steps']} steps)")
        print("  variants:")
        for v in s["variants"]:
            print(f"    {v['name']:<22} {v['description']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .core.doctor import FAIL, report, run_checks

    checks = run_checks(registry=_registry())
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        print(report(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


def cmd_install_desktop(args: argparse.Namespace) -> int:
    from .desktop_integration import install, uninstall

    data_dir = Path(args.data_dir) if args.data_dir else None
    change = uninstall(data_dir) if args.uninstall else install(data_dir)
    print(change.summary() or f"nothing of VLAScope's to remove in {change.data_dir}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    reg = _registry()
    rows = [e.as_dict() for e in reg.entries]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        status = "ok" if r["status"] == "ok" else f"ERROR {r['error']}"
        print(f"{r['kind']:<8} {r['name']:<20} {status}  [{r['source']}]")
    from .core.plugins import bundle_install_hint, frozen

    if frozen():  # the bundle has no pip: say where a plugin it lacks goes
        print("\nTo add a plugin: " + bundle_install_hint().split(": ", 1)[1])
    return 0


def _record_paths(out: Path, policy: str, task: str, variant: str,
                  seeds: Sequence[int]) -> list[Path]:
    """Where ``record`` writes: ``out`` itself for one episode named ``*.h5``, else one
    file per seed in the folder ``out``, named by policy, task, variant and seed so that
    runs of different policies into one folder never collide."""
    if len(seeds) == 1 and out.suffix in (".h5", ".hdf5"):
        return [out]
    from .core.episode import safe_name

    stem = f"{safe_name(policy)}__{safe_name(task)}__{safe_name(variant)}"
    return [out / f"{stem}__seed{s}.h5" for s in seeds]


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    """Fail before any work if an output exists and ``--overwrite`` was not given (the
    writers check again when publishing, for a file that appears meanwhile)."""
    from .core.errors import OutputExistsError

    taken = [p for p in paths if p.exists() or p.is_symlink()]
    if taken and not overwrite:
        if len(taken) == 1:
            raise OutputExistsError(taken[0])
        raise VLAScopeError(f"{len(taken)} outputs already exist ({taken[0]}, ...); not "
                            "replacing them (--overwrite replaces them)")


def cmd_record(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .core.runner import rollout

    scene, policy = _open(args)
    with scene:
        task = scene.task(args.task).name
        variant = scene.variant(args.variant).name
        seeds = list(range(args.seed, args.seed + args.episodes))
        paths = _record_paths(Path(args.out), args.policy, task, variant, seeds)
        _refuse_existing(paths, args.overwrite)
        results = []
        for seed, path in tqdm(list(zip(seeds, paths, strict=True)), desc="record",
                               unit="episode", disable=None):
            res = rollout(scene, policy, task, seed, variant, record_to=path,
                          policy_name=args.policy, max_steps=args.max_steps,
                          overwrite=args.overwrite)
            results.append(res)
            if not args.json:
                print(f"{path}: {'success' if res.success else 'failure'} "
                      f"after {res.steps} steps ({res.seconds:.1f} s)")
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .core.runner import eval_sweep_cells, merge_eval_cells

    if args.compare == args.policy:
        raise VLAScopeError(f"--compare names the evaluated policy '{args.policy}' itself; "
                            "compare with another policy (e.g. the scene's expert)")
    reg = _registry()
    # The compared policy runs with its plugin's defaults: shipped weights, or none (an expert).
    runs = {args.policy: _policy_options(args), **({args.compare: {}} if args.compare else {})}
    for name in runs:
        reg.get("policy", name)  # an unknown or broken plugin fails here, not in a worker
    scene_options = _scene_options(reg, args)
    with reg.create_scene(args.scene, **scene_options) as scene:
        tasks, variants = _tasks_and_variants(scene, args.tasks, args.variants)
    cells = {name: eval_sweep_cells(args.scene, scene_options, name, options, tasks, variants,
                                    args.episodes, args.seed, args.seeds_per_cell)
             for name, options in runs.items()}
    outcome = run_cells(args, [c for cs in cells.values() for c in cs], "eval")
    by_key = {r.key: r.result if r.ok else None for r in outcome.records}
    results = {name: merge_eval_cells([by_key[c.key] for c in cs])
               for name, cs in cells.items()}
    reports = [_eval_report(args, name, cells) for name, cells in results.items()]
    if args.doc:
        _eval_doc(args, results)
    if args.json:
        out = dict(reports[0])
        if args.compare:
            out["compare"] = reports[1]
        out["cells"] = outcome.as_json()
        print(json.dumps(out, indent=2))
        return 1 if outcome.failed else 0
    for report in reports:
        print(f"{report['policy']}:")
        print(f"{'task':<26} {'variant':<18} {'success':>8} {'rate':>6} {'steps':>6}")
        for r in report["results"]:
            steps = f"{r['mean_steps']:.1f}" if r["mean_steps"] is not None else "-"
            print(f"{r['task']:<26} {r['variant']:<18} {r['successes']:>4}/{r['episodes']:<3} "
                  f"{r['success_rate']:>6.0%} {steps:>6}")
        print(f"mean success rate: {report['mean_success_rate']:.1%}")
    print(outcome.summary())
    return 1 if outcome.failed else 0


def _eval_report(args: argparse.Namespace, name: str, cells) -> dict[str, Any]:
    mean = sum(c.success_rate for c in cells) / len(cells) if cells else 0.0
    return {"policy": name, "scene": args.scene, "episodes_per_cell": args.episodes,
            "seed": args.seed, "results": [c.as_dict() for c in cells],
            "mean_success_rate": mean}


def _eval_doc(args: argparse.Namespace, results: dict) -> None:
    """The success table as a marked section of ``--doc`` (its other content kept), with
    the command that regenerates it."""
    import platform
    import time

    from .core.markdown import success_table, write_section

    names = list(results)
    parts = ["vlascope", "eval", "--scene", args.scene, "--tasks", args.tasks, "--variants",
             args.variants, "--policy", args.policy]
    parts += ["--weights", args.weights] if args.weights else []
    parts += ["--compare", args.compare] if args.compare else []
    command = " ".join([*parts, "--episodes", str(args.episodes), "--seed", str(args.seed),
                        "--doc", args.doc])
    title = f"`{names[0]}`" + (f" beside `{names[1]}`" if len(names) > 1 else "")
    body = "\n".join([
        f"## {args.scene}: {title}", "",
        "Produced by one command (re-run it to regenerate this section):", "",
        f"    {command}", "",
        f"Seeds {args.seed}..{args.seed + args.episodes - 1} per task, the same for every "
        f"policy; each cell is successes/episodes. Machine: {platform.machine()}, "
        f"{platform.processor() or 'CPU'}; written {time.strftime('%Y-%m-%d %H:%M')}.", "",
        success_table(results), ""])
    write_section(args.doc, f"eval:{args.scene}:{names[0]}", body)
    print(f"table -> {args.doc}", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> int:
    from .core.episode import Episode

    with Episode(args.episode) as ep:
        summary = {"path": str(ep.path), "steps": ep.n_steps, "cameras": ep.cameras,
                   "has_regions": ep.has_regions(), "activations": ep.activation_names,
                   "success": ep.success, "metadata": ep.metadata}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    md = summary["metadata"]
    print(f"{summary['path']}: {summary['steps']} steps, cameras {', '.join(summary['cameras'])}, "
          f"{'success' if summary['success'] else 'failure'}")
    print(f"  scene {md.get('scene')}  task {md.get('task')}  variant {md.get('variant')}  "
          f"seed {md.get('seed')}")
    print(f"  instruction {md.get('instruction')!r}")
    pol = md.get("policy", {})
    print(f"  policy {pol.get('name') or pol.get('id')}  weights {pol.get('weights_hash') or '-'}")
    print(f"  recorded by vlascope {md.get('vlascope_version')} at {md.get('created')}")
    if md.get("ended"):
        print(f"  ended early: {md['ended']}")
    return 0


def cmd_iss(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .core.episode import Episode
    from .core.saliency.explain_episode import explain_episode
    from .core.saliency.iss import ISSConfig
    from .core.sweep import SweepCell

    cfg = ISSConfig(n_masks=args.n, grid=args.grid, p_keep=args.p_keep, sigma=args.sigma,
                    estimator=args.estimator, batch_size=args.batch_size, seed=args.seed)
    cfg.check()
    _registry().get("policy", args.policy)  # an unknown or broken plugin fails here
    several = len(args.episodes) > 1
    for path in args.episodes if several else ():  # an unreadable file fails before any work
        with Episode(path):
            pass
    kwargs = [{"episode": str(Path(p).resolve()) if several else p, "policy": args.policy,
               "policy_options": _policy_options(args), "config": asdict(cfg),
               "method": args.method, "budget": args.budget, "bandwidth": args.bandwidth,
               "every": args.every, "check": args.check, "faithfulness": args.faithfulness,
               "png": (str(Path(args.png) / Path(p).stem) if several else args.png)
               if args.png else None} for p in args.episodes]
    if not several and args.executor == "local" and not args.resume:
        summaries = [_iss_in_process(kwargs[0])]  # one long cell: a bar over its steps
        failed = 0
    else:
        from .cli_sweep import run_cells

        cells = [SweepCell(f"{i:04d}_{Path(p).stem}", explain_episode, kw, p)
                 for i, (p, kw) in enumerate(zip(args.episodes, kwargs, strict=True))]
        outcome = run_cells(args, cells, "iss")
        summaries = [r for r in outcome.results() if r is not None]
        failed = len(outcome.failed)
    for summary in summaries:
        if args.json:
            continue
        print(_iss_line(summary, args))
    if args.json:
        print(json.dumps(summaries[0] if not several and summaries else summaries, indent=2))
    elif several:
        print(outcome.summary())
    return 1 if failed else 0


def _iss_in_process(kwargs: dict[str, Any]) -> dict[str, Any]:
    from tqdm import tqdm

    from .core.saliency.explain_episode import explain_episode
    from .core.sweep import worker

    with tqdm(desc="iss", unit="step", disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            return explain_episode(**kwargs, progress=progress)
        finally:
            worker.release()


def _iss_line(summary: dict[str, Any], args: argparse.Namespace) -> str:
    """One line per episode: what was stored and how (and how faithful, if measured)."""
    line = _iss_made(summary, args)
    f = summary.get("faithfulness")
    if f:
        a = f["mean_areas"]
        line += (f"\n  faithfulness on steps {f['steps']}: deletion area {a['deletion']:.4f} "
                 f"(random map {a['random_deletion']:.4f}; higher: the map finds what moves "
                 f"the actions), insertion area {a['insertion']:.4f} (random "
                 f"{a['random_insertion']:.4f}; lower is better)")
    return line


def _iss_made(summary: dict[str, Any], args: argparse.Namespace) -> str:
    name, steps = summary["episode"], summary["computed_steps"]
    if "every" in summary:
        err = (f"{summary['interpolation_error']:.3f} (corr {summary['interpolation_corr']:.3f})"
               f" on held-out steps {summary['check_steps']}" if summary["check_steps"]
               else "not measured")
        return (f"{name}: {summary['method']} stored for {len(steps)} computed steps, "
                f"interpolated in between; interpolation error {err}")
    h = float(summary["bandwidth"])
    pooling = ("not pooled (per-frame maps)" if h == 0 else
               "pooled over the whole episode" if h == float("inf") else
               f"pooled over time with a Gaussian of {h:g} steps")
    picked = ", picked by cross-validation" if args.bandwidth is None else ""
    return (f"{name}: {summary['method']} stored for all {len(steps)} steps at "
            f"{args.budget} forward passes per step; {pooling}{picked}")


def cmd_nmr(args: argparse.Namespace) -> int:
    import numpy as np

    from .core.annotation import annotated_regions
    from .core.episode import Episode
    from .core.metrics import episode_nmr_series, parse_k

    ks = [parse_k(k) for k in args.k.split(",")]
    if args.out:
        from .core.errors import OutputExistsError
        from .core.toolkit_io import k_slug

        if len(args.episodes) != 1:
            raise VLAScopeError("--out writes one episode's nmr@{k}pct files: give one episode")
        existing = [f for k in ks for ext in (".json", ".csv")
                    if (f := Path(args.out) / f"nmr@{k_slug(k)}{ext}").exists()]
        if existing and not args.overwrite:
            raise OutputExistsError(existing[0])
    rows = []
    for path in args.episodes:
        with Episode(path) as ep:
            masks, source = None, "ground truth"
            cams = (ep.saliency_cameras(args.method) if args.method in ep.saliency_methods()
                    else ep.cameras)
            if args.masks:
                from .core.toolkit_io import read_masks

                masks, source = read_masks(args.masks, cams), args.masks
                _say_how_masks_fit(masks, ep, args.method)
            elif not args.ground_truth and (masks := annotated_regions(ep)) is not None:
                source = "annotation"
            series = episode_nmr_series(ep, args.method, ks, args.normalization, args.strict,
                                        regions=masks, counting=args.counting,
                                        scaling=args.scaling, per_view=bool(args.out))
            rows.append({"episode": path, "success": ep.success, "regions": source,
                         "counting": args.counting, "scaling": args.scaling,
                         "nmr": {str(k): float(np.nanmean(s.scores)) for k, s in series.items()},
                         "per_step": {str(k): s.scores.tolist() for k, s in series.items()}})
        if args.out:
            from .core.toolkit_io import write_nmr

            for k, s in series.items():
                rows[-1].setdefault("files", []).extend(
                    str(f) for f in write_nmr(args.out, k, s.scores, s.per_view, args.scaling))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    label = {k: f"{k:g}" if isinstance(k, float) else k for k in ks}
    print(f"{'episode':<50} {'success':<8} " + " ".join(f"NMR@{label[k]}".rjust(8) for k in ks)
          + "  regions")
    for r in rows:
        print(f"{r['episode']:<50} {str(r['success']):<8} "
              + " ".join(f"{r['nmr'][str(k)]:>8.3f}" for k in ks) + f"  {r['regions']}")
        for f in r.get("files", []):
            print(f"  -> {f}")
    return 0


def _say_how_masks_fit(masks: dict, ep: Any, method: str) -> None:
    """The toolkit resizes masks of another size (nearest) and rescales their frames in
    time: we do the same, and say so instead of doing it silently."""
    if method not in ep.saliency_methods():
        return
    for cam, m in masks.items():
        size = ep.saliency(method, cam, 0).shape
        notes = []
        if m.shape[1:] != size:
            notes.append(f"resized nearest from {m.shape[2]}x{m.shape[1]} to "
                         f"{size[1]}x{size[0]}")
        if len(m) != ep.n_steps:
            notes.append(f"{len(m)} mask frames spread over {ep.n_steps} steps")
        if notes:
            print(f"note: mask of view '{cam}': {'; '.join(notes)}, as the toolkit does",
                  file=sys.stderr)


def cmd_toolkit_export(args: argparse.Namespace) -> int:
    import numpy as np

    from .core.annotation import annotated_regions
    from .core.episode import Episode
    from .core.errors import EpisodeFormatError, OutputExistsError
    from .core.toolkit_io import HEATMAPS, MASKS, mask_name, write_heatmaps, write_masks

    out = Path(args.out)
    with Episode(args.episode) as ep:
        if args.method not in ep.saliency_methods():
            raise EpisodeFormatError(f"{args.episode}: no saliency '{args.method}' stored; run "
                                     "`vlascope iss` first")
        cams = ep.saliency_cameras(args.method)
        existing = [p for p in (out / HEATMAPS, *(out / MASKS / mask_name(c) for c in cams))
                    if p.exists()]
        if existing and not args.overwrite:
            raise OutputExistsError(existing[0])
        made = ep.metadata.get(f"saliency.{args.method}", {})
        meta = {"source": "vlascope", "episode": str(Path(args.episode).resolve()),
                "method": args.method, "views": {c: c for c in cams},
                **_toolkit_meta(made)}
        # read everything before writing anything: a refused input leaves no partial export
        maps = {c: ep.saliency(args.method, c) for c in cams}
        labels = annotated_regions(ep)  # the user's corrections when there are any
        if labels is None and ep.has_regions():
            labels = {c: np.stack([ep.regions(t, c) for t in range(ep.n_steps)]) for c in cams}
        written = [write_heatmaps(out, maps, meta)]
        if labels is not None:
            written += write_masks(out, {c: labels[c] for c in cams})
    for path in written:
        print(path)
    return 0


def _toolkit_meta(made: dict) -> dict:
    """How the maps were made, under the toolkit's meta_json keys where it has them."""
    cfg = made.get("config", {})
    if not cfg:
        return {}
    return {"n_masks": cfg.get("n_masks"), "p_keep": cfg.get("p_keep"),
            "grid_size": [cfg.get("grid"), cfg.get("grid")], "blur_sigma": cfg.get("sigma"),
            "time_stride": made.get("every"), "seed": cfg.get("seed"),
            "estimator": cfg.get("estimator")}


def cmd_toolkit_import(args: argparse.Namespace) -> int:
    from .core.episode import Episode, update_episode
    from .core.errors import EpisodeFormatError
    from .core.toolkit_io import heatmaps_file, read_heatmaps

    with Episode(args.episode) as ep:
        n_steps, cams = ep.n_steps, ep.cameras
    source = heatmaps_file(args.heatmaps)
    maps, meta = read_heatmaps(source)
    unknown = [c for c in maps if c not in cams]
    if unknown:
        raise EpisodeFormatError(f"{source}: views {unknown} are not cameras of "
                                 f"{args.episode} ({', '.join(cams)})")
    steps = len(next(iter(maps.values())))
    if steps != n_steps:
        raise EpisodeFormatError(f"{source}: {steps} maps per view, but {args.episode} has "
                                 f"{n_steps} steps (the toolkit writes one map per step)")
    update_episode(args.episode, {f"saliency/{args.name}/{c}": m for c, m in maps.items()},
                   {f"saliency.{args.name}": {"imported_from": str(source), "meta": meta}})
    print(f"{args.episode}: stored the toolkit's maps of {', '.join(maps)} from {source} as "
          f"'{args.name}'")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .cli_sweep import run_cells
    from .core.report import merge_report_cells, report_cell, write_report
    from .core.saliency.iss import ISSConfig
    from .core.sweep import seed_block_cells

    reg = _registry()
    names = [p for p in args.policies.split(",") if p]
    opts = {"device": args.device} if args.device else {}
    for name in names:
        reg.get("policy", name)  # an unknown or broken plugin fails here, not in a worker
    ks = [float(k) for k in args.k.split(",")]
    iss = ISSConfig(n_masks=args.n, estimator=args.estimator)
    iss.check()
    with reg.create_scene(args.scene) as scene:
        tasks, variants = _tasks_and_variants(scene, args.tasks, args.variants)
    out = str(Path(args.out).resolve())
    common = {"scene": args.scene, "policy_options": opts, "out_dir": out,
              "iss": asdict(iss), "every": args.every, "ks": ks}
    cells = seed_block_cells(report_cell, common, [
        (f"{n}__{t}__{v}", {"policy": n, "task": t, "variant": v})
        for n in names for t in tasks for v in variants], args.seed, args.episodes,
        args.seeds_per_cell)
    outcome = run_cells(args, cells, "report", Path(args.out) / "cells")
    settings = {"policies": names, "tasks": tasks, "variants": variants,
                "episodes": args.episodes, "n_masks": args.n, "estimator": args.estimator,
                "every": args.every, "seed": args.seed}
    path = write_report(merge_report_cells(outcome.results()), ks, args.out, settings)
    print(path.read_text())
    print(f"report -> {path}, plot -> {Path(args.out) / 'nmr_vs_success.png'}")
    print(outcome.summary())
    return 1 if outcome.failed else 0


def cmd_language_check(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .scenes.tabletop.evaluation import language_sweep_cells, merge_language_rows

    if args.scene != DEFAULT_SCENE:
        raise VLAScopeError(f"language-check runs on the tabletop's paired tasks, not on "
                            f"{args.scene}")
    reg = _registry()
    reg.get("policy", args.policy)  # an unknown or broken plugin fails here, not in a worker
    with reg.create_scene(args.scene) as scene:
        if args.variant:
            scene.variant(args.variant)
    cells = language_sweep_cells(args.policy, _policy_options(args), args.episodes, args.seed,
                                 args.seeds_per_cell, args.variant,
                                 scene_options=_scene_options(reg, args))
    outcome = run_cells(args, cells, "language")
    rows = merge_language_rows(outcome.results())
    out = [{**r.__dict__, "rate": r.rate} for r in rows]
    if args.json:
        print(json.dumps({"rows": out, "cells": outcome.as_json()}, indent=2))
        return 1 if outcome.failed else 0
    print(f"{'task':<22} {'instruction of':<22} {'expected':<8} {'handled':>8} {'other':>6}")
    for r in rows:
        print(f"{r.task:<22} {r.prompt_task:<22} {r.expected:<8} "
              f"{r.handled_expected:>4}/{r.episodes:<3} {r.handled_other:>6}")
    print(outcome.summary())
    return 1 if outcome.failed else 0


def cmd_init_reference(args: argparse.Namespace) -> int:
    from .policies.reference.model import ReferenceConfig
    from .policies.reference.train import init_reference

    cfg = ReferenceConfig(cameras=tuple(c for c in args.cameras.split(",") if c),
                          state_dim=args.state_dim, action_dim=args.action_dim,
                          n_layers=args.layers)
    out = init_reference(args.out, cfg, seed=args.seed)
    print(f"untrained reference checkpoint -> {out} (use it with --policy reference "
          f"--weights {out})")
    return 0


def cmd_train_reference(args: argparse.Namespace) -> int:
    import torch

    from .core.device import pick_device
    from .policies.reference.model import ReferenceConfig
    from .policies.reference.model_card import write_model_card, write_training_card
    from .policies.reference.train import TrainSettings, save_reference, train_reference

    device = pick_device(args.device or "auto")
    torch.manual_seed(args.seed)
    if args.eval_episodes > 0 and args.scene != DEFAULT_SCENE:
        raise VLAScopeError("--eval-episodes writes the tabletop model card; evaluate on "
                            f"{args.scene} with `vlascope eval --scene {args.scene}`")
    shape = {}
    if args.cameras:
        shape["cameras"] = tuple(c for c in args.cameras.split(",") if c)
    if args.image_size:
        shape["image_size"] = args.image_size
    if args.head:
        shape["head"] = args.head
    cfg = ReferenceConfig(**shape)
    variant = args.variant or ("diverse" if args.scene == DEFAULT_SCENE else "default")
    st = TrainSettings(variant=variant, scene=args.scene,
                       tasks=tuple(t for t in args.tasks.split(",") if t),
                       episodes_per_task=args.episodes_per_task, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       frame_stride=args.frame_stride)
    result = train_reference(cfg, st, device=device, cache_dir=args.cache,
                             log=lambda line: print(line, flush=True))
    out = save_reference(args.out, result, cfg, st)
    print(f"weights -> {out / 'model.safetensors'}")
    if args.eval_episodes > 0:
        card = write_model_card(out, eval_variants=args.eval_variants.split(","),
                                episodes=args.eval_episodes, device=device)
    else:
        card = write_training_card(out)
    print(f"model card -> {card}")
    return 0


def cmd_model_card(args: argparse.Namespace) -> int:
    from .cli_sweep import run_cells
    from .policies.reference.model_card import (
        comparison_cells,
        comparison_markdown,
        merge_comparison,
        parse_variant_episodes,
    )

    reg = _registry()
    names = [n for n in args.policies.split(",") if n]
    options = {"device": args.device} if args.device else {}
    for name in names:
        reg.get("policy", name)  # an unknown or broken plugin fails here, not in a worker
    with reg.create_scene(DEFAULT_SCENE) as scene:
        variants = parse_variant_episodes(args.variants, args.episodes)
        tasks, _ = _tasks_and_variants(scene, args.tasks, ",".join(v for v, _ in variants))
    cells = comparison_cells(names, options, tasks, variants, args.language_episodes,
                             args.seed, args.seeds_per_cell)
    outcome = run_cells(args, cells, "model card")
    comp = merge_comparison(names, cells, outcome.results(), args.seed)
    command = " ".join(["vlascope", "model-card", "--policies", args.policies, "--tasks",
                        args.tasks, "--variants", args.variants, "--episodes",
                        str(args.episodes), "--language-episodes", str(args.language_episodes),
                        "--seed", str(args.seed), "--out", args.out])
    from .core.atomic import write_text_atomic
    from .core.markdown import keep_sections

    out = Path(args.out)
    write_text_atomic(out, keep_sections(out, comparison_markdown(comp, command)))
    write_text_atomic(out.with_suffix(".json"), json.dumps(comp.as_dict(), indent=2))
    print(f"model card -> {out} (+ {out.with_suffix('.json').name})")
    print(outcome.summary())
    if outcome.failed:
        return 1  # a shipped model's card is never rewritten from an incomplete sweep
    if args.update_cards:
        from .policies.reference.model_card import write_model_card
        from .policies.reference.policy import shipped_weights

        for name, model_cells in comp.cells.items():
            card = write_model_card(shipped_weights(name), [v for v, _ in variants],
                                    max(n for _, n in variants), seed=args.seed,
                                    cells=model_cells,
                                    eval_cmd=command)
            print(f"model card -> {card}")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    """The inspector window (the default command)."""
    from .app.launch import run_app

    return run_app(episode=args.episode, weights=args.weights, policy=args.policy,
                   scene=args.scene, task=args.task, device=args.device)


def _video_layout(args: argparse.Namespace):
    from .core.video import VideoLayout

    cams = tuple(c for c in (args.cameras or "").split(",") if c)
    return VideoLayout(cameras=cams, overlay=args.overlay, method=args.method or "",
                       top_k=args.top_k, opacity=args.opacity, caption=not args.no_caption,
                       plot=args.plot, height=args.height, paths=not args.no_paths)


def _step_range(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    first, sep, last = text.partition(":")
    try:
        return int(first or 0), int(last) if last else 10**9
    except ValueError as e:
        raise VLAScopeError(f"--steps expects FIRST:LAST, got '{text}'") from e


def _export(paths: list[str], out: str, layout, fps: float, steps, labels=(),
            overwrite: bool = False) -> Path:
    from tqdm import tqdm

    from .core.video import export_video

    with tqdm(desc="video", unit="frame", disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return export_video(paths, out, layout, fps=fps, steps=steps, labels=labels,
                            progress=progress, overwrite=overwrite)


def cmd_video(args: argparse.Namespace) -> int:
    """An episode (or a baseline and an intervened one side by side) as a video."""
    paths = [args.compare, args.episode] if args.compare else [args.episode]
    labels = ("A", "B") if args.compare else ()
    out = _export(paths, args.out, _video_layout(args), args.fps, _step_range(args.steps),
                  labels, args.overwrite)
    print(f"video -> {out}")
    return 0


def cmd_export_rerun(args: argparse.Namespace) -> int:
    """An episode as a Rerun recording (.rrd) for the Rerun viewer."""
    from tqdm import tqdm

    from .core.rerun_export import export_rerun, rerun_version

    version = rerun_version()  # a missing SDK fails here, before the episode is read
    with tqdm(desc="rerun", unit="step", disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        out = export_rerun(args.episode, args.out, fps=args.fps, progress=progress,
                           overwrite=args.overwrite)
    print(f"rerun -> {out} (open it with the Rerun viewer {version}: rerun {out})")
    return 0


def cmd_demo_video(args: argparse.Namespace) -> int:
    """The reference policy with and without a steering intervention, side by side."""
    from .core.demo import steering_demo
    from .core.video import check_video_output

    for target in (args.out, args.gif):  # refused before the rollouts, not after
        if target:
            check_video_output(target, args.overwrite)
    scene, policy = _open(args)
    out = Path(args.out)
    work = Path(args.work_dir) if args.work_dir else out.with_suffix("")
    demo = steering_demo(scene, policy, work, task=args.task, seed=args.seed,
                         layer=args.layer, alpha=args.alpha, feature=args.feature,
                         sae_steps=args.sae_steps, n_masks=args.masks, every=args.every,
                         policy_name=args.policy, say=lambda m: print(m, flush=True))
    labels = ("A (unmodified)", "B")
    video = _export(list(demo.paths), str(out), _video_layout(args), args.fps, None, labels,
                    args.overwrite)
    print(f"video -> {video}")
    if args.gif:
        small = _video_layout(args)
        small.height = args.gif_height
        gif = _export(list(demo.paths), args.gif, small, args.fps,
                      _step_range(args.gif_steps), labels, args.overwrite)
        print(f"gif -> {gif}")
    print(json.dumps(demo.summary(), indent=2))
    return 0


def _add_video_options(p: argparse.ArgumentParser) -> None:
    from .core.video import OVERLAYS, PLOTS

    p.add_argument("--overlay", choices=OVERLAYS, default="saliency")
    p.add_argument("--method", default=None, help="stored saliency method (default: first)")
    p.add_argument("--top-k", type=float, default=0.0,
                   help="outline the top k%% salient pixels (0: off)")
    p.add_argument("--opacity", type=float, default=0.6)
    p.add_argument("--plot", choices=PLOTS, default="actions")
    p.add_argument("--no-caption", action="store_true")
    p.add_argument("--no-paths", action="store_true",
                   help="leave out the planned vs executed hand path (drawn where the "
                   "episode recorded it)")
    p.add_argument("--height", type=int, default=224, help="pixels per camera view")
    p.add_argument("--cameras", default=None, help="comma list (default: all)")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file, or a PNG-frame folder written by "
                   "vlascope (other folders are never replaced)")


def cmd_screenshot(args: argparse.Namespace) -> int:
    from .app.screenshot import take_screenshot

    out = take_screenshot(args.out, policy=args.policy, task=args.task, variant=args.variant,
                          scene=args.scene, weights=args.weights,
                          seed=args.seed, steps=args.steps, n_masks=args.masks,
                          record_dir=args.record_dir, panel=args.panel)
    print(f"screenshot -> {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Until the inspector window exists: roll out every task once, record, write a preview."""
    import numpy as np

    from .core.atomic import save_image_atomic
    from .core.episode import Episode, safe_name
    from .core.regions import colorize
    from .core.runner import rollout

    scene, policy = _open(args)
    out = Path(args.out)
    rows = []
    with scene:
        paths = [out / f"{safe_name(spec.name)}.h5" for spec in scene.tasks()]
        _refuse_existing([*paths, out / "preview.png"], args.overwrite)
        for spec, path in zip(scene.tasks(), paths, strict=True):
            res = rollout(scene, policy, spec.name, args.seed, args.variant, record_to=path,
                          policy_name=args.policy, overwrite=args.overwrite)
            print(f"{spec.name:<22} {'success' if res.success else 'failure':<8} "
                  f"{res.steps:>4} steps  {spec.instruction!r} -> {path}")
            with Episode(path) as ep:
                cam = ep.cameras[0]
                picks = [0, ep.n_steps // 2, ep.n_steps - 1]
                tiles = [ep.frame(t, cam) for t in picks] + [colorize(ep.regions(0, cam))]
                rows.append(np.concatenate(tiles, axis=1))
    preview = out / "preview.png"
    save_image_atomic(preview, np.concatenate(rows, axis=0))
    print(f"preview (first / middle / last frame, regions) -> {preview}")
    print("The inspector window is not built yet; these episodes will open in it.")
    return 0


def _add_common(p: argparse.ArgumentParser, policy: bool = True) -> None:
    p.add_argument("--scene", default=DEFAULT_SCENE, help="scene plugin (default: tabletop)")
    if policy:
        p.add_argument("--policy", default=DEFAULT_POLICY,
                       help=f"policy plugin (default: {DEFAULT_POLICY})")
        p.add_argument("--device", default=None,
                       help="auto (CUDA when present, else CPU), cpu or cuda[:N]")
        p.add_argument("--weights", default=None, help="checkpoint folder for --policy "
                       "(e.g. one written by train-reference); default: its shipped weights")
        _add_policy_options(p)
    p.add_argument("--size", type=int, default=224, help="camera image size in pixels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlascope", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vlascope {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("scenes", help="list scenes, their tasks and variants")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_scenes)

    p = sub.add_parser("doctor", help="what works on this machine and what does not, each "
                       "with its fix (rendering, display, GPU, plugins, disk, extras)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("install-desktop", help="add VLAScope to the desktop's menus with its "
                       "icon, and open episode files in it on double click (freedesktop)")
    p.add_argument("--uninstall", action="store_true",
                   help="remove what install-desktop wrote (files changed since are kept)")
    p.add_argument("--data-dir", default=None,
                   help="the data folder to install into (default: $XDG_DATA_HOME, else "
                        "~/.local/share)")
    p.set_defaults(func=cmd_install_desktop)

    p = sub.add_parser("plugins", help="list discovered plugins and their status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("record", help="roll out a policy and record episodes to HDF5")
    _add_common(p)
    p.add_argument("--task", required=True)
    p.add_argument("--variant", default=None, help="default: the scene's first variant")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--out", required=True, help="an .h5 file (one episode) or a directory "
                   "(files named POLICY__TASK__VARIANT__seedN.h5)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace episodes that exist (default: refuse)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("eval", help="success table over tasks x variants x episodes")
    _add_common(p)
    p.add_argument("--tasks", default="all",
                   help="comma-separated task or group names (e.g. mt10), or 'all'")
    p.add_argument("--variants", default="default", help="comma-separated, or 'all'")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", default=None, metavar="POLICY",
                   help="also evaluate this policy plugin on the same seeds (e.g. the "
                        "scene's expert), side by side")
    add_sweep_options(p)
    p.add_argument("--doc", default=None, metavar="FILE.md",
                   help="write the table as a section of this Markdown file, replacing the "
                        "section an earlier run wrote and keeping the rest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("iss", help="ISS saliency maps of recorded episodes, stored in them")
    p.add_argument("episodes", nargs="+", help="episode files (several: one cell each)")
    p.add_argument("--method", default="iss", choices=METHODS,
                   help="pixel ISS (default), token ISS, or a baseline to compare with")
    p.add_argument("--policy", default=DEFAULT_POLICY)
    p.add_argument("--weights", default=None, help="checkpoint folder for --policy")
    _add_policy_options(p)
    p.add_argument("--device", default=None)
    p.add_argument("--budget", type=int, default=10,
                   help="forward passes per step: every step explained with budget - 1 "
                        "masks, maps pooled over time (docs/benchmarks.md, Episode ISS)")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="pooling over time in steps (0: none; default: cross-validated)")
    p.add_argument("--n", type=int, default=100, help="masks per computed step with --every")
    p.add_argument("--grid", type=int, default=7)
    p.add_argument("--p-keep", type=float, default=0.3)
    p.add_argument("--sigma", type=float, default=10.0, help="blur of the fill (pixels)")
    p.add_argument("--estimator", default="toolkit-improved", choices=ESTIMATORS,
                   help="toolkit: the ISS toolkit's definition exactly; toolkit-improved: the "
                        "same map with less variance; rise*: our earlier per-camera masks")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--every", type=int, default=None,
                   help="the toolkit's way instead: --n masks on every Nth step (it uses 10), "
                        "linear interpolation in between (baselines: --every 1)")
    p.add_argument("--check", type=int, default=2,
                   help="held-out steps on which the interpolation error is measured")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", default=None, help="folder for overlay PNGs of computed steps "
                   "(several episodes: a subfolder each)")
    p.add_argument("--faithfulness", type=int, default=0, metavar="N",
                   help="deletion and insertion curves of the maps on N steps, against a "
                   "random map's (stored with the maps; 4 x 11 forward passes per step)")
    p.add_argument("--json", action="store_true")
    add_sweep_options(p, seeds=False)
    p.set_defaults(func=cmd_iss)

    p = sub.add_parser("nmr", help="NMR@k per step and per episode from stored saliency")
    p.add_argument("episodes", nargs="+")
    p.add_argument("--method", default="iss-toolkit-improved",
                   help="stored maps to use: iss-<estimator>, token-iss-<estimator>, "
                        "attention-rollout, attention-last, token-norm, gradient, or a name "
                        "given to toolkit-import")
    p.add_argument("--k", default="10", help="comma-separated percentages, e.g. 1,5,10,20,50, "
                   "or pixel counts as the toolkit's k_pixels, e.g. 50px")
    p.add_argument("--normalization", default="count", choices=["count", "mass"])
    p.add_argument("--strict", action="store_true", help="count painted nuisance only")
    p.add_argument("--masks", default=None,
                   help="the ISS toolkit's masks (a folder with mask_{view}_rgb.npy per view, "
                        "0 nuisance, 1 support, 2 action) instead of the episode's regions")
    p.add_argument("--counting", default="toolkit", choices=COUNTINGS,
                   help="top-k pixels: toolkit = ceil(k%% x pixels), numpy's argpartition "
                        "among ties; round = round(k%% x pixels), ties in pixel order")
    p.add_argument("--scaling", default="joint", choices=SCALINGS,
                   help="min-max scaling of each step's maps before the top-k (the toolkit's "
                        "'normalize')")
    p.add_argument("--out", default=None,
                   help="folder for the toolkit's nmr@{k}pct.json / .csv (one episode)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace nmr@{k}pct files already in --out")
    p.add_argument("--ground-truth", action="store_true",
                   help="ignore the annotation saved beside the episode (<episode>.regions/)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_nmr)

    p = sub.add_parser("toolkit-export", help="an episode's saliency and region maps in the "
                                              "ISS toolkit's layout (iss/, masks/)")
    p.add_argument("episode")
    p.add_argument("--method", default="iss-toolkit-improved")
    p.add_argument("--out", required=True,
                   help="folder for iss/iss_heatmaps.npz and masks/mask_{view}_rgb.npy")
    p.add_argument("--overwrite", action="store_true",
                   help="replace toolkit files already in --out")
    p.set_defaults(func=cmd_toolkit_export)

    p = sub.add_parser("toolkit-import", help="store the ISS toolkit's iss_heatmaps.npz in an "
                                              "episode, so `vlascope nmr` can score them")
    p.add_argument("episode")
    p.add_argument("heatmaps", help="iss_heatmaps.npz, its iss/ folder or the folder above")
    p.add_argument("--name", default="toolkit", help="saliency method name to store under")
    p.set_defaults(func=cmd_toolkit_import)

    p = sub.add_parser("report", help="the paper's protocol: NMR@k vs success, both "
                                      "reference models, tasks x variants, table + plots")
    p.add_argument("--scene", default=DEFAULT_SCENE)
    p.add_argument("--policies", default="reference,reference-shortcut")
    p.add_argument("--device", default=None)
    p.add_argument("--tasks", default="all")
    p.add_argument("--variants", default="default,shortcut_train,shortcut_test")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--k", default="1,5,10,20,50")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--estimator", default="toolkit-improved", choices=ESTIMATORS,
                   help="toolkit: the ISS toolkit's definition exactly; toolkit-improved: the "
                        "same map with less variance; rise*: our earlier per-camera masks")
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", default="vlascope-report")
    add_sweep_options(p, cells_default="OUT/cells")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("language-check",
                       help="paired tabletop tasks: which cube the policy moves, per prompt")
    _add_common(p)
    p.add_argument("--variant", default=None)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    add_sweep_options(p)
    p.set_defaults(func=cmd_language_check)

    p = sub.add_parser("train-reference", help="train the reference VLA on expert demos")
    p.add_argument("--scene", default=DEFAULT_SCENE,
                   help="a scene whose plugin names an expert policy (tabletop, metaworld)")
    p.add_argument("--variant", default=None,
                   help="training distribution (default: diverse on the tabletop, default "
                        "elsewhere)")
    p.add_argument("--tasks", default="",
                   help="comma-separated task or group names, e.g. mt10 (default: all)")
    p.add_argument("--cameras", default=None,
                   help="comma-separated cameras the policy sees (default: front,wrist)")
    p.add_argument("--image-size", type=int, default=None,
                   help="square image side the policy sees (default: 96)")
    p.add_argument("--episodes-per-task", type=int, default=120)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--frame-stride", type=int, default=2,
                   help="keep every k-th demo step: more distinct scenes for the same cost")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", choices=("l1", "flow"), default=None,
                   help="the action head the policy acts with; both are trained "
                        "(default: ReferenceConfig.head)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cache", default=None,
                   help="folder that keeps the demonstrations' features between runs")
    p.add_argument("--eval-episodes", type=int, default=0,
                   help="tabletop: evaluate after training and write model_card.md (0: skip)")
    p.add_argument("--eval-variants", default="default")
    p.set_defaults(func=cmd_train_reference)

    p = sub.add_parser("init-reference", help="write an untrained reference checkpoint shaped "
                                              "for another scene (cameras, state, actions)")
    p.add_argument("--cameras", required=True, help="comma-separated camera names")
    p.add_argument("--state-dim", type=int, required=True)
    p.add_argument("--action-dim", type=int, required=True)
    p.add_argument("--layers", type=int, default=4, help="trunk layers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_init_reference)

    p = sub.add_parser("model-card", help="both reference models over tasks x variants, the "
                                          "shortcut gap and the language check, as markdown")
    p.add_argument("--policies", default="reference,reference-shortcut")
    p.add_argument("--device", default=None)
    p.add_argument("--tasks", default="all")
    p.add_argument("--variants", default="default:30,shortcut_train:10,shortcut_test:10",
                   help="comma list of variant[:episodes]")
    p.add_argument("--episodes", type=int, default=10, help="episodes where a variant names none")
    p.add_argument("--language-episodes", type=int, default=5,
                   help="episodes per prompt of the language check (0: skip)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", default="docs/model_card.md")
    add_sweep_options(p, jobs=0)
    p.add_argument("--update-cards", action="store_true",
                   help="also rewrite each shipped model's own model_card.md from these runs")
    p.set_defaults(func=cmd_model_card)

    p = sub.add_parser("info", help="summary and provenance of a recorded episode")
    p.add_argument("episode")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("app", help="open the inspector window (the default command)")
    p.add_argument("episode", nargs="?", default=None, help="episode file to open")
    p.add_argument("--policy", default=None, help="policy plugin (default: the last used)")
    p.add_argument("--weights", default=None, help="checkpoint folder for --policy")
    p.add_argument("--scene", default=None, help="scene plugin (default: the last used)")
    p.add_argument("--task", default=None)
    p.add_argument("--device", default=None, help="auto, cpu or cuda[:N]")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("screenshot", help="render the inspector mid-rollout, with its ISS "
                                          "overlay, to a PNG (no display needed)")
    p.add_argument("--out", default="docs/images/inspector.png")
    p.add_argument("--policy", default="reference")
    p.add_argument("--task", default="pick_red")
    p.add_argument("--variant", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=25, help="steps to play before the capture")
    p.add_argument("--masks", type=int, default=100, help="ISS masks for the overlay")
    p.add_argument("--record-dir", default=None,
                   help="where the rollout is recorded (default: the app's recordings folder)")
    p.add_argument("--panel", choices=PANELS, default="window",
                   help="the whole window, the region dock mid-annotation, the window with "
                   "the region dock in front, or with an SAE trained from the Features dock: "
                   "the feature browser, the atlas, an A/B steering run")
    p.add_argument("--scene", default="tabletop", help="scene plugin")
    p.add_argument("--weights", default=None, help="checkpoint folder for --policy")
    p.set_defaults(func=cmd_screenshot)

    p = sub.add_parser("video", help="a video of an episode (or an A/B pair side by side) "
                                     "with the overlays burned in: .mp4 (H.264), .gif, or "
                                     "a folder of PNG frames")
    p.add_argument("episode")
    p.add_argument("--compare", default=None,
                   help="a baseline episode shown on the left (A), EPISODE on the right (B)")
    p.add_argument("--out", default="demo.mp4")
    p.add_argument("--steps", default=None, help="FIRST:LAST step range (default: all)")
    _add_video_options(p)
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("export-rerun", help="an episode as a Rerun recording (.rrd): frames, "
                       "saliency and region layers, actions, NMR, success and interventions on "
                       "Rerun's timeline (needs: bash scripts/setup.sh rerun)")
    p.add_argument("episode")
    p.add_argument("--out", required=True, help="the .rrd file to write")
    p.add_argument("--fps", type=float, default=None,
                   help="steps per second of the 'time' timeline (default: the episode's, "
                   "else 10)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing .rrd written by vlascope (other files are never "
                   "replaced)")
    p.set_defaults(func=cmd_export_rerun)

    p = sub.add_parser("demo-video", help="roll out the reference policy with and without a "
                                          "steering intervention and write the comparison "
                                          "video")
    _add_common(p)
    p.add_argument("--task", default="pick_red")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer", default="", help="hook point to steer (default: a middle "
                   "layer's residual stream)")
    p.add_argument("--alpha", type=float, default=3.0)
    p.add_argument("--feature", type=int, default=None,
                   help="SAE feature (default: the one that changes most over the episode)")
    p.add_argument("--sae-steps", type=int, default=300)
    p.add_argument("--masks", type=int, default=50, help="ISS masks per explained frame")
    p.add_argument("--every", type=int, default=5, help="explain every N steps")
    p.add_argument("--out", default="docs/demo/steering.mp4")
    p.add_argument("--work-dir", default=None, help="episodes and SAE (default: beside --out)")
    p.add_argument("--gif", default=None, help="also write a GIF excerpt here")
    p.add_argument("--gif-steps", default="0:30", help="its FIRST:LAST steps")
    p.add_argument("--gif-height", type=int, default=128, help="its pixels per view")
    _add_video_options(p)
    p.set_defaults(func=cmd_demo_video, top_k=10.0)

    p = sub.add_parser("demo", help="record one episode per task and write a preview image")
    _add_common(p)
    p.add_argument("--variant", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="vlascope-demo")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the episodes and preview of an earlier demo in --out")
    p.set_defaults(func=cmd_demo)

    from .cli_dataset import register as register_dataset
    from .cli_mechanistic import register
    from .cli_serve import register as register_serve

    register(sub, _add_common)
    register_dataset(sub, _add_common)
    register_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the launch command opens the inspector
        args = parser.parse_args(["app"])
    for name in ("episodes", "episodes_per_task", "epochs", "steps", "masks"):
        value = getattr(args, name, 1)
        if isinstance(value, int) and value < 1:  # `nmr` takes episode *files* as episodes
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: an error the user can act on is one line and exit status 2."""
    try:
        from .cli_dataset import resolve_episode_arguments

        resolve_episode_arguments(args)
        status = args.func(args)
        if sys.stdout is not None:  # a closed pipe shows here, not as a traceback at exit
            sys.stdout.flush()
        return status
    except BrokenPipeError:
        # `vlascope ... | head`: the reader has what it wanted. Python's advice: point stdout
        # at /dev/null so the flush at exit cannot raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    except VLAScopeError as e:
        print(f"vlascope: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlascope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
