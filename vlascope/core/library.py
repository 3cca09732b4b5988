"""The episode library: every recorded episode in one or more folders as a row (task, policy,
variant, seed, success, steps, mean NMR@10 where maps and regions exist, interventions,
date), with a flag and a note of the user's, sorted and filtered fast enough to stay
interactive at 10,000 episodes.

Reading an episode costs milliseconds (its layout is checked on open, NMR reads every map),
so a folder's rows are cached in an index beside its files, ``<folder>/.vlascope-library.json``,
keyed by the relative path with the file's size and modification time (and its annotation
folder's, since painted regions change NMR): a rescan re-reads only new or changed files,
and rows of removed files drop out. The index is a cache, rebuilt when missing or damaged.

The user's flags and notes are not a cache: they live in a separate small file,
``<folder>/.vlascope-marks.json``, updated under a lock (two windows on one folder do not
lose each other's marks) and written atomically, so they survive rescans and restarts.
Episode files themselves are only read, never modified.

Move to trash is recoverable: the file goes to ``<folder>/.vlascope-trash/`` by rename
(never replacing anything) and ``restore`` puts it back. The freedesktop trash would need
``send2trash``, which this environment does not install; a folder of our own also works on
every OS and file system the recordings live on. Only files this library indexed as
readable VLAScope episodes, unchanged since, can be trashed.

A LeRobot dataset inside a library folder lists each of its episodes as ``<dataset>#N``
(opening one reads it into its linked episode file, linked_episode.py); those rows are
read from the dataset's tables and never trashed. A dataset folder itself is not a library
folder: the library writes its index into the folders it lists, and a dataset is never
written to.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import exclusive_lock, write_json_atomic, write_text_atomic
from .errors import OutputExistsError, VLAScopeError
from .lerobot_dataset import SEPARATOR, LeRobotDatasetReader, is_lerobot_dataset, split_reference

INDEX_NAME = ".vlascope-library.json"
MARKS_NAME = ".vlascope-marks.json"
TRASH_NAME = ".vlascope-trash"
INDEX_FORMAT, MARKS_FORMAT, VERSION = "vlascope-library", "vlascope-library-marks", 1
EPISODE_SUFFIXES = (".h5", ".hdf5")
NMR_K = 10.0

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(slots=True)
class Row:
    """One episode file as the library lists it. ``error`` is set (and the episode fields
    are empty) when the file could not be read as a VLAScope episode."""

    folder: str  # the library folder it was found in (absolute)
    rel: str  # path relative to ``folder``, with "/" separators
    size: int
    mtime_ns: int
    annotation_ns: int = 0  # mtime of <episode>.regions/ (0: none)
    task: str = ""
    policy: str = ""
    variant: str = ""
    scene: str = ""
    seed: int | None = None
    success: bool | None = None
    steps: int = 0
    nmr: float | None = None  # mean NMR@10 over the steps with maps; None: no maps/regions
    nmr_method: str = ""
    nmr_error: str = ""  # why there is no NMR although maps are stored (damaged maps...)
    interventions: list[str] = field(default_factory=list)  # kinds, in order
    date: str = ""  # ISO time the episode was recorded (else the file's mtime)
    stopped_early: bool = False
    error: str = ""
    # a LeRobot dataset episode: "<dataset>#<episode>@<fingerprint>", on its dataset row
    # and on the file linked to it (core/linked_episode.py); "" for a recorded rollout
    source: str = ""
    flag: bool = False  # the user's (from the marks file)
    note: str = ""  # the user's

    @property
    def path(self) -> Path:
        return Path(self.folder) / self.rel

    @property
    def key(self) -> str:
        """The absolute path as a string (cheaper than ``path`` over 10,000 rows)."""
        return f"{self.folder}{os.sep}{self.rel}"

    @property
    def readable(self) -> bool:
        return not self.error

    def cached(self) -> list[Any]:
        """The row as stored in the index (user marks excluded: they have their own file)."""
        return [getattr(self, f) for f in _CACHED]


_CACHED = tuple(f.name for f in fields(Row) if f.name not in ("folder", "flag", "note"))


# Reading one episode ---------------------------------------------------------------------

def read_row(folder: str | Path, rel: str, size: int, mtime_ns: int,
             annotation_ns: int = 0) -> Row:
    """The row of one file, read from the file itself; an unreadable file gives a row that
    says why instead of raising."""
    from .episode import Episode

    row = Row(str(folder), rel, size, mtime_ns, annotation_ns)
    path = Path(folder) / rel
    try:
        if is_dataset_row(rel):
            _fill_from_dataset(row, path)
        else:
            with Episode(path) as ep:
                _fill(row, ep)
    except VLAScopeError as e:  # a damaged episode file or dataset
        row.error = _reason(e, path)
    except Exception as e:  # a file we cannot read must never stop the scan
        row.error = f"{type(e).__name__}: {e}"
    if not row.date:
        row.date = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime_ns / 1e9))
    return row


def is_dataset_row(rel: str) -> bool:
    """Rows of LeRobot dataset episodes (``<dataset>#N``; episode files end in .h5)."""
    return not rel.lower().endswith(EPISODE_SUFFIXES)


def _reason(e: Exception, path: Path) -> str:
    text = str(e)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _fill(row: Row, ep: Any) -> None:
    md = ep.metadata
    policy = md.get("policy") or {}
    row.task = str(md.get("task", ""))
    row.policy = str(policy.get("name") or policy.get("id") or "")
    row.variant = str(md.get("variant", ""))
    row.scene = str(md.get("scene", ""))
    seed = md.get("seed")
    row.seed = int(seed) if isinstance(seed, int | float) and not isinstance(seed, bool) \
        else None
    row.steps = int(ep.n_steps)
    if "success" in md:
        row.success = bool(md["success"])
    elif ep.n_steps:
        row.success = bool(ep.successes()[-1])
    row.interventions = [str(i.get("kind", "?")) for i in md.get("interventions", [])]
    row.stopped_early = bool(md.get("stopped_early", False))
    row.date = _date(md.get("created"))
    row.source = _source_key(md)
    try:  # a damaged map costs the row its NMR, not its place in the library
        row.nmr, row.nmr_method = episode_mean_nmr(ep)
    except Exception as e:
        row.nmr_method = pick_method(ep.saliency_methods()) or ""
        row.nmr_error = _reason(e, Path(ep.path))


def _date(created: Any) -> str:
    """The recording time as ``YYYY-MM-DDTHH:MM:SS`` (local to where it was recorded)."""
    if not isinstance(created, str) or len(created) < 19:
        return ""
    return created[:19]


def pick_method(methods: Sequence[str]) -> str | None:
    """The stored saliency the library reports NMR of: ISS when stored (the paper's
    method), else the first one."""
    iss = [m for m in methods if m.startswith("iss")]
    return (iss or list(methods) or [None])[0]


def episode_mean_nmr(ep: Any, k: float = NMR_K) -> tuple[float | None, str]:
    """Mean NMR@k over the episode's steps (``metrics.episode_nmr``, with the user's painted
    regions where saved, as ``vlascope nmr`` does); (None, "") without maps or regions."""
    from .annotation import annotated_regions
    from .metrics import episode_nmr

    method = pick_method(ep.saliency_methods())
    if method is None:
        return None, ""
    regions = annotated_regions(ep)
    if regions is None and not ep.has_regions():
        return None, method
    with np.errstate(all="ignore"):
        scores = episode_nmr(ep, method, (k,), regions=regions)[k]
    finite = scores[np.isfinite(scores)]
    return (float(finite.mean()) if len(finite) else None), method


# Folders, index and marks ----------------------------------------------------------------

def _annotation_ns(folder: Path, rel: str) -> int:
    """mtime of the episode's annotation folder (``run.h5`` -> ``run.regions/``), 0 if none:
    every saved stroke renames a file into it, which changes it."""
    p = folder / rel
    with contextlib.suppress(OSError):
        return os.stat(p.with_name(p.stem + ".regions")).st_mtime_ns
    return 0


def list_episode_files(folder: str | Path) -> dict[str, tuple[int, int]]:
    """Every ``*.h5`` / ``*.hdf5`` under ``folder`` (recursively) -> (size, mtime_ns).
    Hidden names (our index, trash, partial files) and symbolic links are skipped: a link
    could loop, or lead the trash to a file outside the folder."""
    root = Path(folder)
    found: dict[str, tuple[int, int]] = {}
    stack = [(root, "")]
    while stack:
        here, prefix = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_symlink():
                    continue
                if e.is_dir() and is_lerobot_dataset(e.path):
                    found.update(_dataset_entries(Path(e.path), f"{prefix}{e.name}"))
                elif e.is_dir():
                    stack.append((Path(e.path), f"{prefix}{e.name}/"))
                elif e.name.lower().endswith(EPISODE_SUFFIXES) and e.is_file():
                    st = e.stat()
                    found[prefix + e.name] = (st.st_size, st.st_mtime_ns)
            except OSError:
                continue
    return found


def _dataset_entries(root: Path, rel: str) -> dict[str, tuple[int, int]]:
    """``<dataset>#N`` -> (size, mtime_ns) of the dataset's info.json (rewritten whenever
    LeRobot finalises the dataset); one entry, read as an error row, for a dataset whose
    episode table cannot be read."""
    try:
        st = (root / "meta" / "info.json").stat()
        reader = _dataset_reader(str(root), st.st_mtime_ns)
        return {f"{rel}{SEPARATOR}{i}": (st.st_size, st.st_mtime_ns) for i in reader.episodes}
    except (OSError, VLAScopeError):
        return {f"{rel}{SEPARATOR}0": (0, 0)}


@functools.lru_cache(maxsize=8)
def _dataset_reader(root: str, stamp: int) -> LeRobotDatasetReader:
    """One read of a dataset's tables per scan, not one per episode (``stamp``: its
    info.json's mtime, so a changed dataset is read again)."""
    return LeRobotDatasetReader(root)


def _fill_from_dataset(row: Row, path: Path) -> None:
    """A dataset episode's row from the dataset's tables (no maps: those live in its
    linked file once opened)."""
    root, index = split_reference(str(path)) or (path, -1)
    reader = _dataset_reader(str(root), row.mtime_ns)
    ep = reader.episode(index)
    row.task, row.scene, row.variant, row.seed = ep.task, "lerobot", reader.name, index
    robot = reader.info.get("robot_type")
    row.policy = f"recorded ({robot})" if robot else "recorded"
    row.steps = ep.length
    row.source = f"{Path(root).resolve()}{SEPARATOR}{index}@{_fingerprint(str(root), row.mtime_ns)}"


def _source_key(metadata: dict[str, Any]) -> str:
    """The dataset episode a linked episode file holds ("" for a rollout)."""
    from .linked_episode import source_of

    src = source_of(metadata)
    if src is None:
        return ""
    return f"{src.get('dataset')}{SEPARATOR}{src.get('episode_index')}@{src.get('fingerprint')}"


@functools.lru_cache(maxsize=8)
def _fingerprint(root: str, stamp: int) -> str:
    """The dataset's fingerprint, once per scan of an unchanged dataset (as
    ``_dataset_reader``)."""
    from .linked_episode import fingerprint

    return fingerprint(_dataset_reader(root, stamp))


class FolderIndex:
    """One library folder: its cached rows, the user's marks and its trash."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser().absolute()
        self.index_path = self.folder / INDEX_NAME
        self.marks_path = self.folder / MARKS_NAME
        self.trash_dir = self.folder / TRASH_NAME
        self.rows: dict[str, Row] = {}
        self.marks: dict[str, dict[str, Any]] = {}
        self.trash: dict[str, dict[str, Any]] = {}
        self.problem = ""  # the last reason the index could not be read or written
        self._dropped = False
        self._foreign = False
        self.reads = 0  # episode files read by scans (tests count them)

    # loading -----------------------------------------------------------------------------
    def load(self) -> None:
        """Rows from the index and marks from their file, without touching an episode:
        what the library shows at once, before a rescan checks the files."""
        self.rows = {}
        self._foreign = False
        self._load_marks()
        try:
            data = json.loads(self.index_path.read_bytes())
            if isinstance(data, dict) and data.get("format") != INDEX_FORMAT:
                self._foreign = True  # someone else's file of that name: never replaced
                raise ValueError("not a VLAScope library index; it is left as it is")
            if data.get("version") != VERSION:
                raise ValueError("unknown index version")
            cols = data["columns"]
            if tuple(cols) != _CACHED:
                raise ValueError("index of another VLAScope version")
            folder = str(self.folder)
            for values in data["rows"]:
                row = Row(folder, *values)
                self.rows[row.rel] = row
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            self.rows = {}  # a cache: rebuilt by the next scan
            self.problem = f"{self.index_path}: index not readable ({e}); rebuilding it"
        self._apply_marks()

    def _read_marks(self) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            data = json.loads(self.marks_path.read_bytes())
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError) as e:
            raise VLAScopeError(f"{self.marks_path}: flags and notes not readable ({e}); "
                                "fix or move the file (it is never overwritten while "
                                "damaged)") from e
        if not isinstance(data, dict) or data.get("format") != MARKS_FORMAT:
            raise VLAScopeError(f"{self.marks_path}: not a VLAScope marks file; fix or move "
                                "it (it is never overwritten while damaged)")
        marks, trash = data.get("marks", {}), data.get("trash", {})
        return (marks if isinstance(marks, dict) else {}), \
            (trash if isinstance(trash, dict) else {})

    def _load_marks(self) -> None:
        try:
            self.marks, self.trash = self._read_marks()
        except VLAScopeError as e:
            self.marks, self.trash = {}, {}
            self.problem = str(e)

    def _apply_marks(self) -> None:
        for rel, row in self.rows.items():
            m = self.marks.get(rel) or {}
            row.flag, row.note = bool(m.get("flag", False)), str(m.get("note", ""))

    # scanning ----------------------------------------------------------------------------
    def plan(self) -> list[tuple[str, int, int, int]]:
        """What a scan must read: (rel, size, mtime_ns, annotation_ns) of every new or
        changed file. Rows of removed files are dropped here, unchanged rows kept."""
        files = list_episode_files(self.folder)
        todo = []
        keep: dict[str, Row] = {}
        for rel, (size, mtime) in files.items():
            ann = _annotation_ns(self.folder, rel)
            row = self.rows.get(rel)
            if row is not None and (row.size, row.mtime_ns, row.annotation_ns) == \
                    (size, mtime, ann):
                keep[rel] = row
            else:
                todo.append((rel, size, mtime, ann))
        self._dropped = len(keep) != len(self.rows)
        self.rows = keep
        return sorted(todo)

    def scan(self, progress: ProgressFn | None = None, cancelled: CancelFn | None = None,
             todo: list[tuple[str, int, int, int]] | None = None, done_before: int = 0,
             total: int | None = None) -> bool:
        """Bring the rows up to date with the folder: new and changed files are read,
        removed ones dropped, the rest kept as indexed (``todo``: this folder's ``plan()``
        when the caller made it). Writes the index when anything changed. Returns whether
        anything changed (False also when cancelled: the index is then left as it was)."""
        if todo is None:
            todo = self.plan()
        changed = bool(todo) or self._dropped
        total = len(todo) if total is None else total
        for i, (rel, size, mtime, ann) in enumerate(todo):
            if cancelled is not None and cancelled():
                return False
            self.rows[rel] = read_row(self.folder, rel, size, mtime, ann)
            self.reads += 1
            if progress is not None:
                progress(done_before + i + 1, total)
        self._load_marks()
        self._apply_marks()
        if changed:
            self.save_index()
        return changed

    def save_index(self) -> None:
        """Write the index (a cache: a folder we cannot write to still lists, unsaved).
        A file of that name that is not our index is never replaced."""
        if self._foreign or _foreign_file(self.index_path):
            self._foreign = True
            self.problem = (f"{self.index_path}: not a VLAScope library index; left as it "
                            "is (the library works, without an index, in this folder)")
            return
        payload = {"format": INDEX_FORMAT, "version": VERSION, "columns": list(_CACHED),
                   "rows": [r.cached() for r in sorted(self.rows.values(),
                                                      key=lambda r: r.rel)]}
        try:
            write_text_atomic(self.index_path, json.dumps(payload, separators=(",", ":")))
            if self.problem.startswith(str(self.index_path)):
                self.problem = ""  # rebuilt
        except (OSError, VLAScopeError) as e:
            self.problem = f"{self.index_path}: index not saved ({e})"

    # marks -------------------------------------------------------------------------------
    def _update_marks(self, change: Callable[[dict, dict], None]) -> None:
        """Read the marks file under its lock, apply ``change`` to (marks, trash) and write
        it back atomically: another window's marks written meanwhile are kept."""
        with exclusive_lock(self.marks_path, timeout_s=10.0):
            marks, trash = self._read_marks()
            change(marks, trash)
            write_json_atomic(self.marks_path, {"format": MARKS_FORMAT, "version": VERSION,
                                                "marks": marks, "trash": trash})
        self.marks, self.trash = marks, trash
        self._apply_marks()

    def set_mark(self, rel: str, *, flag: bool | None = None, note: str | None = None) -> None:
        """Set the user's flag and/or note of an episode (kept in the marks file)."""
        def change(marks: dict, _trash: dict) -> None:
            m = dict(marks.get(rel) or {})
            if flag is not None:
                m["flag"] = bool(flag)
            if note is not None:
                m["note"] = str(note)
            m = {k: v for k, v in m.items() if v}
            if m:
                marks[rel] = m
            else:
                marks.pop(rel, None)
        self._update_marks(change)

    # trash -------------------------------------------------------------------------------
    def move_to_trash(self, rel: str) -> str:
        """Move an indexed, readable episode into this folder's trash; returns its trash
        name (for ``restore``). Refuses anything else: a file not indexed, unreadable, or
        changed since it was indexed (it may not be the episode the user saw)."""
        row = self.rows.get(rel)
        path = self.folder / rel
        if is_dataset_row(rel):
            raise VLAScopeError(f"{path}: an episode of a LeRobot dataset; VLAScope never "
                                "deletes a dataset's files")
        if row is None or not row.readable:
            raise VLAScopeError(f"{path}: not an episode this library indexed as readable; "
                                "only those can be moved to the trash")
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError as e:
            raise VLAScopeError(f"{path}: cannot move it to the trash ({e.strerror})") from e
        if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):
            raise VLAScopeError(f"{path}: changed since it was indexed; rescan first")
        self.trash_dir.mkdir(exist_ok=True)
        name = f"{uuid.uuid4().hex[:12]}__{Path(rel).name}"
        _move_exclusive(path, self.trash_dir / name)

        def change(marks: dict, trash: dict) -> None:
            trash[name] = {"rel": rel, "trashed": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "mark": marks.pop(rel, {}), "row": row.cached()}
        try:
            self._update_marks(change)
        except (OSError, VLAScopeError):
            _move_exclusive(self.trash_dir / name, path)  # no record: put it back
            raise
        del self.rows[rel]
        self.save_index()
        return name

    def restore(self, name: str) -> Path:
        """Put a trashed episode back where it was (with its flag and note). Refuses to
        replace a file that has taken its name since."""
        entry = self.trash.get(name)
        src = self.trash_dir / name
        if entry is None or not src.is_file():
            raise VLAScopeError(f"'{name}' is not in the trash of {self.folder}")
        dest = self.folder / entry["rel"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        _move_exclusive(src, dest)

        def change(marks: dict, trash: dict) -> None:
            gone = trash.pop(name, {})
            if gone.get("mark"):
                marks[entry["rel"]] = gone["mark"]
        self._update_marks(change)
        return dest

    def trashed(self) -> list[tuple[str, dict[str, Any]]]:
        """(trash name, record) of every trashed episode still in the trash, newest first."""
        items = [(n, e) for n, e in self.trash.items() if (self.trash_dir / n).is_file()]
        return sorted(items, key=lambda x: str(x[1].get("trashed", "")), reverse=True)


_OURS = json.dumps({"format": INDEX_FORMAT}, separators=(",", ":"))[:-1].encode()


def _foreign_file(path: Path) -> bool:
    """Whether ``path`` holds a JSON object that is not our index (a damaged or missing
    index is ours to rebuild)."""
    try:
        with open(path, "rb") as f:
            if f.read(len(_OURS)) == _OURS:  # how save_index starts every index
                return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return not (isinstance(data, dict) and data.get("format") == INDEX_FORMAT)


def _move_exclusive(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest`` without ever replacing ``dest`` (a hard link takes the
    name atomically; where links are impossible, check then rename)."""
    try:
        os.link(src, dest, follow_symlinks=False)
    except FileExistsError as e:
        raise OutputExistsError(dest) from e
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                           errno.EMLINK):
            raise VLAScopeError(f"cannot move {src} to {dest} ({e.strerror})") from e
        if dest.exists():
            raise OutputExistsError(dest) from e
        try:
            os.rename(src, dest)
        except OSError as e2:
            raise VLAScopeError(f"cannot move {src} to {dest} ({e2.strerror})") from e2
        return
    os.unlink(src)


# The library: several folders ------------------------------------------------------------

class Library:
    """The rows of every folder. ``load()`` shows the indexed rows at once; ``scan()``
    brings them up to date (run it off the GUI thread). Not thread-safe: one thread scans
    a Library at a time, and the GUI swaps in the result (see the Library dock)."""

    def __init__(self, folders: Iterable[str | Path] = ()):
        self.folders: list[FolderIndex] = []
        for f in folders:
            self.add_folder(f)

    def add_folder(self, folder: str | Path) -> FolderIndex:
        if is_lerobot_dataset(folder):
            raise VLAScopeError(f"{folder} is a LeRobot dataset: add the folder that holds it "
                                "(the library keeps its index in the folders it lists, and a "
                                "dataset is never written to), or use File > Open LeRobot "
                                "dataset...")
        fi = FolderIndex(folder)
        for existing in self.folders:
            if existing.folder == fi.folder:
                return existing
        self.folders.append(fi)
        return fi

    def remove_folder(self, folder: str | Path) -> None:
        target = Path(folder).expanduser().absolute()
        self.folders = [f for f in self.folders if f.folder != target]

    def load(self) -> Library:
        for f in self.folders:
            f.load()
        return self

    def scan(self, progress: ProgressFn | None = None,
             cancelled: CancelFn | None = None) -> bool:
        """Rescan every folder (see ``FolderIndex.scan``); whether anything changed."""
        plans = [f.plan() for f in self.folders]
        total, done, changed = sum(len(p) for p in plans), 0, False
        for f, todo in zip(self.folders, plans, strict=True):
            if not f.folder.is_dir():  # not created yet (the recordings) or gone
                changed |= bool(f.rows) or f._dropped
                f.rows = {}
                continue
            changed |= f.scan(progress, cancelled, todo, done, total)
            done += len(todo)
            if cancelled is not None and cancelled():
                return False
        return changed

    @property
    def reads(self) -> int:
        return sum(f.reads for f in self.folders)

    def rows(self) -> list[Row]:
        """Every row, each file once even when folders nest, and each dataset episode once:
        once it has been opened, the file linked to it stands for it (it holds the results,
        and opening the dataset episode opens that file). A file linked to an earlier
        state of the dataset does not: its results are not of the frames the dataset holds
        now, so both are listed."""
        seen: set[str] = set()
        out = []
        for f in self.folders:
            for r in f.rows.values():
                key = r.key
                if key not in seen:
                    seen.add(key)
                    out.append(r)
        linked = {r.source for r in out if r.source and not is_dataset_row(r.rel)}
        if not linked:
            return out
        return [r for r in out if not (is_dataset_row(r.rel) and r.source in linked)]

    def problems(self) -> list[str]:
        return [f.problem for f in self.folders if f.problem]

    def folder_of(self, row: Row) -> FolderIndex:
        for f in self.folders:
            if str(f.folder) == row.folder:
                return f
        raise VLAScopeError(f"{row.folder} is not a folder of this library")

    def set_flag(self, row: Row, flag: bool) -> None:
        self.folder_of(row).set_mark(row.rel, flag=flag)
        row.flag = bool(flag)

    def set_note(self, row: Row, note: str) -> None:
        self.folder_of(row).set_mark(row.rel, note=note)
        row.note = str(note)

    def move_to_trash(self, row: Row) -> str:
        return self.folder_of(row).move_to_trash(row.rel)

    def trashed(self) -> list[tuple[FolderIndex, str, dict[str, Any]]]:
        return [(f, name, e) for f in self.folders for name, e in f.trashed()]


# Filtering and sorting ---------------------------------------------------------------------

COLUMNS = ("flag", "task", "policy", "variant", "seed", "success", "steps", "nmr",
           "interventions", "date", "note", "file")


_TEXT_COLUMNS = ("task", "policy", "variant", "note")


def _sort_key(column: str) -> Callable[[Row], Any]:
    """The key that orders a column (None for a missing value: put last by the caller)."""
    if column == "file":
        return lambda r: r.rel.lower()
    if column == "interventions":
        return lambda r: len(r.interventions)
    if column == "success":
        return _outcome
    if column in _TEXT_COLUMNS:
        return lambda r: getattr(r, column).lower()
    return lambda r: getattr(r, column)


def _outcome(row: Row) -> int:
    """0 failure, 1 unreadable, 2 success: failures first, then what could not be read."""
    if row.success is None:
        return 1
    return 2 if row.success else 0


def filter_rows(rows: Iterable[Row], *, text: str = "", task: str = "", policy: str = "",
                flagged_only: bool = False, failures_only: bool = False) -> list[Row]:
    """Rows matching every given condition: ``text`` (case-insensitive words, each found in
    the task, policy, variant, file, note, intervention kinds or error), exact ``task`` and
    ``policy`` ("" is any), flagged, failed."""
    words = text.lower().split()
    out = []
    for r in rows:
        if task and r.task != task:
            continue
        if policy and r.policy != policy:
            continue
        if flagged_only and not r.flag:
            continue
        if failures_only and r.success is not False:
            continue
        if words:
            hay = " ".join((r.task, r.policy, r.variant, r.rel, r.note, r.error,
                            " ".join(r.interventions))).lower()
            if not all(w in hay for w in words):
                continue
        out.append(r)
    return out


def sort_rows(rows: Iterable[Row], column: str = "date", descending: bool = False,
              failures_first: bool = False) -> list[Row]:
    """Rows ordered by ``column`` (one of ``COLUMNS``); rows without a value (no NMR, no
    seed) go last either way. ``failures_first`` puts failed episodes first, then the
    unreadable ones, then the successes, each group ordered by ``column``."""
    if column not in COLUMNS:
        raise VLAScopeError(f"unknown library column '{column}' {COLUMNS}")
    key = _sort_key(column)
    present, missing = [], []
    for r in sorted(rows, key=lambda r: r.rel):  # ties in file order (index order: fast)
        v = key(r)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            missing.append(r)
        else:
            present.append(r)
    # Python's sort is stable, also reversed: equal values keep the file order
    present.sort(key=key, reverse=descending)
    ordered = present + missing
    if failures_first:
        ordered.sort(key=_outcome)  # stable: keeps the column order inside each group
    return ordered


def values_of(rows: Iterable[Row], column: str) -> list[str]:
    """The distinct non-empty values of a text column (for the task / policy pickers)."""
    return sorted({getattr(r, column) for r in rows if getattr(r, column)})
