"""The command line in a fresh process, as a user runs it, for tests here and in the scene
plugins (``tests/`` is on pytest's path)."""

import os
import subprocess
import sys


def cli_process(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m vlascope.cli ARGS`` without user plugins, whatever its exit status."""
    return subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})


def run_cli(*args: str, timeout: int = 900, full: bool = False):
    """Its stdout (``full``: the whole finished process), or the test fails with the end of
    its stderr."""
    out = cli_process(*args, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out if full else out.stdout


def run_cli_fails(*args: str, timeout: int = 900) -> str:
    """A command that must fail with one clear error line: its stderr."""
    out = cli_process(*args, timeout=timeout)
    assert out.returncode != 0, out.stdout[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out.stderr
