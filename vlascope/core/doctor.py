"""``vlascope doctor``: what works on this machine and what does not, each with its fix.

Rendering and the window are probed in child processes: a missing EGL driver or display
makes MuJoCo or Qt abort the process that tries, and the doctor must outlive what it
diagnoses. Everything else is read in this process (versions, torch's view of CUDA, the
plugins, free disk, the optional extras).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import VLAScopeError

OK, WARN, FAIL = "ok", "warn", "fail"
SETUP = "bash scripts/setup.sh"
# what setup.sh installs for Qt's xcb platform (its apt list)
QT_X_LIBRARIES = ("libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 "
                  "libxcb-shape0 libxcb-render-util0 libxcb-image0 libxcb-randr0 "
                  "libxcb-xinerama0")
PACKAGES = ("vlascope", "torch", "mujoco", "pyside6-essentials", "numpy", "h5py", "av",
            "pyarrow", "transformers", "pyqtgraph")
EXTRAS = (  # import name, what it serves, the package extra that installs it
    ("ray", "sweeps on a Ray cluster (--executor ray)", "ray"),
    ("rerun", "vlascope export-rerun", "rerun"),
    ("websockets", "policy servers (vlascope serve, the remote plugin)", ""),
)
LOW_DISK, NO_DISK = 2 << 30, 200 << 20
PROBE_TIMEOUT_S = 60
_CAUSE = re.compile(r"(Error|Exception):|could not|cannot|failed", re.IGNORECASE)


@dataclass
class Check:
    """One line of the report: what, whether it works, the details, and the fix."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _probe(code: str, env: dict[str, str] | None = None) -> tuple[bool, str]:
    """Run ``code`` in a fresh interpreter: (worked, the last line it printed)."""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=PROBE_TIMEOUT_S, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return False, f"no answer within {PROBE_TIMEOUT_S} s"
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    if out.returncode != 0:  # the first error said is the cause; later ones follow from it
        cause = next((ln for ln in lines if _CAUSE.search(ln) and not ln.startswith("raise")),
                     lines[-1] if lines else "")
        return False, f"exit status {out.returncode}" + (f": {cause}" if cause else "")
    return True, lines[-1] if lines else ""


def check_python() -> Check:
    v = sys.version_info
    ok = v[:2] == (3, 11)
    return Check("python", OK if ok else FAIL, f"{sys.version.split()[0]} at {sys.executable}",
                 "" if ok else "VLAScope needs Python 3.11 (its pinned wheels are built for it)")


def check_packages() -> Check:
    found, missing = [], []
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check("packages", FAIL, f"missing: {', '.join(missing)}", install_hint(""))
    return Check("packages", OK, ", ".join(found))


RENDER = """
import mujoco
model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
with mujoco.Renderer(model, 32, 32) as r:
    r.update_scene(mujoco.MjData(model))
    pixels = r.render()
print(f"rendered {pixels.shape[1]}x{pixels.shape[0]} offscreen")
"""


def check_rendering(env: dict[str, str] | None = None) -> Check:
    """MuJoCo's offscreen rendering with the backend ``MUJOCO_GL`` names (EGL by default)."""
    backend = (env or {}).get("MUJOCO_GL") or os.environ.get("MUJOCO_GL") or "egl"
    ok, said = _probe(RENDER, {"MUJOCO_GL": backend, **(env or {})})
    if ok:
        return Check("rendering", OK, f"MuJoCo via {backend}: {said}")
    fix = (f"install EGL and Mesa ({apt_hint('libegl1 libegl-mesa0 libgl1-mesa-dri')}), "
           "or set MUJOCO_GL=osmesa with libosmesa6")
    return Check("rendering", FAIL, f"MuJoCo via {backend} cannot render offscreen ({said}); "
                 "scenes, recordings and ISS need it", fix)


WINDOW = """
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
print(f"Qt platform {app.platformName()}")
"""


def check_display(env: dict[str, str] | None = None) -> Check:
    """Whether the inspector window can open here (a desktop session, or Xvfb)."""
    merged = {**os.environ, **(env or {})}
    if merged.get("QT_QPA_PLATFORM") == "offscreen":
        return Check("display", WARN, "QT_QPA_PLATFORM=offscreen: windows render to memory "
                     "only (`vlascope screenshot` works, the window does not show)",
                     "unset QT_QPA_PLATFORM on a desktop")
    if sys.platform.startswith("linux") and not merged.get("QT_QPA_PLATFORM") and not (
            merged.get("DISPLAY") or merged.get("WAYLAND_DISPLAY")):
        return Check("display", FAIL, "no display (DISPLAY and WAYLAND_DISPLAY unset): the "
                     "window cannot open; every analysis runs headless",
                     "run on a desktop, over ssh -X, or under Xvfb (xvfb-run vlascope); "
                     "`vlascope screenshot` renders the window offscreen")
    ok, said = _probe(WINDOW, env)
    if ok:
        return Check("display", OK, said)
    return Check("display", FAIL, f"Qt cannot open a window ({said})",
                 f"install Qt's X libraries ({apt_hint(QT_X_LIBRARIES)}) or check DISPLAY")


