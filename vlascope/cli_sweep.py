"""The options every batch command shares for running its cells (``--executor``, Ray's
address and resources, ``--resume``) and the one way they are run: a progress bar over
cells, records written as cells finish, and a closing line saying how many ran where."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .core.errors import VLAScopeError
from .core.sweep import Executor, RecordFolder, SweepCell, SweepOutcome, run_sweep


def add_sweep_options(p: argparse.ArgumentParser, *, jobs: int = 1, cells_default: str = "",
                      seeds: bool = True) -> None:
    g = p.add_argument_group("where the cells run (docs/scale.md)")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local worker processes (default) or Ray")
    g.add_argument("--jobs", type=int, default=jobs,
                   help="local worker processes (1 = this process; 0 = one per core)")
    g.add_argument("--ray-address", metavar="HOST:PORT",
                   help="an existing Ray cluster's head (default: start a local Ray)")
    g.add_argument("--cpus-per-task", type=float, default=1.0,
                   help="Ray: CPUs per cell (its torch threads)")
    g.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="Ray: GPUs per cell; fractions let several policy replicas share "
                   "a GPU (e.g. 0.25)")
    g.add_argument("--cells", metavar="DIR",
                   help="folder for one record per finished cell" +
                   (f" (default: {cells_default})" if cells_default else
                    " (needed for --resume)"))
    g.add_argument("--resume", action="store_true",
                   help="reuse the cells an interrupted run finished (same options)")
    if seeds:
        g.add_argument("--seeds-per-cell", type=int, default=5,
                       help="episodes (seeds) per cell; any value gives the same table")


def executor(args: argparse.Namespace) -> Executor:
    import os

    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    ex = Executor(args.executor, jobs, args.ray_address, args.cpus_per_task,
                  args.gpus_per_task)
    ex.check()
    return ex


def run_cells(args: argparse.Namespace, cells: Sequence[SweepCell], desc: str,
              default_folder: str | Path | None = None) -> SweepOutcome:
    """Run ``cells`` as the options say, with a progress bar (cells, ETA); prints each
    failed cell's message to stderr (the command's table says where the cells ran)."""
    from tqdm import tqdm

    ex = executor(args)
    if ex.kind == "local":
        ex.jobs = max(1, min(ex.jobs, len(cells)))
    root = args.cells or default_folder
    folder = RecordFolder(root) if root else None
    with tqdm(total=len(cells), desc=desc, unit="cell", disable=None) as bar:
        outcome = run_sweep(cells, ex, folder=folder, resume=args.resume,
                            on_record=lambda _r: bar.update())
    failed = outcome.failed
    if failed and len(failed) == len(outcome.records):
        # nothing to tabulate: a policy or scene broken for every cell fails like one call
        where = f"; records in {folder.folder}" if folder else ""
        more = f" (and the other {len(failed) - 1} cells{where})" if len(failed) > 1 else ""
        raise VLAScopeError(f"{failed[0].error.splitlines()[0]}{more}")
    for line in outcome.failure_lines():
        print(line, file=sys.stderr)
    return outcome
