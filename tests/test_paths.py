"""Planned vs executed, without Qt: the scenes' camera projection lands on what MuJoCo
renders, a chunk's planned hand path is where executing it takes the hand, rollouts record
the path data and episode files keep it (older files open without it; damaged ones are
refused), and video export draws it."""

import h5py
import mujoco
import numpy as np
import pytest
from PIL import Image

from vlascope.core.episode import Episode, EpisodeWriter
from vlascope.core.errors import EpisodeFormatError, VLAScopeError
from vlascope.core.paths import chunk_origin
from vlascope.core.projection import project, rotate_half_turn, scale_matrix
from vlascope.core.recording import FileRecording
from vlascope.core.runner import rollout
from vlascope.core.video import VideoLayout, export_video
from vlascope.policies.reference.policy import ReferencePolicy


def geom_centroid(scene, camera, size, geom):
    """Where MuJoCo's segmentation render shows ``geom`` in ``camera`` (pixel centres)."""
    renderer = scene._renderer(size)
    renderer.update_scene(scene.data, camera=camera)
    renderer.enable_segmentation_rendering()
    try:
        seg = renderer.render()
    finally:
        renderer.disable_segmentation_rendering()
    gid = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_GEOM, geom)
    ys, xs = np.nonzero((seg[..., 0] == gid) & (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)))
    assert len(xs) > 20, f"{geom} hardly visible in {camera}"
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


@pytest.mark.parametrize("size", [(224, 224), (120, 200)])
def test_tabletop_projection_lands_on_the_rendered_hand_and_cubes(scene, size):
    scene.reset("pick_red", 2)
    for _ in range(4):
        scene.step(np.array([0.6, -0.3, -0.8, 0.0]))
    matrices = scene.camera_projection(size)
    assert set(matrices) == set(scene.cameras)
    palm = scene.data.geom_xpos[mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_GEOM,
                                                  "robot_palm")]
    # the hand is the palm (its pose as rendered lags the joints by one physics substep)
    np.testing.assert_allclose(palm, scene.hand_position(), atol=1e-3)
    px = project(matrices["front"], scene.hand_position())[0]
    assert np.linalg.norm(px - geom_centroid(scene, "front", size, "robot_palm")) < 2.0
    checked = 0
    for cam in scene.cameras:  # the wrist camera moves with the hand: its matrix does too
        for cube in ("cube_a", "cube_b"):
            got = project(matrices[cam], scene.object_position(cube))[0]
            h, w = size
            if not (0.15 * w < got[0] < 0.85 * w and 0.15 * h < got[1] < 0.85 * h):
                continue  # cut by the image's edge: its centroid is not its centre
            checked += 1
            seen = geom_centroid(scene, cam, size, cube)
            assert np.linalg.norm(got - seen) < 2.5, (cam, cube, got, seen)
    assert checked >= 3  # the wrist camera among them
    # behind the camera: not drawn
    cam_pos = scene.data.cam_xpos[mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_CAMERA,
                                                    "front")]
    behind = cam_pos + (cam_pos - scene.hand_position())
    assert np.isnan(project(matrices["front"], behind)).all()


def test_projection_helpers_scale_turn_and_check():
    m = np.hstack([np.eye(3), np.zeros((3, 1))])  # u = x / z, v = y / z
    pts = np.array([[10.0, 20.0, 2.0]])
    np.testing.assert_allclose(project(m, pts), [[5.0, 10.0]])
    np.testing.assert_allclose(project(scale_matrix(m, (100, 50), (200, 150)), pts),
                               [[15.0, 20.0]])
    np.testing.assert_allclose(project(rotate_half_turn(m, (100, 50)), pts), [[45.0, 90.0]])
    with pytest.raises(VLAScopeError, match="3x4"):
        project(np.eye(3), pts)


def test_tabletop_hand_path_is_where_executing_the_chunk_takes_the_hand(scene):
    rng = np.random.default_rng(0)
    chunk = np.column_stack([rng.uniform(-1, 1, (8, 3)), rng.uniform(-1, 1, 8)])
    scene.reset("place_red_on_plate", 4)
    planned = scene.hand_path(scene.state(), chunk)
    assert planned.shape == (9, 3)
    reached = [scene.hand_position()]
    for a in chunk:
        scene.step(a)
        reached.append(scene.hand_position())
    np.testing.assert_allclose(planned, reached, atol=1e-9)  # the same physics, on a copy
    # from a state that is not the simulator's: the targets alone (MAX_DELTA per unit)
    from vlascope.scenes.tabletop.scene import MAX_DELTA

    state = np.array([0.0, 0.0, 0.2, 0.0])
    path = scene.hand_path(state, np.tile([1.0, 0.0, -0.5, 0.0], (3, 1)))
    np.testing.assert_allclose(path[:, 0], [0, MAX_DELTA, 2 * MAX_DELTA, 3 * MAX_DELTA])
    np.testing.assert_allclose(path[-1, 2], 0.2 - 1.5 * MAX_DELTA)


@pytest.fixture(scope="module")
def episode(scene, tmp_path_factory):
    path = tmp_path_factory.mktemp("paths") / "ep.h5"
    rollout(scene, ReferencePolicy(name="reference"), "pick_red", 1, max_steps=12,
            record_to=path)
    return path


