"""Demo videos of rollouts and A/B comparisons, with what the inspector shows burned in.

Composer: per frame, each episode's camera views (saliency overlay with its colour bar,
the region map, the top-k% salient pixels outlined), episodes side by side (baseline |
intervened), a caption strip (task, instruction, each run's intervention and outcome,
step, NMR@k) and a plot strip (actions, or the hand displacement between the runs) whose
cursor follows the frame. Plot backgrounds are drawn once; a frame costs the overlay blend,
the text and a cursor line.

Encoder: H.264 MP4 through PyAV's libx264 (yuv420p: browsers and slide software play it;
cv2's FFmpeg has no H.264 encoder), GIF through Pillow, or a folder of PNG frames. Output
goes to a temporary sibling and is moved into place only when complete, so a cancelled
or failed export leaves nothing behind.

The output path is typed by a user, so it is never deleted or replaced by accident
(``check_video_output``): an existing video file is replaced only with ``overwrite``; a
PNG-frame folder is written only into a new or empty folder, or replaces (with
``overwrite``) a frame folder of ours, recognised by its marker file and nothing but
``frame_*.png`` beside it. Any other folder (``--out ..``, a folder of the user's files)
is refused, whatever the flags.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic import (
    FRAMES_MARKER,
    fsync_dir,
    is_frame_folder,
    partial_path,
    publish,
    reraise,
)
from .colormap import blend, outline
from .episode import Episode
from .errors import CancelledError, OutputExistsError, VLAScopeError
from .metrics import nmr_at_k, top_k_mask
from .paths import EXECUTED_RGB, PLANNED_RGB, HandPath, hand_path_at, path_pixels
from .regions import colorize

OVERLAYS = ("saliency", "regions", "none")
PLOTS = ("actions", "displacement", "none")
_PENS = [(230, 57, 70), (42, 157, 143), (69, 123, 157), (244, 162, 97), (141, 153, 174),
         (181, 131, 141), (106, 153, 78)]
_FONT_PATHS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)


def font(size: int) -> ImageFont.ImageFont:
    for path in _FONT_PATHS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


@dataclass
class VideoLayout:
    """What a video shows; every field has a CLI flag and a control in the export dialog."""

    cameras: tuple[str, ...] = ()  # empty: every camera of the first episode
    overlay: str = "saliency"
    method: str = ""  # stored saliency method (default: the episode's first)
    top_k: float = 0.0  # outline the top k% salient pixels (0: off)
    opacity: float = 0.6
    caption: bool = True
    plot: str = "actions"
    height: int = 224  # pixels per camera view
    paths: bool = True  # the planned vs executed hand path, where the episode has it

    def check(self) -> None:
        if self.overlay not in OVERLAYS:
            raise VLAScopeError(f"unknown overlay '{self.overlay}' ({', '.join(OVERLAYS)})")
        if self.plot not in PLOTS:
            raise VLAScopeError(f"unknown plot '{self.plot}' ({', '.join(PLOTS)})")
        if not 16 <= self.height <= 2160:
            raise VLAScopeError(f"view height {self.height} outside 16..2160")
        if not 0 <= self.top_k < 100:
            raise VLAScopeError(f"top-k {self.top_k}% outside [0, 100)")


@dataclass
class Track:
    """One recorded episode as the composer reads it."""

    episode: Episode
    label: str
    actions: np.ndarray = field(init=False)
    hand: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.actions = self.episode.actions()
        self.hand = self.episode.states()[:, :3]
        self.successes = self.episode.successes()
        ep = self.episode
        self._paths = None  # (hands, planned, chunk index, camera -> matrices), if recorded
        if ep.has_paths():
            self._paths = (ep.hand_positions(), ep.planned_hands(), ep.chunk_indices(),
                           {c: ep.camera_matrices(c) for c in ep.matrix_cameras()})

    def hand_path(self, t: int, cam: str) -> tuple[HandPath, np.ndarray] | None:
        """Step ``t``'s planned-vs-executed hand path and the camera's matrix then."""
        if self._paths is None or cam not in self._paths[3]:
            return None
        hands, planned, index, matrices = self._paths
        return hand_path_at(t, int(index[t]), planned[t], hands), matrices[cam][t]

    @property
    def n_steps(self) -> int:
        return self.episode.n_steps

    def describe(self) -> str:
        ivs = self.episode.metadata.get("interventions", [])
        return ", ".join(_intervention_text(i) for i in ivs) or "unmodified"


def _intervention_text(iv: dict[str, Any]) -> str:
    kind = iv.get("kind", "?")
    if kind == "steer":
        return f"steer f{iv.get('feature')} α={iv.get('alpha'):+g} @{iv.get('layer')}"
    if kind == "prompt":
        return f"prompt \"{iv.get('text', '')}\""
    if kind == "perturb":
        return f"{iv.get('perturbation')} s{iv.get('severity')}"
    if kind == "ablate_features":
        return f"ablate f{','.join(map(str, iv.get('features', [])))}"
    return f"{kind} @{iv.get('layer', '')}".strip(" @")


def open_tracks(paths: Sequence[str | Path], labels: Sequence[str] = ()) -> list[Track]:
    tracks = []
    try:
        for i, path in enumerate(paths):
            ep = Episode(path)
            tracks.append(Track(ep, labels[i] if i < len(labels) else
                                ("AB"[i] if len(paths) == 2 else Path(path).stem)))
    except Exception:
        for t in tracks:
            t.episode.close()
        raise
    return tracks


class Composer:
    """Frames of one or more episodes side by side, per the layout."""

    CAPTION_PX = 18  # per line

    def __init__(self, tracks: Sequence[Track], layout: VideoLayout):
        layout.check()
        if not tracks:
            raise VLAScopeError("no episodes to compose")
        self.tracks, self.layout = list(tracks), layout
        first = self.tracks[0].episode
        self.cameras = list(layout.cameras or first.cameras)
        for tr in self.tracks:
            missing = [c for c in self.cameras if c not in tr.episode.cameras]
            if missing:
                raise VLAScopeError(f"{tr.episode.path} has no camera(s) {missing}")
        self.n_steps = max(t.n_steps for t in self.tracks)
        self.method = layout.method or next(
            (m for m in first.saliency_methods()), "")
        if layout.overlay == "saliency" and not self.method:
            raise VLAScopeError(f"{first.path} holds no saliency maps: run `vlascope iss` on "
                                "it first, or choose another overlay")
        h = layout.height
        self.view_w = {c: int(round(h * self._aspect(c))) for c in self.cameras}
        self.block_w = sum(self.view_w.values()) + (12 if layout.overlay == "saliency" else 0)
        self.width = _even(self.block_w * len(self.tracks) + 4 * (len(self.tracks) - 1))
        lines = (1 + len(self.tracks)) if layout.caption else 0
        self.title_h = 20
        self.caption_h = lines * self.CAPTION_PX + (6 if lines else 0)
        self.plot_h = 90 if layout.plot != "none" else 0
        self.height = _even(self.title_h + h + self.caption_h + self.plot_h)
        self.font, self.small = font(13), font(11)
        self._plot = self._plot_background() if self.plot_h else None
        self._bar = _colour_bar(h, 8) if layout.overlay == "saliency" else None

    def _aspect(self, cam: str) -> float:
        f = self.tracks[0].episode.frame(0, cam)
        return f.shape[1] / f.shape[0]

    # one frame --------------------------------------------------------------------------
    def frame(self, t: int) -> np.ndarray:
        """The composed (height, width, 3) uint8 image of step ``t``."""
        lay = self.layout
        canvas = np.full((self.height, self.width, 3), 24, np.uint8)
        x0 = 0
        shown_maps = []
        for tr in self.tracks:
            step = min(t, tr.n_steps - 1)
            maps = self.maps(tr, step)
            top = top_k_mask(maps, lay.top_k) if lay.top_k and maps else {}
            shown_maps.append((maps, top))
            x = x0
            for cam in self.cameras:
                view = self.view(tr, cam, step, maps.get(cam), top.get(cam))
                canvas[self.title_h:self.title_h + lay.height, x:x + view.shape[1]] = view
                x += view.shape[1]
            if self._bar is not None:
                canvas[self.title_h:self.title_h + lay.height, x + 2:x + 10] = self._bar
            x0 += self.block_w + 4
        img = Image.fromarray(canvas)
        draw = ImageDraw.Draw(img)
        self._titles(draw)
        if lay.caption:
            self._caption(draw, t, shown_maps)
        if self._plot is not None:
            top = self.title_h + lay.height + self.caption_h
            img.paste(self._plot, (0, top))
            cx = self._plot_x(t)
            draw.line([(cx, top + 2), (cx, top + self.plot_h - 2)], fill=(255, 255, 255),
                      width=1)
        return np.asarray(img)

    def view(self, tr: Track, cam: str, t: int, saliency: np.ndarray | None = None,
             top: np.ndarray | None = None) -> np.ndarray:
        """One camera of one episode at step ``t`` with the overlay, at the layout's size
        (``top``: the camera's share of the joint top-k% pixels, outlined)."""
        lay = self.layout
        frame = tr.episode.frame(t, cam)
        shown = frame
        if lay.overlay == "saliency" and saliency is not None:
            shown = blend(frame, saliency, lay.opacity)
        elif lay.overlay == "regions" and tr.episode.has_regions():
            labels = tr.episode.regions(t, cam)
            colours = colorize(labels)[..., :3].astype(np.float32)
            a = (labels > 0)[..., None] * lay.opacity
            shown = (frame * (1 - a) + colours * a).astype(np.uint8)
        if top is not None:
            shown = outline(shown, top)
        w = self.view_w[cam]
        if shown.shape[:2] != (lay.height, w):
            shown = np.asarray(Image.fromarray(shown).resize((w, lay.height),
                                                             Image.Resampling.BILINEAR))
        found = tr.hand_path(t, cam) if lay.paths else None
        if found is not None:
            planned, executed = path_pixels(found[0], found[1], frame.shape[:2],
                                            (lay.height, w))
            shown = draw_hand_paths(shown, planned, executed)
        return shown

    def maps(self, tr: Track, t: int) -> dict[str, np.ndarray]:
        """The episode's stored saliency of step ``t`` for every shown camera it has."""
        ep = tr.episode
        if not self.method or self.method not in ep.saliency_methods():
            return {}
        have = ep.saliency_cameras(self.method)
        return {c: ep.saliency(self.method, c, t) for c in self.cameras if c in have}

    def _titles(self, draw: ImageDraw.ImageDraw) -> None:
        x0 = 0
        for tr in self.tracks:
            what = tr.describe()
            title = tr.label if what in tr.label else f"{tr.label}: {what}"
            draw.text((x0 + 4, 3), title, fill=(235, 235, 235), font=self.font)
            x0 += self.block_w + 4

    def _caption(self, draw: ImageDraw.ImageDraw, t: int,
                 maps: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]) -> None:
        meta = self.tracks[0].episode.metadata
        top = self.title_h + self.layout.height + 4
        words = meta.get("instruction") or meta.get("task", "")
        draw.text((4, top), f"{meta.get('scene', '')}/{meta.get('task', '')}  "
                            f"\"{words}\"  step {t + 1}/{self.n_steps}",
                  fill=(220, 220, 220), font=self.small)
        for i, tr in enumerate(self.tracks):
            step = min(t, tr.n_steps - 1)
            ok = bool(tr.successes[step])
            state = "success" if ok else "running" if step < tr.n_steps - 1 else "failure"
            text = f"{tr.label}: {state}"
            nmr = self._nmr(tr, step, *maps[i])
            if nmr is not None:
                text += f"   NMR@10 {nmr:.2f}"
            draw.text((4, top + (i + 1) * self.CAPTION_PX), text,
                      fill=(128, 237, 153) if ok else (220, 220, 220), font=self.small)

    def _nmr(self, tr: Track, t: int, maps: dict[str, np.ndarray],
             top: dict[str, np.ndarray]) -> float | None:
        ep = tr.episode
        if not ep.has_regions() or len(maps) != len(self.cameras):
            return None
        value = nmr_at_k(maps, {c: ep.regions(t, c) for c in maps}, 10.0,
                         top=top if self.layout.top_k == 10.0 else None)
        return None if value is None or not np.isfinite(value) else float(value)

    # the plot strip (drawn once) --------------------------------------------------------
    def _plot_x(self, t: int) -> int:
        return 30 + int(round(t / max(1, self.n_steps - 1) * (self.width - 40)))

    def _plot_background(self) -> Image.Image:
        img = Image.new("RGB", (self.width, self.plot_h), (32, 32, 32))
        draw = ImageDraw.Draw(img)
        series: list[tuple[np.ndarray, tuple[int, int, int], int]] = []
        if self.layout.plot == "actions":
            for k, tr in enumerate(self.tracks):  # the first (baseline) dimmer and thinner
                for d in range(tr.actions.shape[1]):
                    pen = _PENS[d % len(_PENS)]
                    if len(self.tracks) > 1 and k == 0:
                        pen = tuple(c // 2 for c in pen)
                    series.append((tr.actions[:, d], pen, 1 if k == 0 else 2))
            label = "actions" + (" (A dim, B bright)" if len(self.tracks) > 1 else "")
        else:
            if len(self.tracks) < 2:
                raise VLAScopeError("a displacement plot needs two episodes (--compare)")
            a, b = self.tracks[0].hand, self.tracks[1].hand
            n = min(len(a), len(b))
            series.append((np.linalg.norm(a[:n] - b[:n], axis=1), (0, 229, 255), 2))
            label = "hand displacement A-B"
        values = np.concatenate([s for s, _, _ in series]) if series else np.zeros(1)
        lo, hi = float(values.min()), float(values.max())
        hi = hi if hi > lo else lo + 1.0
        for s, pen, width in series:
            pts = [(self._plot_x(i), int(self.plot_h - 6 - (v - lo) / (hi - lo) *
                                         (self.plot_h - 22))) for i, v in enumerate(s)]
            if len(pts) > 1:
                draw.line(pts, fill=pen, width=width)
        draw.text((32, 2), f"{label}  [{lo:.2g}, {hi:.2g}]", fill=(200, 200, 200),
                  font=self.small)
        return img




def draw_hand_paths(image: np.ndarray, planned: np.ndarray, executed: np.ndarray,
                    fade_to: float = 0.2) -> np.ndarray:
    """The executed hand path (amber) and the planned one (lime, fading towards its end,
    dots at each planned step) over an (H, W, 3) image, as the Scene dock draws them; NaN
    points (behind the camera) break a line."""
    base = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    width = max(2, round(image.shape[0] / 112))
    for pts, rgb, fade, dots in ((executed, EXECUTED_RGB, 1.0, False),
                                 (planned, PLANNED_RGB, fade_to, True)):
        alphas = np.linspace(1.0, fade, max(1, len(pts) - 1))
        for i in range(len(pts) - 1):
            seg = pts[i:i + 2]
            if np.isfinite(seg).all():
                draw.line([tuple(seg[0]), tuple(seg[1])], fill=(*rgb, int(255 * alphas[i])),
                          width=width)
        if dots:
            r = 0.75 * width + 0.25
            for i, (x, y) in enumerate(pts):
                if np.isfinite((x, y)).all():
                    a = int(255 * alphas[min(i, len(alphas) - 1)])
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=(*rgb, a))
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))


