"""MuJoCo rendering for scenes that wrap another simulator's model (LIBERO, MetaWorld): one
renderer per image size, the colour frame and, when asked, the segmentation pass, with the
expensive effects off, and an explicit close (EGL contexts left to the garbage collector
fail at exit)."""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable, Sequence

import mujoco
import numpy as np

from vlascope.core.errors import ObservationError

# Off by default: on a CPU renderer (llvmpipe) shadows and reflections cost several times
# the frame itself and carry nothing a policy or a saliency map needs.
FAST_OFF = (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION)
_LIVE: weakref.WeakSet[SceneRenderer] = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []


def _close_live() -> None:
    """Renderers of scenes nobody closed, closed while EGL is still up (their __del__ at
    interpreter teardown fails inside a half-unloaded EGL module)."""
    for r in list(_LIVE):
        r.close()


def check_size(size: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if not (16 <= h <= 1024 and 16 <= w <= 1024):
        raise ObservationError(f"image size {h}x{w} outside 16..1024")
    return h, w


class SceneRenderer:
    """Renders cameras of one ``mujoco.MjModel``; build a new one when the model changes."""

    def __init__(self, model: mujoco.MjModel, option: mujoco.MjvOption | None = None,
                 flags_off: Sequence[mujoco.mjtRndFlag] = FAST_OFF):
        self.model = model
        self.option = option
        self.flags_off = tuple(flags_off)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        _LIVE.add(self)

    def render(self, data: mujoco.MjData, camera: str, size: tuple[int, int],
               segmentation: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) uint8 colour and, with ``segmentation``, (H, W, 2) MuJoCo object id and
        object type per pixel (-1 where nothing is)."""
        r = self._renderer(check_size(size))
        r.update_scene(data, camera=camera, scene_option=self.option)
        for flag in self.flags_off:
            r.scene.flags[flag] = 0
        rgb, seg = r.render().copy(), None
        if segmentation:
            r.enable_segmentation_rendering()
            try:
                seg = r.render().copy()
            finally:
                r.disable_segmentation_rendering()
        return rgb, seg

    def cameras(self, data: mujoco.MjData, cameras: Sequence[str], size: Sequence[int],
                classify: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
                orient: Callable[[str, np.ndarray], np.ndarray] | None = None,
                ) -> tuple[dict[str, np.ndarray], dict | None, dict | None]:
        """What ``Scene.observe`` returns per camera: images and, when ``classify`` (MuJoCo
        segmentation -> region labels, object ids) is given, the region maps and object ids.
        ``orient`` turns a camera's pixels (e.g. a camera mounted upside down)."""
        size = check_size(size)
        turn = orient or (lambda _cam, img: img)
        images = {}
        labels: dict | None = {} if classify else None
        segments: dict | None = {} if classify else None
        for cam in cameras:
            rgb, seg = self.render(data, cam, size, segmentation=classify is not None)
            images[cam] = turn(cam, rgb)
            if classify is not None:
                labels[cam], segments[cam] = classify(turn(cam, seg))
        return images, labels, segments

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def _renderer(self, size: tuple[int, int]) -> mujoco.Renderer:
        if size not in self._renderers:
            h, w = size
            g = self.model.vis.global_
            if g.offwidth < w or g.offheight < h:  # the offscreen buffer bounds the size
                g.offwidth, g.offheight = max(w, g.offwidth), max(h, g.offheight)
            self._renderers[size] = mujoco.Renderer(self.model, height=h, width=w)
            if not _EXIT_HOOK:  # after MuJoCo's own EGL exit hook, so it runs before it
                atexit.register(_close_live)
                _EXIT_HOOK.append(True)
        return self._renderers[size]
