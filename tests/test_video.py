"""Demo videos: composed frames hold the overlay the core computes, the MP4 is H.264 and
decodes back to the frames written, GIF and PNG folders too, and a cancelled export
leaves no file behind."""

import av
import numpy as np
import pytest
from PIL import Image

from vlascope.core.colormap import blend, outline
from vlascope.core.episode import Episode, update_episode
from vlascope.core.errors import CancelledError, VLAScopeError
from vlascope.core.metrics import top_k_mask
from vlascope.core.runner import rollout
from vlascope.core.video import Composer, VideoLayout, export_video, open_tracks

STEPS = 8


def record(scene, expert, path, seed):
    rollout(scene, expert, "pick_red", seed, max_steps=STEPS, record_to=path)
    with Episode(path) as ep:
        h, w = ep.frame(0, "front").shape[:2]
    rng = np.random.default_rng(seed)  # smooth maps, like ISS's 7x7 grid after blurring
    maps = {f"saliency/iss/{c}": np.kron(rng.random((STEPS, 7, 7)),
                                         np.ones((1, h // 7, w // 7))).astype(np.float32)
            for c in ("front", "wrist")}
    update_episode(path, maps)
    return path


@pytest.fixture(scope="module")
def episodes(scene, expert, tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    return record(scene, expert, d / "a.h5", 0), record(scene, expert, d / "b.h5", 1)


def test_the_composed_frame_holds_the_core_overlay(episodes):
    tracks = open_tracks(episodes[:1])
    try:
        layout = VideoLayout(height=224, top_k=10.0, paths=False)  # the path: test_paths.py
        comp = Composer(tracks, layout)
        t = 5
        img = comp.frame(t)
        assert img.shape == (comp.height, comp.width, 3) and img.shape[1] % 2 == 0
        ep = tracks[0].episode
        maps = {c: ep.saliency("iss", c, t) for c in ("front", "wrist")}
        top = top_k_mask(maps, 10.0)
        x = 0
        for cam in ("front", "wrist"):
            expected = outline(blend(ep.frame(t, cam), maps[cam], 0.6), top[cam])
            h, w = expected.shape[:2]
            np.testing.assert_array_equal(img[comp.title_h:comp.title_h + h, x:x + w],
                                          expected)
            x += w
        # the plot strip's cursor moves with the step
        top = comp.title_h + comp.layout.height + comp.caption_h
        strip = slice(top + 3, top + comp.plot_h - 3)
        later = comp.frame(t + 2)
        assert comp._plot_x(t + 2) > comp._plot_x(t)
        assert np.all(later[strip, comp._plot_x(t + 2)] >= 250)
        assert not np.all(img[strip, comp._plot_x(t + 2)] >= 250)
    finally:
        tracks[0].episode.close()


def test_mp4_is_h264_and_decodes_to_the_frames_written(episodes, tmp_path):
    out = tmp_path / "ab.mp4"
    done = []
    path = export_video(episodes, out, VideoLayout(plot="displacement"), fps=10,
                        progress=lambda d, n: done.append((d, n)))
    assert path == out and done[-1] == (STEPS, STEPS)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == STEPS
    tracks = open_tracks(episodes)
    try:
        comp = Composer(tracks, VideoLayout(plot="displacement"))
        assert frames[0].shape == (comp.height, comp.width, 3)
        # lossy, but close to what was composed
        assert np.abs(frames[3].astype(int) - comp.frame(3).astype(int)).mean() < 6
        assert comp.width > 2 * 224  # A and B side by side
    finally:
        for tr in tracks:
            tr.episode.close()
    assert [p.name for p in tmp_path.iterdir()] == ["ab.mp4"]


def test_gif_and_png_folder(episodes, tmp_path):
    gif = export_video(episodes[:1], tmp_path / "clip.gif", VideoLayout(height=96),
                       steps=(2, 6))
    with Image.open(gif) as im:
        assert im.n_frames == 4
    folder = export_video(episodes[:1], tmp_path / "frames", VideoLayout(overlay="regions",
                                                                        plot="none"))
    names = sorted(p.name for p in folder.iterdir())
    assert names[:3] == [".vlascope-frames", "frame_00000.png", "frame_00001.png"]
    assert len(names) == STEPS + 1  # the frames and the marker that makes them ours


def test_a_cancelled_or_failed_export_leaves_no_file(episodes, tmp_path):
    out = tmp_path / "demo.mp4"
    calls = []

    def cancel_after_three():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(CancelledError):
        export_video(episodes, out, VideoLayout(), should_cancel=cancel_after_three)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VLAScopeError, match="unknown video format"):
        export_video(episodes, tmp_path / "demo.avi", VideoLayout())
    with pytest.raises(VLAScopeError, match="two episodes"):
        export_video(episodes[:1], out, VideoLayout(plot="displacement"))
    with pytest.raises(VLAScopeError, match="empty step range"):
        export_video(episodes[:1], out, VideoLayout(), steps=(5, 5))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_demo_video_command(tmp_path):
    """`vlascope demo-video` end to end, small: A/B of a steered feature, ISS on both, the
    side-by-side MP4 and its GIF excerpt."""
    import json
    import subprocess
    import sys

    out = tmp_path / "demo.mp4"
    run = subprocess.run([sys.executable, "-m", "vlascope.cli", "demo-video", "--out", str(out),
                          "--gif", str(tmp_path / "demo.gif"), "--gif-steps", "0:5",
                          "--sae-steps", "40", "--masks", "8", "--every", "10",
                          "--work-dir", str(tmp_path / "work")],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout[run.stdout.index("{"):])
    assert summary["alpha"] == 3.0 and summary["layer"].endswith(".resid")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        n = sum(1 for _ in c.decode(c.streams.video[0]))
    assert n == max(summary["baseline_steps"], summary["intervened_steps"])
    with Image.open(tmp_path / "demo.gif") as im:
        assert im.n_frames == 5
