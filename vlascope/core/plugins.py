"""Plugin discovery: entry points (``vlascope.policies``, ``vlascope.scenes``) and a user
plugin folder. A plugin that fails to import or to build is recorded with its error and
never takes the process down.

User plugin folder: every ``*.py`` file and package directory in ``$VLASCOPE_PLUGIN_PATH``
(``os.pathsep``-separated) and in ``~/.local/share/vlascope/plugins`` is imported; it
registers factories through module-level dicts::

    SCENES = {"my_scene": MySceneClass}        # factory(**options) -> Scene
    POLICIES = {"my_policy": load_my_policy}   # factory(**options) -> Policy

A factory that cannot load without a checkpoint folder sets ``needs_weights = True``.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import PluginError, UnknownNameError

KINDS = {"policy": "vlascope.policies", "scene": "vlascope.scenes"}
# First-party plugins that ship in plugins/ but are installed separately (big dependencies):
# naming one that is not installed says how to install it.
_TRANSFORMERS = ("install it with `bash scripts/setup.sh transformers` (or `.venv/bin/pip "
                 "install -e plugins/vlascope-transformers`), see docs/adapters.md")
_METAWORLD = ("install it with `bash scripts/setup.sh metaworld` (MetaWorld 3.1.1 without "
              "its mujoco pin), see plugins/vlascope-metaworld")
FIRST_PARTY = {
    ("scene", "libero"): "install it with `bash scripts/setup.sh libero` (or `.venv/bin/pip "
                         "install -e plugins/vlascope-libero`, see plugins/vlascope-libero)",
    ("policy", "pi0"): _TRANSFORMERS,
    ("policy", "vlm-head"): _TRANSFORMERS,
    ("policy", "openvla-oft"): _TRANSFORMERS,
    ("policy", "smolvla"): "install it with `bash scripts/setup.sh lerobot` (LeRobot 0.4.4 "
                           "without its torch pins), see docs/adapters.md",
    ("scene", "metaworld"): _METAWORLD,
    ("policy", "metaworld-expert"): _METAWORLD,
    ("policy", "reference-metaworld"): _METAWORLD,
}
_FOLDER_DICTS = {"policy": "POLICIES", "scene": "SCENES"}


@dataclass
class PluginEntry:
    kind: str  # "policy", "scene" or "unknown" (a folder plugin that failed to import)
    name: str
    source: str  # "entry point (dist)" or a file path
    factory: Callable[..., Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "source": self.source,
                "status": "ok" if self.ok else "error", "error": self.error}


def accepts(factory: Callable[..., Any], name: str) -> bool:
    """Whether a plugin factory takes the keyword ``name`` (or any keyword)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _one_line(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def default_plugin_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("VLASCOPE_PLUGIN_PATH", "").split(os.pathsep) if p]
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    dirs.append(data_home / "vlascope" / "plugins")
    return dirs


class PluginRegistry:
    """What was found, with status; builds scenes and policies by name."""

    def __init__(self, entries: list[PluginEntry]):
        self.entries = entries

    @classmethod
    def discover(cls, plugin_dirs: list[Path] | None = None) -> PluginRegistry:
        entries: list[PluginEntry] = []
        for kind, group in KINDS.items():
            for ep in entry_points(group=group):
                dist = getattr(ep.dist, "name", "?") if ep.dist else "?"
                entry = PluginEntry(kind, ep.name, f"entry point ({dist}: {ep.value})")
                try:
                    entry.factory = ep.load()
                except BaseException as e:  # noqa: BLE001 - a plugin must never kill us
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    entry.error = _one_line(e)
                entries.append(entry)
        for folder in plugin_dirs if plugin_dirs is not None else default_plugin_dirs():
            entries.extend(_load_folder(folder))
        return cls(entries)

    def names(self, kind: str) -> list[str]:
        return [e.name for e in self.entries if e.kind == kind]

    def not_installed(self, kind: str) -> dict[str, str]:
        """First-party plugins of this kind that are not installed -> how to install them."""
        have = set(self.names(kind))
        return {n: hint for (k, n), hint in FIRST_PARTY.items() if k == kind and n not in have}

    def get(self, kind: str, name: str) -> PluginEntry:
        matches = [e for e in self.entries if e.kind == kind and e.name == name]
        if not matches:
            hint = self.not_installed(kind).get(name)
            if hint:
                raise PluginError(f"the {kind} plugin '{name}' is not installed: {hint}")
            raise UnknownNameError(kind, name, self.names(kind))
        ok = [e for e in matches if e.ok]
        if not ok:
            raise PluginError(f"{kind} plugin '{name}' failed to import: {matches[0].error}")
        return ok[0]

    def needs_weights(self, name: str) -> bool:
        """A policy plugin that ships no weights (an adapter for real checkpoints): it
        cannot load without a checkpoint folder, so the app asks for one when picked. A
        factory says so with a ``needs_weights = True`` attribute."""
        matches = [e for e in self.entries if e.kind == "policy" and e.name == name and e.ok]
        return bool(matches and getattr(matches[0].factory, "needs_weights", False))

    def create(self, kind: str, name: str, **options: Any) -> Any:
        entry = self.get(kind, name)
        refused = [k for k in options if not accepts(entry.factory, k)]
        if refused:
            why = " (it does not load checkpoints from a path)" if "weights" in refused else ""
            raise PluginError(f"{kind} plugin '{name}' takes no {', '.join(refused)} "
                              f"option{why}")
        try:
            return entry.factory(**options)
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            if isinstance(e, PluginError):
                raise
            raise PluginError(f"{kind} plugin '{name}' failed to load: {_one_line(e)}") from e

    def create_scene(self, name: str, **options: Any) -> Any:
        return self.create("scene", name, **options)

    def create_policy(self, name: str, **options: Any) -> Any:
        return self.create("policy", name, **options)


def _load_folder(folder: Path) -> list[PluginEntry]:
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")):
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            init = path / "__init__.py"
        elif path.suffix == ".py":
            init = path
        else:
            continue
        mod_name = f"vlascope_user_plugin_{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(
                mod_name, init, submodule_search_locations=[str(path)] if path.is_dir() else None)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            sys.modules.pop(mod_name, None)
            out.append(PluginEntry("unknown", path.stem, str(path), error=_one_line(e)))
            continue
        found = False
        for kind, attr in _FOLDER_DICTS.items():
            for name, factory in (getattr(module, attr, None) or {}).items():
                found = True
                ok = callable(factory)
                out.append(PluginEntry(kind, str(name), str(path), factory if ok else None,
                                       None if ok else f"{attr}['{name}'] is not callable"))
        if not found:
            out.append(PluginEntry("unknown", path.stem, str(path),
                                   error="defines neither SCENES nor POLICIES"))
    return out
