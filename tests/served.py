"""``vlascope serve`` in a child process, as a user starts it, for the remote-policy tests
(``tests/`` is on pytest's path)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Served:
    url: str
    proc: subprocess.Popen

    def kill(self) -> None:
        """kill -9: the server dies without a word, as a crashed or OOM-killed one does."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def served(*args: str, timeout: float = 120.0) -> Iterator[Served]:
    """Start ``vlascope serve --port 0 ARGS`` (the reference policy unless ARGS say
    otherwise), wait for its address line, stop it afterwards (if still running)."""
    cmd = [sys.executable, "-m", "vlascope.cli", "serve", *args]
    if "--unix" not in args and "--port" not in args:
        cmd += ["--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"vlascope serve exited: {proc.stderr.read()[-3000:]}")
            m = re.search(r" on ((?:ws|unix)://\S+)$", line.strip())
            url = m.group(1) if m else None
        if url is None:
            raise RuntimeError("vlascope serve did not print its address in time")
        yield Served(url, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()
