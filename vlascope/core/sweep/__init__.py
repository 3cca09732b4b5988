"""Sweeps: a batch command's work cut into cells (one task x variant x block of seeds, one
episode file, one layer) and run by one executor, local spawned workers (the default) or
Ray, with each finished cell written to the output folder so a crash loses nothing."""

from .cells import CellRecord, SweepCell, blocks, seed_block_cells
from .records import RecordFolder
from .run import Executor, SweepOutcome, run_sweep

__all__ = ["CellRecord", "Executor", "RecordFolder", "SweepCell", "SweepOutcome", "blocks",
           "run_sweep", "seed_block_cells"]
