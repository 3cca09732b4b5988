"""Episode library: every recorded episode of the recordings folder (and the folders the user
adds) in one sortable, filterable table with a flag and a note of the user's; double click
opens one, two selected can be compared, and episodes go to a recoverable trash.

The rows, their index, marks and trash are ``vlascope.core.library``; this dock only shows
them. Scans run on a thread of their own (not the Engine's worker, whose rollouts a long
scan would hold up): the indexed rows show at once, changed files are read in the
background with progress, and a file watcher (debounced) and each new recording rescan.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QFileSystemWatcher,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableView,
    QToolButton,
    QWidget,
)

from vlascope.core.errors import VLAScopeError
from vlascope.core.library import (
    COLUMNS,
    NMR_K,
    Library,
    Row,
    filter_rows,
    sort_rows,
    values_of,
)

from . import Panel

HEADERS = {"flag": "\u2605", "task": "task", "policy": "policy", "variant": "variant",
           "seed": "seed", "success": "success", "steps": "steps", "nmr": f"NMR@{NMR_K:g}",
           "interventions": "interventions", "date": "date", "note": "note", "file": "file"}
WIDTHS = {"flag": 26, "task": 150, "policy": 130, "variant": 110, "seed": 44, "success": 60,
          "steps": 46, "nmr": 64, "interventions": 100, "date": 118, "note": 210}
FLAG, NOTE = COLUMNS.index("flag"), COLUMNS.index("note")
FAILED, UNREADABLE, FLAGGED = QColor("#e63946"), QColor("#9a9a9a"), QColor("#f4a261")
SETTINGS_KEY = "library/folders"
MAX_WATCHED = 500
DEBOUNCE_MS = 600


def cell_text(row: Row, column: str) -> str:
    """What a cell shows."""
    if column == "flag":
        return "\u2605" if row.flag else "\u2606"
    if column == "file":
        return row.rel
    if column == "note":
        return row.note
    if not row.readable:
        return f"unreadable: {row.error}" if column == "task" else ""
    if column == "success":
        return "yes" if row.success else ("no" if row.success is False else "?")
    if column == "nmr":
        if row.nmr_error:
            return "error"
        return "-" if row.nmr is None else f"{row.nmr:.3f}"
    if column == "seed":
        return "" if row.seed is None else str(row.seed)
    if column == "interventions":
        return ", ".join(dict.fromkeys(row.interventions)) or "-"
    if column == "date":
        return row.date.replace("T", " ")[:16]
    value = getattr(row, column)
    return str(value)


def cell_tip(row: Row, column: str) -> str:
    if not row.readable:
        return f"{row.path}\nunreadable: {row.error}"
    if column == "nmr":
        if row.nmr_error:
            return f"no NMR: {row.nmr_error}"
        return (f"mean NMR@{NMR_K:g} over the steps of the stored '{row.nmr_method}' maps"
                if row.nmr is not None else "no stored saliency maps with region labels")
    if column == "interventions":
        return "\n".join(row.interventions) or "no interventions"
    if column == "flag":
        return "click to flag or unflag"
    if column == "note":
        return "double click (or F2) to edit the note"
    extra = " (stopped early)" if row.stopped_early else ""
    return f"{row.path}\n{row.scene}/{row.task}/{row.variant} seed {row.seed}{extra}"


class LibraryModel(QAbstractTableModel):
    """The shown rows (already filtered and sorted by the core functions)."""

    def __init__(self, dock: LibraryDock):
        super().__init__(dock)
        self.dock = dock
        self.rows: list[Row] = []

    def set_rows(self, rows: list[Row]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = self.rows[index.row()], COLUMNS[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return cell_text(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return cell_tip(row, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == "flag":
                return FLAGGED if row.flag else UNREADABLE
            if not row.readable:
                return UNREADABLE
            if column == "success" and row.success is False:
                return FAILED
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (
                "flag", "seed", "steps", "nmr", "success"):
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt API
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[COLUMNS[section]]
        if role == Qt.ItemDataRole.ToolTipRole and COLUMNS[section] == "flag":
            return "flagged by you"
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and index.column() == NOTE:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any,  # noqa: N802
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or index.column() != NOTE or role != Qt.ItemDataRole.EditRole:
            return False
        ok = self.dock.set_note(self.rows[index.row()], str(value))
        if ok:
            self.dataChanged.emit(index, index)
        return ok

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.dock.set_sort(COLUMNS[column], order == Qt.SortOrder.DescendingOrder)


class _Scanner(QObject):
    """Carries a background scan's news to the GUI thread (queued signals)."""

    loaded = Signal(object)  # a Library with the indexed rows
    progressed = Signal(int, int)
    finished = Signal(object, bool)  # the scanned Library, whether anything changed
    failed = Signal(str)


