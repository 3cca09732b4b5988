"""A policy plugin that declares an environment of its own (``factory.environment = "NAME"``,
see ``vlascope.core.environments``) is served from there: ``vlascope serve`` starts in that
environment's python on a Unix socket in a private temporary folder, and the ``remote``
policy connected to it stands in for the plugin. Closing the policy, losing the last
reference to it, or this process exiting stops the server and removes the folder, so the
user never starts a server or types an address for a local family."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from ..core.environments import ENV_VAR, checkout, require_python
from ..core.errors import PluginError

_ADDRESS = re.compile(r" on (unix://\S+)$", re.MULTILINE)


def serve_args(name: str, options: dict[str, Any]) -> list[str]:
    """``vlascope serve`` arguments that build plugin ``name`` with ``options`` there."""
    args = ["--policy", name]
    for key, value in options.items():
        if key in ("device", "weights"):
            args += [f"--{key}", str(value)]
        else:
            args += ["--policy-option", f"{key}={value}"]
    return args


def package_root(module: str) -> Path | None:
    """The folder holding the top-level package of ``module`` when that package is a
    source checkout (an editable install, a plugin folder), not one installed into a
    site-packages: the environment then runs the very code the app imported."""
    top = sys.modules.get(module.split(".")[0])
    file = getattr(top, "__file__", None)
    if not file:
        return None
    root = Path(file).resolve().parent.parent
    return None if root.name in ("site-packages", "dist-packages") else root


def _child_env(environment: str, plugin_folder: Path | None,
               code: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env[ENV_VAR] = environment
    root = checkout()
    # the checkout's vlascope (the code the app runs) first, then the plugin's own source
    first = [str(p) for p in (root, code) if p is not None]
    if first:
        env["PYTHONPATH"] = os.pathsep.join(
            [*first, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    if plugin_folder is not None:  # the user plugin that asked is found there too
        env["VLASCOPE_PLUGIN_PATH"] = os.pathsep.join(
            [str(plugin_folder),
             *[p for p in env.get("VLASCOPE_PLUGIN_PATH", "").split(os.pathsep) if p]])
    return env


class SpawnedServer:
    """``vlascope serve`` in another environment; ``stop()`` ends it and removes what we
    made (the socket, its two log files, the folder), once."""

    def __init__(self, proc: subprocess.Popen, folder: Path, socket: Path):
        self.proc, self.folder, self.socket = proc, folder, socket

    def stop(self) -> None:
        _stop(self.proc, self.folder, self.socket)


def _stop(proc: subprocess.Popen, folder: Path, socket: Path) -> None:
    if proc.poll() is None:
        proc.terminate()  # it closes its connections and removes its socket
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for path in (socket, folder / "serve.out", folder / "serve.err"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(OSError):  # anything else in it was not ours: left there
        folder.rmdir()


def start(environment: str, name: str, options: dict[str, Any],
          plugin_folder: Path | None = None, timeout: float = 300.0,
          code: Path | None = None) -> SpawnedServer:
    """Start serving plugin ``name`` in ``environment``; returns once it listens."""
    python = require_python(environment, f"policy plugin '{name}'")
    folder = Path(tempfile.mkdtemp(prefix="vlascope-env-"))
    socket = folder / "policy.sock"
    cmd = [str(python), "-m", "vlascope.cli_serve", *serve_args(name, options),
           "--unix", str(socket)]
    with open(folder / "serve.out", "wb") as out, open(folder / "serve.err", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=_child_env(environment, plugin_folder, code))
    server = SpawnedServer(proc, folder, socket)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if _ADDRESS.search((folder / "serve.out").read_text(errors="replace")):
                return server
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with status {proc.returncode}" if proc.poll() is not None
                       else f"did not listen within {timeout:.0f} s")
                tail = (folder / "serve.err").read_text(errors="replace").strip()
                tail = " | ".join(line.removeprefix("vlascope: error: ")  # said once already
                                  for line in tail.splitlines()[-3:]) or "(nothing on stderr)"
                raise PluginError(f"policy plugin '{name}' in the environment "
                                  f"'{environment}': vlascope serve {why}: {tail}")
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise


def served_policy(environment: str, name: str, options: dict[str, Any],
                  plugin_folder: Path | None = None, code: Path | None = None) -> Any:
    """The ``remote`` policy connected to plugin ``name`` served from ``environment``; its
    ``close()`` (or its collection, or this process's exit) stops the server."""
    from .client import make_remote

    server = start(environment, name, options, plugin_folder, code=code)
    try:
        policy = make_remote(url=f"unix://{server.socket}")
    except BaseException:
        server.stop()
        raise
    # finalize runs once: on close(), when the policy is collected, or at exit (atexit)
    stopping = weakref.finalize(policy, _stop, server.proc, server.folder, server.socket)
    alive = weakref.ref(policy)  # not the policy itself: it must stay collectable

    def close_and_stop() -> None:
        try:
            if (p := alive()) is not None:
                type(p).close(p)
        finally:
            stopping()

    policy.close = close_and_stop
    policy.environment = environment
    policy.server_pid = server.proc.pid
    return policy
