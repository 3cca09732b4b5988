"""The openpi virtualenv (scripts/openpi_env.sh) for the interop tests, and openpi's own
server in a child process. The environment is built once per machine (scripts/test.sh
builds it before pytest, so its time is paid there); these tests skip only when it is not
built yet and the package index cannot be reached."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from envs import build_env
from served import stop_process

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "openpi"


@pytest.fixture(scope="session")
def openpi_python() -> Path:
    """The openpi virtualenv's python."""
    return build_env("openpi")


def openpi_env_vars() -> dict[str, str]:
    """The checkout first on the path (the environment's own vlascope is only metadata)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "VLASCOPE_PLUGIN_PATH": ""}


def free_port() -> int:
    """A port free now (openpi's server cannot pick one itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def openpi_served(python: Path, timeout: float = 180.0) -> Iterator[str]:
    """openpi's ``WebsocketPolicyServer`` serving the reference policy
    (tests/openpi/serve_with_openpi.py) in the openpi virtualenv; yields its ws:// URL."""
    for attempt in range(3):  # the port may be taken between free_port() and listening
        port = free_port()
        proc = subprocess.Popen([str(python), str(SCRIPTS / "serve_with_openpi.py"), str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=openpi_env_vars())
        try:
            url, deadline = None, time.monotonic() + timeout
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                m = re.search(r"listening on (ws://\S+)$", line.strip())
                url = m.group(1) if m else None
            if url is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                err = proc.stderr.read()[-3000:] if proc.poll() is not None else "(no word)"
                if attempt < 2 and "address already in use" in err.lower():
                    continue
                raise RuntimeError(f"openpi's server did not come up: {err}")
            yield url
            return
        finally:
            stop_process(proc)
