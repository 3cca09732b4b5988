"""The LeRobot 0.4.4 environment (scripts/lerobot_env.sh) that serves GR00T N1.5 and X-VLA."""

from pathlib import Path

import pytest
from envs import build_env


@pytest.fixture(scope="session")
def lerobot_python() -> Path:
    """Its python: tiny checkpoints are written there by the families' own code."""
    return build_env("lerobot")
