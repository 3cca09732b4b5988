"""The built-in tabletop: tasks, determinism, variants, region maps checked against the
simulator's own segmentation and camera geometry."""

import json

import mujoco
import numpy as np
import pytest

from vlascope.core.errors import ObservationError, UnknownNameError, VLAScopeError
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT
from vlascope.scenes.tabletop import TabletopScene
from vlascope.scenes.tabletop.model import COLORS
from vlascope.scenes.tabletop.variants import load_variants


def frames(scene, task, seed, variant=None, regions=False):
    scene.reset(task, seed, variant)
    return scene.observe(regions=regions)


def test_tasks_and_cameras(scene):
    tasks = scene.tasks()
    assert len(tasks) >= 6
    assert len({t.instruction for t in tasks}) == len(tasks)
    assert set(scene.cameras) == {"front", "wrist"}
    f = frames(scene, "pick_red", 0)
    for cam in scene.cameras:
        img = f.observation.images[cam]
        assert img.shape == (224, 224, 3) and img.dtype == np.uint8
        assert img.std() > 10  # a real picture, not a blank frame


def test_paired_tasks_share_the_scene_and_differ_only_in_language(scene):
    a = frames(scene, "pick_red", 3)
    b = frames(scene, "pick_blue", 3)
    for cam in scene.cameras:
        np.testing.assert_array_equal(a.observation.images[cam], b.observation.images[cam])
    assert a.observation.instruction != b.observation.instruction
    assert "red" in a.observation.instruction and "blue" in b.observation.instruction


def test_same_seed_same_frames_different_seed_different(scene):
    a = frames(scene, "stack_red_on_blue", 11, "diverse")
    b = frames(scene, "stack_red_on_blue", 11, "diverse")
    c = frames(scene, "stack_red_on_blue", 12, "diverse")
    np.testing.assert_array_equal(a.observation.images["front"], b.observation.images["front"])
    assert np.abs(a.observation.images["front"].astype(int)
                  - c.observation.images["front"].astype(int)).mean() > 2


@pytest.mark.parametrize("variant", ["dim_light", "bright_light", "new_textures",
                                     "camera_shift", "recolor", "more_distractors"])
def test_variants_visibly_change_frames(scene, variant):
    base = frames(scene, "pick_red", 5, "default").observation.images["front"].astype(int)
    other = frames(scene, "pick_red", 5, variant).observation.images["front"].astype(int)
    changed = (np.abs(base - other).max(axis=2) > 30).mean()
    assert changed > 0.01, f"{variant} changed only {changed:.2%} of the pixels"


def test_recolor_changes_instruction_and_cube_colour(scene):
    f = frames(scene, "pick_red", 0, "recolor")
    assert f.observation.instruction == "pick up the green cube"
    gid = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_GEOM, "cube_a")
    np.testing.assert_allclose(scene.model.geom_rgba[gid, :3], COLORS["green"])


def test_variant_changes_do_not_leak_into_the_next_reset(scene):
    a = frames(scene, "pick_red", 2, "default").observation.images["front"]
    frames(scene, "pick_red", 2, "recolor")
    frames(scene, "pick_red", 2, "camera_shift")
    b = frames(scene, "pick_red", 2, "default").observation.images["front"]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task", ["pick_red", "pick_blue", "stack_red_on_blue"])
def test_shortcut_cue_lies_under_the_target_in_train_and_the_other_cube_in_test(scene, task):
    gid = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_GEOM, "cue")
    spec = scene._tasks[task]
    for variant, cube in (("shortcut_train", spec.obj), ("shortcut_test", spec.other)):
        frames(scene, task, 0, variant)
        pad_xy = scene.model.geom_pos[gid, :2]
        np.testing.assert_allclose(pad_xy, scene.object_position(cube)[:2], atol=0.01)
        assert scene.data.geom_xpos[gid, 2] == pytest.approx(0.0006)  # on the table, in view
    frames(scene, task, 0, "default")  # parked out of sight again
    assert scene.data.geom_xpos[gid, 2] < -1.0


def _robot_geoms(model):
    roots = {mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
             for n in ("robot_frame", "robot_bridge")}
    return {g for g in range(model.ngeom) if model.body_rootid[model.geom_bodyid[g]] in roots}


