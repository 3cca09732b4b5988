"""A/B comparison: the unmodified and the intervened policy from the same task, variant and
seed, both recorded, with what the intervention changed step by step (the action
difference and the distance between the two hand trajectories) and at the end (success,
which object was handled). What the inspector's Interventions dock and its re-run show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .experiments import Outcome, run_episode
from .interventions import bind, from_dict
from .policy import Policy
from .scene import Scene

CancelFn = Callable[[], bool]


@dataclass
class Comparison:
    baseline: Outcome
    intervened: Outcome
    interventions: list[dict[str, Any]]
    action_diff: np.ndarray  # (T,) L2 distance of the executed actions, common steps
    displacement: np.ndarray  # (T,) distance between the hand positions, common steps

    def summary(self) -> dict[str, Any]:
        a, b = self.baseline, self.intervened
        return {"baseline_success": bool(a.result.success),
                "intervened_success": bool(b.result.success),
                "baseline_handled": a.handled, "intervened_handled": b.handled,
                "baseline_steps": a.result.steps, "intervened_steps": b.result.steps,
                "max_displacement": float(self.displacement.max(initial=0.0)),
                "mean_action_diff": float(self.action_diff.mean()) if len(
                    self.action_diff) else 0.0}


def step_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per step both runs have, the Euclidean distance between their vectors (actions, hand
    positions); empty when the two do not have the same width."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.shape[1:] != a.shape[1:]:
        return np.zeros(0, np.float32)
    n = min(len(a), len(b))
    return np.linalg.norm(a[:n] - b[:n], axis=1)


def compare(scene: Scene, policy: Policy, task: str, seed: int, variant: str | None,
            interventions: Sequence[dict[str, Any]], out_dir: str | Path, *,
            policy_name: str = "", should_cancel: CancelFn | None = None,
            overwrite: bool = False, display_size: tuple[int, int] | None = None
            ) -> Comparison:
    """Run the baseline then the intervened rollout (same seed, both recorded in
    ``out_dir`` as ``A_*.h5`` and ``B_*.h5``; existing ones replaced only with ``overwrite``)
    and measure the difference; ``display_size`` records display renders in both."""
    ivs = [from_dict(dict(i)) for i in interventions]
    bind(ivs, policy)  # a bad setting (a missing source, SAE, layer) fails before any rollout
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{task.replace('/', '-')}_seed{seed}"
    a = run_episode(scene, policy, task, seed, variant, record_to=out / f"A_{stem}.h5",
                    policy_name=policy_name, should_cancel=should_cancel, overwrite=overwrite,
                    display_size=display_size)
    b = run_episode(scene, policy, task, seed, variant, interventions=ivs,
                    record_to=out / f"B_{stem}.h5", policy_name=policy_name,
                    should_cancel=should_cancel, overwrite=overwrite,
                    display_size=display_size)
    return Comparison(a, b, [iv.to_dict() for iv in ivs], step_distance(a.actions, b.actions),
                      step_distance(a.hand, b.hand))


def resolve_prompts(interventions: Sequence[dict[str, Any]], instruction: str
                    ) -> list[dict[str, Any]]:
    """Prompt interventions given as a counterfactual kind (``{"kind": "prompt",
    "variant": "negation"}`` without text) get the task's instruction rewritten."""
    from .interventions import COUNTERFACTUALS, counterfactual_prompt

    out = []
    for iv in interventions:
        iv = dict(iv)
        if iv.get("kind") == "prompt" and iv.get("text") is None:
            kind = iv.get("variant", "null")
            if kind not in COUNTERFACTUALS:
                from .errors import UnknownNameError

                raise UnknownNameError("counterfactual prompt", kind, COUNTERFACTUALS)
            iv["text"] = counterfactual_prompt(instruction, kind)
        out.append(iv)
    return out
