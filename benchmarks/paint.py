"""Stroke-to-screen latency of the region dock, in one run.

For each resolution (the reference policy's 96x96 and 480x640), a real episode is recorded
at that size and opened in the region dock; then a brush stroke is drawn by mouse-move
events with the button held. One sample is the time from sending a move event to the end
of a synchronous repaint of the canvas: the dab is painted into the annotation, the label
layer rebuilt and the view redrawn. Also: the stroke's end (one undo step, written to disk
atomically), and the floor of a bare pyqtgraph ImageItem repainted with a new label image
of the same size.

Target (issue 7): <= 16 ms median at the policy resolution.

    .venv/bin/python benchmarks/paint.py [--moves 300]
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

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from vlascope.app.docks.regions import RegionDock  # noqa: E402
from vlascope.app.screenshot import region_mouse  # noqa: E402
from vlascope.core.runner import rollout  # noqa: E402
from vlascope.core.workspace import Workspace  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402
from vlascope.scenes.tabletop.expert import TabletopExpert  # noqa: E402

TARGET_MS = 16.0


def measure(app: QApplication, episode: Path, moves: int) -> dict[str, float]:
    ws = Workspace()
    ws.open_episode(episode)
    dock = RegionDock(ws)
    dock.resize(900, 900)
    dock.show()
    app.processEvents()
    h, w = dock.annotation.shapes[dock.camera]
    dock.size.setValue(max(2, w // 48))
    vp = dock.graphics.viewport()
    lat, ends = [], []
    path = [(w * (0.1 + 0.8 * (i % 97) / 97), h * (0.1 + 0.8 * ((i * 7) % 89) / 89))
            for i in range(moves)]
    per_stroke = 30
    for s in range(0, moves, per_stroke):
        region_mouse(dock, QEvent.Type.MouseButtonPress, *path[s], True)
        for x, y in path[s + 1:s + per_stroke]:
            t0 = time.perf_counter()
            region_mouse(dock, QEvent.Type.MouseMove, x, y, True)
            vp.repaint()
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        end = path[min(s + per_stroke, moves) - 1]
        region_mouse(dock, QEvent.Type.MouseButtonRelease, *end, False)
        vp.repaint()
        ends.append(time.perf_counter() - t0)
    assert dock.annotation.can_undo and dock.annotation.edited_frames()

    # floor: a bare ImageItem with a label lookup table, new image each time, same view size
    view = pg.GraphicsLayoutWidget()
    box = view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
    item = pg.ImageItem(axisOrder="row-major")
    item.setLookupTable(np.random.default_rng(0).integers(0, 255, (256, 4), dtype=np.uint8))
    box.addItem(item)
    view.resize(dock.graphics.size())
    view.show()
    labels = np.random.default_rng(1).integers(0, 4, (8, h, w), dtype=np.uint8)
    item.setImage(labels[0], autoLevels=False, levels=(0, 255))
    box.setRange(xRange=(0, w), yRange=(0, h), padding=0)
    app.processEvents()
    floor = []
    for i in range(moves):
        t0 = time.perf_counter()
        item.setImage(labels[i % 8], autoLevels=False, levels=(0, 255))
        view.viewport().repaint()
        floor.append(time.perf_counter() - t0)
    view.close()
    dock.close()
    ws.recording.close()
    ms = lambda xs, q=50: 1000 * float(np.percentile(xs, q))  # noqa: E731
    return {"median": ms(lat), "p95": ms(lat, 95), "stroke_end": ms(ends),
            "floor": ms(floor), "canvas": f"{dock.graphics.width()}x{dock.graphics.height()}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--moves", type=int, default=300)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication(["paint-benchmark"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp, TabletopScene() as scene:
        for h, w in ((96, 96), (480, 640)):
            path = Path(tmp) / f"ep{h}x{w}.h5"
            rollout(scene, TabletopExpert(), "pick_red", 0, record_to=path, max_steps=6,
                    image_size=(h, w))
            r = measure(app, path, args.moves)
            print(f"{h}x{w}: stroke-to-screen median {r['median']:.2f} ms, "
                  f"p95 {r['p95']:.2f} ms ({TARGET_MS / r['median']:.1f}x "
                  f"inside the {TARGET_MS:.0f} ms target); "
                  f"bare ImageItem repaint {r['floor']:.2f} ms "
                  f"(dock/floor {r['median'] / r['floor']:.2f}x); "
                  f"stroke end + autosave {r['stroke_end']:.2f} ms; canvas {r['canvas']} px")


if __name__ == "__main__":
    main()
