"""VLAScope adapter for LeRobot's SmolVLA (LeRobot 0.4.4). See docs/adapters.md."""

from __future__ import annotations

from .compat import prepare_torchvision

prepare_torchvision()  # before transformers is imported: see compat.py


def make_smolvla(**options):
    from .smolvla import SmolVLAAdapter

    return SmolVLAAdapter(**options)


make_smolvla.needs_weights = True  # no checkpoint ships: the app asks for a folder


def make_xvla(**options):
    from .xvla import XVLAAdapter

    return XVLAAdapter(**options)


make_xvla.needs_weights = True
make_xvla.environment = "lerobot"  # transformers 4.57: served from there (docs/remote.md)
