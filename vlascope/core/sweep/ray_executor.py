"""Cells as Ray tasks, on an existing cluster (``--ray-address``) or a Ray started here on
demand. Ray is optional: imported only when this executor is used.

A task that raises is a failed record (``execute`` catches it; it is not retried); a task
whose worker process or node dies is retried by Ray on another worker. Workers are kept
between tasks (``max_calls=0``; Ray's default for GPU tasks is a fresh process per task)
so each keeps its loaded policy (``worker.py``). A Ray started here listens on every
interface (Ray binds its services so), so it is started with Ray's token authentication
and a fresh random token that only this process and its workers know."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import VLAScopeError
from .cells import CellRecord, SweepCell, execute

INSTALL_HINT = "pip install 'vlascope[ray]' (or: bash scripts/setup.sh ray)"


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise VLAScopeError(f"--executor ray needs Ray, which is not installed: "
                            f"{INSTALL_HINT}") from e
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One clear line for an address nothing answers at (Ray itself waits a long time)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise VLAScopeError(f"--ray-address: '{address}' is not HOST:PORT (the head's GCS "
                            "address, e.g. 127.0.0.1:6379), 'auto' or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise VLAScopeError(f"no Ray cluster reachable at {address}: {e.strerror or e} "
                            "(start one with `ray start --head`, or leave out "
                            "--ray-address to start a local Ray)") from e


def _refresh_ray_config() -> None:
    """Make an already imported Ray see the authentication settings just set."""
    import sys

    if "ray" in sys.modules:
        from ray._raylet import Config

        Config.initialize("")


def connect(address: str | None, cpus: int | None = None) -> bool:
    """Join the cluster at ``address``, or start a local Ray; True if this call did either
    (and the caller disconnects with ``ray.shutdown()``, which stops only a Ray it started).
    False: this process was already connected."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address and os.environ.get("RAY_AUTH_MODE") != "token":
        # set before Ray reads its configuration (at import), refreshed in case it has
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(24)
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        _refresh_ray_config()
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": "warning"}
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds; one line for all
            raise VLAScopeError(f"could not join the Ray cluster at {address}: "
                                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                                ) from e
        return True
    # "local": a new Ray here even if this machine has run a cluster (Ray would join it)
    ray.init(address="local", num_cpus=cpus or os.cpu_count(), include_dashboard=False,
             _node_ip_address="127.0.0.1", **quiet)
    return True


def run_ray(cells: Sequence[SweepCell], address: str | None, cpus_per_task: float,
            gpus_per_task: float, retries: int = 3) -> Iterator[CellRecord]:
    """Records of ``cells`` as Ray finishes them. Ray's own messages (a node marked dead,
    a worker restarted) go to stderr while the sweep runs: stdout is the command's table
    or JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        yield from _run_ray(cells, address, cpus_per_task, gpus_per_task, retries)


def _run_ray(cells: Sequence[SweepCell], address: str | None, cpus_per_task: float,
             gpus_per_task: float, retries: int) -> Iterator[CellRecord]:
    ray = import_ray()
    connected = connect(address)
    threads = max(1, int(cpus_per_task))
    task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=retries,
                      retry_exceptions=False, max_calls=0)(execute)
    pending: dict[Any, SweepCell] = {}
    try:
        for c in cells:
            pending[task.remote(c.key, c.digest, c.fn, c.kwargs, threads)] = c
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as e:  # its worker or node died, retries spent
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    yield CellRecord(cell.key, cell.digest, "failed",
                                     error=f"{type(e).__name__} after {retries} retries: {first}")
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if connected:
            ray.shutdown()
