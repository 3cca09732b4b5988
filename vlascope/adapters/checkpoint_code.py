"""Code a checkpoint folder would make us run. Loading weights must never run code named in
a data file; a checkpoint that needs its own code (transformers' ``auto_map`` +
``trust_remote_code``, an upstream loader that passes it) is loaded only when the user
allowed it (``trust_remote_code=1``; the app asks), else ``CheckpointCodeRequired``."""

from __future__ import annotations

import json
from pathlib import Path

from vlascope.core.errors import CheckpointCodeRequired, PluginError

# The JSON files through which transformers' Auto* classes find a folder's own code.
HUB_JSON = ("config.json", "tokenizer_config.json", "processor_config.json",
            "preprocessor_config.json", "video_preprocessor_config.json")
YES, NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def trust_choice(value: object, family: str) -> bool:
    """The ``trust_remote_code`` option as a bool: 1/0, true/false, yes/no (a typo is an
    error, never a yes)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise PluginError(f"{family}: trust_remote_code expects 1 or 0, got '{value}'")


def hub_code(folder: str | Path) -> list[str]:
    """The files in ``folder`` that point transformers at Python code (``auto_map``)."""
    found = []
    for name in HUB_JSON:
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # the loader reports an unreadable file itself
        if isinstance(data, dict) and data.get("auto_map"):
            found.append(name)
    return found


def require_code_allowed(folder: str | Path, family: str, trust: object, why: str) -> bool:
    """Raise ``CheckpointCodeRequired`` unless the user allowed this folder's code; returns
    True (the value to pass on as ``trust_remote_code``)."""
    if not trust_choice(trust, family):
        raise CheckpointCodeRequired(str(Path(folder).expanduser().resolve()), family, why)
    return True


def refuse_hub_code(folder: str | Path, family: str) -> None:
    """For loaders that cannot run a folder's code at all: a clear refusal naming the file."""
    files = hub_code(folder)
    if files:
        raise PluginError(f"{family}: {Path(folder) / files[0]} names Python code to run "
                          "(auto_map); this adapter loads only the classes transformers "
                          "ships, remove auto_map or use the model's own class")
