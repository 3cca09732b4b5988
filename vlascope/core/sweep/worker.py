"""What a worker keeps between cells: plugins discovered once, and each policy and scene
made once per worker process and reused by every cell it runs (a large VLA's weights are
loaded once per worker, not once per cell). A served policy (``--policy remote``) is
reused the same way: one connection per worker."""

from __future__ import annotations

import atexit
import contextlib
import json
from typing import Any

_registry: Any = None
_policies: dict[str, Any] = {}
_scenes: dict[str, Any] = {}


def _key(name: str, options: dict[str, Any]) -> str:
    return json.dumps([name, options], sort_keys=True, default=str)


def registry() -> Any:
    global _registry
    if _registry is None:
        from ..plugins import PluginRegistry

        _registry = PluginRegistry.discover()
    return _registry


def policy(name: str, options: dict[str, Any] | None = None) -> Any:
    """The worker's policy ``name`` with ``options``, made on first use."""
    key = _key(name, options or {})
    if key not in _policies:
        _policies[key] = registry().create_policy(name, **(options or {}))
    return _policies[key]


def scene(name: str, options: dict[str, Any] | None = None) -> Any:
    """The worker's scene ``name``, made (and entered) on first use; every rollout resets
    it with its own task, seed and variant."""
    key = _key(name, options or {})
    if key not in _scenes:
        _scenes[key] = registry().create_scene(name, **(options or {})).__enter__()
    return _scenes[key]


def scene_and_policy(scene_name: str, scene_options: dict[str, Any] | None, policy_name: str,
                     policy_options: dict[str, Any] | None) -> tuple[Any, Any]:
    """The worker's scene and policy of a rollout cell."""
    return scene(scene_name, scene_options), policy(policy_name, policy_options)


def release() -> None:
    """Close the scenes and drop the policies (end of an in-process sweep, worker exit)."""
    while _scenes:
        _, sc = _scenes.popitem()
        with contextlib.suppress(Exception):  # closing is best effort at the end
            sc.__exit__(None, None, None)
    _policies.clear()


atexit.register(release)
