"""Checks of a scene's camera projection against its own rendering, shared by the scene
plugins' tests (``tests/`` is on pytest's path): the centre of every robot part the camera
shows, projected with the scene's matrix, must land on a pixel the segmentation render calls
the robot's; a half-turned matrix (the wrong orientation) must mostly miss."""

import mujoco
import numpy as np

from vlascope.core.projection import project, rotate_half_turn
from vlascope.core.regions import ACTION_CRITICAL


def robot_hits(scene, model, data, size, is_robot) -> dict[str, tuple[float, float, int]]:
    """Per camera: (share of robot geoms on robot pixels, the same with the image turned
    180 degrees, how many geoms were in view). ``is_robot(geom_id)`` picks the geoms."""
    matrices = scene.camera_projection(size)
    regions = scene.observe(size=size, regions=True).regions
    out = {}
    for cam in scene.cameras:
        labels = regions[cam]
        geoms = [g for g in range(model.ngeom) if is_robot(g) and model.geom_rgba[g][3] > 0]
        shares = []
        for matrix in (matrices[cam], rotate_half_turn(matrices[cam], size)):
            hits = total = 0
            for g in geoms:
                u, v = project(matrix, data.geom_xpos[g])[0]
                if not (np.isfinite(u) and 0 <= u < size[1] and 0 <= v < size[0]):
                    continue
                total += 1
                i, j = int(v), int(u)
                hits += bool((labels[max(0, i - 1):i + 2, max(0, j - 1):j + 2]
                              == ACTION_CRITICAL).any())
            shares.append((hits / total if total else 0.0, total))
        out[cam] = (shares[0][0], shares[1][0], shares[0][1])
    return out


def body_name(model, body: int) -> str:
    return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body) or ""
