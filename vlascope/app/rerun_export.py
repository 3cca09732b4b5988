"""File > Export to Rerun...: the shown episode as a Rerun recording (.rrd), written by the
core exporter in the worker (progress and Cancel; the window never waits), with the same
output rules as the CLI: an existing recording of ours is replaced only once the user
confirms, anything else in the way is refused."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDoubleSpinBox, QWidget

from vlascope.core.errors import VLAScopeError
from vlascope.core.rerun_export import (
    check_rrd_output,
    episode_fps,
    export_rerun,
    import_rerun,
)

from .errors import show_error
from .export_dialog import OutputDialog

JOB = "rerun"


class RerunExportDialog(OutputDialog):
    """Output file and the ``time`` timeline's rate; Export runs in the worker."""

    browse_caption = "Rerun recording"
    browse_filter = "Rerun recording (*.rrd)"

    def __init__(self, controller, episode: str, metadata: dict, parent: QWidget | None = None):
        super().__init__(controller, "Export to Rerun", JOB,
                         str(Path(episode).with_suffix(".rrd")), parent)
        self.episode = episode
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.1, 1000)
        self.fps.setValue(episode_fps(metadata))
        self.fps.setToolTip("steps per second of the recording's 'time' timeline")
        self.form.addRow("steps per second", self.fps)
        self.lay_out("output (.rrd)")

    def check_output(self, path: str) -> None:
        check_rrd_output(path)

    def chosen(self, path: str) -> str:
        return path if path.lower().endswith(".rrd") else path + ".rrd"

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


def open_export_dialog(window) -> RerunExportDialog | None:
    """The dialog for the window's shown episode; an error dialog instead when there is no
    recorded episode or no Rerun SDK (with how to install it)."""
    path = window.shown_episode_file()
    if path is None:
        return None
    try:
        import_rerun()
    except VLAScopeError as e:
        window.show_error("Export to Rerun", str(e))
        return None
    dialog = RerunExportDialog(window.controller, path,
                               dict(window.workspace.recording.metadata), window)
    window.dialogs.append(dialog)
    dialog.show()
    return dialog
