"""One way to write a file so that a crash, a full disk or a cancelled job never leaves half
of it: write a uniquely named temporary file beside the target, fsync it, rename it over
the target and fsync the folder (so the rename itself survives a power cut). Readers see
the old file or the new one, never a mix.

Temporary files are named ``.<target name>.<writer pid>.<random>.partial``. A writer that
was killed leaves its partial behind; ``sweep_partials`` removes such orphans, and only
those: names of exactly that pattern, older than a day (``STALE_AFTER_S``) *and* whose
writer process is no longer alive on this machine. A paused writer keeps its file (its pid
lives); a partial of a writer on another machine sharing the folder is kept for a day.

``publish(..., overwrite=False)`` creates the target exclusively (a hard link fails if
the name is taken), so two concurrent writers can never both take one name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .errors import OutputExistsError, VLAScopeError

STALE_AFTER_S = 24 * 3600.0
_PARTIAL = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.partial$")
_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` can
    only be read by setting it, which races with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def partial_path(path: str | Path, *, directory: bool = False) -> Path:
    """A new, empty, uniquely named temporary file (or folder) beside ``path``, named so
    that ``sweep_partials`` can recognise it once its writer is gone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, where = f".{path.name}.{os.getpid()}.", path.parent
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=where))
        os.chmod(tmp, 0o777 & ~current_umask())
        return tmp
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=where)
    os.close(fd)
    os.chmod(name, file_mode())  # mkstemp makes it private; results are ordinary files
    return Path(name)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new name in ``folder`` durable (a no-op where folders cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse to sync a folder
            os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: str | Path, path: str | Path, *, overwrite: bool = True) -> Path:
    """Move the finished temporary file ``tmp`` to ``path`` durably. Without ``overwrite``
    an existing ``path`` is never replaced: ``OutputExistsError``, and ``tmp`` stays for
    the caller to remove."""
    tmp, path = Path(tmp), Path(path)
    if tmp.is_file():
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    if overwrite:
        os.replace(tmp, path)
    elif tmp.is_dir():  # folders cannot be hard-linked; rename refuses a non-empty target
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise OutputExistsError(path)
        try:
            os.rename(tmp, path)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise OutputExistsError(path) from e
            raise
    else:
        try:
            os.link(tmp, path)  # atomic and exclusive: fails if the name is taken
        except FileExistsError as e:
            raise OutputExistsError(path) from e
        except OSError as e:  # file systems without hard links: check, then rename
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if path.exists():
                raise OutputExistsError(path) from e
            os.rename(tmp, path)
        else:
            tmp.unlink()
    fsync_dir(path.parent)
    return path


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; on leaving the block without an
    exception it replaces ``path`` (without ``overwrite``: takes the name only if it is
    free, else ``OutputExistsError``), otherwise it is removed. Unique per call, so two
    writers of the same file never write into each other's temporary file."""
    path = Path(path)
    sweep_once(path.parent)
    tmp = partial_path(path)
    try:
        yield tmp
        publish(tmp, path, overwrite=overwrite)
    except OSError as e:
        reraise(e, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[tuple[Path, ...]]:
    """``atomic_path`` for files that belong together (weights and their config): every
    file is written to its temporary first, then they replace their targets one after the
    other, so a failure while writing leaves all the old files. The renames are not one
    step; files that must agree also carry a shared id that their reader checks
    (``vlascope.core.tensor_files.check_pair``)."""
    with ExitStack() as stack:
        yield tuple(stack.enter_context(atomic_path(p)) for p in paths)


def disk_full(path: str | Path) -> VLAScopeError:
    """The one-line error of a write that ran out of disk (or quota, or file-size limit)."""
    return VLAScopeError(f"disk full while writing {path} (its partial file was removed; "
                         "free some space and try again)")


def reraise(e: BaseException, path: str | Path) -> NoReturn:
    """Raise ``e``, met while writing ``path``: as the disk-full line when that is what it
    says (whichever library ran into it), else as it is."""
    if is_disk_full(e):
        raise disk_full(path) from e
    raise e


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) says the disk, quota or file-size limit is full;
    HDF5 reports it only in its message."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            return True
        text = str(e)
        if any(s in text for s in ("No space left", "File too large", "Disk quota")):
            return True
        e = e.__cause__ or e.__context__
    return False


_SWEPT: set[Path] = set()


def sweep_once(folder: str | Path) -> None:
    """``sweep_partials`` the first time this process writes into ``folder``: an orphan is
    a day old before it may go, so once per folder and run is enough, and a write (an
    annotation stroke, an episode update) does not list its folder every time."""
    folder = Path(folder).absolute()
    if folder not in _SWEPT:
        _SWEPT.add(folder)
        sweep_partials(folder)


def sweep_partials(folder: str | Path, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the orphaned temporary files (and PNG-frame folders) our writers left in
    ``folder``: see the module docstring for which. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _PARTIAL.match(entry.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < max_age_s:
                continue
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if not is_frame_folder(Path(entry.path)):
                    continue
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


FRAMES_MARKER = ".vlascope-frames"
_FRAME = re.compile(r"^frame_\d+\.png$")


def is_frame_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a PNG-frame folder written by vlascope: our marker and nothing
    but ``frame_NNNNN.png`` beside it."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return False
    names = [p.name for p in folder.iterdir()]
    return FRAMES_MARKER in names and all(
        n == FRAMES_MARKER or _FRAME.match(n) for n in names)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def new_folder(parent: str | Path, stem: str) -> Path:
    """A folder ``parent/stem`` (or ``stem-2``, ``stem-3``, ...) created by this call, so
    two runs started in the same second never share, and overwrite, one folder."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        folder = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1


@contextmanager
def exclusive_lock(path: str | Path, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold the update lock of ``path`` (``fcntl.flock`` on ``.<name>.lock`` beside it,
    removed on release). A second holder waits up to ``timeout_s`` and then fails with a
    clear error. The lock is a separate file because HDF5 locks the data file itself."""
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    deadline = time.monotonic() + timeout_s
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, file_mode())
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise VLAScopeError(
                            f"{path} is being updated by another process; try again when "
                            "it has finished") from None
                    time.sleep(0.05)
            try:  # the previous holder may have removed the lock file as we waited
                ours = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                ours = False
        except BaseException:
            os.close(fd)
            raise
        if ours:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """``Path.write_text``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """``Path.write_bytes``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def save_image_atomic(path: str | Path, image: Any, **options: Any) -> Path:
    """A PIL image, or an (H, W[, C]) uint8 array, saved atomically (format from the
    suffix of ``path``, not of the temporary file)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)
    return Path(path)


def savefig_atomic(fig: Any, path: str | Path, **options: Any) -> Path:
    """``matplotlib`` ``fig.savefig``, atomically."""
    fmt = Path(path).suffix.lstrip(".").lower() or None
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **options)
    return Path(path)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy arrays and scalars (results and metadata hold
    them)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """``payload`` as indented JSON (numpy values converted), atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=json_default))
