"""Atlas interaction at 16k, 130k and 500k features (pyqtgraph, and vispy on GL where it
can run), the feature browser's switch to another SAE, and slider-to-action latency, in
one run.

Atlas: a 600x500 AtlasView holds N points coloured by a statistic. One hover sample is the
time from a mouse-move event over a point (sent through Qt to the viewport) to the end of
a synchronous repaint showing the hover ring and label; one selection sample is a click on
a point to the end of its repaint; one zoom sample a wheel step to its repaint (every
point drawn again); the first draw is from handing over the points to the end of the
first repaint (what a colour change costs too). Baseline in the same run: pyqtgraph's
ScatterPlotItem, the atlas's drawing before (256 shared brushes, its drawing cached as a
pixmap) for the first draw and zoom, and re-brushing every point to highlight one (what a
scatter without overlay items does) for hover.

vispy (GL): the same picking (the KD-tree of ``PointIndex``) and the same overlay design
(one Markers visual for the points, a one-point Markers for the hover ring), each sample
ending when GL has finished the frame (glFinish). It needs a GL context, which Qt's
offscreen platform has not: the vispy figures run in a child process on an X display
(``$DISPLAY``, else a private Xvfb when ``Xvfb`` is installed) with QT_QPA_PLATFORM=xcb;
without one, or without vispy, they are skipped and say why. The pyqtgraph figures of the
same sizes are measured again in that child, so both are on the same display.

Slider-to-action: the reference policy in a live rollout; one sample is the time from a
steering change (LiveRollout.set_interventions, what a slider release triggers) through
the next step, i.e. until the steered action has been applied; against a plain step.

Targets (issues 10 and 31): hover and click <= 33 ms median (>= 30 fps) at 130k points.

    .venv/bin/python benchmarks/atlas.py [--sizes 16000,130000,500000] [--moves 100]
                                         [--no-vispy] [--no-slider]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

if "--vispy-child" not in sys.argv:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from vlascope.app.docks.atlas import AtlasView  # noqa: E402
from vlascope.core.sae.atlas_layers import PointIndex  # noqa: E402

TARGET_MS = 33.0
SIZE = (600, 500)


def send(view, kind: QEvent.Type, pos, button=Qt.MouseButton.NoButton) -> None:
    buttons = Qt.MouseButton.LeftButton if kind == QEvent.Type.MouseButtonPress else \
        Qt.MouseButton.NoButton
    target = view.viewport() if hasattr(view, "viewport") else view
    event = QMouseEvent(kind, QPointF(pos), target.mapToGlobal(QPointF(pos)),
                        button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)


def wheel(widget, pos, steps: int) -> None:
    from PySide6.QtCore import QPoint

    ev = QWheelEvent(QPointF(pos), widget.mapToGlobal(QPointF(pos)), QPoint(0, 0),
                     QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def widget_pos(view: AtlasView, xy) -> QPointF:
    return QPointF(view.mapFromScene(view.plotItem.vb.mapViewToScene(QPointF(*xy))))


def points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points in 8 clusters of uneven density, as an 8-layer UMAP atlas looks."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(8, 2))
    which = rng.integers(0, 8, n)
    xy = centres[which] + rng.normal(size=(n, 2)) * rng.uniform(0.3, 1.2, 8)[which, None]
    return xy, rng.random(n)


def ms(samples) -> tuple[float, float]:
    return 1000 * float(np.median(samples)), 1000 * float(np.percentile(samples, 95))


def atlas_figures(n: int, moves: int) -> dict[str, float]:
    app = QApplication.instance() or QApplication([])
    view = AtlasView()
    view.resize(*SIZE)
    view.show()
    xy, values = points(n)
    t0 = time.perf_counter()
    view.set_points(xy, values, [f"feature {i}" for i in range(n)])
    view.viewport().repaint()
    first_draw = time.perf_counter() - t0
    app.processEvents()
    rng = np.random.default_rng(1)
    targets = rng.choice(n, moves, replace=False)
    hover, click, zoom = [], [], []
    for i in targets:
        pos = widget_pos(view, xy[i])
        t = time.perf_counter()
        send(view, QEvent.Type.MouseMove, pos)
        view.viewport().repaint()
        hover.append(time.perf_counter() - t)
        if view.hover < 0:
            raise AssertionError("a hover over a point found none")
    for i in targets[: moves // 2]:
        pos = widget_pos(view, xy[i])
        t = time.perf_counter()
        send(view, QEvent.Type.MouseButtonPress, pos, Qt.MouseButton.LeftButton)
        send(view, QEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.LeftButton)
        view.viewport().repaint()
        click.append(time.perf_counter() - t)
        # the point clicked or one drawn on the same pixel (500k points share pixels)
        got = widget_pos(view, xy[view.selected[0]]) if view.selected else QPointF(1e9, 1e9)
        if (got - pos).manhattanLength() > 2:
            raise AssertionError("a click on a point did not select it")
    centre = QPointF(SIZE[0] / 2, SIZE[1] / 2)
    for k in range(max(4, moves // 20)):  # in and out again: every point redrawn
        t = time.perf_counter()
        wheel(view.viewport(), centre, 1 if k % 2 == 0 else -1)
        view.viewport().repaint()
        zoom.append(time.perf_counter() - t)
    view.close()
    h, h95 = ms(hover)
    c, c95 = ms(click)
    return {"first_draw_s": first_draw, "hover_ms": h, "hover_p95_ms": h95, "click_ms": c,
            "click_p95_ms": c95, "zoom_ms": ms(zoom)[0]}


def scatter_figures(n: int, moves: int) -> dict[str, float]:
    """The baseline: the same points in pyqtgraph's ScatterPlotItem as the atlas drew them
    before (256 shared brushes, DeviceCoordinateCache): first draw, zoom step, and a
    highlight by re-brushing every point."""
    from matplotlib import colormaps
    from PySide6.QtWidgets import QGraphicsItem

    app = QApplication.instance() or QApplication([])
    view = pg.PlotWidget()
    view.resize(*SIZE)
    view.show()
    xy, values = points(n)
    levels = (colormaps["viridis"](np.linspace(0, 1, 256)) * 255).astype(np.uint8)
    palette = [pg.mkBrush(*c) for c in levels]
    t0 = time.perf_counter()
    scatter = pg.ScatterPlotItem(size=5, pen=None, pxMode=True)
    scatter.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    view.addItem(scatter)
    scatter.setData(pos=xy, brush=[palette[i] for i in (values * 255).astype(int).tolist()])
    view.viewport().repaint()
    first_draw = time.perf_counter() - t0
    app.processEvents()
    zoom, naive = [], []
    centre = QPointF(SIZE[0] / 2, SIZE[1] / 2)
    for k in range(max(4, moves // 20)):
        t = time.perf_counter()
        wheel(view.viewport(), centre, 1 if k % 2 == 0 else -1)
        view.viewport().repaint()
        zoom.append(time.perf_counter() - t)
    base = [pg.mkBrush(60, 60, 200) for _ in range(n)]
    rng = np.random.default_rng(1)
    for i in rng.choice(n, max(4, min(20, moves // 10)), replace=False):
        t = time.perf_counter()
        brushes = list(base)
        brushes[int(i)] = pg.mkBrush(255, 255, 255)
        scatter.setBrush(brushes)
        view.viewport().repaint()
        naive.append(time.perf_counter() - t)
    view.close()
    return {"first_draw_s": first_draw, "zoom_ms": ms(zoom)[0], "naive_ms": ms(naive)[0]}


def browser_figures(n: int) -> dict[str, float]:
    """The Features dock's table switching to an SAE of ``n`` features (what an atlas
    click on another layer does): FeatureTableModel against the QTableWidget it replaced
    (an item per cell, sorted by density), each to the end of a repaint."""
    from PySide6.QtWidgets import QTableView, QTableWidget, QTableWidgetItem

    from vlascope.app.docks.feature_table import COLUMNS, FeatureTableModel
    from vlascope.core.features import FeatureSet

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    density, mean = rng.random(n), rng.gamma(2.0, size=n)
    peak, labels = rng.integers(0, 40, n), [f"label {i % 13}" for i in range(n)]

    step_max = np.zeros((40, n))
    step_max[peak, np.arange(n)] = 1.0
    fs = SimpleNamespace(  # what the model reads of a FeatureSet
        n_features=n, stats=SimpleNamespace(density=density, mean_active=mean, labels=labels),
        step_max=step_max, cohen_d=rng.normal(size=n), d_phase=[""] * n,
        effects=np.full(n, np.nan))
    fs.columns = lambda: FeatureSet.columns(fs)
    view = QTableView()
    model = FeatureTableModel(view)
    view.setModel(model)
    view.resize(500, 400)
    view.show()
    t = time.perf_counter()
    model.set_features(fs)
    view.repaint()
    ours = time.perf_counter() - t
    table = QTableWidget(0, len(COLUMNS))
    table.resize(500, 400)
    table.show()
    t = time.perf_counter()
    table.setSortingEnabled(False)
    table.setRowCount(n)
    for i in range(n):
        cells = [str(i), f"{density[i]:.3f}", f"{mean[i]:.3g}", str(peak[i]), "-", "-",
                 labels[i]]
        for j, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, float(i))
            table.setItem(i, j, item)
    table.setSortingEnabled(True)
    table.sortItems(1, Qt.SortOrder.DescendingOrder)
    table.repaint()
    widget = time.perf_counter() - t
    view.close()
    table.close()
    app.processEvents()
    return {"model_s": ours, "widget_s": widget}


def vispy_figures(n: int, moves: int) -> dict[str, float]:
    """The same interaction drawn by vispy (GL): Markers for the points, a one-point
    Markers ring and a Text label for the hover, a ring for the selection; picking by the
    same KD-tree. Must run on a platform with GL (xcb)."""
    from matplotlib import colormaps
    from vispy import app as vispy_app
    from vispy import scene

    vispy_app.use_app("pyside6")
    qapp = QApplication.instance() or QApplication([])
    canvas = scene.SceneCanvas(size=SIZE, bgcolor="#202020", show=True, keys=None)
    view = canvas.central_widget.add_view()
    view.camera = scene.PanZoomCamera()
    xy, values = points(n)
    xy32 = xy.astype(np.float32)

    def draw() -> None:
        canvas.update()
        qapp.processEvents()
        canvas.set_current()
        canvas.context.finish()

    t0 = time.perf_counter()
    base = scene.visuals.Markers(parent=view.scene)
    base.set_data(xy32, face_color=colormaps["viridis"](values).astype(np.float32),
                  edge_width=0, size=5)
    view.camera.set_range()  # before the empty overlays, which have no bounds
    ring = scene.visuals.Markers(parent=view.scene)
    sel = scene.visuals.Markers(parent=view.scene)
    label = scene.visuals.Text("", color="white", anchor_x="left", parent=view.scene)
    index = PointIndex(xy)
    draw()
    first_draw = time.perf_counter() - t0
    to_data = canvas.scene.node_transform(view.scene)
    to_canvas = view.scene.node_transform(canvas.scene)
    state = {"hover": -1, "selected": -1}

    def pick(pos) -> int:
        p0, p1 = to_data.map(pos)[:2], to_data.map((pos[0] + 1, pos[1] + 1))[:2]
        return index.nearest(float(p0[0]), float(p0[1]), tuple(np.abs(p1 - p0)), 8)

    def empty() -> np.ndarray:
        return np.zeros((0, 2), np.float32)

    @canvas.events.mouse_move.connect
    def moved(ev) -> None:
        i = pick(ev.pos)
        if i != state["hover"]:
            state["hover"] = i
            ring.set_data(xy32[i:i + 1] if i >= 0 else empty(), face_color=(0, 0, 0, 0),
                          edge_color="white", edge_width=2, size=12)
            label.text, label.pos = (f"f{i}: feature {i}", xy32[i]) if i >= 0 else ("", (0, 0))

    @canvas.events.mouse_release.connect
    def released(ev) -> None:
        i = pick(ev.pos)
        if i >= 0:
            state["selected"] = i
            sel.set_data(xy32[i:i + 1], face_color=(0, 0, 0, 0), edge_color="#00e5ff",
                         edge_width=1.5, size=9)

    native = canvas.native
    rng = np.random.default_rng(1)
    targets = rng.choice(n, moves, replace=False)
    hover, click, zoom = [], [], []
    for i in targets:
        pos = QPointF(*to_canvas.map(xy32[i])[:2])
        t = time.perf_counter()
        send(native, QEvent.Type.MouseMove, pos)
        draw()
        hover.append(time.perf_counter() - t)
        if state["hover"] < 0:
            raise AssertionError("vispy: a hover over a point found none")
    for i in targets[: moves // 2]:
        pos = QPointF(*to_canvas.map(xy32[i])[:2])
        t = time.perf_counter()
        send(native, QEvent.Type.MouseButtonPress, pos, Qt.MouseButton.LeftButton)
        send(native, QEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.LeftButton)
        draw()
        click.append(time.perf_counter() - t)
        got = to_canvas.map(xy32[state["selected"]])[:2]
        if np.abs(got - (pos.x(), pos.y())).sum() > 2:
            raise AssertionError("vispy: a click on a point did not select it")
    centre = QPointF(SIZE[0] / 2, SIZE[1] / 2)
    for k in range(max(4, moves // 20)):
        t = time.perf_counter()
        wheel(native, centre, 1 if k % 2 == 0 else -1)
        draw()
        zoom.append(time.perf_counter() - t)
    from vispy.gloo import gl

    renderer = gl.glGetParameter(gl.GL_RENDERER)
    canvas.close()
    h, h95 = ms(hover)
    c, c95 = ms(click)
    return {"first_draw_s": first_draw, "hover_ms": h, "hover_p95_ms": h95, "click_ms": c,
            "click_p95_ms": c95, "zoom_ms": ms(zoom)[0], "renderer": renderer}


@contextlib.contextmanager
def x_display():
    """$DISPLAY, else a private Xvfb (None when there is neither)."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        yield None
        return
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x1024x24",
                             "-nolisten", "tcp"], pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    try:
        yield f":{number}" if number else None
    finally:
        proc.terminate()
        proc.wait(10)


