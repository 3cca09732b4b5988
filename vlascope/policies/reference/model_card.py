"""Model card of a trained reference policy: data, seed, hyperparameters, training time on
the machine it was trained on, and an evaluation table produced by the same code as
``vlascope eval``."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vlascope.core.atomic import write_text_atomic
from vlascope.core.errors import VLAScopeError
from vlascope.core.jsonfile import read_json
from vlascope.core.markdown import keep_sections
from vlascope.core.policy import file_sha256
from vlascope.core.runner import (
    EvalCell,
    eval_cell,
    eval_sweep_cells,
    evaluate,
    merge_eval_cells,
)
from vlascope.scenes.tabletop import TabletopScene
from vlascope.scenes.tabletop.evaluation import (
    PAIRS,
    LanguageRow,
    language_cell,
    language_sweep_cells,
    merge_language_rows,
)

from .model import ReferenceConfig
from .policy import ReferencePolicy


def eval_table(cells: list[EvalCell]) -> str:
    variants = list(dict.fromkeys(c.variant for c in cells))
    tasks = list(dict.fromkeys(c.task for c in cells))
    by = {(c.task, c.variant): c for c in cells}
    lines = ["| task | " + " | ".join(variants) + " |",
             "|---|" + "---|" * len(variants)]
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(
            f"{by[t, v].success_rate:.0%} ({by[t, v].successes}/{by[t, v].episodes})"
            for v in variants) + " |")
    means = [sum(by[t, v].success_rate for t in tasks) / len(tasks) for v in variants]
    lines.append("| **mean** | " + " | ".join(f"**{m:.0%}**" for m in means) + " |")
    return "\n".join(lines)


def cells_from_eval_json(report: dict) -> list[EvalCell]:
    """Cells of a ``vlascope eval --json`` report, so a card can reuse an evaluation."""
    return [EvalCell(r["task"], r["variant"], r["episodes"], r["successes"])
            for r in report["results"]]


def write_model_card(folder: str | Path, eval_variants: list[str], episodes: int,
                     device: str = "cpu", seed: int = 1000,
                     cells: list[EvalCell] | None = None, eval_cmd: str | None = None) -> Path:
    """Evaluate (unless ``cells`` are given, with the ``eval_cmd`` that produced them) and
    write ``model_card.md`` into ``folder``."""
    folder = Path(folder)
    info = read_json(folder / "config.json")
    policy = ReferencePolicy(weights=folder, device=device)
    if cells is None:
        with TabletopScene() as scene:
            tasks = list(info["training"].get("tasks") or [t.name for t in scene.tasks()])
            with tqdm(total=len(tasks) * len(eval_variants) * episodes, desc="eval",
                      disable=None) as bar:
                cells = evaluate(scene, policy, tasks, eval_variants, episodes, seed,
                                 on_episode=lambda r: bar.update())
    eval_variants = list(dict.fromkeys(c.variant for c in cells))
    eval_cmd = eval_cmd or (f"vlascope eval --policy {folder.name} --variants "
                            f"{','.join(eval_variants)} --episodes {episodes} --seed {seed}")
    card = f"""{training_card(folder, info, policy.weights_hash)}
## Evaluation
Seeds from {seed} on; each cell is successes/episodes (`{eval_cmd}`):

{eval_table(cells)}

Regenerate: `{train_command(folder, info)}
--eval-episodes {episodes} --eval-variants {','.join(eval_variants)}`
"""
    path = folder / "model_card.md"
    write_text_atomic(path, keep_sections(path, card))
    return path


def training_card(folder: Path, info: dict, weights_hash: str) -> str:
    """What a checkpoint is, on what it was trained and how long it took (any scene)."""
    tr, cfg = info["training"], info["config"]
    arch = ReferenceConfig.from_dict(cfg)
    grid = arch.grid
    film = ("; FiLM: the pooled instruction scales and shifts every visual token"
            if arch.film else "")
    stride = tr.get("frame_stride", 1)
    kept = f", one step in {stride} kept" if stride > 1 else ""
    secs = tr["seconds"]
    cached = (" (demos and features measured by the run that cached them)"
              if "cache_load" in secs else "")
    total = (secs["demos"] + secs["features"] + secs["train"]) / 60
    scene = tr.get("scene", "tabletop")
    where = "the built-in tabletop suite" if scene == "tabletop" else f"the `{scene}` scene"
    tasks = ", ".join(tr.get("tasks") or []) or "every task"
    return f"""# Reference VLA: `{folder.name}`

