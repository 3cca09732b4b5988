"""Test configuration: headless Qt and MuJoCo, shared scene fixtures."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402

from vlascope.scenes.tabletop import TabletopScene  # noqa: E402
from vlascope.scenes.tabletop.expert import TabletopExpert  # noqa: E402


@pytest.fixture(scope="session")
def scene():
    with TabletopScene() as s:
        yield s


@pytest.fixture(scope="session")
def expert():
    return TabletopExpert()
