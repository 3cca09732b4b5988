"""Render the inspector mid-rollout with its overlay to a PNG, without a display: the
README's pictures are made by this, so they show what the app really draws."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vlascope.core.atomic import atomic_path
from vlascope.core.errors import VLAScopeError

PANELS = ("window", "regions", "window-regions", "features", "atlas", "ab-steer", "compare")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Run the Qt event loop until ``condition()`` holds."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise VLAScopeError(f"timed out after {timeout:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.005)


def take_screenshot(out: str | Path, policy: str = "reference", task: str = "pick_red",
                    scene: str = "tabletop", weights: str | None = None,
                    variant: str = "default", seed: int = 0, steps: int = 25,
                    n_masks: int = 100, size: tuple[int, int] = (1400, 860),
                    record_dir: str | Path | None = None, timeout: float = 600.0,
                    panel: str = "window") -> Path:
    """Play ``steps`` steps, explain the last frame with ISS, save the window as a PNG;
    ``panel="regions"`` instead saves the region dock in the middle of an annotation (a
    brush stroke made and a polygon being drawn, by mouse events), ``"window-regions"``
    the window with the region dock in front, ``"compare"`` the A|B view of a counterfactual
    prompt's A/B run with both runs' maps."""
    if panel not in PANELS:
        raise VLAScopeError(f"unknown panel '{panel}' ({', '.join(PANELS)})")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("MUJOCO_GL", "egl")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(["vlascope"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory()  # default layout, user settings untouched
    settings = QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, record_dir=record_dir)
    errors: list[str] = []
    window.controller.error.connect(lambda title, msg, _d: errors.append(f"{title}: {msg}"))
    try:
        if panel in ("features", "atlas", "ab-steer") and size == (1400, 860):
            size = (1400, 1150)  # room for the tall mechanistic docks without scrolling
        window.setWindowState(Qt.WindowState.WindowNoState)  # the asked size, not the screen
        window.resize(*size)
        window.show()
        ws = window.workspace
        ws.update_run(policy=policy, scene=scene, task=task, variant=variant, seed=seed)
        ws.update_saliency(method="iss", n_masks=n_masks)
        window.start(weights=weights)
        window.controller.play()
        wait_until(lambda: ws.n_steps >= steps or errors or
                   (ws.n_steps and not window.controller.live), timeout, f"{steps} steps")
        window.controller.pause()
        wait_until(lambda: not window.engine.busy("step") or errors, timeout, "the last step")
        if errors:
            raise VLAScopeError(errors[0])
        ws.set_step(ws.n_steps - 1)
        window.controller.explain()
        wait_until(lambda: ws.maps_at() is not None or errors, timeout, "the ISS overlay")
        if errors:
            raise VLAScopeError(errors[0])
        app.processEvents()
        shown = window
        if panel == "regions":
            shown = _annotate(window, app)
        elif panel == "window-regions":
            window.regions_dock.raise_()
            app.processEvents()
        elif panel in ("features", "atlas", "ab-steer"):
            _mechanistic(window, app, panel, timeout, errors)
        elif panel == "compare":
            _compare(window, app, timeout, errors)
        fmt = Path(out).suffix.lstrip(".").upper() or "PNG"
        with atomic_path(out) as tmp:  # the format from ``out``: ``tmp`` ends in .partial
            if not shown.grab().save(str(tmp), fmt):
                raise VLAScopeError(f"could not write {out}")
    finally:
        window.close()
        app.processEvents()
        del settings
        scratch.cleanup()
    return out


def region_mouse(dock, kind, x: float, y: float, held: bool) -> None:
    """Send the region dock's canvas a mouse event at frame pixel (x, y), the left button
    pressed (press/release) or held (``held``): how pictures and benchmarks paint."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    pos = dock.graphics.mapFromScene(dock.label_item.mapToScene(QPointF(x, y)))
    vp = dock.graphics.viewport()
    left = Qt.MouseButton.LeftButton
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else left
    QApplication.sendEvent(vp, QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)),
                                           button, left if held else Qt.MouseButton.NoButton,
                                           Qt.KeyboardModifier.NoModifier))


