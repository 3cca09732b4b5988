"""The policy families' virtualenvs (vlascope/core/environments.py) for the tests that run
in them. Each is built once per machine (scripts/test.sh builds them before pytest, so the
time is paid there); a test skips only when one is not built yet and the package index
cannot be reached."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from vlascope.core.environments import build_script


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