class LibraryDock(Panel):
    """The library table and its controls. ``open_requested(path)`` and
    ``compare_requested(path_a, path_b)`` are set by the window (Compare stays disabled
    while the window has no comparison)."""

    def __init__(self, record_dir: str | Path, settings: QSettings | None = None,
                 parent: QWidget | None = None):
        super().__init__("Library", "dock-library", parent)
        self.record_dir = Path(record_dir)
        self.settings = settings
        self.library = Library()
        self.open_requested: Callable[[str], Any] | None = None
        self._compare: Callable[[str, str], Any] | None = None
        self.sort_column, self.sort_descending = "date", True
        self._scan_thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._again = False
        self._first_load = True
        self._pending: tuple[Library, bool] | None = None
        self._shown = threading.Event()
        col = self.body

        row = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("filter: words in task, policy, file, note...")
        self.filter_edit.setClearButtonEnabled(True)
        row.addWidget(self.filter_edit, 1)
        self.task_box = QComboBox()
        self.task_box.setToolTip("only episodes of this task")
        self.policy_box = QComboBox()
        self.policy_box.setToolTip("only episodes of this policy")
        for box, label in ((self.task_box, "all tasks"), (self.policy_box, "all policies")):
            box.addItem(label, "")
            box.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(12)  # narrow docks: the list pops up wider
            row.addWidget(box)
        col.addLayout(row)
        row = QHBoxLayout()
        self.failures_first = QCheckBox("Failures first")
        self.failures_first.setToolTip("failed episodes on top, then unreadable files, then "
                                       "successes, each in the chosen column's order")
        self.flagged_only = QCheckBox("Flagged only")
        row.addWidget(self.failures_first)
        row.addWidget(self.flagged_only)
        row.addStretch(1)
        col.addLayout(row)

        self.model = LibraryModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # file names end in seeds
        vh = self.table.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.fontMetrics().height() + 6)
        hh = self.table.horizontalHeader()
        hh.setStretchLastSection(True)
        hh.setHighlightSections(False)
        for name, width in WIDTHS.items():
            hh.resizeSection(COLUMNS.index(name), width)
        hh.setSortIndicator(COLUMNS.index(self.sort_column), Qt.SortOrder.DescendingOrder)
        col.addWidget(self.table, 1)

        row = QHBoxLayout()
        self.folders = QListWidget()
        self.folders.setToolTip("folders listed (the recordings folder always)")
        self.folders.setMaximumHeight(2 * (self.fontMetrics().height() + 4) + 6)
        self.folders.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.folders.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        row.addWidget(self.folders, 1)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add folder...")
        self.remove_folder_button = QPushButton("Remove")
        self.remove_folder_button.setToolTip("stop listing the selected folder (its files "
                                             "stay where they are)")
        self.rescan_button = QPushButton("Rescan")
        for b in (self.add_button, self.remove_folder_button, self.rescan_button):
            buttons.addWidget(b)
        row.addLayout(buttons)
        col.addLayout(row)

        row = QHBoxLayout()
        self.status = QLabel("")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(True)
        self.progress.hide()
        row.addWidget(self.progress)
        self.open_button = QPushButton("Open")
        self.compare_button = QPushButton("Compare")
        self.trash_button = QPushButton("Move to trash")
        self.restore_button = QToolButton()
        self.restore_button.setText("Restore")
        self.restore_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.restore_menu = QMenu(self.restore_button)
        self.restore_button.setMenu(self.restore_menu)
        self.restore_button.setToolTip("put a trashed episode back where it was")
        row.addStretch(1)
        for b in (self.open_button, self.compare_button, self.trash_button,
                  self.restore_button):
            row.addWidget(b)
        col.addLayout(row)
        col.addWidget(self.status)  # may be clipped in a narrow dock: its tooltip has all

        self.scanner = _Scanner(self)
        self.scanner.loaded.connect(self._loaded)
        self.scanner.progressed.connect(self._progressed)
        self.scanner.finished.connect(self._scanned)
        self.scanner.failed.connect(self._scan_failed)
        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(lambda _p: self.schedule_scan())
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(DEBOUNCE_MS)
        self.debounce.timeout.connect(self.scan)

        self.filter_edit.textChanged.connect(lambda _t: self.refresh())
        self.task_box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.policy_box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.failures_first.toggled.connect(lambda _b: self.refresh())
        self.flagged_only.toggled.connect(lambda _b: self.refresh())
        self.table.clicked.connect(self._clicked)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.itemDelegate().closeEditor.connect(lambda *_: self._editor_closed())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._enable())
        self.add_button.clicked.connect(self._add_folder_dialog)
        self.remove_folder_button.clicked.connect(self._remove_selected_folder)
        self.folders.itemSelectionChanged.connect(self._enable)
        self.rescan_button.clicked.connect(self.scan)
        self.open_button.clicked.connect(self.open_selected)
        self.compare_button.clicked.connect(self.compare_selected)
        self.trash_button.clicked.connect(self.trash_selected)
        self.restore_menu.aboutToShow.connect(self._fill_restore_menu)
        for key, slot in ((Qt.Key.Key_Return, self.open_selected),
                          (Qt.Key.Key_Enter, self.open_selected),
                          (QKeySequence.StandardKey.Delete, self.trash_selected)):
            shortcut = QShortcut(QKeySequence(key), self.table)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)  # not while typing a note
            shortcut.activated.connect(slot)

        self.table.setMinimumHeight(4 * vh.defaultSectionSize())
        self.make_scrollable()  # a tabified dock: its minimum must not grow the window
        for folder in [self.record_dir, *self._user_folders()]:
            self.library.add_folder(folder)
        self._show_folders()
        self.table.setSortingEnabled(True)  # header clicks sort through set_sort
        self._enable()
        self.scan()

    # callbacks set by the window ---------------------------------------------------------
    @property
    def compare_requested(self) -> Callable[[str, str], Any] | None:
        return self._compare

    @compare_requested.setter
    def compare_requested(self, fn: Callable[[str, str], Any] | None) -> None:
        self._compare = fn
        self._enable()

    # folders -----------------------------------------------------------------------------
    def _user_folders(self) -> list[str]:
        if self.settings is None:
            return []
        try:
            value = json.loads(self.settings.value(SETTINGS_KEY, "[]") or "[]")
        except (TypeError, json.JSONDecodeError):
            return []
        return [str(v) for v in value] if isinstance(value, list) else []

    def _save_folders(self) -> None:
        if self.settings is not None:
            user = [str(f.folder) for f in self.library.folders[1:]]
            self.settings.setValue(SETTINGS_KEY, json.dumps(user))

    def add_folder(self, folder: str | Path) -> None:
        """List the episodes of ``folder`` too (remembered between runs); a folder that
        cannot be one (a LeRobot dataset itself) says why in the status line."""
        try:
            self.library.add_folder(folder)
        except VLAScopeError as e:
            self.status.setText(str(e))
            self.status.setToolTip(str(e))
            return
        self._save_folders()
        self._show_folders()
        self.scan()

    def remove_folder(self, folder: str | Path) -> None:
        """Stop listing ``folder`` (not the recordings folder); no file is touched."""
        if Path(folder).expanduser().absolute() == self.library.folders[0].folder:
            return
        self.library.remove_folder(folder)
        self._save_folders()
        self._show_folders()
        self.refresh(repopulate=True)

    def _show_folders(self) -> None:
        self.folders.clear()
        for i, f in enumerate(self.library.folders):
            note = "  (recordings)" if i == 0 else ""
            if not f.folder.is_dir():
                note += "  (no such folder yet)"
            self.folders.addItem(f"{f.folder}{note}")
            self.folders.item(i).setToolTip(str(f.folder))

    def _add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of episodes")
        if folder:
            self.add_folder(folder)

    def _remove_selected_folder(self) -> None:
        i = self.folders.currentRow()
        if i > 0:
            self.remove_folder(self.library.folders[i].folder)

    # scanning ----------------------------------------------------------------------------
    def schedule_scan(self) -> None:
        """Rescan soon: file events come in bursts (a recording publishes, then its index
        and marks are written)."""
        self.debounce.start()

    def scanning(self) -> bool:
        return self._scan_thread is not None and self._scan_thread.is_alive()

    def scan(self) -> None:
        """Bring the rows up to date in the background; while one scan runs, another is
        queued for when it ends."""
        if self.scanning():
            self._again = True
            return
        self._again = False
        self._cancel = threading.Event()
        folders = [f.folder for f in self.library.folders]
        # the rows shown (a shallow copy): a folder whose index cannot be written is then
        # not read again in full by every rescan
        known = [dict(f.rows) for f in self.library.folders]
        first, self._first_load = self._first_load, False
        cancel, scanner = self._cancel, self.scanner
        shown = self._shown = threading.Event()
        if not self.library.rows():
            self.status.setText("scanning...")

        def work() -> None:
            try:
                if first:
                    scanner.loaded.emit(Library(folders).load())
                    shown.wait(2.0)  # let the GUI show them before we compete for the GIL
                lib = Library(folders)
                for fi, rows in zip(lib.folders, known, strict=True):
                    if rows:
                        fi.rows = rows
                    else:
                        fi.load()
                changed = lib.scan(lambda d, t: scanner.progressed.emit(d, t), cancel.is_set)
                if not cancel.is_set():
                    scanner.finished.emit(lib, changed)
            except RuntimeError:  # the dock went away while we scanned
                pass
            except Exception as e:  # a scan must never take the app down
                with contextlib.suppress(RuntimeError):
                    scanner.failed.emit(f"{type(e).__name__}: {e}")

        self._scan_thread = threading.Thread(target=work, name="library-scan", daemon=True)
        self._scan_thread.start()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop a running scan (it ends after the file it is reading)."""
        self.debounce.stop()
        self._cancel.set()
        if self._scan_thread is not None:
            self._scan_thread.join(timeout_s)

    def _adopt(self, lib: Library) -> None:
        if [f.folder for f in lib.folders] != [f.folder for f in self.library.folders]:
            return  # the folders changed while it scanned: a newer scan follows
        for f in lib.folders:  # marks set while it scanned are in the file: re-read them
            f._load_marks()
            f._apply_marks()
        self.library = lib
        scroll = self.table.verticalScrollBar().value()
        self.refresh(repopulate=True)
        self.table.verticalScrollBar().setValue(scroll)  # new files do not move the view

    def _loaded(self, lib: Library) -> None:
        self._adopt(lib)
        self._shown.set()

    def _progressed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"reading {done}/{total}")
        self.progress.show()

    def _scanned(self, lib: Library, changed: bool) -> None:
        self.progress.hide()
        if self.table.state() == QAbstractItemView.State.EditingState:
            self._pending = (lib, changed)  # a reset would close the note being typed
            return
        self._pending = None
        if changed:
            self._adopt(lib)
        else:  # same files: marks may have changed (another window); no reset
            self._reapply_marks()
        self._watch()
        if self._again:
            self.scan()

    def _editor_closed(self) -> None:
        if self._pending is not None:
            QTimer.singleShot(0, lambda: self._pending and self._scanned(*self._pending))

    def _reapply_marks(self) -> None:
        for f in self.library.folders:
            f._load_marks()
            f._apply_marks()
        if self.flagged_only.isChecked():
            self.refresh()
        elif self.model.rows:
            self.model.dataChanged.emit(self.model.index(0, 0), self.model.index(
                len(self.model.rows) - 1, len(COLUMNS) - 1))
        self.status.setText(self._summary())

    def _scan_failed(self, message: str) -> None:
        self.progress.hide()
        self.status.setText(f"scan failed: {message}")
        if self._again:
            self.scan()

    def _watch(self) -> None:
        """Watch each folder and the folders its episodes are in (a new file or a removed
        one changes them); a new subfolder changes its parent, and is watched once
        scanned."""
        dirs = {str(f.folder) for f in self.library.folders if f.folder.is_dir()}
        for f in self.library.folders:
            for sub in sorted({os.path.dirname(rel) for rel in f.rows}):
                if len(dirs) < MAX_WATCHED:
                    dirs.add(os.path.join(f.folder, sub) if sub else str(f.folder))
        old = set(self.watcher.directories())
        if old - dirs:
            self.watcher.removePaths(sorted(old - dirs))
        if dirs - old:
            self.watcher.addPaths(sorted(dirs - old))

    # showing -----------------------------------------------------------------------------
    def refresh(self, repopulate: bool = False) -> None:
        """Filter and sort the rows again (core functions) and show them, keeping the
        selection."""
        rows = self.library.rows()
        if repopulate:
            self._fill_box(self.task_box, values_of(rows, "task"))
            self._fill_box(self.policy_box, values_of(rows, "policy"))
        selected = {r.key for r in self.selected_rows()}
        shown = sort_rows(filter_rows(rows, text=self.filter_edit.text(),
                                      task=self.task_box.currentData() or "",
                                      policy=self.policy_box.currentData() or "",
                                      flagged_only=self.flagged_only.isChecked()),
                          self.sort_column, self.sort_descending,
                          self.failures_first.isChecked())
        self.model.set_rows(shown)
        if selected:
            sm = self.table.selectionModel()
            flags = QItemSelectionModel.SelectionFlag.Select | \
                QItemSelectionModel.SelectionFlag.Rows
            for i, r in enumerate(shown):
                if r.key in selected:
                    sm.select(self.model.index(i, 0), flags)
        self.status.setText(self._summary(rows))
        self._enable()

    def _summary(self, rows: list[Row] | None = None) -> str:
        """"N of M episodes, F failed[, U unreadable][ - a problem]" (problems as tip)."""
        rows = self.library.rows() if rows is None else rows
        failed = sum(1 for r in rows if r.success is False)
        unreadable = sum(1 for r in rows if not r.readable)
        text = f"{len(self.model.rows)} of {len(rows)} episodes, {failed} failed"
        if unreadable:
            text += f", {unreadable} unreadable"
        problems = self.library.problems()
        if problems:
            text += f" - {problems[0]}"
        self.status.setToolTip("\n".join([text, *problems]))
        return text

    def _fill_box(self, box: QComboBox, values: Sequence[str]) -> None:
        current = box.currentData() or ""
        box.blockSignals(True)
        while box.count() > 1:
            box.removeItem(1)
        for v in values:
            box.addItem(v, v)
        box.setCurrentIndex(max(0, box.findData(current)))
        box.blockSignals(False)

    def set_sort(self, column: str, descending: bool) -> None:
        self.sort_column, self.sort_descending = column, descending
        self.refresh()

    def selected_rows(self) -> list[Row]:
        sm = self.table.selectionModel()
        if sm is None:
            return []
        return [self.model.rows[i.row()] for i in sorted(sm.selectedRows(),
                                                         key=lambda i: i.row())
                if i.row() < len(self.model.rows)]

    def _enable(self) -> None:
        rows = self.selected_rows()
        readable = [r for r in rows if r.readable]
        self.open_button.setEnabled(len(rows) == 1 and rows[0].readable)
        self.compare_button.setEnabled(self._compare is not None and len(readable) == 2
                                       and len(rows) == 2)
        self.compare_button.setToolTip(
            "compare the two selected episodes" if self._compare is not None
            else "comparing episodes is not available in this window")
        self.trash_button.setEnabled(bool(rows) and len(readable) == len(rows))
        self.remove_folder_button.setEnabled(self.folders.currentRow() > 0)

    # user actions ------------------------------------------------------------------------
    def _clicked(self, index: QModelIndex) -> None:
        if index.column() == FLAG:
            self.toggle_flag(self.model.rows[index.row()])

    def _double_clicked(self, index: QModelIndex) -> None:
        if index.column() in (FLAG, NOTE):  # the note is being edited; the flag toggled
            return
        self.open_row(self.model.rows[index.row()])

    def toggle_flag(self, row: Row) -> None:
        try:
            self.library.set_flag(row, not row.flag)
        except (OSError, VLAScopeError) as e:
            self._error("Could not save the flag", str(e))
            return
        if self.flagged_only.isChecked():
            self.refresh()
        else:
            i = self.model.rows.index(row)
            self.model.dataChanged.emit(self.model.index(i, FLAG), self.model.index(i, FLAG))

    def set_note(self, row: Row, note: str) -> bool:
        try:
            self.library.set_note(row, note)
        except (OSError, VLAScopeError) as e:
            self._error("Could not save the note", str(e))
            return False
        return True

    def open_row(self, row: Row) -> None:
        if not row.readable:
            self._error("Cannot open this file", f"{row.path}: {row.error}")
            return
        if self.open_requested is not None:
            self.open_requested(str(row.path))

    def open_selected(self) -> None:
        rows = self.selected_rows()
        if len(rows) == 1:
            self.open_row(rows[0])

    def compare_selected(self) -> None:
        rows = self.selected_rows()
        if self._compare is not None and len(rows) == 2:
            self._compare(str(rows[0].path), str(rows[1].path))

    def confirm(self, title: str, text: str) -> bool:
        """Ask the user (a method, so scripted runs can answer)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def trash_selected(self) -> list[str]:
        """Move the selected episodes to their folder's trash after asking; returns the
        trash names of those moved."""
        rows = self.selected_rows()
        if not rows:
            return []
        names = "\n".join(r.rel for r in rows[:10]) + ("\n..." if len(rows) > 10 else "")
        if not self.confirm("Move to trash", f"Move {len(rows)} episode(s) to the library "
                            f"trash?\n\n{names}\n\nRestore puts them back."):
            return []
        moved, errors = [], []
        for r in rows:
            try:
                moved.append(self.library.move_to_trash(r))
            except (OSError, VLAScopeError) as e:
                errors.append(str(e))
        if errors:
            self._error("Some episodes were not moved", "\n".join(errors))
        self.refresh(repopulate=True)
        self.status.setText(f"moved {len(moved)} episode(s) to the trash (Restore puts "
                            "them back)")
        return moved

    def _fill_restore_menu(self) -> None:
        self.restore_menu.clear()
        items = self.library.trashed()
        if not items:
            self.restore_menu.addAction("the trash is empty").setEnabled(False)
        for fi, name, entry in items[:30]:
            act = self.restore_menu.addAction(f"{entry.get('rel', name)}  "
                                              f"(trashed {entry.get('trashed', '?')})")
            act.triggered.connect(lambda _=False, f=fi, n=name: self.restore(f, n))

    def restore(self, folder: Any, name: str) -> None:
        try:
            path = folder.restore(name)
        except (OSError, VLAScopeError) as e:
            self._error("Could not restore", str(e))
            return
        self.status.setText(f"restored {path}")
        self.scan()

    def _error(self, title: str, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, message,
                          QMessageBox.StandardButton.Ok, self)
        box.open()
        self.status.setText(f"{title}: {message.splitlines()[0]}")
