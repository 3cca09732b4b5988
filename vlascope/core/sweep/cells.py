"""The unit of a sweep and what running it leaves: a cell is a module-level function and
its keyword arguments (picklable, JSON-able), so any executor can ship it to any worker;
its record says how it ended, where, and how long it took."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..atomic import json_default


@dataclass(frozen=True)
class SweepCell:
    """``fn(**kwargs)`` returning a JSON-able dict; ``key`` names it in the sweep (and its
    record file), ``label`` in messages."""

    key: str
    fn: Callable[..., dict[str, Any]]
    kwargs: dict[str, Any]
    label: str = ""

    @property
    def digest(self) -> str:
        """What the cell computes: a record is reused (``--resume``) only for a cell with
        the same function and arguments."""
        text = json.dumps([f"{self.fn.__module__}.{self.fn.__qualname__}", self.kwargs],
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class CellRecord:
    key: str
    digest: str
    status: str  # "done" | "failed"
    result: dict[str, Any] | None = None
    error: str | None = None
    node: str = ""  # where it ran: a Ray node id, or this machine's host name
    host: str = ""
    pid: int = 0
    seconds: float = 0.0
    resumed: bool = field(default=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("resumed")
        return d


def blocks(first: int, count: int, size: int) -> list[list[int]]:
    """Seeds ``first .. first + count - 1`` in blocks of at most ``size``: the seeds, not
    the cut, fix the results, so any block size gives the same table."""
    size = max(1, size)
    seeds = list(range(first, first + count))
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]


def seed_block_cells(fn: Callable[..., dict[str, Any]], common: dict[str, Any],
                     parts: Sequence[tuple[str, dict[str, Any]]], first: int, count: int,
                     size: int) -> list[SweepCell]:
    """One cell per part (its key and own arguments) and block of seeds ``first ..
    first + count - 1``, in order: keys ``KEY__seedsA-B``, ``seeds`` among the arguments."""
    return [SweepCell(f"{key}__seeds{b[0]}-{b[-1]}", fn, {**common, **kw, "seeds": b},
                      f"{key.replace('__', ' ')} seeds {b[0]}..{b[-1]}")
            for key, kw in parts for b in blocks(first, count, size)]


def where() -> tuple[str, str]:
    """(node, host) of this process: the Ray node it runs on, else this machine. Ray is
    only looked at if this process already imported it (a Ray worker has)."""
    host = socket.gethostname()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()[:12], ray.util.get_node_ip_address()
    return host, host


def execute(key: str, digest: str, fn: Callable[..., dict[str, Any]], kwargs: dict[str, Any],
            threads: int | None = None) -> CellRecord:
    """Run one cell in whatever worker this is. A cell that raises is a failed record with
    its message (the sweep goes on); only the worker's own death escapes."""
    if threads:
        import torch

        # never more than the worker may use (its share of the cores, OMP_NUM_THREADS)
        torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
    node, host = where()
    t0 = time.perf_counter()
    try:
        result = fn(**kwargs)
        json.dumps(result, default=json_default)  # fail here, not when the record is written
        status, error = "done", None
    except Exception as e:  # noqa: BLE001 - the policy's or scene's error, recorded
        result, status = None, "failed"
        error = f"{type(e).__name__}: {e}".strip()
        if os.environ.get("VLASCOPE_TRACEBACKS"):
            error += "\n" + traceback.format_exc()
    return CellRecord(key, digest, status, result, error, node, host, os.getpid(),
                      time.perf_counter() - t0)


def check_keys(cells: Sequence[SweepCell]) -> None:
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"sweep cells share keys: {dup}")