def _annotate(window, app):
    """Float the region dock and annotate as a user would: an action-critical stroke across
    the table, then three corners of a nuisance polygon, left open."""
    from PySide6.QtCore import QEvent

    dock = window.regions_dock
    dock.setFloating(True)
    dock.resize(700, 860)
    dock.show()
    dock.raise_()
    app.processEvents()
    h, w = dock.annotation.shapes[dock.camera]

    def send(kind, fx, fy, held):  # fractions of the frame
        region_mouse(dock, kind, fx * w, fy * h, held)

    dock.set_tool("brush")
    dock.set_label(1)
    dock.size.setValue(max(2, w // 40))
    stroke = [(0.2 + 0.03 * i, 0.78 - 0.01 * i) for i in range(12)]
    send(QEvent.Type.MouseButtonPress, *stroke[0], True)
    for x, y in stroke[1:]:
        send(QEvent.Type.MouseMove, x, y, True)
    send(QEvent.Type.MouseButtonRelease, *stroke[-1], False)
    dock.set_tool("polygon")
    dock.set_label(3)
    for x, y in ((0.08, 0.12), (0.35, 0.1), (0.33, 0.3)):
        send(QEvent.Type.MouseButtonPress, x, y, True)
        send(QEvent.Type.MouseButtonRelease, x, y, False)
    send(QEvent.Type.MouseMove, 0.2, 0.32, False)
    app.processEvents()
    return dock


def _mechanistic(window, app, panel: str, timeout: float, errors: list[str]) -> None:
    """Train an SAE from the Features dock on the played episode, select its densest
    feature and jump to its top frame (``features``); show the atlas with the label of a
    hovered feature (``atlas``); or pin that feature at alpha 3 and run it A/B from the
    Interventions dock (``ab-steer``)."""
    from PySide6.QtCore import Qt

    from vlascope.core.features import lively_feature

    dock = window.features_dock
    # give the right-hand docks the height and half the width
    window.resizeDocks([window.scene_dock, window.timeline_dock],
                       [window.height() - 250, 180], Qt.Orientation.Vertical)
    window.resizeDocks([window.scene_dock, window.saliency_dock],
                       [window.width() // 2, window.width() // 2],
                       Qt.Orientation.Horizontal)
    dock.raise_()
    resid = [dock.layer.itemText(i) for i in range(dock.layer.count())
             if dock.layer.itemText(i).endswith(".resid")]
    if resid:
        dock.layer.setCurrentText(resid[len(resid) // 2])
    dock.train.click()
    wait_until(lambda: dock.features is not None or errors, timeout, "the SAE")
    if errors:
        raise VLAScopeError(errors[0])
    fs = dock.features
    feature = lively_feature(fs)  # more telling than the densest
    dock.select_feature(feature)
    dock.thumbs[0].click()
    wait_until(lambda: getattr(dock, "last_map", (None,))[0] == feature or errors, timeout,
               "the feature map")
    if panel == "atlas":
        atlas = window.atlas_dock
        atlas.raise_()
        wait_until(lambda: atlas.method.text() != "PCA (UMAP computing...)", timeout,
                   "the UMAP atlas")
        view = atlas.view
        atlas.view.set_selection([feature])
        from PySide6.QtCore import QPointF

        view.hover_at(view.plotItem.vb.mapViewToScene(QPointF(*view.xy[feature])))
    elif panel == "ab-steer":
        dock.tabs.setCurrentIndex(1)
        dock.pin_selected()
        dock.steer_rows[-1].slider.setValue(30)  # alpha 3
        iv = window.interventions_dock
        iv.raise_()
        iv.kind.setCurrentText("steer (pinned features)")
        done: list = []
        window.controller.ab_ready.connect(done.append)
        iv.run.click()
        wait_until(lambda: bool(done) or errors, timeout, "the A/B run")
    if errors:
        raise VLAScopeError(errors[0])
    app.processEvents()



def _compare(window, app, timeout: float, errors: list[str]) -> None:
    """An A/B run of the wrong-object prompt from the Interventions dock, then a step two
    thirds in explained: both runs side by side with their maps, |B-A| on the timeline."""
    window.actions_by_name["record-display"].trigger()  # both runs keep crisp frames
    iv = window.interventions_dock
    iv.raise_()
    iv.kind.setCurrentText("counterfactual prompt")
    iv.prompt_kind.setCurrentText("wrong_object")
    iv.start.setValue(0)
    done: list = []
    window.controller.ab_ready.connect(done.append)
    iv.run.click()
    wait_until(lambda: bool(done) or errors, timeout, "the A/B run")
    ws = window.workspace
    if errors or ws.comparison is None:
        raise VLAScopeError(errors[0] if errors else "the A/B run showed no comparison")
    ws.set_step(min(ws.n_steps, ws.comparison.n_steps) * 2 // 3)
    window.controller.explain()
    wait_until(lambda: ws.comparison_maps_at() is not None or errors, timeout, "both maps")
    window.saliency_dock.raise_()
    app.processEvents()
