"""Today's executor: spawned worker processes on this machine (or this process itself for
one job). A rollout (MuJoCo rendering plus a small model at batch 1) keeps about one core
busy, so N cells on N cores take about 1/N of the time. Spawned, not forked: no inherited
EGL contexts or torch thread pools."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import VLAScopeError
from . import worker
from .cells import CellRecord, SweepCell, execute


def run_local(cells: Sequence[SweepCell], jobs: int) -> Iterator[CellRecord]:
    """Records of ``cells`` as they finish, ``jobs`` at a time."""
    if jobs <= 1:
        try:
            for c in cells:
                yield execute(c.key, c.digest, c.fn, c.kwargs)
        finally:
            worker.release()
        return
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (multiprocessing.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=ctx)
    try:
        pending = {pool.submit(execute, c.key, c.digest, c.fn, c.kwargs, threads): c
                   for c in cells}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                cell = pending.pop(f)
                try:
                    yield f.result()
                except BrokenProcessPool as e:
                    raise VLAScopeError(
                        f"a local worker died while running {cell.label or cell.key} ({e}); "
                        "the finished cells are kept: run again with --resume") from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
