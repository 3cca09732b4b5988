"""``vlascope serve`` in a child process, as a user starts it, for the remote-policy tests
(``tests/`` is on pytest's path)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    printed: list[str] = field(default_factory=list)  # its stdout up to the address line

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

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
        url, printed = None, []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"vlascope serve exited: {proc.stderr.read()[-3000:]}")
            printed.append(line.strip())
            m = re.search(r" on ((?:ws|unix)://\S+)$", line.strip())
            url = m.group(1) if m else None
        if url is None:
            raise RuntimeError("vlascope serve did not print its address in time")
        yield Served(url, proc, printed)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a server we started (SIGTERM, then SIGKILL after 30 s) and close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class Relay:
    """A TCP relay in front of a server that counts the bytes its clients send: a test can
    wait until a client in another process has made some requests (no sleeps, no timing),
    then kill the server behind it. The client sees the server's death as it would
    directly: its connection ends without a close frame."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = 0
        self._more = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if count:
                    with self._more:
                        self.sent += len(data)
                        self._more.notify_all()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def wait_sent(self, n: int, client: subprocess.Popen | None = None,
                  timeout: float = 120.0) -> None:
        """Block until clients have sent more than ``n`` bytes through the relay; fail at
        once, with its error, when ``client`` exits first."""
        deadline = time.monotonic() + timeout
        with self._more:
            while not self._more.wait_for(lambda: self.sent > n, 0.5):
                if client is not None and client.poll() is not None:
                    raise RuntimeError(f"the client exited before sending {n} bytes: "
                                       f"{client.communicate()[1][-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"clients sent only {self.sent} bytes through the "
                                       "relay")

    def close(self) -> None:
        self.listener.close()