def gl_figures(sizes: list[int], moves: int) -> dict | str:
    """pyqtgraph and vispy on one X display, one child process per size (vispy on
    llvmpipe has crashed in its draw after several large canvases in one process):
    {size: {...} or why not}, or why none ran."""
    try:
        import vispy  # noqa: F401
    except ImportError:
        return "vispy is not installed"
    out: dict = {}
    with x_display() as display:
        if display is None:
            return "no X display and no Xvfb: no GL context for vispy"
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        for n in sizes:
            proc = subprocess.run([sys.executable, __file__, "--vispy-child", "--sizes",
                                   str(n), "--moves", str(moves)],
                                  env=env, capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                why = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                out[n] = f"the vispy run failed: {why[0]}"
            else:
                out.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


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


def fps(ms_: float) -> str:
    return f"{1000 / ms_:.0f} fps"


def report(n: int, a: dict[str, float], b: dict[str, float]) -> None:
    print(f"atlas (pyqtgraph + numpy raster), {n:,} points:")
    print(f"  first draw (and a colour change): {a['first_draw_s']:.3f} s vs "
          f"{b['first_draw_s']:.3f} s for ScatterPlotItem "
          f"({b['first_draw_s'] / a['first_draw_s']:.1f}x faster)")
    print(f"  hover redraw: median {a['hover_ms']:.2f} ms (p95 {a['hover_p95_ms']:.2f}) = "
          f"{fps(a['hover_ms'])}, {TARGET_MS / a['hover_ms']:.1f}x within the "
          f"{TARGET_MS:.0f} ms target")
    print(f"  click-select redraw: median {a['click_ms']:.2f} ms (p95 "
          f"{a['click_p95_ms']:.2f}) = {fps(a['click_ms'])}, "
          f"{TARGET_MS / a['click_ms']:.1f}x within the target")
    print(f"  zoom step (every point drawn again): median {a['zoom_ms']:.1f} ms vs "
          f"{b['zoom_ms']:.1f} ms for ScatterPlotItem ({b['zoom_ms'] / a['zoom_ms']:.1f}x "
          "faster)")
    print(f"  baseline, re-brush every point per highlight: {b['naive_ms']:.1f} ms = "
          f"{fps(b['naive_ms'])} (ours {b['naive_ms'] / a['hover_ms']:.0f}x faster)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16000,130000,500000")
    ap.add_argument("--moves", type=int, default=100)
    ap.add_argument("--no-vispy", action="store_true", help="skip the GL comparison")
    ap.add_argument("--no-slider", action="store_true", help="skip slider-to-action")
    ap.add_argument("--vispy-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.vispy_child:  # on an X display: both libraries, as JSON on the last line
        out = {n: {"pyqtgraph": atlas_figures(n, args.moves),
                   "vispy": vispy_figures(n, args.moves)} for n in sizes}
        print(json.dumps(out))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for n in sizes:
        report(n, atlas_figures(n, args.moves), scatter_figures(n, args.moves))
    if not args.no_vispy:
        gl = gl_figures(sizes, args.moves)
        if isinstance(gl, str):
            print(f"vispy (GL): skipped, {gl}")
        else:
            for n, both in gl.items():
                if isinstance(both, str):
                    print(f"on X (xcb), {int(n):,} points: {both}")
                    continue
                p, v = both["pyqtgraph"], both["vispy"]
                print(f"on X (xcb), {int(n):,} points, GL renderer {v['renderer']}:")
                for what in ("hover", "click", "zoom"):
                    print(f"  {what}: vispy {v[what + '_ms']:.2f} ms, pyqtgraph "
                          f"{p[what + '_ms']:.2f} ms (vispy / pyqtgraph = "
                          f"{v[what + '_ms'] / p[what + '_ms']:.2f}x)")
                print(f"  first draw: vispy {v['first_draw_s']:.2f} s, pyqtgraph "
                      f"{p['first_draw_s']:.2f} s")
    for n in (16_384, 32_768):  # one SAE of Action Atlas's sizes
        b = browser_figures(n)
        print(f"feature browser, switching to an SAE of {n:,} features: "
              f"{1000 * b['model_s']:.0f} ms vs {1000 * b['widget_s']:.0f} ms for the "
              f"QTableWidget it replaced ({b['widget_s'] / b['model_s']:.0f}x faster)")
    if not args.no_slider:
        s = slider_figures()
        print(f"slider-to-action (reference policy): {s['slider_ms']:.1f} ms median from a "
              f"steering change to the steered step applied, vs {s['step_ms']:.1f} ms for a "
              f"plain step ({s['slider_ms'] / s['step_ms']:.2f}x)")


if __name__ == "__main__":
    main()
