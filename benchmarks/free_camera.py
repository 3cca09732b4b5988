"""Free camera: orbit drag to repaint at 640x480, on a recorded tabletop episode.

One sample is the time from a mouse-move event with the left button held (sent through Qt
to the dock's view) until the dock has rendered the new view with MuJoCo and Qt has
painted it: camera move (mjv_moveCamera), scene update, render, read back, paint. The
step's state is restored once (the cursor does not move while orbiting); contact points,
contact forces and the planned hand path are on.

Baseline in the same run, the obvious design: a fresh ``mujoco.Renderer`` per frame (new
EGL context, model uploaded to GL) at the same size, same state and camera. Floor: the
same kept renderer without Qt (update_scene + render only).

Target (issue 31): median <= 50 ms on this machine.

    .venv/bin/python benchmarks/free_camera.py [--moves 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from vlascope.app.docks.free_camera import FreeCameraDock  # noqa: E402
from vlascope.core.free_camera import replay_model  # noqa: E402
from vlascope.core.runner import rollout  # noqa: E402
from vlascope.core.workspace import Workspace  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402
from vlascope.scenes.tabletop.expert import TabletopExpert  # noqa: E402

TARGET_MS = 50.0
SIZE = (480, 640)  # (H, W)


def mouse(view, kind: QEvent.Type, x: float, y: float, buttons) -> None:
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else \
        Qt.MouseButton.NoButton
    pos = QPointF(x, y)
    QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), button,
                                             buttons, Qt.KeyboardModifier.NoModifier))


def figures(moves: int) -> dict[str, float]:
    app = QApplication.instance() or QApplication([])
    folder = Path(tempfile.mkdtemp(prefix="vlascope-freecam-bench-"))
    scene, replay = TabletopScene(), TabletopScene()
    rollout(scene, TabletopExpert(), "place_red_on_plate", 0, max_steps=30,
            record_to=folder / "ep.h5")
    ws = Workspace()
    dock = FreeCameraDock(ws, lambda meta, done: done(replay_model(replay, meta)))
    dock.view.setFixedSize(SIZE[1], SIZE[0])
    dock.show()
    ws.open_episode(folder / "ep.h5")
    ws.set_step(20)
    dock.contacts.setChecked(True)
    dock.forces.setChecked(True)
    while dock.camera is None or dock.view.frames == 0:
        app.processEvents()
    assert dock.camera.size == SIZE, dock.camera.size
    view, held = dock.view, Qt.MouseButton.LeftButton
    x, y = SIZE[1] / 2, SIZE[0] / 2
    mouse(view, QEvent.Type.MouseButtonPress, x, y, held)
    samples = []
    for i in range(moves + 10):
        x += 4 if (i // 40) % 2 == 0 else -4  # back and forth, always moving
        before = view.frames
        t0 = time.perf_counter()
        mouse(view, QEvent.Type.MouseMove, x, y + (i % 7), held)
        while view.frames == before:
            app.processEvents()
        if i >= 10:  # warm-up
            samples.append(time.perf_counter() - t0)
    mouse(view, QEvent.Type.MouseButtonRelease, x, y, Qt.MouseButton.NoButton)

    cam = dock.camera
    naive, floor = [], []
    for _ in range(max(10, moves // 10)):
        t0 = time.perf_counter()
        r = mujoco.Renderer(cam.model, height=SIZE[0], width=SIZE[1])
        r.update_scene(cam.data, camera=cam.camera, scene_option=cam.option)
        r.render()
        r.close()
        naive.append(time.perf_counter() - t0)
    r = mujoco.Renderer(cam.model, height=SIZE[0], width=SIZE[1])
    for _ in range(moves):
        t0 = time.perf_counter()
        r.update_scene(cam.data, camera=cam.camera, scene_option=cam.option)
        r.render()
        floor.append(time.perf_counter() - t0)
    r.close()
    dock.close()
    ws.recording.close()
    scene.close()
    replay.close()
    ms = lambda v: 1000 * float(np.median(v))  # noqa: E731
    return {"median_ms": ms(samples), "p95_ms": 1000 * float(np.percentile(samples, 95)),
            "naive_ms": ms(naive), "floor_ms": ms(floor)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moves", type=int, default=200)
    args = ap.parse_args()
    f = figures(args.moves)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, MuJoCo "
          f"{mujoco.__version__}, MUJOCO_GL={os.environ['MUJOCO_GL']}")
    print(f"orbit drag -> repaint at {SIZE[1]}x{SIZE[0]}: median {f['median_ms']:.1f} ms, "
          f"p95 {f['p95_ms']:.1f} ms (target <= {TARGET_MS:.0f} ms: "
          f"{'met' if f['median_ms'] <= TARGET_MS else 'MISSED'})")
    print(f"baseline, a fresh mujoco.Renderer per frame: median {f['naive_ms']:.1f} ms "
          f"(ours {f['naive_ms'] / f['median_ms']:.1f}x faster)")
    print(f"floor, a kept renderer without Qt (update_scene + render): median "
          f"{f['floor_ms']:.1f} ms (overhead {f['median_ms'] / f['floor_ms']:.2f}x)")


if __name__ == "__main__":
    main()
