"""Inspector display speed, policy inference excluded, in one run:

1. live viewing: display updates/s while a rollout's steps arrive (both cameras: a 448x448
   display render shown for the 224x224 policy frames, the ISS overlay upsampled onto it,
   the planned-vs-executed path and the timeline's chunk fan updated), against the floor
   of two bare pyqtgraph ImageItems repainted with the policy frames, no overlay or plot;
2. scrubbing: latency per step change on a recorded 500-step episode with cached overlays
   (display frames read from the HDF5 file, overlays, paths and plot cursor redrawn),
   median and p95;
3. live explain (policy included): the shipped `reference` policy acting in the tabletop
   scene with the saliency dock's live mode on, at the live budget (10 forward passes per
   step, maps pooled in time): rollout steps per second with every step's map shown,
   against the live mode before issue 26 (each step explained on its own with N = 100).

Targets: >= 25 display updates/s live, <= 30 ms median scrub latency (issue 6); >= 5
steps/s with live maps (issue 26).

    .venv/bin/python benchmarks/gui.py [--steps 500] [--live-frames 200] [--explain-steps 40]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QObject, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from vlascope.app.main_window import MainWindow  # noqa: E402
from vlascope.core.live import LiveRollout  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402


class Wanderer:
    """A policy that never solves the task (so an episode runs its full length) and moves
    the arm around so frames change: it stands in for a model whose cost we exclude."""

    def __init__(self) -> None:
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def batch_infer(self, observations):
        self.t += 1
        a = np.array([np.sin(self.t / 9), np.cos(self.t / 13), np.sin(self.t / 7), -1.0])
        return np.tile(a, (len(observations), 1, 1)).astype(np.float32)


def blob_maps(shape: tuple[int, int], t: int) -> np.ndarray:
    y, x = np.mgrid[:shape[0], :shape[1]]
    cy, cx = shape[0] * (0.5 + 0.3 * np.sin(t / 10)), shape[1] * (0.5 + 0.3 * np.cos(t / 10))
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 20.0 ** 2)).astype(np.float32)


def record(scene: TabletopScene, steps: int, path: Path | None,
           display: tuple[int, int] | None):
    """A rollout with the planned-vs-executed path data and, with ``display``, a display
    render per step (kept in the episode too, so scrubbing reads them from the file)."""
    live = LiveRollout(scene, Wanderer(), "place_red_on_plate", 0, max_steps=steps,
                       record_to=path, image_size=(224, 224), render_all=True,
                       record_display=display is not None)
    live.display_size = display
    records = [live.step() for _ in range(steps)]
    return records, live.close()


class PaintCounter(QObject):
    """Counts real paint events, so a frame only counts once Qt has drawn it."""

    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


COUNTER = PaintCounter()


def paint(app: QApplication, window: MainWindow) -> None:
    """Let the event loop draw what changed, as it does in the app (no forced repaints)."""
    before = COUNTER.paints
    while COUNTER.paints == before:
        app.processEvents()


def bench_live(app: QApplication, window: MainWindow, records) -> float:
    ws = window.workspace
    ws.begin_live({"task": "place_red_on_plate", "variant": "default", "seed": 0,
                   "action_dim": 4}, list(records[0].observation.images), None)
    key = ws.saliency.key()
    maps = [{c: blob_maps(img.shape[:2], r.t) for c, img in r.observation.images.items()}
            for r in records]
    paint(app, window)
    t0 = time.perf_counter()
    for r, m in zip(records, maps, strict=True):
        ws.append_step(r)
        ws.put_maps(r.t, key, m)
        paint(app, window)
    fps = len(records) / (time.perf_counter() - t0)
    front = window.scene_dock.views["front"]
    print(f"live view shows a {front.frame.image.shape[1]}x{front.frame.image.shape[0]} frame, "
          f"planned path drawn: {front.path.planned.isVisible()}")
    return fps


def bench_floor(app: QApplication, records) -> float:
    widget = pg.GraphicsLayoutWidget()
    widget.resize(900, 480)
    widget.show()
    widget.viewport().installEventFilter(COUNTER)
    items = []
    for col, _cam in enumerate(records[0].observation.images):
        box = widget.ci.addViewBox(row=0, col=col, lockAspect=True, invertY=True)
        item = pg.ImageItem(axisOrder="row-major")
        box.addItem(item)
        items.append(item)
    app.processEvents()
    t0 = time.perf_counter()
    for r in records:
        for item, img in zip(items, r.observation.images.values(), strict=True):
            item.setImage(img, autoLevels=False, levels=(0, 255))
        widget.update()
        before = COUNTER.paints
        while COUNTER.paints == before:
            app.processEvents()
    fps = len(records) / (time.perf_counter() - t0)
    widget.close()
    return fps


def bench_scrub(app: QApplication, window: MainWindow, path: Path, n_moves: int) -> list[float]:
    ws = window.workspace
    ws.open_episode(path)
    key = ws.saliency.key()
    for t in range(ws.n_steps):
        ws.put_maps(t, key, {c: blob_maps((224, 224), t) for c in ws.recording.cameras})
    paint(app, window)
    rng = np.random.default_rng(0)
    # random jumps, never to the step already shown (that would draw nothing)
    targets = (ws.step + np.cumsum(rng.integers(1, ws.n_steps, n_moves))) % ws.n_steps
    times = []
    for t in targets:
        t0 = time.perf_counter()
        ws.set_step(int(t))
        paint(app, window)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def bench_live_explain(app: QApplication, tmp: str, steps: int, budget: int | None,
                       n_masks: int = 100) -> float:
    """Steps/s of a live rollout with live saliency: from Play until ``steps`` steps have
    their maps. ``budget`` None: each step explained on its own at ``n_masks`` masks (the
    live mode before issue 26)."""
    settings = QSettings(str(Path(tmp) / f"live{budget}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(registry=PluginRegistry.discover(), settings=settings,
                        record_dir=Path(tmp) / f"live{budget}")
    window.resize(1400, 860)
    window.show()
    ws = window.workspace
    ws.update_run(policy="reference", scene="tabletop", task="place_red_on_plate", seed=0)
    ws.update_saliency(method="iss", estimator="toolkit-improved", n_masks=n_masks,
                       budget=budget or 10, live=False)
    window.start()
    wait(app, lambda: ws.recording is not None and not window.engine.busy())
    if budget is None:  # the old live mode: every step explained alone at n_masks
        window.controller.explain_live = window.controller.explain

        def explained() -> int:
            return len(ws.cached_steps())
    else:
        def explained() -> int:
            return len(ws.live_steps())
    ws.update_saliency(live=True)
    t0 = time.perf_counter()
    window.controller.play()

    def ended() -> bool:  # the task solved before `steps`: every step it took is explained
        return not ws.playing and not window.engine.busy() and explained() >= ws.n_steps

    wait(app, lambda: explained() >= steps or ended())
    elapsed = time.perf_counter() - t0
    steps = explained()
    window.controller.pause()
    wait(app, lambda: not window.engine.busy())
    window.close()
    return steps / elapsed


def wait(app: QApplication, done, timeout: float = 600.0) -> None:
    end = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > end:
            raise TimeoutError("the inspector did not get there in time")
        app.processEvents()
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="length of the scrubbed episode")
    parser.add_argument("--live-frames", type=int, default=200)
    parser.add_argument("--moves", type=int, default=300, help="scrub moves to time")
    parser.add_argument("--display", type=int, default=448,
                        help="side of the display render (0: the policy's frames only)")
    parser.add_argument("--explain-steps", type=int, default=40,
                        help="live-explain steps to time (the old mode: a fifth of them)")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(["bench"])
    with tempfile.TemporaryDirectory() as tmp, TabletopScene(image_size=(224, 224)) as scene:
        t0 = time.perf_counter()
        path = Path(tmp) / "episode.h5"
        display = (args.display, args.display) if args.display else None
        records, _ = record(scene, args.steps, path, display)
        print(f"recorded {args.steps} steps at 224x224 (display render {display}) in "
              f"{time.perf_counter() - t0:.1f} s")
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(registry=PluginRegistry([]), settings=settings)
        window.resize(1400, 860)
        window.show()
        app.processEvents()
        window.scene_dock.graphics.viewport().installEventFilter(COUNTER)
        live_frames = records[:args.live_frames]
        floor = bench_floor(app, live_frames)
        fps = bench_live(app, window, live_frames)
        scrub = bench_scrub(app, window, path, args.moves)
        window.close()
        explain_fps = bench_live_explain(app, tmp, args.explain_steps, 10)
        old_fps = bench_live_explain(app, tmp, max(4, args.explain_steps // 5), None)
    median, p95 = statistics.median(scrub), float(np.percentile(scrub, 95))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Qt platform {os.environ['QT_QPA_PLATFORM']}")
    print(f"live view : {fps:6.1f} updates/s with overlay + timeline (target >= 25); "
          f"floor {floor:6.1f}/s bare images; overhead {floor / fps:.2f}x")
    print(f"scrubbing : median {median:5.1f} ms, p95 {p95:5.1f} ms per step on a "
          f"{args.steps}-step episode (target median <= 30 ms); "
          f"{30.0 / median:.2f}x under budget")
    print(f"live explain: {explain_fps:5.2f} steps/s with every step's map shown (reference "
          f"policy, 10 passes/step, pooled; target >= 5); the old live mode (N = 100 per "
          f"step) {old_fps:5.2f} steps/s: {explain_fps / old_fps:.1f}x")


if __name__ == "__main__":
    main()