@pytest.mark.parametrize("task,variant", [("pick_red", "default"),
                                          ("place_blue_on_plate", "diverse"),
                                          ("place_red_in_zone", "more_distractors")])
def test_region_maps_match_simulator_segmentation(scene, task, variant):
    f = frames(scene, task, 4, variant, regions=True)
    robot = _robot_geoms(scene.model)
    spec = scene._tasks[task]
    support_bodies = {mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_BODY, n)
                      for n in (*spec.named_objects, "table")}
    renderer = mujoco.Renderer(scene.model, 224, 224)
    try:
        for cam in scene.cameras:
            renderer.update_scene(scene.data, camera=cam)
            renderer.enable_segmentation_rendering()
            seg = renderer.render()
            geom = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
            is_robot = np.isin(geom, list(robot))
            body = np.where(geom >= 0, scene.model.geom_bodyid[np.maximum(geom, 0)], -1)
            is_support = np.isin(body, list(support_bodies))
            labels = f.regions[cam]
            assert labels.shape == (224, 224)
            assert is_robot.sum() > 50, f"robot not visible in {cam}"
            np.testing.assert_array_equal(labels == ACTION_CRITICAL, is_robot)
            np.testing.assert_array_equal(labels == SUPPORT, is_support)
            np.testing.assert_array_equal(labels == NUISANCE, ~is_robot & ~is_support)
    finally:
        renderer.close()


def _project(scene, cam_name, point, size=224):
    """World point -> (row, col) pixel of a MuJoCo camera, from its pose and fovy."""
    cid = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_CAMERA, cam_name)
    pos, rot = scene.data.cam_xpos[cid], scene.data.cam_xmat[cid].reshape(3, 3)
    local = rot.T @ (np.asarray(point) - pos)  # camera looks along -z, y up
    f = 0.5 * size / np.tan(np.deg2rad(scene.model.cam_fovy[cid]) / 2)
    col = size / 2 + f * local[0] / -local[2]
    row = size / 2 - f * local[1] / -local[2]
    return int(round(row)), int(round(col))


def test_palm_projects_onto_action_critical_pixels(scene):
    for seed in range(3):
        f = frames(scene, "pick_blue", seed, regions=True)
        palm = scene.hand_position()
        r, c = _project(scene, "front", palm)
        assert 0 <= r < 224 and 0 <= c < 224
        assert f.regions["front"][r, c] == ACTION_CRITICAL
        cube = scene.object_position("cube_b")
        r, c = _project(scene, "front", cube)
        assert f.regions["front"][r, c] == SUPPORT
        assert np.abs(f.observation.images["front"][r, c].astype(int)
                      - np.array(COLORS["blue"]) * 255).max() < 140  # the blue cube is there


def test_fingers_visible_in_wrist_camera(scene):
    f = frames(scene, "pick_red", 0, regions=True)
    assert (f.regions["wrist"] == ACTION_CRITICAL).mean() > 0.02


def test_bad_input(scene):
    with pytest.raises(UnknownNameError, match="unknown task 'fly'"):
        scene.reset("fly", 0)
    with pytest.raises(UnknownNameError, match="unknown variant 'foggy'"):
        scene.reset("pick_red", 0, "foggy")
    scene.reset("pick_red", 0)
    with pytest.raises(ObservationError):
        scene.step(np.zeros(3))
    with pytest.raises(ObservationError):
        scene.step(np.array([0, 0, np.nan, 0]))
    with pytest.raises(UnknownNameError):
        scene.observe(cameras=["top"])
    with pytest.raises(ObservationError):
        scene.observe(size=(4, 4))


def test_variant_file_is_validated(tmp_path):
    bad = tmp_path / "v.json"
    bad.write_text(json.dumps({"default": {"light_intensty": [1, 1]}}))
    with pytest.raises(VLAScopeError, match="unknown keys"):
        load_variants(bad)
    bad.write_text(json.dumps({"default": {"floor": ["lava"]}}))
    with pytest.raises(VLAScopeError, match="lava"):
        load_variants(bad)
    good = tmp_path / "g.json"
    good.write_text(json.dumps({"mine": {"description": "x", "floor": ["tiles"]}}))
    with TabletopScene(variants_file=good) as s:
        assert [v.name for v in s.variants()] == ["mine"]
        s.reset("pick_red", 0)  # the first variant is the default
        assert s.current_variant == "mine"
