"""Plugin discovery: entry points (``vlascope.policies``, ``vlascope.scenes``) and a user
plugin folder. A plugin that fails to import or to build is recorded with its error and
never takes the process down.

User plugin folder: every ``*.py`` file and package directory in ``$VLASCOPE_PLUGIN_PATH``
(``os.pathsep``-separated) and in ``~/.local/share/vlascope/plugins`` is imported; it
registers factories through module-level dicts::

    SCENES = {"my_scene": MySceneClass}        # factory(**options) -> Scene
    POLICIES = {"my_policy": load_my_policy}   # factory(**options) -> Policy

In the one-folder bundle (``packaging/build.sh``: no pip, no virtualenv) a plugin packaged as
a wheel is installed by unpacking it into a plugin folder's ``site-packages/`` (a wheel is a
zip): that folder is put on ``sys.path``, so its entry points and modules are found as an
installed package's are (``add_wheel_folders``); the bundle's own packages still win.

A factory that cannot load without a checkpoint folder sets ``needs_weights = True``. One
whose dependencies conflict with the app's sets ``environment = "NAME"`` (a virtualenv of
``vlascope.core.environments``, built by ``bash scripts/setup.sh env NAME``): outside that
environment it is served from there, by itself (``vlascope.remote.spawn``); its
``before_serving(**options)``, when it has one, runs here first: what must happen in the
app's process, such as asking before a checkpoint's own code runs (``CheckpointCodeRequired``
reaches the app as itself, not as a served error).

What a factory builds is guarded (``guard``): an exception or ``sys.exit()`` in one of the
contract's calls, or ``batch_infer`` results that are not arrays of actions, become a
``PluginError`` that names the plugin, so the CLI prints one line and the GUI a dialog.
"""

from __future__ import annotations

import contextlib
import functools
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

import numpy as np

from .environments import running_in
from .errors import PluginError, UnknownNameError, VLAScopeError

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
    ("policy", "pi05"): _TRANSFORMERS,
    ("policy", "vlm-head"): _TRANSFORMERS,
    ("policy", "openvla-oft"): _TRANSFORMERS,
    ("policy", "smolvla"): "install it with `bash scripts/setup.sh lerobot` (LeRobot 0.4.4 "
                           "without its torch pins), see docs/adapters.md",
    ("scene", "metaworld"): _METAWORLD,
    ("policy", "metaworld-expert"): _METAWORLD,
    ("policy", "reference-metaworld"): _METAWORLD,
}
_FOLDER_DICTS = {"policy": "POLICIES", "scene": "SCENES"}
# The contract's calls into plugin code that ``guard`` wraps. Optional capabilities (hooks,
# layers, token layouts) are left untouched, so what the docks look up stays as it is.
GUARDED_CALLS = {"policy": ("batch_infer", "reset"),
                 "scene": ("tasks", "variants", "reset", "step", "observe", "success", "close")}
# Set on a guarded object: how errors name it (``policy.check_action_chunks`` reads it).
LABEL_ATTR = "vlascope_plugin"


@dataclass
class PluginEntry:
    kind: str  # "policy", "scene" or "unknown" (a folder plugin that failed to import)
    name: str
    source: str  # "entry point (dist)" or a file path
    factory: Callable[..., Any] | None = None
    error: str | None = None
    origin: str = ""  # where its code is: a plugin file, or an entry point's module:object

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        """How errors name it: ``policy plugin 'name' (origin)``."""
        return f"{self.kind} plugin '{self.name}'" + (f" ({self.origin})" if self.origin else "")

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
    if isinstance(exc, SystemExit):
        return f"SystemExit: it called sys.exit({'' if exc.code is None else repr(exc.code)})"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return " ".join(f"{type(exc).__name__}: {exc}{where}".split())


def guard(obj: Any, kind: str, label: str) -> Any:
    """Make the contract's calls into a plugin's object (``GUARDED_CALLS``) fail as a
    ``PluginError`` naming it, with the plugin's traceback as ``details``: any exception
    or ``sys.exit()`` (KeyboardInterrupt passes; a ``VLAScopeError`` already says what is
    wrong and passes as it is), and a ``batch_infer`` result that is not an array of one
    action chunk per observation. The calls are wrapped on the object itself, so its type,
    attributes and optional capabilities stay what the plugin made them."""
    with contextlib.suppress(AttributeError, TypeError):  # __slots__ or frozen: left as is
        for method in GUARDED_CALLS.get(kind, ()):
            call = getattr(obj, method, None)
            if callable(call) and not getattr(call, "_vlascope_guarded", False):
                setattr(obj, method, _guarded(call, method, label))
        setattr(obj, LABEL_ATTR, label)
    return obj


def _guarded(call: Callable[..., Any], method: str, label: str) -> Callable[..., Any]:
    @functools.wraps(call)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = call(*args, **kwargs)
        except VLAScopeError:
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a plugin's fault, named
            error = PluginError(f"{label} failed in {method}(): {_one_line(e)}")
            error.details = traceback.format_exc()
            raise error from e
        if method == "batch_infer":
            observations = args[0] if args else next(iter(kwargs.values()), None)
            _check_batch(result, len(observations) if hasattr(observations, "__len__")
                         else None, label)
        return result

    run._vlascope_guarded = True  # type: ignore[attr-defined]
    return run


