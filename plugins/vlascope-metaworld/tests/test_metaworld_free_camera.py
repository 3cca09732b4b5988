"""The free camera on MetaWorld: an episode of MetaWorld's scripted expert recorded with its
simulator state, opened in the dock, orbited with the mouse, a step re-rendered exactly,
clicks named as MetaWorld's segmentation names them (corner cameras turned upright)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from free_camera_checks import check_clicks, free_camera_dock  # noqa: E402
from qt_events import raw_drag  # noqa: E402
from vlascope_metaworld.scene import MetaWorldScene  # noqa: E402

from vlascope.core.free_camera import FreeCamera, simulator_model  # noqa: E402
from vlascope.core.live import LiveRollout  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402

TASK, SEED, STEP = "pick-place-v3", 2, 6


def test_metaworld_free_camera(qtbot, tmp_path):
    expert = PluginRegistry.discover([]).create_policy("metaworld-expert")
    path = tmp_path / "mw.h5"
    with MetaWorldScene(image_size=(96, 96)) as scene, \
            MetaWorldScene(image_size=(96, 96)) as replay:
        live = LiveRollout(scene, expert, TASK, SEED, max_steps=10, record_to=path)
        with FreeCamera(simulator_model(scene), (120, 160)) as cam:
            while not live.done:
                if live.t == STEP:  # the live simulator, not a stored state
                    cam.show_data(scene._env.data)
                    reference = cam.render()
                    view = {k: getattr(cam.camera, k) for k in
                            ("azimuth", "elevation", "distance")}
                    lookat = cam.camera.lookat.copy()
                live.step()
        live.close()

        dock = free_camera_dock(qtbot, replay, (360, 330))
        ws = dock.ws
        ws.open_episode(path)
        ws.set_step(STEP)
        qtbot.waitUntil(lambda: dock.camera is not None and dock.view.frames > 0)
        qtbot.waitUntil(lambda: not dock._render_timer.isActive())

        # orbit with a real drag
        az = dock.camera.camera.azimuth
        first = dock.render_now()
        raw_drag(dock.view, [(100, 100), (110, 110), (130, 110), (150, 110)])
        assert dock.camera.camera.azimuth != az
        assert not np.array_equal(dock.render_now(), first)

        # the recorded step, drawn from the same place, is the live simulator's picture
        cam = dock.camera
        cam.resize(reference.shape[:2])
        for k, value in view.items():
            setattr(cam.camera, k, value)
        cam.camera.lookat[:] = lookat
        cam.set_paths(None)
        cam.set_state(ws.recording.sim_state(STEP))
        assert np.array_equal(cam.render(), reference)

        # clicks through the corner camera, compared with the scene's upright segmentation
        cam.set_state(ws.recording.sim_state(0))
        replay.reset(TASK, SEED)  # step 0 of the episode
        frame = replay.observe(cameras=["corner2"], size=cam.size, regions=True)
        cam.look_through("corner2")
        named = check_clicks(cam.select, frame.segments["corner2"], frame.regions["corner2"],
                             ws.recording.segment_names(), flip=True)
        assert "robot" in named and len(named) >= 3, named
        dock.close()
        ws.recording.close()
