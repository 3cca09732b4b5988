"""Scripted expert for the tabletop tasks.

Stateless: each action is a function of the simulator's privileged state in the
observation, so it can be batched, resumed from any step, and never gets out of sync with
the scene. Phases follow from the state (approach, descend, grasp, lift, carry, release).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vlascope.core.errors import ObservationError
from vlascope.core.policy import Observation

from . import model as M
from .scene import MAX_DELTA

HOVER = 0.1  # hand height above an object's grasp point while aligning
CARRY_Z = 0.2  # hand height while carrying
XY_TOL = 0.006
Z_TOL = 0.006
GAIN = 1.0 / MAX_DELTA  # metres of error -> action units (saturates at MAX_DELTA a step)


def _move(hand: np.ndarray, target: np.ndarray, close: bool) -> np.ndarray:
    delta = np.clip((target - hand) * GAIN, -1.0, 1.0)
    return np.append(delta, 1.0 if close else -1.0)


def expert_action(p: dict) -> np.ndarray:
    """One action from the privileged state of the tabletop scene."""
    hand = np.asarray(p["hand"], dtype=np.float64)
    pos = p["positions"]
    obj = np.asarray(pos[p["object"]], dtype=np.float64)
    gap = float(p["finger_gap"])
    grasp_hand = obj + [0.0, 0.0, M.GRASP_OFFSET]
    xy_err = np.linalg.norm(grasp_hand[:2] - hand[:2])
    holding = (xy_err < 0.02 and abs(grasp_hand[2] - hand[2]) < 0.02
               and gap < 2 * M.CUBE_HALF + 0.006)

    if p["task_kind"] == "pick" or p["target"] is None:
        dest_hand = None
    else:
        dest = np.asarray(pos[p["target"]], dtype=np.float64)
        rest_z = M.SURFACE_Z.get(p["target"], dest[2] + M.CUBE_HALF)
        dest_hand = np.array([dest[0], dest[1], rest_z + M.CUBE_HALF + M.GRASP_OFFSET + 0.008])

    if holding:
        if dest_hand is None:  # pick: lift and hold
            return _move(hand, np.array([hand[0], hand[1], CARRY_Z]), close=True)
        d_xy = np.linalg.norm(dest_hand[:2] - hand[:2])
        if d_xy > XY_TOL:
            if hand[2] < CARRY_Z - 0.03 and d_xy > 0.03:  # rise before travelling
                return _move(hand, np.array([hand[0], hand[1], CARRY_Z]), close=True)
            return _move(hand, np.array([dest_hand[0], dest_hand[1], CARRY_Z]), close=True)
        if hand[2] - dest_hand[2] > Z_TOL:
            return _move(hand, dest_hand, close=True)
        return _move(hand, hand, close=False)  # release

    # Not holding. Done placing? Then back off upwards with the gripper open.
    if dest_hand is not None and np.linalg.norm(obj[:2] - dest_hand[:2]) < 0.02 \
            and abs(obj[2] + M.GRASP_OFFSET + 0.008 - dest_hand[2]) < 0.015:
        return _move(hand, np.array([hand[0], hand[1], CARRY_Z]), close=False)
    if xy_err > XY_TOL:
        hover = grasp_hand + [0.0, 0.0, HOVER]
        if hand[2] < grasp_hand[2] + 0.03 and xy_err > 0.02:  # too low to travel: go up first
            return _move(hand, np.array([hand[0], hand[1], hover[2]]), close=False)
        target = hover if xy_err > 0.02 else np.array([*grasp_hand[:2], hand[2]])
        return _move(hand, target, close=False)
    if hand[2] - grasp_hand[2] > Z_TOL:
        return _move(hand, np.array([*grasp_hand[:2], grasp_hand[2]]), close=gap < 0.06)
    return _move(hand, grasp_hand, close=True)  # at the grasp point: close


class TabletopExpert:
    """Privileged scripted policy; the demonstrator for training and the control in evals."""

    policy_id = "tabletop-expert"
    weights_hash = ""
    cameras: tuple[str, ...] = ()  # needs no images: the runner may skip rendering
    n_action_steps = 1

    def batch_infer(self, observations: Sequence[Observation]) -> np.ndarray:
        out = []
        for obs in observations:
            p = obs.extras.get("privileged")
            if not p or p.get("scene") != "tabletop":
                raise ObservationError(
                    "the expert policy needs the tabletop scene's privileged state; "
                    "it cannot drive other scenes")
            out.append(expert_action(p)[None, :])
        return np.stack(out).astype(np.float32)
