"""Reading a JSON file a user hands us (a policy config, a model card's config, an
interventions list, feature statistics): one clear error naming the file when it is
missing, not UTF-8, or not JSON of the expected kind, instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import VLAScopeError


def read_json(path: str | Path, expect: type | None = dict,
              error: type[VLAScopeError] = VLAScopeError) -> Any:
    """The file's JSON value (of type ``expect`` unless None); ``error`` otherwise."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as e:
        raise error(f"{path}: no such file") from e
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except (OSError, ValueError, RecursionError) as e:
        raise error(f"{path}: not readable JSON ({e})") from e
    if expect is not None and not isinstance(value, expect):
        kind = {dict: "an object", list: "a list"}.get(expect, expect.__name__)
        raise error(f"{path}: expected {kind}, found {type(value).__name__}")
    return value