def _even(n: int) -> int:
    return n + (n % 2)  # H.264 in yuv420p needs even sizes


def _colour_bar(height: int, width: int) -> np.ndarray:
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(width, 1)
    return blend(np.zeros((height, width, 3), np.uint8), ramp, 1.0)


# encoding ---------------------------------------------------------------------------------
def video_kind(out: str | Path) -> str:
    """"mp4", "gif" or "png" (a folder of frames: a name without suffix)."""
    suffix = Path(out).suffix.lower()
    kind = {".mp4": "mp4", ".gif": "gif"}.get(suffix, "png" if not suffix else "")
    if not kind:
        raise VLAScopeError(f"unknown video format '{suffix}' (.mp4, .gif, or a folder "
                            "name without suffix for PNG frames)")
    return kind


def check_video_output(out: str | Path, overwrite: bool = False) -> Path:
    """The absolute output path, if writing there deletes nothing that is not ours:
    ``OutputExistsError`` for an existing file or frame folder of ours (``overwrite``
    allows replacing it), ``VLAScopeError`` for anything else in the way."""
    path = Path(out).expanduser().resolve()  # "..", "." and links: what would be replaced
    kind = video_kind(path)
    if not (path.exists() or path.is_symlink()):
        return path
    if kind == "png":
        if not path.is_dir():
            raise VLAScopeError(f"{out} is a file, not a folder for PNG frames")
        if not any(path.iterdir()):
            return path
        if not is_frame_folder(path):
            raise VLAScopeError(f"{out} is a folder that vlascope did not write (it holds "
                                "other files); choose a new or empty folder for the frames")
    elif path.is_dir():
        raise VLAScopeError(f"{out} is a folder, not a {kind.upper()} file")
    if not overwrite:
        raise OutputExistsError(out)
    return path


