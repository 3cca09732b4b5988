"""Render the inspector mid-rollout with its overlay to a PNG, without a display: the
README's pictures are made by this, so they show what the app really draws."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vlascope.core.errors import VLAScopeError


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
                    variant: str = "default", seed: int = 0, steps: int = 25,
                    n_masks: int = 100, size: tuple[int, int] = (1400, 860),
                    record_dir: str | Path | None = None, timeout: float = 600.0) -> Path:
    """Play ``steps`` steps, explain the last frame with ISS, save the window as a PNG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("MUJOCO_GL", "egl")
    from PySide6.QtCore import QSettings
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
        window.resize(*size)
        window.show()
        ws = window.workspace
        ws.update_run(policy=policy, task=task, variant=variant, seed=seed)
        ws.update_saliency(method="iss", n_masks=n_masks)
        window.start()
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
        if not window.grab().save(str(out)):
            raise VLAScopeError(f"could not write {out}")
    finally:
        window.close()
        app.processEvents()
        del settings
        scratch.cleanup()
    return out
