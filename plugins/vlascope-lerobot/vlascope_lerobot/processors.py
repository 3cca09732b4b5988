"""Reading a checkpoint's ``policy_preprocessor.json`` / ``policy_postprocessor.json``
before LeRobot does. LeRobot 0.4 builds each step from its ``registry_name`` (looked up in
``ProcessorStepRegistry``) or else from ``"class"``, a dotted path it imports and calls with
the step's config: ``{"class": "subprocess.Popen", "config": {"args": ...}}`` would run a
command before any type check. We accept only the registered steps SmolVLA's own
pipelines use (``make_smolvla_pre_post_processors``), by registry name, with their
statistics in a file inside the folder; anything else is refused with file and step named.
Another family's adapter passes its own family name and accepted steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlascope.core.errors import PluginError

FAMILY = "SmolVLA"
FILES = ("policy_preprocessor.json", "policy_postprocessor.json")
# What SmolVLA's processors are made of. Not the whole registry: its
# ``action_tokenizer_processor`` loads a tokenizer with trust_remote_code=True.
SMOLVLA_STEPS = frozenset({
    "rename_observations_processor", "to_batch_processor", "smolvla_new_line_processor",
    "tokenizer_processor", "device_processor", "normalizer_processor",
    "unnormalizer_processor"})


def check_processor_file(path: Path, registered: set[str] | frozenset[str],
                         family: str = FAMILY, accepted: frozenset[str] = SMOLVLA_STEPS) -> None:
    """Refuse a processor file whose steps LeRobot would not take from its registry, or
    that ``family`` does not use (``accepted``), or whose state file lies outside the
    checkpoint folder."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PluginError(f"{family}: cannot read {path} ({e})") from e
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list):
        raise PluginError(f"{family}: {path} is not a LeRobot processor file (no 'steps')")
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            raise PluginError(f"{family}: {path} step {i} is not an object")
        name = step.get("registry_name")
        if "class" in step or not isinstance(name, str):
            what = step.get("class", name)
            raise PluginError(
                f"{family}: {path} step {i} names the class '{what}' to import and call; "
                "VLAScope accepts only processor steps LeRobot registers, by registry_name "
                f"({', '.join(sorted(accepted))})")
        if name not in accepted or name not in registered:
            raise PluginError(f"{family}: {path} step {i} '{name}' is not a processor step "
                              f"{family} uses (accepted: {', '.join(sorted(accepted))})")
        state = step.get("state_file")
        if state is not None and (not isinstance(state, str) or Path(state).name != state
                                  or not (path.parent / state).is_file()):
            raise PluginError(f"{family}: {path} step {i} '{name}' reads its state from "
                              f"'{state}', which is not a file in {path.parent}")


def check_processors(folder: Path, family: str = FAMILY,
                     accepted: frozenset[str] = SMOLVLA_STEPS) -> None:
    """Both processor files of a ``family`` checkpoint, against LeRobot's step registry."""
    from lerobot.processor.pipeline import ProcessorStepRegistry

    registered = set(ProcessorStepRegistry._registry)
    for name in FILES:
        check_processor_file(folder / name, registered, family, accepted)


def load_pipelines(lr: dict[str, Any], folder: Path, overrides: dict[str, Any]
                   ) -> tuple[Any, Any]:
    """The checkpoint's pre- and postprocessor pipelines, as LeRobot's evaluation builds
    them (``lr``: the family's imports, with ``Pipeline`` and ``converters``); call
    ``check_processors`` first."""
    pre = lr["Pipeline"].from_pretrained(folder, config_filename=FILES[0], overrides=overrides)
    conv = lr["converters"]
    post = lr["Pipeline"].from_pretrained(folder, config_filename=FILES[1],
                                          to_transition=conv.policy_action_to_transition,
                                          to_output=conv.transition_to_policy_action)
    return pre, post
