"""The ISS/NMR paper's protocol on a scene: roll out each policy over tasks x variants,
compute ISS on the recorded episodes, NMR@k for several k, and correlate NMR@k with
success across the (task, variant) cells. Writes a table (Markdown + JSON) and plots."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import savefig_atomic, write_text_atomic
from .episode import Episode
from .errors import VLAScopeError
from .metrics import correlate, episode_nmr
from .runner import rollout
from .saliency.iss import ISSConfig
from .saliency.temporal import episode_iss, store
from .scene import Scene


def kkey(k: float) -> str:
    """One spelling of k for dict keys and JSON ("10", "2.5")."""
    return f"{float(k):g}"


@dataclass
class Cell:
    policy: str
    task: str
    variant: str
    episodes: int = 0
    successes: int = 0
    nmr: dict[str, list[float]] = field(default_factory=dict)  # k -> per-episode means

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")

    def mean_nmr(self, k: float) -> float:
        vals = self.nmr.get(kkey(k), [])
        return float(np.nanmean(vals)) if vals else float("nan")


def report_episode(scene: Scene, policy: Any, name: str, task: str, variant: str, seed: int,
                   out_dir: str | Path, iss: ISSConfig, every: int,
                   ks: Sequence[float]) -> dict[str, Any]:
    """One episode of the protocol: roll out and record it in the report's folder, ISS on
    it (stored in the file), its mean NMR@k per k."""
    path = Path(out_dir) / "episodes" / name / f"{task}__{variant}__seed{seed}.h5"
    res = rollout(scene, policy, task, seed, variant, record_to=path, policy_name=name,
                  overwrite=True)  # the report's own folder
    with Episode(path) as ep:
        sal = episode_iss(policy, ep, iss, every=every, check=0)
    store(str(path), sal)
    with Episode(path) as ep:
        per_step = episode_nmr(ep, sal.method, ks)
    return {"seed": seed, "success": bool(res.success),
            "nmr": {kkey(k): float(np.nanmean(v)) for k, v in per_step.items()}}


def add_episode(cell: Cell, row: dict[str, Any]) -> None:
    cell.episodes += 1
    cell.successes += int(row["success"])
    for k, v in row["nmr"].items():
        cell.nmr.setdefault(k, []).append(v)


def run_report(scene: Scene, policies: dict[str, Any], tasks: Sequence[str],
               variants: Sequence[str], episodes: int, out_dir: str | Path,
               iss: ISSConfig, every: int = 20, ks: Sequence[float] = (1, 5, 10, 20, 50),
               seed: int = 0, on_episode: Callable[[str], None] | None = None) -> list[Cell]:
    """The protocol in this process, one episode after another (``report_cell`` is its
    sweep cell)."""
    cells = []
    for name, policy in policies.items():
        for task in tasks:
            for variant in variants:
                cell = Cell(name, task, variant)
                for k in range(episodes):
                    add_episode(cell, report_episode(scene, policy, name, task, variant,
                                                     seed + k, out_dir, iss, every, ks))
                    if on_episode is not None:
                        on_episode(f"{name} {task} {variant} seed {seed + k}")
                cells.append(cell)
    return cells


def report_cell(scene: str, policy: str, policy_options: dict, task: str, variant: str,
                seeds: Sequence[int], out_dir: str, iss: dict, every: int,
                ks: Sequence[float]) -> dict[str, Any]:
    """A sweep cell of the protocol (one policy x task x variant x block of seeds), with the
    worker's scene and policy."""
    from .sweep import worker

    sc, pol = worker.scene_and_policy(scene, {}, policy, policy_options)
    rows = [report_episode(sc, pol, policy, task, variant, s, out_dir, ISSConfig(**iss),
                           every, ks) for s in seeds]
    return {"policy": policy, "task": task, "variant": variant, "episodes": rows}


def merge_report_cells(results: Sequence[dict[str, Any] | None]) -> list[Cell]:
    """Blocks of seeds back into one ``Cell`` per policy x task x variant (failed blocks,
    None, are left out)."""
    cells: dict[tuple[str, str, str], Cell] = {}
    for r in results:
        if r is None:
            continue
        cell = cells.setdefault((r["policy"], r["task"], r["variant"]),
                                Cell(r["policy"], r["task"], r["variant"]))
        for row in r["episodes"]:
            add_episode(cell, row)
    return list(cells.values())


