"""File > Export to Rerun...: the shown episode as a Rerun recording (.rrd), written by the
core exporter in the worker (progress and Cancel; the window never waits), with the same
output rules as the CLI: an existing recording of ours is replaced only once the user
confirms, anything else in the way is refused."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
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
from vlascope.core.rerun_export import (
    check_rrd_output,
    episode_fps,
    export_rerun,
    import_rerun,
)

from .errors import show_error

JOB = "rerun"


class RerunExportDialog(QDialog):
    """Output file and the ``time`` timeline's rate; Export runs in the worker."""

    def __init__(self, controller, episode: str, metadata: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export to Rerun")
        self.controller, self.episode = controller, episode
        col = QVBoxLayout(self)
        form = QFormLayout()
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.1, 1000)
        self.fps.setValue(episode_fps(metadata))
        self.fps.setToolTip("steps per second of the recording's 'time' timeline")
        self.out = QLineEdit(str(Path(episode).with_suffix(".rrd")))
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        form.addRow("steps per second", self.fps)
        form.addRow("output (.rrd)", out_row)
        col.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        col.addWidget(self.progress)
        self.buttons = QDialogButtonBox()
        self.export = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel = self.buttons.addButton("Cancel export",
                                             QDialogButtonBox.ButtonRole.RejectRole)
        self.cancel.setEnabled(False)
        col.addWidget(self.buttons)
        self.export.clicked.connect(self.start)
        self.cancel.clicked.connect(lambda: controller.engine.cancel(JOB))
        self.result: str | None = None
        self.message: QMessageBox | None = None  # the last refusal, question or error shown

    def start(self) -> None:
        """Check the output as the CLI does, then export (after a confirmation where an
        earlier export of ours would be replaced)."""
        try:
            check_rrd_output(self.out.text())
        except OutputExistsError as e:
            self._confirm_replace(e.path)
            return
        except VLAScopeError as e:
            self.message = show_error(self, "Export to Rerun", str(e))
            return
        self._start(overwrite=False)

    def _confirm_replace(self, path: object) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Export to Rerun",
                          f"{path} already exists. Replace it?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("confirm-replace")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        yes = box.button(QMessageBox.StandardButton.Yes)
        box.buttonClicked.connect(lambda b: b is yes and self._start(overwrite=True))
        box.setModal(False)
        box.show()
        self.message = box

    def _start(self, overwrite: bool) -> None:
        episode, out, fps = self.episode, self.out.text(), self.fps.value()

        def job(session, ctx) -> str:
            return str(export_rerun(episode, out, fps=fps, progress=ctx.progress,
                                    should_cancel=ctx.cancelled, overwrite=overwrite))

        self._running(True)
        self.controller.engine.submit(JOB, job, on_done=self._done, on_error=self._failed,
                                      on_cancel=self._cancelled, on_progress=self._progress)

    def _running(self, running: bool) -> None:
        self.export.setEnabled(not running)
        self.cancel.setEnabled(running)
        if not running:
            self.progress.setValue(0)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _done(self, path: str) -> None:
        self._running(False)
        self.result = path
        self.controller.status.emit(f"rerun -> {path}")
        self.accept()

    def _failed(self, message: str, details: str) -> None:
        self._running(False)
        self.message = show_error(self, "Export to Rerun failed", message, details)

    def _cancelled(self, message: str) -> None:
        self._running(False)
        self.controller.status.emit(message)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Rerun recording", self.out.text(),
                                              "Rerun recording (*.rrd)")
        if path:
            self.out.setText(path if path.lower().endswith(".rrd") else path + ".rrd")


def open_export_dialog(window) -> RerunExportDialog | None:
    """The dialog for the window's shown episode; an error dialog instead when there is no
    recorded episode or no Rerun SDK (with how to install it)."""
    rec = window.workspace.recording
    path = getattr(rec, "path", None)
    if rec is None or path is None or not Path(path).is_file():
        window.show_error("Nothing to export", "Open a recorded episode (a live rollout is "
                          "exported once it has been published: reset or stop it).")
        return None
    try:
        import_rerun()
    except VLAScopeError as e:
        window.show_error("Export to Rerun", str(e))
        return None
    dialog = RerunExportDialog(window.controller, str(path), dict(rec.metadata), window)
    window.dialogs.append(dialog)
    dialog.show()
    return dialog
