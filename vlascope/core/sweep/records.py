"""Finished cells on disk: one small JSON file per cell, written atomically as the cell
finishes, so a crash or Ctrl-C keeps every cell done so far and ``--resume`` picks up
there. Only records of this command's cells with the same arguments are reused."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..atomic import write_json_atomic
from ..errors import VLAScopeError
from .cells import CellRecord, SweepCell

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def file_name(key: str) -> str:
    return _UNSAFE.sub("_", key) + ".json"


class RecordFolder:
    """``<folder>/<cell key>.json`` for every finished cell of one sweep."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / file_name(key)

    def write(self, record: CellRecord) -> Path:
        return write_json_atomic(self.path(record.key), record.as_dict())

    def load(self, key: str) -> CellRecord | None:
        """The record stored for ``key`` (None: absent or unreadable, which runs again)."""
        try:
            data = json.loads(self.path(key).read_text(encoding="utf-8"))
            return CellRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def finished(self, cells: list[SweepCell]) -> dict[str, CellRecord]:
        """The records of ``cells`` that finished with the same arguments; failed cells run
        again. Records made with other arguments stop the resume with a clear message
        rather than being silently redone or, worse, mixed into this table."""
        found, other = {}, []
        for cell in cells:
            record = self.load(cell.key)
            if record is None or record.key != cell.key:
                continue
            if record.digest != cell.digest:
                other.append(cell.key)
            elif record.ok:
                record.resumed = True
                found[cell.key] = record
        if other:
            raise VLAScopeError(
                f"--resume: {len(other)} record(s) in {self.folder} (e.g. {other[0]}) were "
                "made with other settings; give the same options, or run without --resume "
                "to start over")
        return found