def correlations(cells: Sequence[Cell], ks: Sequence[float]) -> dict[str, dict[str, Any]]:
    """NMR@k vs success across cells, per policy and pooled."""
    groups = {"all": list(cells)}
    for c in cells:
        groups.setdefault(c.policy, []).append(c)
    out: dict[str, dict[str, Any]] = {}
    for g, cs in groups.items():
        out[g] = {}
        for k in ks:
            try:
                out[g][kkey(k)] = asdict(correlate([c.mean_nmr(k) for c in cs],
                                                  [c.success_rate for c in cs]))
            except VLAScopeError as e:  # too few cells, or constant success
                out[g][kkey(k)] = {"error": str(e)}
    return out


def write_report(cells: Sequence[Cell], ks: Sequence[float], out_dir: str | Path,
                 settings: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corr = correlations(cells, ks)
    lines = ["# NMR@k vs success", "", f"Settings: `{json.dumps(settings)}`", "",
             "| policy | task | variant | success | " + " | ".join(f"NMR@{k:g}" for k in ks)
             + " |", "|---|---|---|---|" + "---|" * len(ks)]
    for c in cells:
        lines.append(f"| {c.policy} | {c.task} | {c.variant} | {c.success_rate:.0%} "
                     f"({c.successes}/{c.episodes}) | "
                     + " | ".join(f"{c.mean_nmr(k):.3f}" for k in ks) + " |")
    lines += ["", "Correlation of NMR@k with success across cells (95% bootstrap CI):", "",
              "| group | k | n | Pearson r [CI] | Spearman rho [CI] |", "|---|---|---|---|---|"]
    for g, per_k in corr.items():
        for k in ks:
            r: dict[str, Any] = per_k[kkey(k)]
            if "error" in r:
                lines.append(f"| {g} | {k:g} | - | {r['error']} | |")
                continue
            lines.append(f"| {g} | {k:g} | {r['n']} | {r['pearson']:.2f} "
                         f"[{r['pearson_ci'][0]:.2f}, {r['pearson_ci'][1]:.2f}] | "
                         f"{r['spearman']:.2f} [{r['spearman_ci'][0]:.2f}, "
                         f"{r['spearman_ci'][1]:.2f}] |")
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
    write_text_atomic(out / "report.json", json.dumps(
        {"settings": settings, "cells": [{**asdict(c), "success_rate": c.success_rate}
                                         for c in cells], "correlations": corr}, indent=2))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    k_plot = 10.0 if 10.0 in [float(k) for k in ks] else float(ks[0])
    for name in dict.fromkeys(c.policy for c in cells):
        cs = [c for c in cells if c.policy == name]
        axes[0].scatter([c.mean_nmr(k_plot) for c in cs], [c.success_rate for c in cs],
                        label=name, alpha=0.8)
    axes[0].set_xlabel(f"NMR@{k_plot:g}")
    axes[0].set_ylabel("success rate")
    axes[0].set_title("each point: one task x variant")
    axes[0].legend()
    plotted = False
    for g, per_k in corr.items():
        r = [per_k[kkey(k)].get("pearson", np.nan) for k in ks]
        if np.isfinite(r).any():
            axes[1].plot(list(ks), r, marker="o", label=g)
            plotted = True
    axes[1].axhline(0, color="grey", lw=0.5)
    if plotted:
        axes[1].set_xscale("log")
        axes[1].minorticks_off()
        axes[1].set_xticks([float(k) for k in ks], [f"{float(k):g}" for k in ks])
    else:
        axes[1].set_title("no correlation (constant success or too few cells)")
    axes[1].set_xlabel("k (%)")
    axes[1].set_ylabel("Pearson r (NMR@k, success)")
    if plotted:
        axes[1].legend()
    fig.tight_layout()
    try:
        savefig_atomic(fig, out / "nmr_vs_success.png", dpi=110)
    finally:
        plt.close(fig)
    return out / "report.md"
