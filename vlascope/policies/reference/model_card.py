"""Model card of a trained reference policy: data, seed, hyperparameters, training time on
the machine it was trained on, and an evaluation table produced by the same code as
``vlascope eval``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from tqdm import tqdm

from vlascope.core.runner import EvalCell, evaluate
from vlascope.scenes.tabletop import TabletopScene

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
                     cells: list[EvalCell] | None = None) -> Path:
    """Evaluate (unless ``cells`` are given) and write ``model_card.md`` into ``folder``."""
    folder = Path(folder)
    info = json.loads((folder / "config.json").read_text())
    policy = ReferencePolicy(weights=folder, device=device)
    if cells is None:
        with TabletopScene() as scene:
            tasks = list(info["training"].get("tasks") or [t.name for t in scene.tasks()])
            with tqdm(total=len(tasks) * len(eval_variants) * episodes, desc="eval",
                      disable=None) as bar:
                cells = evaluate(scene, policy, tasks, eval_variants, episodes, seed,
                                 on_episode=lambda r: bar.update())
    eval_variants = list(dict.fromkeys(c.variant for c in cells))
    eval_cmd = (f"vlascope eval --policy {folder.name} --variants {','.join(eval_variants)} "
                f"--episodes {episodes} --seed {seed}")
    tr, cfg = info["training"], info["config"]
    secs = tr["seconds"]
    card = f"""# Reference VLA: `{folder.name}`

A toy-scale VLA shaped like the real families, trained by `vlascope train-reference` on the
built-in tabletop suite. Weights: `model.safetensors` (fp16, sha256 `{policy.weights_hash}`).

## Architecture
- Vision: EfficientNet-Lite0 (ImageNet, frozen), first {cfg['encoder_depth']} blocks,
  {cfg['image_size']}x{cfg['image_size']} px -> {cfg['grid']}x{cfg['grid']} grid of
  {cfg['vision_dim']}-d tokens per camera ({', '.join(cfg['cameras'])}).
- Language: MiniLM-L6 (frozen), up to {cfg['text_tokens']} instruction tokens, 384-d.
- Trunk: {cfg['n_layers']} transformer layers, d {cfg['d_model']}, {cfg['n_heads']} heads,
  {cfg['horizon']} action-query tokens, one proprio state token.
- Heads: L1 regression of an action chunk of {cfg['horizon']} (default: `{cfg['head']}`) and
  flow matching ({cfg['flow_steps']} Euler steps, seeded noise).

## Data
{tr['demo_episodes']} scripted-expert episodes ({tr['demo_steps']} steps) of every task,
variant `{tr['variant']}`, {tr['noisy_fraction']:.0%} of them executed with N(0,
{tr['noise_std']}) noise on the hand motion (labels: the expert's clean actions).

## Training
seed {tr['seed']}, {tr['epochs']} epochs, batch {tr['batch_size']}, AdamW lr {tr['lr']}
(cosine), weight decay {tr['weight_decay']}; losses L1 + flow matching.
Final losses: L1 {tr['history'][-1]['l1']:.4f}, flow {tr['history'][-1]['flow']:.4f}.
Time on {tr['machine']} ({platform.processor() or platform.machine()}): demos
{secs['demos']:.0f} s, features {secs['features']:.0f} s, training {secs['train']:.0f} s.

## Evaluation
{episodes} episodes per cell, seeds {seed}..{seed + episodes - 1}
(`{eval_cmd}`):

{eval_table(cells)}

Regenerate: `vlascope train-reference --variant {tr['variant']} --episodes-per-task
{tr['episodes_per_task']} --epochs {tr['epochs']} --seed {tr['seed']} --out {folder}
--eval-episodes {episodes} --eval-variants {','.join(eval_variants)}`
"""
    path = folder / "model_card.md"
    path.write_text(card)
    return path
