"""Today's executor: spawned worker processes on this machine (or this process itself for
one job). A rollout (MuJoCo rendering plus a small model at batch 1) keeps about one core
busy, so N cells on N cores take about 1/N of the time. Spawned, not forked: no inherited
EGL contexts or torch thread pools."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from ..errors import VLAScopeError
from . import worker
from .cells import CellRecord, SweepCell, execute

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextmanager
def thread_env(threads: int) -> Iterator[None]:
    """Workers spawned in this block start with at most ``threads`` OpenMP/BLAS threads
    (never more than the user allowed): set before they import numpy or torch, as Ray does
    for its workers. Without it each worker's libraries took every core and the workers
    fought over them (a 2-worker sweep on 2 cores ran 1.7x slower, measured)."""
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    for v in THREAD_VARS:
        user = saved[v]
        allowed = int(user) if user and user.isdigit() and int(user) > 0 else threads
        os.environ[v] = str(min(threads, allowed))
    try:
        yield
    finally:
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


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
        with thread_env(threads):  # the workers are spawned by these submits
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
