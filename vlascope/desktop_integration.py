"""Desktop integration (freedesktop.org): a menu entry with VLAScope's icon, and a MIME type
for episode files so that double-clicking one opens it in the inspector.

``vlascope install-desktop`` writes them under the user's data folder (``$XDG_DATA_HOME``,
else ``~/.local/share``) and records what it wrote, with each file's hash, in
``vlascope/desktop-files.json`` there; ``--uninstall`` removes exactly those files, and only
while they are as written. A file we did not write is never replaced or removed.

Episodes are HDF5 files with no name of their own (``*.h5``, like every HDF5 file), so the
MIME type goes by content: the HDF5 signature at offset 0 and the root attribute
``format="vlascope-episode"``, which the episode writer stores first so that it lies in the
file's first kilobytes. The type also claims the HDF5 globs: with two types for ``*.h5``,
desktops (GLib) decide by content; with one they would not look at it. It is deliberately
not declared a subclass of ``application/x-hdf``: GLib then prefers the subclass among the
glob matches, and every ``.h5`` file would become an episode (measured with ``gio info``).
Other HDF5 files keep their type and their application.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from .core.atomic import atomic_path, write_json_atomic
from .core.errors import VLAScopeError
from .core.jsonfile import read_json

APP_ID = "vlascope"
MIME_TYPE = "application/x-vlascope-episode"
MIME_ICON = MIME_TYPE.replace("/", "-")
MANIFEST = Path("vlascope") / "desktop-files.json"
# Bytes searched for the format attribute (measured: it lies at 2,080 in episodes written
# by this version; generous for other HDF5 library versions)
MAGIC_RANGE = 8192

# Characters that make an Exec argument need quoting (Desktop Entry Specification)
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def data_home() -> Path:
    """The user's data folder, as the XDG Base Directory Specification defines it."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def launcher() -> list[str]:
    """The command that starts this very VLAScope (a bundle's executable, the virtualenv's
    ``vlascope`` script, or this Python running the CLI module)."""
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).resolve())]
    script = Path(sys.executable).parent / "vlascope"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "vlascope.cli"]


def exec_argument(arg: str) -> str:
    """One argument of an Exec key: quoted where the specification asks, ``%`` doubled, and
    backslashes escaped once more for the desktop file's string syntax."""
    if "\n" in arg or "\r" in arg:
        raise VLAScopeError(f"a path with a line break cannot be a desktop entry: {arg!r}")
    arg = arg.replace("%", "%%")
    if any(c in _RESERVED for c in arg):
        inner = "".join("\\" + c if c in '"`$\\' else c for c in arg)
        arg = f'"{inner}"'
    return arg.replace("\\", "\\\\")


def desktop_entry(command: list[str]) -> str:
    argv = " ".join(exec_argument(a) for a in command)
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        "Name=VLAScope",
        "GenericName=Robot policy inspector",
        "Comment=See why a vision-language-action robot policy acts as it does",
        f"Exec={argv} app %f",
        f"TryExec={command[0].replace(chr(92), chr(92) * 2)}",  # a plain path: no quoting
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Science;Robotics;",
        f"MimeType={MIME_TYPE};",
        "Keywords=robot;policy;VLA;saliency;MuJoCo;episode;",
        "",
    ])


def mime_package() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="{MIME_TYPE}">
    <comment>VLAScope episode</comment>
    <icon name="{MIME_ICON}"/>
    <glob pattern="*.h5"/>
    <glob pattern="*.hdf5"/>
    <magic priority="60">
      <match type="string" value="\\211HDF\\r\\n\\032\\n" offset="0">
        <match type="string" value="vlascope-episode" offset="0:{MAGIC_RANGE}"/>
      </match>
    </magic>
  </mime-type>
