"""Does language matter? On paired tasks (same scene, different named cube), which cube does
the policy move, with the true instruction and with the pair's instruction swapped in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vlascope.core.experiments import run_episode
from vlascope.core.interventions import Prompt
from vlascope.core.policy import Policy

from .scene import TabletopScene
from .tasks import TASKS

PAIRS = (("pick_red", "pick_blue"), ("place_red_on_plate", "place_blue_on_plate"),
         ("place_red_in_zone", "place_blue_in_zone"), ("stack_red_on_blue", "stack_blue_on_red"))


@dataclass
class LanguageRow:
    task: str
    prompt_task: str  # whose instruction the policy got
    expected: str  # the cube that instruction names
    episodes: int
    handled_expected: int
    handled_other: int
    successes: int

    @property
    def rate(self) -> float:
        return self.handled_expected / self.episodes if self.episodes else 0.0


def language_row(scene: TabletopScene, policy: Policy, task: str, prompt_task: str,
                 seeds: Sequence[int], variant: str | None = None,
                 on_episode: Callable[[], None] | None = None) -> LanguageRow:
    """``task`` in the scene, ``prompt_task``'s instruction given, on ``seeds``."""
    expected = {t.name: t.obj for t in TASKS}[prompt_task]
    row = LanguageRow(task, prompt_task, expected, 0, 0, 0, 0)
    for s in seeds:
        swap = [] if prompt_task == task else [Prompt(text=scene.task(prompt_task).instruction)]
        out = run_episode(scene, policy, task, s, variant, interventions=swap)
        moved = out.handled  # the cube that moved most (None if neither did)
        row.episodes += 1
        row.handled_expected += moved == expected
        row.handled_other += moved not in (None, expected)
        row.successes += out.result.success
        if on_episode is not None:
            on_episode()
    return row


def prompt_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(task in the scene, whose instruction) for every pair: own and swapped, both ways."""
    return [tp for a, b in pairs for tp in ((a, a), (a, b), (b, b), (b, a))]


def language_check(scene: TabletopScene, policy: Policy, episodes: int, seed: int = 0,
                   variant: str | None = None, pairs: Sequence[tuple[str, str]] = PAIRS,
                   on_episode: Callable[[], None] | None = None) -> list[LanguageRow]:
    seeds = range(seed, seed + episodes)
    return [language_row(scene, policy, task, prompt, seeds, variant, on_episode)
            for task, prompt in prompt_pairs(pairs)]


def language_cell(policy: str, policy_options: dict, task: str, prompt_task: str,
                  seeds: Sequence[int], variant: str | None = None,
                  scene_options: dict | None = None) -> dict:
    """A sweep cell of the language check, with the worker's scene and policy."""
    from vlascope.core.sweep import worker

    sc, pol = worker.scene_and_policy("tabletop", scene_options, policy, policy_options)
    return asdict(language_row(sc, pol,
                               task, prompt_task, seeds, variant))


def language_sweep_cells(policy: str, policy_options: dict, episodes: int, seed: int,
                         seeds_per_cell: int, variant: str | None = None,
                         pairs: Sequence[tuple[str, str]] = PAIRS,
                         scene_options: dict | None = None) -> list[Any]:
    from vlascope.core.sweep import seed_block_cells

    common = {"policy": policy, "policy_options": policy_options, "variant": variant,
              "scene_options": scene_options or {}}
    return seed_block_cells(language_cell, common, [
        (f"{policy}__language__{task}__prompt_{prompt}", {"task": task, "prompt_task": prompt})
        for task, prompt in prompt_pairs(pairs)], seed, episodes, seeds_per_cell)


def merge_language_rows(results: Sequence[dict | None]) -> list[LanguageRow]:
    """Blocks of seeds back into one row per (task, prompt); failed blocks (None) left out."""
    rows: dict[tuple[str, str], LanguageRow] = {}
    for r in results:
        if r is None:
            continue
        row = rows.setdefault((r["task"], r["prompt_task"]),
                              LanguageRow(r["task"], r["prompt_task"], r["expected"],
                                          0, 0, 0, 0))
        for f in ("episodes", "handled_expected", "handled_other", "successes"):
            setattr(row, f, getattr(row, f) + int(r[f]))
    return list(rows.values())
