"""Separate virtualenvs for policy families whose dependencies conflict with the app's (an
old numpy, a pinned torch). Each is known by name and built by a script of the source
checkout; a policy plugin names the one it needs (``factory.environment = "NAME"``) and is
then served from there (``vlascope.remote.spawn``).

    bash scripts/setup.sh env NAME      builds it (idempotent), prints its python

Building takes minutes and downloads, so only that command builds; everything else asks
whether it is built (``env_python(name)``) and says how to build it when not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .errors import PluginError, UnknownNameError, VLAScopeError

# name -> its build script, relative to the checkout. The script is idempotent, prints the
# environment's python on its last line of stdout, and with ``--built`` only prints it (exit
# status 1 when the environment is not built yet).
ENVIRONMENTS: dict[str, str] = {
    "openpi": "scripts/openpi_env.sh",  # numpy<2, openpi's client and server, CPU torch
    "lerobot": "scripts/lerobot_env.sh",  # LeRobot 0.4.4 + transformers 4.57: GR00T, X-VLA
    "openvla-oft": "scripts/openvla_oft_env.sh",  # its PyPI stack: transformers 4.40, TF 2.15
}
# Set in a process started in an environment (by ``vlascope.remote.spawn``): it is there.
ENV_VAR = "VLASCOPE_ENVIRONMENT"


class EnvironmentNotBuilt(PluginError):
    """A policy's environment that has not been built on this machine yet."""


def checkout() -> Path | None:
    """The source checkout this vlascope runs from (None when installed from a wheel): the
    environments' build scripts live there."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def build_script(name: str) -> Path:
    """The script that builds environment ``name``."""
    if name not in ENVIRONMENTS:
        raise UnknownNameError("environment", name, sorted(ENVIRONMENTS))
    root = checkout()
    if root is None or not (root / ENVIRONMENTS[name]).is_file():
        raise VLAScopeError(f"the environment '{name}' is built by {ENVIRONMENTS[name]} of a "
                            "VLAScope source checkout, which this installation is not")
    return root / ENVIRONMENTS[name]


def how_to_build(name: str) -> str:
    return f"`bash scripts/setup.sh env {name}` builds it"


def env_python(name: str, build: bool = False) -> Path | None:
    """The python of environment ``name``; None when it is not built and ``build`` is
    False. ``build`` runs its build script (minutes the first time; progress on stderr)."""
    script = build_script(name)
    cmd = ["bash", str(script)] + ([] if build else ["--built"])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                          stderr=None if build else subprocess.DEVNULL)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        if build:
            raise VLAScopeError(f"{script.name} failed to build the environment '{name}' "
                                f"(exit status {proc.returncode}; its messages are above)")
        return None
    return Path(lines[-1])


def require_python(name: str, who: str = "") -> Path:
    """The python of environment ``name``, or an error saying how to build it (``who``
    needs it: named first)."""
    python = env_python(name)
    if python is None:
        raise EnvironmentNotBuilt(f"{who + ' needs ' if who else ''}the environment "
                                  f"'{name}', which is not built on this machine: "
                                  f"{how_to_build(name)}")
    return python


def running_in(name: str) -> bool:
    """Whether this process runs in environment ``name`` (started there by the spawner)."""
    return os.environ.get(ENV_VAR) == name


def main(argv: list[str] | None = None) -> int:
    """``python -m vlascope.core.environments build NAME`` (what ``setup.sh env`` runs)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "build":
        print(f"usage: bash scripts/setup.sh env NAME (known: {', '.join(ENVIRONMENTS)})",
              file=sys.stderr)
        return 2
    try:
        print(env_python(args[1], build=True))
    except VLAScopeError as e:
        print(f"setup: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
