"""What a safetensors file holds, read from its header before anything is allocated:
tensor names and shapes (a config's sizes are checked against them, never trusted), and
the pair id that ties a weights file to the JSON written with it (``atomic_paths``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import VLAScopeError

PAIR_KEY = "pair"  # in the safetensors metadata and in the JSON beside it


@dataclass
class TensorHeader:
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str]


def read_header(path: str | Path) -> TensorHeader:
    """Names, shapes and metadata of a safetensors file; reads only its header (safetensors
    checks the header against the file's size)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()  # a safe_open handle is not iterable
            shapes = {k: tuple(int(n) for n in f.get_slice(k).get_shape()) for k in names}
            metadata = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise VLAScopeError(f"{path} is corrupt or not a safetensors file ({e})") from e
    return TensorHeader(shapes, metadata)


def check_shapes(header: TensorHeader, expected: dict[str, tuple[int, ...]], path: str | Path,
                 config: str | Path) -> None:
    """Refuse a weights file whose tensors are missing or shaped otherwise than ``config``
    says, before any tensor of the config's size is made."""
    missing = [k for k in expected if k not in header.shapes]
    if missing:
        raise VLAScopeError(f"{path} does not match {Path(config).name}: it lacks "
                            f"{_first(missing, ', ')}")
    wrong = [f"{k} {header.shapes[k]} != {v}" for k, v in expected.items()
             if header.shapes[k] != tuple(v)]
    if wrong:
        raise VLAScopeError(f"{path} does not match {Path(config).name}: {_first(wrong, '; ')}")


def _first(items: list[str], sep: str, n: int = 3) -> str:
    """A few of a long list, and how many more: an error stays one readable line."""
    more = f"{sep}and {len(items) - n} more" if len(items) > n else ""
    return sep.join(items[:n]) + more


def new_pair_id() -> str:
    return uuid.uuid4().hex


def check_pair(header: TensorHeader, json_pair: object, path: str | Path,
               config: str | Path) -> None:
    """The weights and their JSON carry the same pair id (or, files from before pair ids,
    neither does): else a save was interrupted between the two renames."""
    weights_pair = header.metadata.get(PAIR_KEY)
    if weights_pair != json_pair:
        raise VLAScopeError(f"{path} and {Path(config).name} were not written together (a "
                            "save was interrupted between them); save again or restore both "
                            "files from one copy")