class VideoWriter:
    """Frames in, one finished file out (or nothing): MP4 (H.264), GIF or PNG folder.

    Encoding runs on a helper thread, one frame behind the caller, so composing the next
    frame overlaps encoding this one (FFmpeg releases the GIL)."""

    def __init__(self, out: str | Path, fps: float = 10.0, crf: int = 20, *,
                 overwrite: bool = False):
        self.fps, self.crf = float(fps), int(crf)
        if self.fps <= 0:
            raise VLAScopeError(f"frame rate must be > 0, got {fps}")
        self.out = check_video_output(out, overwrite)
        self.kind, self.overwrite = video_kind(self.out), overwrite
        self.tmp = partial_path(self.out, directory=self.kind == "png")
        if self.kind == "png":
            (self.tmp / FRAMES_MARKER).write_text("PNG frames written by vlascope video\n")
        self.frames = 0
        self._gif: list[Image.Image] = []
        self._container = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="video-encode")
        self._pending: Future | None = None

    def write(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
        with self._dropped_on_failure():
            self._wait()  # the previous frame's error, if any, surfaces here
        self._pending = self._pool.submit(self._write_now, frame)

    @contextlib.contextmanager
    def _dropped_on_failure(self) -> Iterator[None]:
        """A failed write drops the partial output; a full disk (or quota, or file-size
        limit) is the one disk-full error, whichever encoder ran into it."""
        try:
            yield
        except BaseException as e:
            self.discard()
            reraise(e, self.out)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write_now(self, frame: np.ndarray) -> None:
        if self.kind == "mp4":
            self._mp4(frame)
        elif self.kind == "gif":
            self._gif.append(Image.fromarray(frame).quantize(colors=256,
                                                              method=Image.Quantize.MEDIANCUT))
        else:
            Image.fromarray(frame).save(self.tmp / f"frame_{self.frames:05d}.png")
        self.frames += 1

    def _mp4(self, frame: np.ndarray) -> None:
        import av

        if self._container is None:
            h, w = frame.shape[:2]
            if h % 2 or w % 2:
                raise VLAScopeError(f"H.264 needs even frame sizes, got {w}x{h}")
            self._container = av.open(str(self.tmp), mode="w", format="mp4")
            stream = self._container.add_stream("libx264", rate=_rate(self.fps))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(self.crf), "preset": "superfast"}
            self._stream = stream
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self) -> Path:
        """Finish the file and move it into place (on failure nothing is left behind)."""
        with self._dropped_on_failure():
            return self._finish()

    def _finish(self) -> Path:
        self._wait()
        self._pool.shutdown()
        if self.frames == 0:
            raise VLAScopeError("no frames were written")
        if self.kind == "mp4":
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        elif self.kind == "gif":
            first, rest = self._gif[0], self._gif[1:]
            first.save(self.tmp, format="GIF", save_all=True, append_images=rest,
                       duration=int(round(1000 / self.fps)), loop=0)
            self._gif = []
        self._publish()
        return self.out

    def _publish(self) -> None:
        """Move the finished file (or frame folder) into place; checked again, as the
        output may have changed while encoding."""
        check_video_output(self.out, self.overwrite)
        if self.kind != "png" or not self.out.exists() or not any(self.out.iterdir()):
            publish(self.tmp, self.out, overwrite=self.overwrite and self.kind != "png")
            return
        old = partial_path(self.out, directory=True)  # our previous frames, set aside
        old.rmdir()
        self.out.rename(old)
        try:
            self.tmp.rename(self.out)
        except BaseException:
            old.rename(self.out)
            raise
        fsync_dir(self.out.parent)
        if is_frame_folder(old):
            shutil.rmtree(old)

    def discard(self) -> None:
        """Drop everything written so far."""
        with contextlib.suppress(Exception):
            self._wait()
        self._pool.shutdown()
        if self._container is not None:
            with contextlib.suppress(Exception):  # the partial file is removed anyway
                self._container.close()
            self._container = None
        self._gif = []
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1000)


def export_video(paths: Sequence[str | Path], out: str | Path, layout: VideoLayout, *,
                 fps: float = 10.0, steps: tuple[int, int] | None = None,
                 labels: Sequence[str] = (),
                 progress: Callable[[int, int], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None,
                 overwrite: bool = False) -> Path:
    """Compose the episodes (one, or a baseline and an intervened one side by side) over
    ``steps`` ([first, last), default all) and encode them to ``out`` (an existing output
    only with ``overwrite``: see ``check_video_output``)."""
    check_video_output(out, overwrite)  # before any work
    tracks = open_tracks(paths, labels)
    try:
        comp = Composer(tracks, layout)
        first, last = steps or (0, comp.n_steps)
        first, last = max(0, first), min(comp.n_steps, last)
        if last <= first:
            raise VLAScopeError(f"empty step range [{first}, {last})")
        writer = VideoWriter(out, fps, overwrite=overwrite)
        with writer:
            for t in range(first, last):
                if should_cancel is not None and should_cancel():
                    raise CancelledError(f"video export cancelled at step {t}")
                writer.write(comp.frame(t))
                if progress is not None:
                    progress(t - first + 1, last - first)
            return writer.close()
    finally:
        for t in tracks:
            t.episode.close()
