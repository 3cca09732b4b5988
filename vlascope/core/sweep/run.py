"""One entry point for every batch command: cells in, records out, written as they finish,
with the earlier run's finished cells reused on ``--resume``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import VLAScopeError
from .cells import CellRecord, SweepCell, check_keys
from .records import RecordFolder

EXECUTORS = ("local", "ray")


@dataclass
class Executor:
    """Where cells run: ``local`` spawned workers (``jobs``; 1 = this process) or ``ray``
    (an existing cluster at ``address``, else a local Ray; resources per cell)."""

    kind: str = "local"
    jobs: int = 1
    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0

    def check(self) -> None:
        if self.kind not in EXECUTORS:
            raise VLAScopeError(f"--executor: '{self.kind}' is not one of {', '.join(EXECUTORS)}")
        if self.kind == "local" and (self.address or self.gpus_per_task):
            raise VLAScopeError("--ray-address and --gpus-per-task need --executor ray")
        if self.cpus_per_task <= 0 or self.gpus_per_task < 0:
            raise VLAScopeError("--cpus-per-task must be > 0 and --gpus-per-task >= 0")

    def describe(self) -> str:
        """Where the cells run, to follow "N cells": "in this process", "on 2 local
        workers", "on Ray at HOST:PORT (1 CPU per cell)"."""
        if self.kind == "local":
            return "in this process" if self.jobs <= 1 else f"on {self.jobs} local workers"
        gpus = f", {self.gpus_per_task:g} GPU" if self.gpus_per_task else ""
        return (f"on Ray at {self.address}" if self.address else "on a local Ray") + \
            f" ({self.cpus_per_task:g} CPU{gpus} per cell)"


@dataclass
class SweepOutcome:
    records: list[CellRecord]  # in the order of the cells
    executor: Executor
    folder: RecordFolder | None = None

    @property
    def failed(self) -> list[CellRecord]:
        return [r for r in self.records if not r.ok]

    def results(self) -> list[dict | None]:
        return [r.result if r.ok else None for r in self.records]

    def summary(self) -> str:
        """How many cells ran where, how many were reused, how many failed."""
        n = len(self.records)
        resumed = sum(r.resumed for r in self.records)
        ran = Counter(r.node if r.host in ("", r.node) else f"node {r.node} ({r.host})"
                      for r in self.records if not r.resumed and r.node)
        parts = [f"{n} cells {self.executor.describe()}"]
        if ran:
            parts.append("ran " + ", ".join(f"{v} on {k}" for k, v in ran.most_common()))
        if resumed:
            parts.append(f"{resumed} reused from {self.folder.folder if self.folder else ''}"
                         " (--resume)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return "; ".join(parts)

    def as_json(self) -> dict:
        """How many cells ran where, and the failed ones, for a command's JSON result."""
        return {"total": len(self.records), "summary": self.summary(),
                "failed": {r.key: r.error for r in self.failed}}

    def failure_lines(self) -> list[str]:
        return [f"cell {r.key} failed: {r.error}" for r in self.failed]


def run_sweep(cells: Sequence[SweepCell], executor: Executor, *,
              folder: RecordFolder | None = None, resume: bool = False,
              on_record: Callable[[CellRecord], None] | None = None) -> SweepOutcome:
    """Run ``cells`` on ``executor``; each finished one is written to ``folder`` (if any)
    before the next is reported, so an interrupted sweep keeps everything it finished."""
    executor.check()
    check_keys(cells)
    if resume and folder is None:
        raise VLAScopeError("--resume needs the folder of the earlier run's cells (--out or "
                            "--cells)")
    done = folder.finished(list(cells)) if resume and folder is not None else {}
    for r in done.values():
        if on_record is not None:
            on_record(r)
    todo = [c for c in cells if c.key not in done]
    if todo:
        if executor.kind == "ray":
            from .ray_executor import run_ray

            stream = run_ray(todo, executor.address, executor.cpus_per_task,
                             executor.gpus_per_task)
        else:
            from .local import run_local

            stream = run_local(todo, executor.jobs)
        for record in stream:
            if folder is not None:
                folder.write(record)
            done[record.key] = record
            if on_record is not None:
                on_record(record)
    return SweepOutcome([done[c.key] for c in cells], executor, folder)