def _check_batch(result: Any, rows: int | None, label: str) -> None:
    """What every policy must return whatever the scene: numbers shaped (rows, horizon,
    action_dim), or (rows, action_dim); ``check_action_chunks`` checks the action size."""
    try:
        arr = np.asarray(result)
    except Exception:  # noqa: BLE001 - e.g. a tensor on a GPU
        arr = None
    numeric = arr is not None and arr.dtype.kind in "biuf"
    if numeric and arr.ndim in (2, 3) and (rows is None or arr.shape[0] == rows):
        return
    got = f"a {type(result).__name__}" + (f" of shape {arr.shape}" if numeric else "")
    raise PluginError(f"{label} returned {got} from batch_infer(), expected numbers of shape "
                      f"({rows if rows is not None else 'batch'}, horizon, action_dim)")


def default_plugin_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("VLASCOPE_PLUGIN_PATH", "").split(os.pathsep) if p]
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    dirs.append(data_home / "vlascope" / "plugins")
    return dirs


WHEELS_SUBFOLDER = "site-packages"


def frozen() -> bool:
    """Running as the one-folder bundle (PyInstaller), not from a Python environment."""
    return bool(getattr(sys, "frozen", False))


def add_wheel_folders(dirs: list[Path]) -> list[Path]:
    """In the bundle, put each plugin folder's ``site-packages/`` (unpacked wheels) on
    ``sys.path`` (after the bundle's own modules) and return them. Elsewhere pip installs
    plugins, so nothing is added."""
    if not frozen():
        return []
    folders = [d / WHEELS_SUBFOLDER for d in dirs if (d / WHEELS_SUBFOLDER).is_dir()]
    for f in folders:
        if str(f) not in sys.path:
            sys.path.append(str(f))
    return folders


def bundle_install_hint(dirs: list[Path] | None = None) -> str:
    """How to add a plugin to the bundle: where its files go."""
    folder = (dirs or default_plugin_dirs())[-1]
    return (f"this bundle does not carry it: unpack the plugin's wheel (and any it needs that "
            f"the bundle lacks) into {folder / WHEELS_SUBFOLDER}, e.g. `unzip -o "
            f"vlascope_libero-*.whl -d {folder / WHEELS_SUBFOLDER}` (bash "
            f"packaging/build_wheels.sh makes the wheels in a clone), or put a plugin file "
            f"into {folder}; see docs/packaging.md")


class PluginRegistry:
    """What was found, with status; builds scenes and policies by name."""

    def __init__(self, entries: list[PluginEntry]):
        self.entries = entries

    @classmethod
    def discover(cls, plugin_dirs: list[Path] | None = None) -> PluginRegistry:
        entries: list[PluginEntry] = []
        dirs = plugin_dirs if plugin_dirs is not None else default_plugin_dirs()
        add_wheel_folders(dirs)  # before the entry points: unpacked wheels declare theirs
        for kind, group in KINDS.items():
            for ep in entry_points(group=group):
                dist = getattr(ep.dist, "name", "?") if ep.dist else "?"
                entry = PluginEntry(kind, ep.name, f"entry point ({dist}: {ep.value})",
                                    origin=ep.value)
                try:
                    entry.factory = ep.load()
                except BaseException as e:  # noqa: BLE001 - a plugin must never kill us
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    entry.error = _one_line(e)
                entries.append(entry)
        for folder in dirs:
            entries.extend(_load_folder(folder))
        return cls(entries)

    def names(self, kind: str) -> list[str]:
        return [e.name for e in self.entries if e.kind == kind]

    def not_installed(self, kind: str) -> dict[str, str]:
        """First-party plugins of this kind that are not installed -> how to install them."""
        have = set(self.names(kind))
        bundle = bundle_install_hint() if frozen() else None  # no setup.sh, no pip there
        return {n: bundle or hint for (k, n), hint in FIRST_PARTY.items()
                if k == kind and n not in have}

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

    def environment(self, name: str) -> str | None:
        """The environment a policy plugin must run in (its factory's ``environment``
        attribute), or None: it runs in this process."""
        matches = [e for e in self.entries if e.kind == "policy" and e.name == name and e.ok]
        env = getattr(matches[0].factory, "environment", None) if matches else None
        return str(env) if env else None

    def create(self, kind: str, name: str, **options: Any) -> Any:
        entry = self.get(kind, name)
        refused = [k for k in options if not accepts(entry.factory, k)]
        if refused:
            why = " (it does not load checkpoints from a path)" if "weights" in refused else ""
            raise PluginError(f"{kind} plugin '{name}' takes no {', '.join(refused)} "
                              f"option{why}")
        environment = self.environment(name) if kind == "policy" else None
        try:
            if environment is not None and not running_in(environment):
                from ..remote.spawn import package_root, served_policy

                folder = Path(entry.source).parent if entry.origin == entry.source else None
                code = package_root(entry.factory.__module__) if folder is None else None
                before = getattr(entry.factory, "before_serving", None)
                if before is not None:
                    before(**options)
                try:
                    built = served_policy(environment, name, options, folder, code)
                except VLAScopeError as e:  # e.g. an unknown environment: name the plugin
                    if isinstance(e, PluginError):
                        raise
                    raise PluginError(f"{kind} plugin '{name}': {e}") from e
            else:
                built = entry.factory(**options)
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            if isinstance(e, PluginError):
                raise
            raise PluginError(f"{kind} plugin '{name}' failed to load: {_one_line(e)}") from e
        return guard(built, kind, entry.label)

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
                                       None if ok else f"{attr}['{name}'] is not callable",
                                       origin=str(path)))
        if not found:
            out.append(PluginEntry("unknown", path.stem, str(path),
                                   error="defines neither SCENES nor POLICIES"))
    return out
