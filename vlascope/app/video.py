"""Video from the GUI: a record toggle that captures the Scene dock as it runs (exactly what
the inspector shows, overlays included), and an export dialog that composes a recorded
episode, or an A/B pair, with the core composer in the worker (progress and Cancel)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from vlascope.core.errors import VLAScopeError
from vlascope.core.video import (
    OVERLAYS,
    PLOTS,
    VideoLayout,
    VideoWriter,
    check_video_output,
    export_video,
)

from .export_dialog import OutputDialog


def grab_rgb(widget: QWidget) -> np.ndarray:
    """The widget as drawn now, (H, W, 3) uint8 with even sides (H.264 needs them)."""
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w = img.height(), img.width()
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine())
    arr = arr[:, :w * 3].reshape(h, w, 3)
    return arr[: h // 2 * 2, : w // 2 * 2].copy()


class LiveVideoRecorder(QObject):
    """While on, every shown step of the live rollout is grabbed from ``widget`` and
    encoded; off finishes the file (written atomically)."""

    finished = Signal(str)  # the video's path

    def __init__(self, workspace, widget: QWidget, folder: Path, fps: float = 10.0,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.ws, self.widget, self.folder, self.fps = workspace, widget, Path(folder), fps
        self.writer: VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        workspace.step_changed.connect(self._step)

    @property
    def recording(self) -> bool:
        return self.writer is not None

    def start(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.writer = VideoWriter(self.folder / f"{stamp}.mp4", self.fps)
        self._size = None
        self._grab()
        return self.writer.out

    def stop(self) -> str | None:
        writer, self.writer = self.writer, None
        if writer is None:
            return None
        if writer.frames == 0:
            writer.discard()
            return None
        path = str(writer.close())
        self.finished.emit(path)
        return path

    def _step(self, _t: int) -> None:
        if self.writer is not None:
            self._grab()

    def _grab(self) -> None:
        frame = grab_rgb(self.widget)
        if self._size is None:
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:  # the dock was resized: keep the first size
            h, w = self._size
            canvas = np.zeros((h, w, 3), np.uint8)
            hh, ww = min(h, frame.shape[0]), min(w, frame.shape[1])
            canvas[:hh, :ww] = frame[:hh, :ww]
            frame = canvas
        self.writer.write(frame)


class ExportDialog(OutputDialog):
    """Export a recorded episode (or A/B pair) as MP4 / GIF / PNG frames."""

    browse_caption = "Video file"
    browse_filter = "Video (*.mp4 *.gif)"

    def __init__(self, controller, episode: str, n_steps: int, compare: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(controller, "Export video", "video",
                         str(Path(episode).with_suffix("")) + ".mp4", parent)
        self.episode = episode
        self.compare = QLineEdit(compare or "")
        self.compare.setPlaceholderText("optional: a baseline episode shown beside it (A)")
        self.first, self.last = QSpinBox(), QSpinBox()
        for box, value in ((self.first, 0), (self.last, n_steps)):
            box.setRange(0, max(0, n_steps))
            box.setValue(value)
        steps = QHBoxLayout()
        steps.addWidget(self.first)
        steps.addWidget(self.last)
        self.overlay = QComboBox()
        self.overlay.addItems(list(OVERLAYS))
        self.method = QComboBox()  # which stored maps: ISS runs, stored feature maps
        self.method.addItems(stored_methods(episode))
        self.top_k = QDoubleSpinBox()
        self.top_k.setRange(0, 99)
        self.top_k.setValue(10)
        self.top_k.setSuffix(" %")
        self.plot = QComboBox()
        self.plot.addItems(list(PLOTS))
        self.caption = QCheckBox("caption strip")
        self.caption.setChecked(True)
        self.paths = QCheckBox("planned vs executed path")
        self.paths.setChecked(True)
        self.paths.setToolTip("the hand path each step's chunk plans and the one it took, "
                              "where the episode recorded them")
        self.height_px = QSpinBox()
        self.height_px.setRange(16, 2160)
        self.height_px.setValue(224)
        self.fps = QDoubleSpinBox()
        self.fps.setRange(1, 120)
        self.fps.setValue(10)
        for label, w in (("compare with", self.compare), ("steps [first, last)", steps),
                         ("overlay", self.overlay), ("maps", self.method),
                         ("outline top-k", self.top_k),
                         ("plot", self.plot), ("", self.caption), ("", self.paths),
                         ("view height (px)", self.height_px), ("frames/s", self.fps)):
            self.form.addRow(label, w)
        self.lay_out("output (.mp4, .gif, folder)")
        controller.video_progress.connect(self._progress)

    def layout_settings(self) -> VideoLayout:
        return VideoLayout(overlay=self.overlay.currentText(), method=self.method.currentText(),
                           top_k=self.top_k.value(),
                           plot=self.plot.currentText(), caption=self.caption.isChecked(),
                           height=self.height_px.value(), paths=self.paths.isChecked())

    def check_output(self, path: str) -> None:
        """An existing video or frame folder of ours is OutputExistsError (asked); any
        other folder in the way is refused."""
        check_video_output(path)

    def _start(self, overwrite: bool) -> None:
        paths = [self.compare.text(), self.episode] if self.compare.text() else [self.episode]
        labels = ("A", "B") if len(paths) == 2 else ()
        self.export.setEnabled(False)
        self.cancel.setEnabled(True)
        self.controller.export_video(paths, self.out.text(), self.layout_settings(),
                                     self.fps.value(), (self.first.value(), self.last.value()),
                                     labels, overwrite)

    def _progress(self, state: str, done: int, total: int, path: str) -> None:
        running = state == "running"
        self.export.setEnabled(not running)
        self.cancel.setEnabled(running)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done if running else 0)
        if state == "done":
            self.result = path
            self.accept()


def stored_methods(path: str) -> list[str]:
    """The maps stored in an episode file (ISS runs, feature maps), for the picker."""
    from vlascope.core.episode import Episode

    try:
        with Episode(path) as ep:
            return ep.saliency_methods()
    except VLAScopeError:
        return []


def export_job(paths, out, layout, fps, steps, labels, overwrite=False):
    """The worker's part of an export (no model needed, but it runs in order with the
    rest so it never competes with a rollout for the disk)."""
    def job(session, ctx):
        try:
            return str(export_video(paths, out, layout, fps=fps, steps=steps, labels=labels,
                                    progress=ctx.progress, should_cancel=ctx.cancelled,
                                    overwrite=overwrite))
        except FileNotFoundError as e:
            raise VLAScopeError(str(e)) from e
    return job
