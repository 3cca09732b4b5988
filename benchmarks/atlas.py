"""Atlas interaction at 16k features, and slider-to-action latency, in one run.

Atlas: a 600x500 AtlasView holds 16,000 points coloured by a statistic. One hover sample
is the time from a mouse-move event over a point (sent through Qt to the viewport) to the
end of a synchronous repaint showing the hover ring and label; one selection sample is a
click on a point to the end of its repaint. Baseline in the same run: the obvious design,
re-brushing every point to highlight one (what a scatter without overlay items does).

Slider-to-action: the reference policy in a live rollout; one sample is the time from a
steering change (LiveRollout.set_interventions, what a slider release triggers) through
the next step, i.e. until the steered action has been applied; against a plain step.

Targets (issue 10): >= 30 fps for hover/selection redraws at 16k points.

    .venv/bin/python benchmarks/atlas.py [--n 16000] [--moves 200]
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
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from vlascope.app.docks.atlas import AtlasView  # noqa: E402

TARGET_FPS = 30.0


def send(view: AtlasView, kind: QEvent.Type, pos, button=Qt.MouseButton.NoButton) -> None:
    buttons = Qt.MouseButton.LeftButton if kind == QEvent.Type.MouseButtonPress else \
        Qt.MouseButton.NoButton
    event = QMouseEvent(kind, QPointF(pos), view.viewport().mapToGlobal(QPointF(pos)),
                        button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), event)


def widget_pos(view: AtlasView, xy) -> QPointF:
    return QPointF(view.mapFromScene(view.plotItem.vb.mapViewToScene(QPointF(*xy))))


def atlas_figures(n: int, moves: int) -> dict[str, float]:
    app = QApplication.instance() or QApplication([])
    view = AtlasView()
    view.resize(600, 500)
    view.show()
    rng = np.random.default_rng(0)
    xy, values = rng.normal(size=(n, 2)), rng.random(n)
    t0 = time.perf_counter()
    view.set_points(xy, values, [f"feature {i}" for i in range(n)])
    view.viewport().repaint()
    first_draw = time.perf_counter() - t0
    app.processEvents()
    targets = rng.choice(n, moves, replace=False)
    hover, click, naive = [], [], []
    for i in targets:
        pos = widget_pos(view, xy[i])
        t = time.perf_counter()
        send(view, QEvent.Type.MouseMove, pos)
        view.viewport().repaint()
        hover.append(time.perf_counter() - t)
    for i in targets[: moves // 2]:
        pos = widget_pos(view, xy[i])
        t = time.perf_counter()
        send(view, QEvent.Type.MouseButtonPress, pos, Qt.MouseButton.LeftButton)
        send(view, QEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.LeftButton)
        view.viewport().repaint()
        click.append(time.perf_counter() - t)
    assert view.selected == [int(targets[moves // 2 - 1])], "clicks did not select"
    # baseline: highlight by re-brushing all points (no overlay item)
    base = [pg.mkBrush(60, 60, 200) for _ in range(n)]
    for i in targets[: max(10, moves // 10)]:
        t = time.perf_counter()
        brushes = list(base)
        brushes[int(i)] = pg.mkBrush(255, 255, 255)
        view.base.setBrush(brushes)
        view.viewport().repaint()
        naive.append(time.perf_counter() - t)
    view.close()
    return {"first_draw_s": first_draw, "hover_ms": 1000 * float(np.median(hover)),
            "hover_p95_ms": 1000 * float(np.percentile(hover, 95)),
            "click_ms": 1000 * float(np.median(click)),
            "naive_ms": 1000 * float(np.median(naive))}


def slider_figures(steps: int = 12) -> dict[str, float]:
    from vlascope.core.features import capture_frames, train_features, visual_positions
    from vlascope.core.interventions import Steer
    from vlascope.core.live import LiveRollout
    from vlascope.core.sae import save_sae
    from vlascope.policies.reference.policy import ReferencePolicy
    from vlascope.scenes.tabletop import TabletopScene

    layer = "trunk.1.resid"
    policy = ReferencePolicy(device="cpu")
    with TabletopScene() as scene, tempfile.TemporaryDirectory() as tmp:
        live = LiveRollout(scene, policy, "pick_red", 0, max_steps=4 * steps)
        frames = [live.step().observation for _ in range(8)]
        samples = capture_frames(policy, frames, layer)
        fs = train_features(samples, policy.visual_token_layout(),
                            visual_positions(policy, layer), expansion=2, k=8, steps=60)
        sae = str(save_sae(fs.sae, Path(tmp) / "sae"))
        plain, steered = [], []
        for i in range(steps):
            t = time.perf_counter()
            live.step()
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            live.set_interventions([Steer(sae=sae, feature=i % fs.n_features,
                                          alpha=1.0 + i % 3, layer=layer)])
            live.step()
            steered.append(time.perf_counter() - t)
    return {"slider_ms": 1000 * float(np.median(steered)),
            "step_ms": 1000 * float(np.median(plain))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16_000)
    ap.add_argument("--moves", type=int, default=200)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    a = atlas_figures(args.n, args.moves)
    hover_fps, click_fps = 1000 / a["hover_ms"], 1000 / a["click_ms"]
    print(f"atlas, {args.n} points: first draw {a['first_draw_s']:.2f} s")
    print(f"  hover redraw: median {a['hover_ms']:.2f} ms (p95 {a['hover_p95_ms']:.2f}) = "
          f"{hover_fps:.0f} fps, {hover_fps / TARGET_FPS:.1f}x the {TARGET_FPS:.0f} fps target")
    print(f"  click-select redraw: median {a['click_ms']:.2f} ms = {click_fps:.0f} fps, "
          f"{click_fps / TARGET_FPS:.1f}x the target")
    print(f"  baseline, re-brush every point per highlight: {a['naive_ms']:.1f} ms = "
          f"{1000 / a['naive_ms']:.0f} fps (ours {a['naive_ms'] / a['hover_ms']:.0f}x faster)")
    s = slider_figures()
    print(f"slider-to-action (reference policy): {s['slider_ms']:.1f} ms median from a "
          f"steering change to the steered step applied, vs {s['step_ms']:.1f} ms for a "
          f"plain step ({s['slider_ms'] / s['step_ms']:.2f}x)")


if __name__ == "__main__":
    main()
