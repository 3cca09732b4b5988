"""Planned vs executed: the hand path an action chunk plans and the path the hand then took,
in a camera's pixels. Recordings keep per step the hand's position, the planned path and
each camera's projection, so a view draws this without the scene that recorded it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .projection import project, scale_matrix

# How the planned and executed paths are drawn, in the inspector and in videos: lime for the
# policy's intention (apart from the cyan top-k outline), amber for what happened.
PLANNED_RGB = (128, 255, 64)
EXECUTED_RGB = (255, 209, 102)


@dataclass(frozen=True)
class HandPath:
    """The chunk executed at a step, as hand positions in world metres.

    ``origin`` is the step that predicted the chunk (the shown step, or an earlier one when
    a policy executes several actions of a chunk); ``planned`` (H + 1, 3) starts at the
    hand's position there; ``executed`` (M, 3) is where the hand was at the steps from
    ``origin`` on (as many of the H + 1 as were recorded)."""

    origin: int
    planned: np.ndarray
    executed: np.ndarray


def chunk_origin(t: int, chunk_index: int) -> int:
    """The step whose prediction step ``t`` executes (its action is entry ``chunk_index``)."""
    return max(0, int(t) - int(chunk_index))


def hand_path_at(t: int, chunk_index: int, planned: np.ndarray, hands: Sequence[np.ndarray],
                 ) -> HandPath:
    """``planned``: the path stored at step ``t``; ``hands``: every recorded hand position."""
    origin = chunk_origin(t, chunk_index)
    stop = min(len(hands), origin + len(planned))
    executed = (np.asarray(hands[origin:stop], np.float64).reshape(-1, 3)
                if stop > origin else np.zeros((0, 3)))
    return HandPath(origin, np.asarray(planned, np.float64), executed)


def path_pixels(path: HandPath, matrix: np.ndarray, matrix_size: Sequence[int],
                shown_size: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(planned (H + 1, 2), executed (M, 2)) pixel coordinates in an image of
    ``shown_size`` (default ``matrix_size``, the size the matrix was made for); points
    behind the camera are NaN."""
    m = matrix if shown_size is None else scale_matrix(matrix, matrix_size, shown_size)
    return project(m, path.planned), project(m, path.executed)