</mime-info>
"""


def icon_file() -> Path:
    """VLAScope's icon (package data): installed for the desktop, and the window's own."""
    return Path(str(files("vlascope") / "icons" / "vlascope.svg"))


def planned_files(command: list[str] | None = None) -> dict[Path, bytes]:
    """What an installation writes, relative to the data folder."""
    icon = icon_file().read_bytes()
    return {
        Path("applications") / f"{APP_ID}.desktop":
            desktop_entry(command or launcher()).encode(),
        Path("mime") / "packages" / f"{APP_ID}-episode.xml": mime_package().encode(),
        Path("icons") / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg": icon,
        Path("icons") / "hicolor" / "scalable" / "mimetypes" / f"{MIME_ICON}.svg": icon,
    }


@dataclass
class DesktopChange:
    """What an install or uninstall did, for the CLI to print."""

    data_dir: Path
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # changed since we wrote them
    refreshed: list[str] = field(default_factory=list)  # desktop databases brought up to date
    not_refreshed: list[str] = field(default_factory=list)  # their tools are not installed

    def summary(self) -> str:
        lines = [f"{verb} {p}" for verb, paths in (("wrote", self.written),
                                                    ("removed", self.removed)) for p in paths]
        lines += [f"kept {p} (changed since VLAScope wrote it)" for p in self.kept]
        if self.refreshed:
            lines.append("updated: " + ", ".join(self.refreshed))
        if self.not_refreshed:
            lines.append("not updated (tool not installed; the desktop picks the files up at "
                         "next login): " + ", ".join(self.not_refreshed))
        return "\n".join(lines)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(data_dir: Path) -> dict[str, str]:
    path = data_dir / MANIFEST
    if not path.is_file():
        return {}
    recorded = read_json(path)
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        raise VLAScopeError(f"{path} is not VLAScope's list of desktop files; remove it by hand "
                            "if VLAScope's desktop files are gone")
    return recorded


def _ours(path: Path, manifest: dict[str, str], rel: Path) -> bool:
    """Whether ``path`` is the file we wrote there, unchanged."""
    return manifest.get(rel.as_posix()) == _sha256(path.read_bytes())


def _refresh(data_dir: Path, change: DesktopChange) -> None:
    """Bring the desktop's caches up to date with the folder (each tool where installed)."""
    icons = data_dir / "icons" / "hicolor"
    for tool, args in (("update-mime-database", [data_dir / "mime"]),
                       ("update-desktop-database", [data_dir / "applications"]),
                       ("gtk-update-icon-cache", ["-f", "-t", "-q", icons])):
        exe = shutil.which(tool)
        if exe is None:
            change.not_refreshed.append(tool)
            continue
        if not Path(args[-1]).is_dir():
            continue
        proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise VLAScopeError(f"{tool} failed on {args[-1]}: {proc.stderr.strip()[-500:]}")
        change.refreshed.append(tool)


def install(data_dir: Path | None = None, command: list[str] | None = None) -> DesktopChange:
    """Write the entry, the MIME type and the icons; refuses, before writing anything, when
    one of those paths holds a file VLAScope did not write."""
    data_dir = Path(data_dir) if data_dir is not None else data_home()
    manifest = _manifest(data_dir)
    planned = planned_files(command)
    foreign = [data_dir / rel for rel in planned
               if (data_dir / rel).exists() and not (
                   (data_dir / rel).is_file() and _ours(data_dir / rel, manifest, rel))]
    if foreign:
        raise VLAScopeError("not installing the desktop entry: these files exist and were not "
                            "written by VLAScope (move them away first): "
                            + ", ".join(map(str, foreign)))
    change = DesktopChange(data_dir)
    for rel, data in planned.items():
        path = data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # a name that was free is taken exclusively: a file appearing meanwhile is kept
        with atomic_path(path, overwrite=path.is_file()) as tmp:
            tmp.write_bytes(data)
        manifest[rel.as_posix()] = _sha256(data)
        write_json_atomic(data_dir / MANIFEST, manifest)  # after each: a crash loses none
        change.written.append(path)
    _refresh(data_dir, change)
    return change


def uninstall(data_dir: Path | None = None) -> DesktopChange:
    """Remove the files ``install`` wrote, those still as written; keep changed ones."""
    data_dir = Path(data_dir) if data_dir is not None else data_home()
    manifest = _manifest(data_dir)
    change = DesktopChange(data_dir)
    for rel in list(manifest):
        path = data_dir / rel
        if path.is_file() and _ours(path, manifest, Path(rel)):
            path.unlink()
            change.removed.append(path)
        elif path.exists():
            change.kept.append(path)
        del manifest[rel]
    (data_dir / MANIFEST).unlink(missing_ok=True)
    if change.removed:
        _refresh(data_dir, change)
    return change
