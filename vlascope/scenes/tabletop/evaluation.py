"""Does language matter? On paired tasks (same scene, different named cube), which cube does
the policy move, with the true instruction and with the pair's instruction swapped in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


def language_check(scene: TabletopScene, policy: Policy, episodes: int, seed: int = 0,
                   variant: str | None = None, pairs: Sequence[tuple[str, str]] = PAIRS,
                   on_episode: Callable[[], None] | None = None) -> list[LanguageRow]:
    objs = {t.name: t.obj for t in TASKS}
    rows = []
    for a, b in pairs:
        for task, prompt in ((a, a), (a, b), (b, b), (b, a)):
            expected = objs[prompt]
            row = LanguageRow(task, prompt, expected, 0, 0, 0, 0)
            for k in range(episodes):
                swap = [] if prompt == task else [Prompt(text=scene.task(prompt).instruction)]
                out = run_episode(scene, policy, task, seed + k, variant, interventions=swap)
                moved = out.handled  # the cube that moved most (None if neither did)
                row.episodes += 1
                row.handled_expected += moved == expected
                row.handled_other += moved not in (None, expected)
                row.successes += out.result.success
                if on_episode is not None:
                    on_episode()
            rows.append(row)
    return rows
