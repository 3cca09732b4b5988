"""Importing LeRobot 0.4.4 next to CPU torch 2.13 and transformers 5, which it predates.

Two things stand in the way (measured, docs/adapters.md):

- ``lerobot.policies.smolvla`` imports ``torchvision.transforms`` (through the config's
  optimiser and dataset modules). PyPI's torchvision is a CUDA build: its compiled ops need
  ``libtorch_cuda.so``, and the import dies registering fake kernels for the two operators
  those ops would have defined (``torchvision::nms``, ``qnms``). Defining the two schemas
  first lets the Python part import (vlascope/adapters/torchvision_ops.py); SmolVLA never
  calls them. setup.sh installs that
  torchvision into ``<venv>/lerobot-torchvision``, put on the path only here, because an
  importable-looking torchvision would make transformers choose torchvision image
  processors everywhere else in the process.
  This must happen before transformers is first imported: transformers decides at import
  which torchvision-backed classes (SmolVLM's video processor among them) exist. The
  package's ``__init__`` therefore calls ``prepare_torchvision()``; the app and the CLI
  import it while discovering plugins, before any model loads.
- ``lerobot/policies/__init__.py`` imports every policy, and GR00T's config fails to
  define under transformers 5. The package is registered without running its
  ``__init__``; the SmolVLA submodules then import normally.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vlascope.adapters.torchvision_ops import prepare_torchvision as vlascope_torchvision
from vlascope.core.errors import PluginError

LEROBOT = "0.4"
INSTALL = "install it with `bash scripts/setup.sh lerobot` (see docs/adapters.md)"
PRIVATE_TORCHVISION = Path(sys.prefix) / "lerobot-torchvision"


def prepare_torchvision() -> None:
    """Make ``import torchvision`` work: the private copy, and the two operator schemas
    when its compiled ops cannot load."""
    vlascope_torchvision(PRIVATE_TORCHVISION)


def _bare_package(name: str) -> None:
    """Register package ``name`` without running its ``__init__.py``."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__, module.__file__, module.__package__ = spec, spec.origin, name
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)


def import_lerobot(family: str, modules: Sequence[str]) -> list[types.ModuleType]:
    """LeRobot 0.4's ``modules`` for ``family`` (imported in order), or a PluginError saying
    what is missing and how to get it."""
    try:
        import lerobot
    except ImportError as e:
        raise PluginError(f"{family}: LeRobot is not installed ({e}); {INSTALL}") from e
    version = getattr(lerobot, "__version__", "") or _dist_version()
    if not version.startswith(LEROBOT):
        raise PluginError(f"{family}: the adapter is written for LeRobot {LEROBOT}.x, this "
                          f"environment has {version}; {INSTALL}")
    prepare_torchvision()
    _bare_package("lerobot.policies")
    try:
        return [importlib.import_module(m) for m in modules]
    except ImportError as e:
        raise PluginError(f"{family}: LeRobot {version} is missing a dependency ({e}); "
                          f"{INSTALL}") from e


def import_smolvla() -> dict[str, object]:
    """LeRobot's SmolVLA classes, or a PluginError saying what is missing and how to get it."""
    # processor_smolvla registers SmolVLA's own step (smolvla_new_line_processor) in
    # LeRobot's registry
    config, modeling, processor, _, converters, configs = import_lerobot("SmolVLA", [
        "lerobot.policies.smolvla.configuration_smolvla",
        "lerobot.policies.smolvla.modeling_smolvla", "lerobot.processor",
        "lerobot.policies.smolvla.processor_smolvla", "lerobot.processor.converters",
        "lerobot.configs.policies"])
    return {"SmolVLAConfig": config.SmolVLAConfig, "SmolVLAPolicy": modeling.SmolVLAPolicy,
            "Pipeline": processor.PolicyProcessorPipeline, "converters": converters,
            "PreTrainedConfig": configs.PreTrainedConfig}


def read_policy_config(folder: Path, family: str, kind: str,
                       refuse: Callable[[Path, dict], str | None] | None = None) -> dict[str, Any]:
    """A checkpoint's ``config.json``, checked to be a LeRobot ``kind`` policy before any
    LeRobot code parses it; ``refuse(folder, config)`` may name a better reason for one that is not
    (e.g. a known foreign layout of the same family)."""
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PluginError(f"{family}: cannot read {path} ({e})") from e
    found = data.get("type") if isinstance(data, dict) else None
    if found == kind:
        return data
    why = refuse(folder, data) if refuse is not None and isinstance(data, dict) else None
    if why:
        raise PluginError(f"{family}: {why}")
    if isinstance(found, str) and found:
        raise PluginError(f"{family}: {folder} holds a LeRobot '{found}' policy, not {kind}")
    raise PluginError(f"{family}: {path} is not a LeRobot policy config (no 'type'); see "
                      "docs/adapters.md")


def _dist_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lerobot")
    except PackageNotFoundError:
        return "unknown"
