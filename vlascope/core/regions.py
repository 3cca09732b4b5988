"""Region labels (the paper's Omega map) and conversion to the ISS toolkit's convention."""

from __future__ import annotations

import numpy as np

from .errors import ObservationError

UNLABELED, ACTION_CRITICAL, SUPPORT, NUISANCE = 0, 1, 2, 3
LABEL_NAMES = {UNLABELED: "unlabeled", ACTION_CRITICAL: "action-critical",
               SUPPORT: "support", NUISANCE: "nuisance"}
# Fixed display colours (RGB), shared by overlays, legends and exports.
LABEL_COLORS = {UNLABELED: (0, 0, 0), ACTION_CRITICAL: (230, 57, 70),
                SUPPORT: (42, 157, 143), NUISANCE: (244, 162, 97)}

# The ISS/NMR toolkit stores masks as 0 = nuisance, 1 = support, 2 = action-critical.
_TO_TOOLKIT = np.array([0, 2, 1, 0], dtype=np.uint8)  # unlabeled is exported as nuisance
_FROM_TOOLKIT = np.array([NUISANCE, SUPPORT, ACTION_CRITICAL], dtype=np.uint8)


def to_toolkit(labels: np.ndarray) -> np.ndarray:
    """Our labels -> toolkit mask (unlabeled pixels count as nuisance there, as in the paper)."""
    labels = np.asarray(labels)
    if labels.size and labels.max() > NUISANCE:
        raise ObservationError(f"region labels must be in 0..3, found {int(labels.max())}")
    return _TO_TOOLKIT[labels]


def from_toolkit(mask: np.ndarray) -> np.ndarray:
    """Toolkit mask -> our labels."""
    mask = np.asarray(mask)
    if mask.size and (mask.min() < 0 or mask.max() > 2):
        raise ObservationError("toolkit masks must hold 0 (nuisance), 1 (support), 2 (action)")
    return _FROM_TOOLKIT[mask.astype(np.intp)]


def colorize(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) uint8 image in the fixed label colours."""
    lut = np.array([LABEL_COLORS[k] for k in sorted(LABEL_COLORS)], dtype=np.uint8)
    return lut[np.asarray(labels, dtype=np.intp)]
