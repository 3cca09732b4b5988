"""File > Open LeRobot dataset...: a dataset folder's episodes in a table; the one picked is
decoded into its linked episode file in the worker (progress, Cancel) and opened like any
recorded episode (see core/linked_episode.py)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vlascope.core.lerobot_dataset import LeRobotDatasetReader
from vlascope.core.linked_episode import describe

COLUMNS = ("#", "frames", "seconds", "task")


class DatasetDialog(QDialog):
    """Pick an episode of ``reader``'s dataset; ``open_path`` receives its linked file."""

    def __init__(self, controller, reader: LeRobotDatasetReader,
                 open_path: Callable[[str], object], parent: QWidget | None = None):
        super().__init__(parent)
        self.controller, self.reader, self.open_path = controller, reader, open_path
        self.setWindowTitle(f"LeRobot dataset: {reader.name}")
        self.resize(640, 420)
        layout = QVBoxLayout(self)
        cams = ", ".join(reader.cameras.values()) or "no cameras"
        fps = f"{reader.fps:g} fps" if reader.fps else "fps unknown"
        self.summary = QLabel(f"{reader.root}<br>{len(reader.episodes)} episodes, {fps}, "
                              f"cameras: {cams}. Opening one reads its frames into a VLAScope "
                              "episode beside your recordings; the dataset is not changed.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        self.rows = describe(reader)
        self.table = QTableWidget(len(self.rows), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        for i, r in enumerate(self.rows):
            for j, value in enumerate((r["episode"], r["frames"], r["seconds"], r["task"])):
                item = QTableWidgetItem("" if value is None else str(value))
                if j < 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        if self.rows:
            self.table.selectRow(0)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        layout.addWidget(self.table, 1)

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.open_selected)
        self.buttons.rejected.connect(self.cancel)
        layout.addWidget(self.buttons)
        self.busy = False

    def selected_episode(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()]["episode"] if rows else None

    def open_selected(self) -> None:
        index = self.selected_episode()
        if index is None or self.busy:
            return
        self.busy = True
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(False)
        self.controller.import_dataset_episode(
            str(self.reader.root), index, on_done=self._imported,
            on_progress=self._progressed, on_end=self._ended)

    def _progressed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _ended(self) -> None:
        self.busy = False
        self.progress.setVisible(False)
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(True)

    def _imported(self, path: str) -> None:
        if self.open_path(path):
            self.accept()

    def cancel(self) -> None:
        """Cancel a running import (the dialog stays), or close the dialog."""
        if self.busy:
            self.controller.engine.cancel("import-dataset")
        else:
            self.reject()
