"""Checks of the free camera shared by the tabletop tests and the scene plugins' tests
(``tests/`` is on pytest's path): the dock on a workspace of its own, and a click names what
the scene's own segmentation shows."""

import numpy as np

from vlascope.app.docks.free_camera import FreeCameraDock
from vlascope.core.free_camera import replay_model
from vlascope.core.workspace import Workspace


def free_camera_dock(qtbot, replay_scene, size: tuple[int, int]) -> FreeCameraDock:
    """The Free camera dock, shown, on a new workspace, drawing rollouts with
    ``replay_scene`` (a scene of their kind kept apart from the one that ran them)."""
    dock = FreeCameraDock(Workspace(),
                          lambda meta, done: done(replay_model(replay_scene, meta)))
    qtbot.addWidget(dock)
    dock.resize(*size)
    dock.show()
    qtbot.waitExposed(dock)
    return dock


def inner_pixels(segments: np.ndarray, min_pixels: int = 1) -> dict[int, tuple[int, int]]:
    """Per object id, one pixel (x, y) well inside it (three pixels from its edges: the
    scene's camera and a restored state may differ by a substep there)."""
    out = {}
    for obj in np.unique(segments):
        if obj <= 0:
            continue
        inside = segments == obj
        for _ in range(3):
            inside[1:-1, 1:-1] &= (inside[:-2, 1:-1] & inside[2:, 1:-1]
                                   & inside[1:-1, :-2] & inside[1:-1, 2:])
        inside[[0, -1], :] = inside[:, [0, -1]] = False
        ys, xs = np.nonzero(inside)
        if len(ys) >= min_pixels:
            i = len(ys) // 2
            out[int(obj)] = (int(xs[i]), int(ys[i]))
    return out


def check_clicks(select, segments: np.ndarray, labels: np.ndarray, names: dict[int, str],
                 flip: bool = False) -> set[str]:
    """Click (``select(x, y)`` on the free camera looking through the scene's camera) inside
    every object the scene's segmentation shows; each must name that object, its Regions
    dock id and its class. ``flip``: the scene turns this camera's image half a turn."""
    h, w = segments.shape
    named = set()
    for obj, (x, y) in inner_pixels(segments).items():
        sel = select(w - 1 - x, h - 1 - y) if flip else select(x, y)
        assert sel is not None, (obj, names.get(obj))
        assert (sel.object_id, sel.object_name, sel.label) == \
            (obj, names.get(obj, ""), int(labels[y, x])), (obj, names.get(obj), sel)
        named.add(sel.object_name)
    return named
