"""The LeRobot 0.4.4 environment (scripts/lerobot_env.sh) that serves GR00T N1.5 and X-VLA."""

from collections.abc import Callable
from pathlib import Path

import pytest
from envs import build_env, run_in_env


@pytest.fixture(scope="session")
def lerobot_python() -> Path:
    """Its python: tiny checkpoints are written there by the families' own code."""
    return build_env("lerobot")


@pytest.fixture(scope="session")
def in_lerobot_env(lerobot_python) -> Callable[..., str]:
    """``in_lerobot_env(*args)``: the stdout of the environment's python run with ``args``,
    with this checkout and plugin first on its path, offline."""
    return lambda *args: run_in_env(lerobot_python, *args, plugin="vlascope-lerobot")
