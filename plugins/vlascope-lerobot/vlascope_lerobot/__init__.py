"""VLAScope adapters for LeRobot 0.4.4's SmolVLA (in the app's environment), GR00T N1.5 and
X-VLA (served from the "lerobot" environment: they need transformers 4.57). See
docs/adapters.md."""

from __future__ import annotations

from .compat import prepare_torchvision

prepare_torchvision()  # before transformers is imported: see compat.py


def make_smolvla(**options):
    from .smolvla import SmolVLAAdapter

    return SmolVLAAdapter(**options)


make_smolvla.needs_weights = True  # no checkpoint ships: the app asks for a folder


def make_groot(**options):
    from .groot import GrootAdapter

    return GrootAdapter(**options)


def make_xvla(**options):
    from .xvla import XVLAAdapter

    return XVLAAdapter(**options)


for _factory in (make_groot, make_xvla):
    _factory.needs_weights = True
    _factory.environment = "lerobot"  # transformers 4.57: served from there (docs/remote.md)
