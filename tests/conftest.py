"""Test configuration: headless Qt and MuJoCo, shared scene fixtures."""

import contextlib
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402

# First-party adapter plugins prepare their environment when imported (LeRobot's
# torchvision, which must be importable before transformers is: see
# plugins/vlascope-lerobot/vlascope_lerobot/compat.py). The app and the CLI import them
# while discovering plugins at start-up; the test session does the same here.
with contextlib.suppress(ImportError):
    import vlascope_lerobot  # noqa: F401, E402

from vlascope.scenes.tabletop import TabletopScene  # noqa: E402
from vlascope.scenes.tabletop.expert import TabletopExpert  # noqa: E402


@pytest.fixture(scope="session")
def scene():
    with TabletopScene() as s:
        yield s


@pytest.fixture(scope="session")
def expert():
    return TabletopExpert()


@pytest.fixture
def window(qtbot, tmp_path):
    """The inspector on the reference policy with no user plugins (test_app.py's own
    fixture adds failing ones)."""
    from test_app import make_window

    (tmp_path / "plugins").mkdir()
    w = make_window(qtbot, tmp_path, tmp_path / "plugins")
    yield w
    w.close()

