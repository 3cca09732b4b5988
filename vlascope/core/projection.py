"""Camera projection for overlays drawn in image space (the planned-vs-executed hand path):
a 3x4 matrix per camera maps homogeneous world points to homogeneous pixel coordinates
(u right, v down, continuous: pixel (i, j) covers [j, j+1) x [i, i+1), as image items and
PIL draw them). Scenes compute the matrix from their simulator's camera; recordings keep
it per step, so drawing needs no simulator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import VLAScopeError

_MIN_DEPTH = 1e-6  # metres in front of the camera: anything nearer is not drawn


def mujoco_camera_matrix(model, data, cam_id: int, size: Sequence[int]) -> np.ndarray:
    """The (3, 4) projection of MuJoCo camera ``cam_id`` as ``mujoco.Renderer`` renders it
    into an image of ``size`` = (H, W): the camera looks along its -z axis, y up, vertical
    field of view ``cam_fovy``; row 0 of the rendered image is the top. Reads the pose the
    renderer reads (``data.cam_xpos``, ``data.cam_xmat``: current after a step or
    ``mj_forward``)."""
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise VLAScopeError(f"image size {h}x{w} is empty")
    rot = np.asarray(data.cam_xmat[cam_id], np.float64).reshape(3, 3)  # columns: cam axes
    pos = np.asarray(data.cam_xpos[cam_id], np.float64)
    f = 0.5 * h / np.tan(np.deg2rad(float(model.cam_fovy[cam_id])) / 2)
    # camera coordinates (x, y, z), depth = -z:  u = W/2 + f x / depth, v = H/2 - f y / depth
    k = np.array([[f, 0.0, -w / 2], [0.0, -f, -h / 2], [0.0, 0.0, -1.0]])
    extrinsic = np.hstack([rot.T, (-rot.T @ pos)[:, None]])
    return k @ extrinsic


def rotate_half_turn(matrix: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The matrix of an image turned 180 degrees (``img[::-1, ::-1]``): u -> W - u,
    v -> H - v (scenes that turn an upside-down camera's pixels upright)."""
    h, w = (int(v) for v in size)
    flip = np.array([[-1.0, 0.0, w], [0.0, -1.0, h], [0.0, 0.0, 1.0]])
    return flip @ np.asarray(matrix, np.float64)


def scale_matrix(matrix: np.ndarray, src: Sequence[int], dst: Sequence[int]) -> np.ndarray:
    """The matrix for the same view shown at ``dst`` = (H, W) instead of ``src`` (a display
    render of another resolution: continuous pixel coordinates scale with the image)."""
    (sh, sw), (dh, dw) = src, dst
    if min(sh, sw, dh, dw) <= 0:
        raise VLAScopeError(f"image sizes {tuple(src)} -> {tuple(dst)} must be positive")
    return np.diag([dw / sw, dh / sh, 1.0]) @ np.asarray(matrix, np.float64)


def check_matrix(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    if m.shape != (3, 4) or not np.isfinite(m).all():
        raise VLAScopeError(f"a camera matrix is 3x4 finite numbers, got shape {m.shape}")
    return m


def project(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> pixel coordinates (N, 2); a point behind (or at) the camera
    is NaN, so a polyline through it is broken there rather than drawn mirrored."""
    m = check_matrix(matrix)
    p = np.asarray(points, np.float64).reshape(-1, 3)
    hom = np.hstack([p, np.ones((len(p), 1))]) @ m.T
    out = np.full((len(p), 2), np.nan)
    front = hom[:, 2] > _MIN_DEPTH
    out[front] = hom[front, :2] / hom[front, 2:3]
    return out
