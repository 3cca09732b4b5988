"""The README's picture of a LeRobot dataset episode in the inspector: two rollouts of the
reference policy (224 px renders; the policy sees them at its 96 px) written as a LeRobot v3
dataset by LeRobot's own writer (AV1 videos), one
episode opened as ``DATASET#1``, a frame explained (ISS), and the policy run open loop on
every frame (its actions dotted over the recorded ones on the timeline).

    QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl .venv/bin/python scripts/dataset_screenshot.py \
        --out docs/images/lerobot-dataset.png

About a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parent.parent


def make_dataset(folder: Path) -> Path:
    from vlascope.core.runner import rollout
    from vlascope.policies.reference.policy import ReferencePolicy
    from vlascope.scenes.tabletop import TabletopScene

    paths = [folder / "ep0.h5", folder / "ep1.h5"]
    with TabletopScene() as scene:
        policy = ReferencePolicy(name="reference")
        rollout(scene, policy, "pick_red", 3, max_steps=30, record_to=paths[0],
                display_size=(224, 224))
        rollout(scene, policy, "place_red_on_plate", 5, max_steps=40, record_to=paths[1],
                display_size=(224, 224))
    root = folder / "tabletop-demos"
    subprocess.run([sys.executable, str(ROOT / "tests" / "make_lerobot_dataset.py"), str(root),
                    *map(str, paths), "--display"], check=True, capture_output=True)
    return root


def wait(app, window, until, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not until():
        if window.dialogs and any(d.isVisible() for d in window.dialogs):
            raise RuntimeError(" / ".join(getattr(d, "text", lambda: "")()
                                          for d in window.dialogs if d.isVisible()))
        if time.monotonic() > end:
            raise TimeoutError(f"the window did not get there ({until.__code__.co_firstlineno})")
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/lerobot-dataset.png")
    args = parser.parse_args()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from vlascope.app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset = make_dataset(folder)
        window = MainWindow(settings=QSettings(str(folder / "s.ini"), QSettings.Format.IniFormat),
                            record_dir=folder / "recordings")
        window.resize(1400, 900)
        window.show()
        window.start()
        ws = window.workspace
        wait(app, window, lambda: ws.policy_label != "" and not window.engine.busy())
        window.open_episode(f"{dataset}#1")
        wait(app, window,
             lambda: str(getattr(ws.recording, "path", "")).endswith("episode_000001.h5"))
        ws.set_step(14)
        window.controller.explain()
        wait(app, window, lambda: ws.maps_at() is not None and not window.engine.busy())
        window.controller.predict_open_loop()
        wait(app, window, lambda: window.timeline_dock.open_loop_gap is not None
             and not window.engine.busy())
        window.saliency_dock.raise_()
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        window.close()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