def check_gpu() -> Check:
    import torch

    build = f"torch {torch.__version__}"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return Check("gpu", OK, f"{build}, CUDA {torch.version.cuda}: {', '.join(names)} "
                     "(models use it, in half precision where they support it)")
    if shutil.which("nvidia-smi") and torch.version.cuda is None:
        return Check("gpu", WARN, f"{build} is a CPU build but this machine has an NVIDIA "
                     "GPU", cuda_torch_hint(torch.__version__))
    return Check("gpu", OK, f"{build}, no CUDA GPU: models run on the CPU (full-size VLAs "
                 "are slow there; `--device` chooses)")


def check_plugins(registry: Any | None = None) -> list[Check]:
    """Each plugin: loaded or why not, and the environment it is served from."""
    from .environments import env_python, how_to_build
    from .plugins import PluginRegistry

    reg = registry if registry is not None else PluginRegistry.discover()
    out = []
    for e in reg.entries:
        name = f"plugin {e.kind} {e.name}"
        if e.error:
            out.append(Check(name, FAIL, f"{e.error} [{e.source}]",
                             "fix or remove it; the app runs without it"))
            continue
        env = getattr(e.factory, "environment", None) if e.kind == "policy" else None
        try:
            built = env_python(env) is not None if env else True
        except VLAScopeError as err:  # installed from a wheel: no build scripts here
            out.append(Check(name, WARN, str(err), "install VLAScope from a source checkout "
                             "to build the environment, or serve the policy from elsewhere "
                             "(vlascope serve; docs/remote.md)"))
            continue
        if not built:
            out.append(Check(name, WARN, f"served from the environment '{env}', not built",
                             how_to_build(env)))
        else:
            out.append(Check(name, OK, f"[{e.source}]" + (f", served from '{env}'"
                                                          if env else "")))
    return out


def check_disk(record_dir: str | Path | None = None) -> Check:
    from .session import default_recordings_dir

    folder = Path(record_dir) if record_dir is not None else default_recordings_dir()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / 2**30:.1f} GiB free for recordings in {folder}"
    if free < NO_DISK:
        return Check("disk", FAIL, detail, "free space: an episode with display frames takes "
                     "tens of MB")
    if free < LOW_DISK:
        return Check("disk", WARN, detail, "free space before recording long episodes")
    return Check("disk", OK, detail)


def check_extras() -> list[Check]:
    out = []
    for module, serves, extra in EXTRAS:
        if importlib.util.find_spec(module) is not None:
            out.append(Check(f"extra {module}", OK, f"installed: {serves}"))
        else:
            out.append(Check(f"extra {module}", WARN, f"not installed: {serves}",
                             install_hint(extra)))
    return out


def install_hint(extra: str) -> str:
    """How this installation gets an extra: a checkout's setup script, pip for a wheel;
    the bundle leaves the extras out (docs/packaging.md)."""
    kind = _installation()
    if kind == "bundle":
        if not extra:
            return "the bundle lacks a dependency of its own: rebuild it (packaging/build.sh)"
        return (f"the bundle leaves it out: install VLAScope's wheel with pip "
                f"(pip install 'vlascope[{extra}]') where it is needed")
    if kind == "checkout":
        return f"{SETUP} {extra}".rstrip()
    return f"pip install 'vlascope[{extra}]'" if extra else "pip install vlascope"


def _installation() -> str:
    """"bundle", "checkout" or "wheel": where a fix's command has to come from."""
    from .environments import checkout

    if getattr(sys, "frozen", False):
        return "bundle"
    return "checkout" if checkout() is not None else "wheel"


def apt_hint(packages: str) -> str:
    """The Debian packages a system-library fix installs; a checkout's setup script
    installs them itself when run as root."""
    hint = f"apt-get install {packages}"
    return hint + (f"; {SETUP} does it when run as root"
                   if _installation() == "checkout" else "")


def cuda_torch_hint(version: str) -> str:
    """How this installation gets torch's CUDA build (on Linux, PyPI's torch is it)."""
    kind = _installation()
    if kind == "checkout":
        return f"remove .venv/ and run {SETUP} again: it picks CUDA when nvidia-smi works"
    if kind == "bundle":
        return ("the bundle carries CPU torch only: install VLAScope's wheel with pip into an "
                "environment with CUDA torch to use the GPU")
    return f"pip install --force-reinstall torch=={version.split('+')[0]} (PyPI's CUDA build)"


def run_checks(record_dir: str | Path | None = None, registry: Any | None = None,
               env: dict[str, str] | None = None) -> list[Check]:
    """Every check, in the order the report shows them (``env``: variables the probes run
    with, e.g. to diagnose another display or GL backend)."""
    return [check_python(), check_packages(), check_rendering(env), check_display(env),
            check_gpu(), *check_plugins(registry), check_disk(record_dir), *check_extras()]


def report(checks: list[Check]) -> str:
    """The screen ``vlascope doctor`` prints: one line per check, its fix indented below."""
    mark = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"[{mark[c.status]}] {c.name}: {c.detail}")
        if c.fix:
            lines.append(f"         fix: {c.fix}")
    failed = sum(c.status == FAIL for c in checks)
    lines.append(f"{failed} problem(s)" if failed else "everything needed works")
    return "\n".join(lines)
