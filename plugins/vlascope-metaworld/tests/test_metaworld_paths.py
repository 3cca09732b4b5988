"""Planned vs executed on MetaWorld: the scene's camera projection lands on the rendered
Sawyer in every camera (the corner cameras turned upright included), and a chunk's planned
path is where executing it takes the gripper."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from path_checks import body_name, robot_hits  # noqa: E402
from vlascope_metaworld.scene import ALL_CAMERAS, MetaWorldScene  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    s = MetaWorldScene(image_size=(96, 96), cameras=ALL_CAMERAS)
    yield s
    s.close()


def test_the_projection_lands_on_the_rendered_robot_in_every_camera(scene):
    scene.reset("pick-place-v3", 0)
    for _ in range(5):
        scene.step(np.array([0.3, 0.3, -0.3, 0.0]))
    m, d = scene._env.model, scene._env.data
    base = next(b for b in range(m.nbody) if body_name(m, b) == "base")
    shares = robot_hits(scene, m, d, (120, 160),
                        lambda g: m.body_rootid[m.geom_bodyid[g]] == base)
    for cam, (right, turned, n) in shares.items():
        if n >= 5:  # the wrist cameras see a few parts only
            assert right >= 0.9 and turned < right - 0.3, (cam, right, turned, n)
        else:
            assert right >= 0.5, (cam, right, n)


def test_the_planned_path_is_where_executing_the_chunk_takes_the_gripper(scene):
    scene.reset("reach-v3", 3)
    rng = np.random.default_rng(1)
    chunk = rng.uniform(-1, 1, (10, 4))
    planned = scene.hand_path(scene.state(), chunk)
    assert planned.shape == (11, 3)
    reached = [scene.hand_position_of(scene.state())]
    for a in chunk:
        scene.step(a)
        reached.append(scene.hand_position_of(scene.state()))
    np.testing.assert_allclose(planned, reached, atol=1e-6)
    # from another state: the mocap's moves alone, 1/100 m per unit
    path = scene.hand_path(np.zeros(4), np.tile([1.0, 0.0, -1.0, 0.0], (2, 1)))
    np.testing.assert_allclose(path, [[0, 0, 0], [0.01, 0, -0.01], [0.02, 0, -0.02]])
