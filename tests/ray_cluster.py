"""A real Ray cluster on this machine for the sweep tests: a head started with `ray start
--head` on loopback (no CPUs of its own, so every cell runs on a worker node) and worker
nodes joined to it, each its own process group that a test can kill like a lost machine.
Token authentication on, as a cluster should be; the token goes to the CLI through the
environment, as a user's would."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(24), "RAY_USAGE_STATS_ENABLED": "0"}
        self.procs: list[subprocess.Popen] = []

    def _start(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([RAY, "start", "--block", "--node-ip-address=127.0.0.1",
                                 *args], env=self.env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def nodes(self) -> int:
        out = subprocess.run([RAY, "status", "--address", self.address], env=self.env,
                             capture_output=True, text=True, timeout=60).stdout
        active = out.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return active.count(" node_")

    def wait_nodes(self, n: int, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.nodes() != n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster at {self.address} has not {n} nodes")
            time.sleep(0.5)

    def start(self) -> RayCluster:
        self._start("--head", f"--port={self.port}", "--num-cpus=0",
                    "--include-dashboard=false", "--disable-usage-stats")
        return self

    def add_node(self, cpus: int = 1) -> subprocess.Popen:
        return self._start(f"--address={self.address}", f"--num-cpus={cpus}")

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """The node's every process at once (SIGKILL to its process group), like a lost
        machine."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            self.kill(proc)
