"""One way to write a file so that a crash, a full disk or a cancelled job never leaves half
of it: write a uniquely named temporary file beside the target, fsync it, rename it over
the target. Readers see the old file or the new one, never a mix."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; on leaving the block without an
    exception it replaces ``path``, otherwise it is removed. Unique per call, so two writers
    of the same file never write into each other's temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are ordinary files
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[tuple[Path, ...]]:
    """``atomic_path`` for files that belong together (weights and their config): every
    file is written to its temporary first, then they replace their targets one after the
    other, so a failure while writing leaves all the old files. The renames are not one
    step; files that must agree also carry a shared id that their reader checks
    (``vlascope.core.tensor_files.check_pair``)."""
    with ExitStack() as stack:
        yield tuple(stack.enter_context(atomic_path(p)) for p in paths)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """``Path.write_text``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy arrays and scalars (results and metadata hold
    them)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """``payload`` as indented JSON (numpy values converted), atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=json_default))
