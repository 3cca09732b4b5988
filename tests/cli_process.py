"""The command line in a fresh process, as a user runs it, for tests here and in the scene
plugins (``tests/`` is on pytest's path)."""

import os
import subprocess
import sys


def run_cli(*args: str, timeout: int = 900) -> str:
    """``python -m vlascope.cli ARGS`` without user plugins; its stdout, or the test fails
    with the end of its stderr."""
    out = subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                         text=True, timeout=timeout,
                         env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
