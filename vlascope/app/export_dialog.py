"""What every export dialog shares: an output row with a file picker, a progress bar, Export
and Cancel export, and the CLI's output rule (an existing output of ours is replaced only
once the user confirms; anything else in the way is refused with a message)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vlascope.core.errors import OutputExistsError, VLAScopeError

from .errors import show_error


class OutputDialog(QDialog):
    """Subclasses add their rows to ``form``, call ``lay_out``, and define
    ``check_output(path)`` (raising OutputExistsError for an output of ours) and
    ``_start(overwrite)``; ``browse_caption`` / ``browse_filter`` name the file picker."""

    browse_caption = "Output"
    browse_filter = "All files (*)"

    def __init__(self, controller, title: str, job: str, out: str,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.title, self.controller = title, controller
        self.form = QFormLayout()
        self.out = QLineEdit(out)
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        self.out_row = QHBoxLayout()
        self.out_row.addWidget(self.out, 1)
        self.out_row.addWidget(browse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.buttons = QDialogButtonBox()
        self.export = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel = self.buttons.addButton("Cancel export",
                                             QDialogButtonBox.ButtonRole.RejectRole)
        self.cancel.setEnabled(False)
        self.export.clicked.connect(self.start)
        self.cancel.clicked.connect(lambda: controller.engine.cancel(job))
        self.result: str | None = None
        self.message: QMessageBox | None = None  # the last refusal, question or error shown

    def lay_out(self, out_label: str) -> None:
        """The subclass's rows, then the output row, the progress bar and the buttons."""
        self.form.addRow(out_label, self.out_row)
        col = QVBoxLayout(self)
        col.addLayout(self.form)
        col.addWidget(self.progress)
        col.addWidget(self.buttons)

    def check_output(self, path: str) -> None:
        raise NotImplementedError

    def _start(self, overwrite: bool) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Check the output as the CLI does, then export (after a confirmation where an
        earlier export of ours would be replaced)."""
        try:
            self.check_output(self.out.text())
        except OutputExistsError as e:
            self._confirm_replace(e.path)
            return
        except VLAScopeError as e:
            self.message = show_error(self, self.title, str(e))
            return
        self._start(overwrite=False)

    def _confirm_replace(self, path: object) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, self.title,
                          f"{path} already exists. Replace it?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("confirm-replace")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        yes = box.button(QMessageBox.StandardButton.Yes)
        box.buttonClicked.connect(lambda b: b is yes and self._start(overwrite=True))
        box.setModal(False)
        box.show()
        self.message = box

    def chosen(self, path: str) -> str:
        """The output for a path picked in the file dialog (e.g. with its suffix added)."""
        return path

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.browse_caption, self.out.text(),
                                              self.browse_filter)
        if path:
            self.out.setText(self.chosen(path))