def test_rollouts_record_the_path_and_recordings_project_it(episode, scene):
    with Episode(episode) as ep:
        assert ep.has_paths() and ep.matrix_cameras() == ["front", "wrist"]
        n, horizon = ep.n_steps, ep.action_chunks().shape[1]
        hands, planned = ep.hand_positions(), ep.planned_hands()
        assert hands.shape == (n, 3) and planned.shape == (n, horizon + 1, 3)
        np.testing.assert_allclose(hands, ep.states()[:, :3])
        np.testing.assert_allclose(planned[:, 0], hands, atol=1e-6)  # replans every step
        size = ep.frame(0, "front").shape[:2]
        matrices = {c: ep.camera_matrices(c) for c in ep.cameras}
        chunks, index = ep.action_chunks(), ep.chunk_indices()
    # the stored planned path is the scene's path of the stored chunk from that step
    scene.reset("pick_red", 1)
    front = scene.camera_projection(size)["front"]
    np.testing.assert_allclose(matrices["front"][0], front, rtol=1e-5)
    np.testing.assert_allclose(planned[0], scene.hand_path(scene.state(), chunks[0]),
                               atol=1e-6)
    assert not np.allclose(matrices["wrist"][0], matrices["wrist"][-1])  # it moved
    rec = FileRecording(episode)
    try:
        for t in (0, 5, n - 1):
            got = rec.planned_path(t)
            origin = chunk_origin(t, index[t])
            for cam in ("front", "wrist"):
                plan_px, exec_px = got[cam]
                np.testing.assert_allclose(plan_px, project(matrices[cam][t], planned[t]))
                np.testing.assert_allclose(exec_px, project(
                    matrices[cam][t], hands[origin:origin + horizon + 1]))
            assert len(got["front"][1]) == min(horizon + 1, n - t)
        # shown at another resolution, the pixels scale with the image
        big = rec.planned_path(5, {"front": (size[0] * 3, size[1] * 2)})["front"][0]
        np.testing.assert_allclose(big, rec.planned_path(5)["front"][0] * [2, 3])
    finally:
        rec.close()


def plain_episode(path, steps=3, **extra):
    with EpisodeWriter(path, {"task": "old"}) as w:
        for t in range(steps):
            w.append(state=np.zeros(4), action=np.zeros(4), action_chunk=np.zeros((2, 4)),
                     chunk_index=0, success=False,
                     images={"front": np.full((32, 32, 3), t, np.uint8)},
                     **{k: v(t) if callable(v) else v for k, v in extra.items()})
    return path


def test_older_episodes_open_without_a_path_and_bad_ones_are_refused(tmp_path):
    old = plain_episode(tmp_path / "old.h5")
    rec = FileRecording(old)
    assert rec.planned_path(1) is None and rec.hand_path(1) is None
    np.testing.assert_array_equal(rec.action_chunk(2), np.zeros((2, 4)))
    rec.close()
    # path data comes for every step or none
    with pytest.raises(VLAScopeError, match="together"):
        plain_episode(tmp_path / "half.h5", hand=np.zeros(3))
    # a damaged file: wrong shapes are refused with the dataset named
    for name, shape in (("steps/hand", (3, 2)), ("steps/planned_hand", (3, 5, 3)),
                        ("camera_matrix/front", (3, 4, 4))):
        bad = plain_episode(tmp_path / f"bad{len(shape)}{shape[1]}.h5")
        with h5py.File(bad, "a") as h5:
            h5.create_dataset(name, data=np.zeros(shape, np.float32))
        with pytest.raises(EpisodeFormatError, match=name):
            Episode(bad)


def test_video_export_draws_the_path(episode, tmp_path):
    layout = dict(overlay="none", caption=False, plot="none", height=192)
    with_paths = export_video([episode], tmp_path / "on", VideoLayout(**layout), steps=(4, 5))
    without = export_video([episode], tmp_path / "off", VideoLayout(**layout, paths=False),
                           steps=(4, 5))
    a = np.asarray(Image.open(with_paths / "frame_00000.png").convert("RGB"))
    b = np.asarray(Image.open(without / "frame_00000.png").convert("RGB"))
    changed = (a != b).any(axis=2)
    assert changed.sum() > 30
    # the changed pixels are on the projected paths (front camera: the left view)
    rec = FileRecording(episode)
    try:
        plan, done = rec.planned_path(4, {"front": (192, 192)})["front"]
    finally:
        rec.close()
    ys, xs = np.nonzero(changed[20:20 + 192, :192])  # below the title strip
    assert len(xs) > 10
    dist = segment_distance(np.column_stack([xs + 0.5, ys + 0.5]), np.concatenate([plan, done]))
    assert np.percentile(dist, 90) < 4.0  # drawn along the polylines


def segment_distance(points, poly):
    """Each point's distance to the nearest segment of the polyline ``poly``."""
    a, b = poly[:-1][None], poly[1:][None]
    p = points[:, None]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0, 1)
    return np.nanmin(np.linalg.norm(p - (a + t[..., None] * ab), axis=-1), axis=1)


def test_the_video_command_has_the_path_unless_told_not_to(episode, tmp_path):
    from vlascope.cli import main

    for name, flags in (("on", []), ("off", ["--no-paths"])):
        assert main(["video", str(episode), "--overlay", "none", "--steps", "3:4",
                     "--out", str(tmp_path / name), *flags]) == 0
    a, b = (np.asarray(Image.open(tmp_path / n / "frame_00000.png")) for n in ("on", "off"))
    assert (a != b).any(axis=2).sum() > 30