A toy-scale VLA shaped like the real families, trained by `vlascope train-reference` on
{where}. Weights: `model.safetensors` (fp16, sha256 `{weights_hash}`).

## Architecture
- Vision: EfficientNet-Lite0 (ImageNet, frozen), first {cfg['encoder_depth']} blocks,
  {cfg['image_size']}x{cfg['image_size']} px -> {grid}x{grid} grid of
  {cfg['vision_dim']}-d tokens per camera ({', '.join(cfg['cameras'])}); outputs of blocks
  {cfg.get('encoder_taps') or 'none'} pooled onto the grid and joined to each token.
- Language: MiniLM-L6 (frozen), up to {cfg['text_tokens']} instruction tokens, 384-d{film}.
- Trunk: {cfg['n_layers']} transformer layers, d {cfg['d_model']}, {cfg['n_heads']} heads,
  {cfg['horizon']} action-query tokens, one proprio state token.
- Heads, both trained (the policy acts with `{cfg['head']}`): L1 regression of an action
  chunk of {cfg['horizon']} and flow matching ({cfg['flow_steps']} Euler steps, seeded noise).

## Data
{tr['demo_episodes']} scripted-expert episodes ({tr['demo_steps']} samples{kept}) of {tasks},
variant `{tr['variant']}`, {tr['noisy_fraction']:.0%} of them executed with N(0,
{tr['noise_std']}) noise on the hand motion (labels: the expert's clean actions).

## Training
seed {tr['seed']}, {tr['epochs']} epochs, batch {tr['batch_size']}, AdamW lr {tr['lr']}
(cosine), weight decay {tr['weight_decay']}; losses L1 + flow matching.
Final losses: L1 {tr['history'][-1]['l1']:.4f}, flow {tr['history'][-1]['flow']:.4f}.
Time on {tr['machine']} ({platform.processor() or platform.machine()}): demos
{secs['demos']:.0f} s, features {secs['features']:.0f} s, training {secs['train']:.0f} s;
{total:.0f} min in all{cached}.
"""


def train_command(folder: Path, info: dict) -> str:
    """The ``vlascope train-reference`` command line that trains this checkpoint again."""
    tr, cfg = info["training"], info["config"]
    scene = tr.get("scene", "tabletop")
    parts = ["vlascope train-reference"]
    if scene != "tabletop":
        parts.append(f"--scene {scene}")
    if tr.get("tasks"):
        parts.append(f"--tasks {','.join(tr['tasks'])}")
    if scene != "tabletop" or tuple(cfg["cameras"]) != ReferenceConfig.cameras:
        parts.append(f"--cameras {','.join(cfg['cameras'])}")
    parts += [f"--variant {tr['variant']} --episodes-per-task {tr['episodes_per_task']}",
              f"--frame-stride {tr.get('frame_stride', 1)} --epochs {tr['epochs']} "
              f"--seed {tr['seed']}", f"--head {cfg['head']} --out {_display_path(folder)}"]
    return "\n".join(parts)


def write_training_card(folder: str | Path) -> Path:
    """``model_card.md`` of a checkpoint without an evaluation section (a scene whose
    evaluation is ``vlascope eval ... --doc <card>``, which adds its own section)."""
    folder = Path(folder)
    info = read_json(folder / "config.json")
    card = (training_card(folder, info, file_sha256(folder / "model.safetensors"))
            + f"\nRegenerate: `{train_command(folder, info)}`\n")
    path = folder / "model_card.md"
    write_text_atomic(path, keep_sections(path, card))
    return path


def _display_path(folder: Path) -> str:
    """The folder relative to the working directory when it lies below it, so the card's
    command works in any checkout."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def parse_variant_episodes(spec: str, default_episodes: int) -> list[tuple[str, int]]:
    """``default:30,shortcut_test:10`` -> [(variant, episodes)]; a bare name takes the default."""
    out = []
    for part in (p for p in spec.split(",") if p):
        name, _, n = part.partition(":")
        try:
            episodes = int(n) if n else default_episodes
        except ValueError as e:
            raise VLAScopeError(f"'{part}': episodes after ':' must be a whole number") from e
        if episodes < 1:
            raise VLAScopeError(f"'{part}': episodes must be at least 1")
        out.append((name, episodes))
    return out


@dataclass
class Comparison:
    """Both reference models over tasks x variants, plus the language check of each."""

    cells: dict[str, list[EvalCell]]  # policy -> cells
    language: dict[str, list[LanguageRow]]  # policy -> rows
    seed: int

    def mean(self, policy: str, variant: str) -> float:
        rates = [c.success_rate for c in self.cells[policy] if c.variant == variant]
        return sum(rates) / len(rates) if rates else float("nan")

    def as_dict(self) -> dict:
        return {"seed": self.seed,
                "cells": {p: [c.as_dict() for c in cs] for p, cs in self.cells.items()},
                "language": {p: [{**r.__dict__, "rate": r.rate} for r in rows]
                             for p, rows in self.language.items()}}


def comparison_cells(names: list[str], options: dict, tasks: list[str],
                     variants: list[tuple[str, int]], language_episodes: int, seed: int,
                     seeds_per_cell: int) -> list:
    """The card's work as sweep cells: every model on every (variant, episodes), and the
    language check of the selected tasks' pairs."""
    pairs = [p for p in PAIRS if set(p) & set(tasks)]
    cells = []
    for name in names:
        for variant, n in variants:
            cells += eval_sweep_cells("tabletop", {}, name, options, tasks, [variant], n, seed,
                                      seeds_per_cell)
        if language_episodes > 0 and pairs:
            cells += language_sweep_cells(name, options, language_episodes, seed,
                                          seeds_per_cell, pairs=pairs)
    return cells


def merge_comparison(names: list[str], cells: list, results: list[dict | None],
                     seed: int) -> Comparison:
    """The records of ``comparison_cells`` (same order) back into the card's tables."""
    comp = Comparison({}, {}, seed)
    for name in names:
        mine = [(c.fn, r) for c, r in zip(cells, results, strict=True)
                if c.kwargs["policy"] == name]
        comp.cells[name] = merge_eval_cells([r for fn, r in mine if fn is eval_cell])
        rows = merge_language_rows([r for fn, r in mine if fn is language_cell])
        if rows:
            comp.language[name] = rows
    return comp


def language_table(rows: list[LanguageRow]) -> str:
    lines = ["| task in the scene | instruction of | cube named | handled named | handled other |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.task} | {r.prompt_task} | {r.expected} | "
                     f"{r.rate:.0%} ({r.handled_expected}/{r.episodes}) | "
                     f"{r.handled_other}/{r.episodes} |")
    total = sum(r.handled_expected for r in rows)
    n = sum(r.episodes for r in rows)
    lines.append(f"| **all** | | | **{total / n:.0%}** ({total}/{n}) | |" if n else "")
    return "\n".join(lines)


def comparison_markdown(comp: Comparison, command: str, shortcut_pair=("shortcut_train",
                                                                         "shortcut_test")) -> str:
    """The model card of the two shipped models: one table per model, the shortcut gap, the
    language check, and the command that regenerates all of it."""
    parts = ["# Reference models: evaluation",
             "",
             "Produced by one command (re-run it to regenerate this file):",
             "",
             f"    {command}",
             "",
             f"Seeds {comp.seed}.. per cell; each cell is successes/episodes. Machine: "
             f"{platform.machine()}, {platform.processor() or 'CPU'}; "
             f"written {time.strftime('%Y-%m-%d %H:%M')}. Architecture, data and training "
             "time of each model: `vlascope/policies/reference/weights/<name>/model_card.md`.",
             ""]
    train, test = shortcut_pair
    gap_rows = []
    for name, cells in comp.cells.items():
        parts += [f"## `{name}`", "", eval_table(cells), ""]
        variants = {c.variant for c in cells}
        if {train, test} <= variants:
            a, b = comp.mean(name, train), comp.mean(name, test)
            gap_rows.append(f"| `{name}` | {a:.0%} | {b:.0%} | {100 * (a - b):+.0f} |")
    if gap_rows:
        parts += ["## Shortcut test",
                  "",
                  f"Mean success with the cue intact (`{train}`) and broken (`{test}`); the "
                  "last column is the loss in percentage points.",
                  "",
                  f"| model | {train} | {test} | loss (points) |",
                  "|---|---|---|---|",
                  *gap_rows, ""]
    for name, rows in comp.language.items():
        parts += [f"## Language check: `{name}`",
                  "",
                  "Paired tasks share the scene; the policy gets its own instruction or the "
                  "pair's. 'handled' = the cube that moved most (> 2 cm).",
                  "",
                  language_table(rows), ""]
    return "\n".join(parts)
