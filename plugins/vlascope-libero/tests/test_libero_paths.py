"""Planned vs executed on LIBERO: the scene's camera projection lands on the rendered robot
in both cameras (rendered upright, so no flip), and the planned path of a chunk (the
OSC_POSE goals) points where executing it moves the end effector, longer than the arm gets
(the controller covers a fraction of each goal)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from path_checks import body_name, robot_hits  # noqa: E402
from vlascope_libero.scene import MAX_EEF_STEP, ROBOT_PREFIXES, LiberoScene  # noqa: E402

TASK = "libero_spatial/0"


@pytest.fixture(scope="module")
def scene():
    s = LiberoScene()
    s.reset(TASK, 0)
    yield s
    s.close()


def test_the_projection_lands_on_the_rendered_robot(scene):
    scene.reset(TASK, 1)
    for _ in range(6):
        scene.step(np.array([0.4, 0.3, -0.4, 0, 0, 0, -1.0]))
    sim = scene._env.env.sim
    m, d = sim.model._model, sim.data._data
    shares = robot_hits(scene, m, d, (128, 160), lambda g: m.geom_group[g] != 0 and
                        body_name(m, m.geom_bodyid[g]).startswith(ROBOT_PREFIXES))
    right, turned, n = shares["agentview"]
    assert n >= 10 and right >= 0.9 and turned < right - 0.3, shares
    right, _turned, n = shares["robot0_eye_in_hand"]
    assert n == 0 or right >= 0.5, shares


def test_the_planned_path_points_where_the_hand_goes(scene):
    scene.reset(TASK, 2)
    chunk = np.tile([0.5, -0.4, 0.3, 0, 0, 0, -1.0], (8, 1))
    planned = scene.hand_path(scene.state(), chunk)
    np.testing.assert_allclose(planned[-1] - planned[0], 8 * MAX_EEF_STEP * chunk[0, :3])
    start = scene.hand_position_of(scene.state())
    np.testing.assert_allclose(start, planned[0])
    for a in chunk:
        scene.step(a)
    moved = scene.hand_position_of(scene.state()) - start
    goal = planned[-1] - planned[0]
    cosine = moved @ goal / np.linalg.norm(moved) / np.linalg.norm(goal)
    assert cosine > 0.95 and 0.05 < np.linalg.norm(moved) / np.linalg.norm(goal) < 1.0
