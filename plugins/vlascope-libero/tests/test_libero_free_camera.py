"""The free camera on LIBERO: robosuite's MuJoCo model looked around in, a click named as
LIBERO's segmentation names it, a stored state drawn as the live simulator was."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from free_camera_checks import check_clicks  # noqa: E402
from vlascope_libero.scene import LiberoScene  # noqa: E402

from vlascope.core.free_camera import ORBIT, FreeCamera, simulator_model  # noqa: E402
from vlascope.core.regions import ACTION_CRITICAL, SUPPORT  # noqa: E402

TASK = "libero_spatial/0"
SIZE = (128, 128)


@pytest.fixture(scope="module")
def scene():
    s = LiberoScene(image_size=SIZE)
    s.reset(TASK, 0)
    yield s
    s.close()


def test_libero_free_camera(scene):
    sim = simulator_model(scene)
    assert ACTION_CRITICAL in sim.geom_labels and SUPPORT in sim.geom_labels
    frame = scene.observe(cameras=["agentview"], regions=True)
    with FreeCamera(sim, SIZE) as cam:
        cam.set_state(scene.sim_state())
        cam.look_through("agentview")
        named = check_clicks(cam.select, frame.segments["agentview"],
                             frame.regions["agentview"], scene.segment_names())
        assert len(named) >= 3 and any(n.startswith("robot0") for n in named), named

        # a stored state draws what the live simulator shows, after the scene moved on
        stored = scene.sim_state()
        cam.reset_view()
        cam.show_data(scene._env.env.sim.data._data)
        live = cam.render()
        for _ in range(3):
            scene.step(np.array([0.8, 0, 0.5, 0, 0, 0, 1.0]))
        cam.set_state(scene.sim_state())
        assert not np.array_equal(cam.render(), live)
        cam.set_state(stored)
        assert np.array_equal(cam.render(), live)

        before = (cam.camera.azimuth, cam.camera.elevation)
        cam.move(ORBIT, 40, 15)
        assert (cam.camera.azimuth, cam.camera.elevation) != before
        assert not np.array_equal(cam.render(), live)
