"""Video export speed: compose + encode, in one run.

Two recorded episodes (the scripted expert on stack_red_on_blue, seeds 0 and 1, 224x224
cameras) with smooth saliency maps stored in them, composed side by side (2 episodes x 2
cameras at 224 px, saliency overlay with colour bars, top-10% outline, caption strip with
NMR@10, action plot strip with its cursor) and encoded to H.264 MP4 (libx264, superfast,
CRF 20). Baseline in the same run: the obvious way, one matplotlib figure per frame
(imshow of each view with the map on top, titles, the action plot), rasterised and written
to the same encoder.

Target (issue 11): >= 30 frames/s for compose + encode at 2x224^2 side by side.

    .venv/bin/python benchmarks/video.py [--frames 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from vlascope.core.episode import Episode, update_episode  # noqa: E402
from vlascope.core.runner import rollout  # noqa: E402
from vlascope.core.video import Composer, VideoLayout, VideoWriter, export_video, open_tracks  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402
from vlascope.scenes.tabletop.expert import TabletopExpert  # noqa: E402

TARGET_FPS = 30.0


def record(scene, path: Path, seed: int, steps: int) -> Path:
    rollout(scene, TabletopExpert(), "stack_red_on_blue", seed, max_steps=steps,
            record_to=path)
    with Episode(path) as ep:
        n, (h, w) = ep.n_steps, ep.frame(0, "front").shape[:2]
    rng = np.random.default_rng(seed)
    update_episode(path, {f"saliency/iss/{c}": np.kron(rng.random((n, 7, 7)),
                                                       np.ones((1, h // 7, w // 7)))
                          .astype(np.float32) for c in ("front", "wrist")})
    return path


def matplotlib_baseline(paths, out: Path, frames: int) -> float:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracks = open_tracks(paths)
    writer = VideoWriter(out, 10)
    t0 = time.perf_counter()
    try:
        fig = plt.figure(figsize=(9.24, 3.94), dpi=100)
        for t in range(frames):
            fig.clf()
            for i, tr in enumerate(tracks):
                for j, cam in enumerate(("front", "wrist")):
                    ax = fig.add_axes([0.02 + 0.245 * (2 * i + j), 0.35, 0.235, 0.6])
                    ax.imshow(tr.episode.frame(min(t, tr.n_steps - 1), cam))
                    ax.imshow(tr.episode.saliency("iss", cam, min(t, tr.n_steps - 1)),
                              cmap="inferno", alpha=0.5)
                    ax.set_title(f"{tr.label} {cam}", fontsize=8)
                    ax.axis("off")
            ax = fig.add_axes([0.05, 0.05, 0.9, 0.22])
            for tr in tracks:
                ax.plot(tr.actions)
            ax.axvline(t, color="k")
            fig.canvas.draw()
            img = np.asarray(fig.canvas.buffer_rgba())[..., :3]
            writer.write(img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2])
        writer.close()
        plt.close(fig)
    finally:
        for tr in tracks:
            tr.episode.close()
    return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    layout = VideoLayout(height=224, top_k=10.0)
    with TabletopScene() as scene, tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        paths = [record(scene, d / "a.h5", 0, args.frames),
                 record(scene, d / "b.h5", 1, args.frames)]
        tracks = open_tracks(paths, ("A", "B"))
        try:
            comp = Composer(tracks, layout)
            n = min(args.frames, comp.n_steps)
            t0 = time.perf_counter()
            composed = [comp.frame(t) for t in range(n)]
            compose_fps = n / (time.perf_counter() - t0)
            with VideoWriter(d / "encode.mp4", 10) as w:
                t0 = time.perf_counter()
                for f in composed:
                    w.write(f)
                w.close()
                encode_fps = n / (time.perf_counter() - t0)
            size = composed[0].shape
        finally:
            for tr in tracks:
                tr.episode.close()
        t0 = time.perf_counter()
        export_video(paths, d / "demo.mp4", layout, steps=(0, n))
        total_fps = n / (time.perf_counter() - t0)
        base_fps = matplotlib_baseline(paths, d / "baseline.mp4", n)
    print(f"{n} frames of {size[1]}x{size[0]} (2 episodes x 2 cameras at 224 px, overlays, "
          "captions, plot)")
    print(f"  compose only: {compose_fps:.0f} frames/s; encode only (H.264): "
          f"{encode_fps:.0f} frames/s")
    print(f"  compose + encode (export_video, end to end): {total_fps:.1f} frames/s = "
          f"{total_fps / TARGET_FPS:.1f}x the {TARGET_FPS:.0f} fps target")
    print(f"  baseline, one matplotlib figure per frame: {base_fps:.1f} frames/s "
          f"(ours {total_fps / base_fps:.1f}x faster)")


if __name__ == "__main__":
    main()
