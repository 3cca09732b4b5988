"""MetaWorld's own scripted policies as a VLAScope policy: the demonstrator for training the
reference model on MetaWorld and the control in its evaluations. Demonstrations no one here
wrote, for success criteria no one here chose."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from vlascope.core.errors import ObservationError
from vlascope.core.policy import Observation

from .scene import _metaworld


class MetaWorldExpert:
    """Reads the scene's privileged 39-number observation (the goal included) and asks the
    task's scripted policy (``metaworld.policies.ENV_POLICY_MAP``) for the action."""

    policy_id = "metaworld-expert"
    weights_hash = ""
    cameras: tuple[str, ...] = ()  # needs no images: the runner may skip rendering
    n_action_steps = 1

    def __init__(self) -> None:
        self._policies: dict[str, object] = {}

    def batch_infer(self, observations: Sequence[Observation]) -> np.ndarray:
        out = []
        for obs in observations:
            p = obs.extras.get("privileged")
            if not p or p.get("scene") != "metaworld":
                raise ObservationError("the MetaWorld expert needs the metaworld scene's "
                                       "privileged state; it cannot drive other scenes")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Constant(s) may be too high": it clips
                action = self._policy(p["task"]).get_action(np.asarray(p["obs"], np.float64))
            out.append(np.clip(action, -1.0, 1.0)[None, :])
        return np.stack(out).astype(np.float32)

    def _policy(self, task: str):
        if task not in self._policies:
            _envs, policies = _metaworld()
            if task not in policies:
                raise ObservationError(f"MetaWorld has no scripted policy for '{task}'")
            self._policies[task] = policies[task]()
        return self._policies[task]
