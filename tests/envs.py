"""The policy families' virtualenvs (vlascope/core/environments.py) for the tests that run
in them. Each is built once per machine (scripts/test.sh builds them before pytest, so the
time is paid there); a test skips only when one is not built yet and the package index
cannot be reached."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from vlascope.core.environments import build_script, checkout


def _index_reachable(timeout: float = 5.0) -> bool:
    for host in ("pypi.org", "files.pythonhosted.org"):
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError:
            return False
    return True


def build_env(name: str) -> Path:
    """Environment ``name``'s python (built now when missing); skips the calling test only
    when building is impossible because the network is unreachable."""
    script = build_script(name)
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        if not _index_reachable():
            pytest.skip(f"network unreachable (pypi.org): cannot build the {name} "
                        f"virtualenv ({script.name})")
        raise RuntimeError(f"{script.name} failed:\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def run_in_env(python: Path, *args: str, plugin: str | None = None,
               timeout: float = 600) -> str:
    """Run ``python *args`` (an environment's python) with this checkout, and the
    first-party plugin folder ``plugin`` (e.g. "vlascope-lerobot"), first on its path,
    offline; its stdout, or an assertion error with the end of its stderr."""
    root = checkout()
    paths = [str(root)] + ([str(root / "plugins" / plugin)] if plugin else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(python), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
