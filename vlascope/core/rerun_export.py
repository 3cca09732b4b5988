"""An episode as a Rerun recording (``.rrd``), to scrub it in the Rerun viewer next to
other robot data: camera frames with the stored saliency maps and the region maps layered
over them, actions, states, NMR@k and success as time series, and the instruction and
interventions as a text log, all on the timelines ``step`` (sequence) and ``time``
(duration, step / fps).

Entity layout::

    episode                          TextDocument, static: summary and the metadata JSON
    cameras/<cam>/image              Image (H, W, 3) uint8, the policy's frame (lossless)
    cameras/<cam>/saliency/<method>  Image (H, W, 4) uint8: the map in the app's colours
                                     (``saliency_layer``), its alpha rising with saliency
    cameras/<cam>/regions            SegmentationImage (H, W): 1 action-critical, 2 support,
                                     3 nuisance (AnnotationContext names and colours them);
                                     the hand annotation beside the episode where there is one
    cameras/<cam>/objects            SegmentationImage: simulator object ids, named
    display/<cam>/image              Image: the display render, where one was recorded
    actions/<name>, state/<name>     Scalars per step
    nmr/<method>/k<k>                Scalars: per-step NMR@k (``metrics.episode_nmr``),
                                     its line named "NMR@<k> <method>"
    success                          Scalars: 1 once the task is done
    events                           TextLog: instruction, interventions starting and
                                     ending (prompt changes), success, an early end

Rerun is an optional dependency (``vlascope[rerun]``), imported only here and only when an
export runs. Its ``.rrd`` format is versioned: a file opens in the viewer of the SDK
version that wrote it, hence the pinned version in pyproject.toml.

The output is written like every other export: to a temporary sibling, moved into place
when complete (a cancelled or failed export leaves nothing), and an existing ``--out`` is
replaced only with ``overwrite`` and only when it is a Rerun recording vlascope wrote.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import partial_path, publish, reraise, sweep_once
from .colormap import lookup_table, normalise
from .episode import Episode, policy_instruction
from .errors import CancelledError, EpisodeFormatError, OutputExistsError, VLAScopeError
from .regions import LABEL_COLORS, LABEL_NAMES, UNLABELED

RERUN_VERSION = "0.41.0"  # pyproject.toml's extra pins the same
INSTALL_HINT = "bash scripts/setup.sh rerun, or pip install 'vlascope[rerun]'"
APPLICATION_ID = "vlascope"
RRD_MAGIC = b"RRF2"  # the first bytes of a Rerun recording file (0.2x to 0.41)
DEFAULT_FPS = 10.0  # the built-in scene's control rate (0.1 s of physics per step)
NMR_KS = (10.0,)
SALIENCY_OPACITY = 0.6  # as the app's overlay and the video export draw it

# Names of the built-in scene's action and state dimensions (its docstring); other scenes
# may store theirs as metadata "action_names" / "state_names".
_KNOWN_NAMES = {"tabletop": {"action": ("dx", "dy", "dz", "gripper"),
                             "state": ("hand_x", "hand_y", "hand_z", "finger_gap")}}

Progress = Callable[[int, int], None]


def import_rerun() -> Any:
    """The ``rerun`` module, or one clear error saying how to install it."""
    try:
        import rerun
    except ImportError as e:
        raise VLAScopeError(f"Rerun export needs rerun-sdk {RERUN_VERSION}, which is not "
                            f"installed; install it with: {INSTALL_HINT}") from e
    if not hasattr(rerun, "Scalars") or not hasattr(rerun.RecordingStream, "set_time"):
        raise VLAScopeError(f"rerun-sdk {getattr(rerun, '__version__', '?')} is too old for "
                            f"the export (it needs {RERUN_VERSION}); {INSTALL_HINT}")
    return rerun


def rerun_version() -> str:
    """The installed SDK's version: the viewer that opens the file must be the same."""
    return str(import_rerun().__version__)


# output -----------------------------------------------------------------------------------
def is_our_rrd(path: str | Path) -> bool:
    """Whether ``path`` is a Rerun recording that vlascope wrote (its magic bytes, then
    every store in it under our application id): the only file ``overwrite`` replaces."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(len(RRD_MAGIC)) != RRD_MAGIC:
                return False
    except OSError:
        return False
    try:
        from rerun.chunk import RrdReader

        entries = RrdReader(str(path)).recordings()
    except Exception:  # noqa: BLE001 - unreadable or foreign: not ours
        return False
    return bool(entries) and all(e.application_id == APPLICATION_ID for e in entries)


def check_rrd_output(out: str | Path, overwrite: bool = False) -> Path:
    """The absolute output path if writing there replaces nothing that is not ours:
    ``OutputExistsError`` for an existing recording of ours (``overwrite`` allows replacing
    it), ``VLAScopeError`` for anything else in the way or a name without ``.rrd``."""
    path = Path(out).expanduser().resolve()
    if path.suffix.lower() != ".rrd":
        raise VLAScopeError(f"{out}: a Rerun recording is a .rrd file (e.g. --out ep.rrd)")
    if not (path.exists() or path.is_symlink()):
        return path
    if path.is_dir():
        raise VLAScopeError(f"{out} is a folder, not a .rrd file")
    if not overwrite:
        raise OutputExistsError(out)
    if not is_our_rrd(path):
        raise VLAScopeError(f"{out} exists and is not a Rerun recording vlascope wrote; "
                            "not replacing it, whatever the flags (choose another name)")
    return path


# what the layers hold -------------------------------------------------------------------
_LUT: np.ndarray | None = None


def saliency_layer(saliency: np.ndarray, opacity: float = SALIENCY_OPACITY) -> np.ndarray:
    """A map as the (H, W, 4) uint8 RGBA layer the export writes: the app's colour map
    (``colormap.normalise`` and ``lookup_table``) with its alpha scaled by ``opacity``, so
    Rerun's viewer blends it over the frame as the inspector does."""
    global _LUT
    if _LUT is None:
        _LUT = lookup_table()
    lut = _LUT.copy()
    lut[:, 3] = np.round(lut[:, 3] * float(np.clip(opacity, 0.0, 1.0))).astype(np.uint8)
    idx = (normalise(saliency) * (len(lut) - 1)).astype(np.intp)
    return lut[idx]


def _fit(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map at the frame's size (bilinear), so the layer lies over the frame's pixels."""
    if image.shape[:2] == tuple(shape):
        return image
    import cv2

    return cv2.resize(np.asarray(image, np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_LINEAR)


def dimension_names(metadata: dict[str, Any], kind: str, n: int) -> list[str]:
    """Names of the ``n`` action (``kind="action"``) or state dimensions: the episode's own
    (metadata ``action_names``), the built-in scene's, else ``a0, a1, ...``."""
    given = metadata.get(f"{kind}_names")
    known = _KNOWN_NAMES.get(str(metadata.get("scene")), {}).get(kind)
    for names in (given, known):
        if isinstance(names, (list, tuple)) and len(names) == n:
            names = [_entity_part(str(x)) for x in names]
            if len(set(names)) == n:
                return names
    return [f"{kind[0]}{i}" for i in range(n)]


def _entity_part(text: str) -> str:
    """One path component of a Rerun entity (no separators, no spaces)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"


def intervention_text(iv: dict[str, Any]) -> str:
    """One intervention in words with its step window."""
    from .video import _intervention_text

    stop = iv.get("stop")
    window = f"steps {iv.get('start', 0)}..{stop - 1 if stop is not None else 'end'}"
    return f"{_intervention_text(iv)} ({window})"


def episode_events(ep: Episode, successes: np.ndarray) -> list[tuple[int, str, str]]:
    """(step, level, text) of what happened when: the instruction, each intervention's start
    and end (a prompt change says the new words), the first success, an early end."""
    meta = ep.metadata
    n = ep.n_steps
    task = f"{meta.get('scene', '?')}/{meta.get('task', '?')}"
    events = [(0, "INFO", f"task {task}, variant {meta.get('variant', '?')}, seed "
                          f"{meta.get('seed', '?')}: \"{meta.get('instruction', '')}\"")]
    for iv in meta.get("interventions", []):
        start = int(iv.get("start", iv.get("step", 0)) or 0)
        stop = iv.get("stop")
        if start < n:
            text = f"intervention: {intervention_text(iv)}"
            if iv.get("kind") == "prompt":
                text += f"; the policy is told \"{policy_instruction(meta, start)}\""
            events.append((start, "WARN", text))
        if isinstance(stop, int) and 0 <= stop < n:
            text = f"intervention ends: {intervention_text(iv)}"
            if iv.get("kind") == "prompt":
                text += f"; the policy is told \"{policy_instruction(meta, stop)}\""
            events.append((stop, "INFO", text))
    done = np.flatnonzero(successes)
    if done.size:
        events.append((int(done[0]), "INFO", "success"))
    if meta.get("ended"):
        events.append((n - 1, "ERROR", f"ended early: {meta['ended']}"))
    elif meta.get("stopped_early"):
        events.append((n - 1, "WARN", "stopped early (the rollout was stopped)"))
    if not done.size:
        events.append((n - 1, "INFO", "no success"))
    return sorted(events, key=lambda e: e[0])


def episode_regions(ep: Episode) -> dict[str, np.ndarray] | None:
    """camera -> (T, H, W) labels: the hand annotation saved beside the episode where there
    is one (an edit that does not fit the episode is refused), else the stored maps."""
    from .annotation import annotated_regions

    labels = annotated_regions(ep)
    if labels is None and ep.has_regions():
        labels = {c: np.stack([ep.regions(t, c) for t in range(ep.n_steps)])
                  for c in ep.cameras}
    return labels


def episode_fps(metadata: dict[str, Any], fps: float | None = None) -> float:
    """Steps per second for the ``time`` timeline: ``fps`` if given, else the episode's
    (metadata ``fps``, ``control_hz`` or ``control_dt``), else ``DEFAULT_FPS``."""
    if fps is None:
        for key, invert in (("fps", False), ("control_hz", False), ("control_dt", True)):
            value = metadata.get(key)
            if isinstance(value, (int, float)) and value > 0:
                fps = 1.0 / value if invert else float(value)
                break
        else:
            fps = DEFAULT_FPS
    if not np.isfinite(fps) or fps <= 0:
        raise VLAScopeError(f"frame rate must be > 0, got {fps}")
    return float(fps)


def episode_nmr_streams(ep: Episode, regions: dict[str, np.ndarray] | None,
                        ks: tuple[float, ...] = NMR_KS) -> dict[tuple[str, float], np.ndarray]:
    """(method, k) -> per-step NMR@k of every stored map with regions for all its cameras
    (the same numbers as ``vlascope nmr``)."""
    from .metrics import episode_nmr

    out: dict[tuple[str, float], np.ndarray] = {}
    if regions is None:
        return out
    for method in ep.saliency_methods():
        if not all(c in regions for c in ep.saliency_cameras(method)):
            continue
        for k, scores in episode_nmr(ep, method, ks, regions=regions).items():
            out[(method, k)] = scores
    return out


# the export -------------------------------------------------------------------------------
def export_rerun(episode: str | Path, out: str | Path, *, fps: float | None = None,
                 ks: tuple[float, ...] = NMR_KS,
                 progress: Progress | None = None,
                 should_cancel: Callable[[], bool] | None = None,
                 overwrite: bool = False) -> Path:
    """Write ``episode`` to the Rerun recording ``out`` (see the module docstring for what
    goes where). An existing ``out`` only with ``overwrite``, and only one of ours
    (``check_rrd_output``); nothing is left behind when it fails or is cancelled."""
    rr = import_rerun()
    target = check_rrd_output(out, overwrite)  # before any work
    with Episode(episode) as ep:
        if ep.n_steps == 0:
            raise EpisodeFormatError(f"{ep.path}: the episode has no steps to export")
        rate = episode_fps(ep.metadata, fps)
        regions = episode_regions(ep)  # a refused annotation stops us before writing
        nmr = episode_nmr_streams(ep, regions, ks)
        rec, memory = _open_stream(rr, ep)
        _write(rr, rec, ep, rate, regions, nmr, progress, should_cancel)
        rec.flush()
        data = memory.drain_as_bytes()
        del rec, memory
    sweep_once(target.parent)
    tmp = partial_path(target)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        check_rrd_output(target, overwrite)  # the output may have changed meanwhile
        publish(tmp, target, overwrite=overwrite)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        reraise(e, target)
    return target


def _open_stream(rr: Any, ep: Episode) -> tuple[Any, Any]:
    """A recording kept in memory, written to the file by us at the end: Rerun's own file
    sink writes on a thread of its own and, when the disk fills, only logs it, and then
    hangs flushing and at exit (rerun-sdk 0.41). The memory it takes is about the file's
    size (about 50 kB per step of the built-in scene)."""
    meta = ep.metadata
    key = f"{ep.path.resolve()}|{meta.get('created', '')}"
    rec = rr.RecordingStream(APPLICATION_ID,
                             recording_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)))
    memory = rec.memory_recording()
    rec.send_blueprint(_blueprint(ep), make_active=True, make_default=True)
    rec.set_log_time_enabled(False)  # only the episode's own timelines
    rec.set_log_tick_enabled(False)
    rec.send_recording_name(f"{ep.path.stem}: {meta.get('task', '?')} / "
                            f"{meta.get('variant', '?')} / seed {meta.get('seed', '?')}")
    return rec, memory


def _blueprint(ep: Episode) -> Any:
    """Views of the recording when it opens: per camera the frame with the first stored
    map and the regions over it, then the series and the event log. Everything else
    (other maps, object ids) is in the file, a click away in the viewer's tree."""
    import rerun.blueprint as rrb

    methods = ep.saliency_methods()
    cams = []
    for cam in ep.cameras:
        root = f"cameras/{_entity_part(cam)}"
        contents = [f"{root}/image", f"{root}/regions"]
        if methods and cam in ep.saliency_cameras(methods[0]):
            contents.append(f"{root}/saliency/{_entity_part(methods[0])}")
        cams.append(rrb.Spatial2DView(origin=root, contents=contents, name=cam))
    plots = [rrb.TimeSeriesView(origin="actions", name="actions")]
    if methods:
        plots.append(rrb.TimeSeriesView(origin="nmr", name="NMR@k"))
    plots.append(rrb.TimeSeriesView(origin="/", contents=["success"], name="success"))
    return rrb.Blueprint(
        rrb.Vertical(rrb.Horizontal(*cams),
                     rrb.Horizontal(*plots, rrb.TextLogView(origin="events", name="events")),
                     row_shares=[3, 2]),
        collapse_panels=False)


def _write(rr: Any, rec: Any, ep: Episode, fps: float, regions: dict[str, np.ndarray] | None,
           nmr: dict[tuple[str, float], np.ndarray], progress: Progress | None,
           should_cancel: Callable[[], bool] | None) -> None:
    meta = ep.metadata
    n = ep.n_steps
    rec.log("episode", rr.TextDocument(_summary(ep), media_type=rr.MediaType.MARKDOWN),
            static=True)
    region_context = rr.AnnotationContext([
        rr.ClassDescription(info=rr.AnnotationInfo(
            id=k, label=LABEL_NAMES[k],
            color=(*LABEL_COLORS[k], 0 if k == UNLABELED else 255)))
        for k in sorted(LABEL_NAMES)])
    names = {int(k): str(v) for k, v in (meta.get("segment_names") or {}).items()}
    object_context = rr.AnnotationContext([(0, "none", (0, 0, 0, 0)),
                                           *((k, v) for k, v in sorted(names.items()))])
    methods = {m: ep.saliency_cameras(m) for m in ep.saliency_methods()}
    for cam in ep.cameras:
        rec.log(f"cameras/{_entity_part(cam)}/regions", region_context, static=True)
        if ep.has_segments():
            rec.log(f"cameras/{_entity_part(cam)}/objects", object_context, static=True)

    # series, columnar (one call each)
    steps = np.arange(n)
    index = [rr.TimeColumn("step", sequence=steps), rr.TimeColumn("time", duration=steps / fps)]
    actions = ep.actions().astype(np.float64)
    states = ep.states().astype(np.float64)
    successes = ep.successes()
    for group, values in (("actions", actions), ("state", states)):
        dims = dimension_names(meta, "action" if group == "actions" else "state",
                               values.shape[1])
        for d, name in enumerate(dims):
            rec.send_columns(f"{group}/{name}", indexes=index,
                             columns=rr.Scalars.columns(scalars=values[:, d]))
    for (method, k), scores in nmr.items():
        entity = f"nmr/{_entity_part(method)}/k{k:g}"
        rec.log(entity, rr.SeriesLines(names=f"NMR@{k:g} {method}"), static=True)
        rec.send_columns(entity, indexes=index,
                         columns=rr.Scalars.columns(scalars=np.asarray(scores, np.float64)))
    rec.send_columns("success", indexes=index,
                     columns=rr.Scalars.columns(scalars=successes.astype(np.float64)))
    for t, level, text in episode_events(ep, successes):
        rec.set_time("step", sequence=t)
        rec.set_time("time", duration=t / fps)
        rec.log("events", rr.TextLog(text, level=level))

    # images, step by step
    for t in range(n):
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"Rerun export cancelled at step {t}")
        rec.set_time("step", sequence=t)
        rec.set_time("time", duration=t / fps)
        for cam in ep.cameras:
            root = f"cameras/{_entity_part(cam)}"
            frame = ep.frame(t, cam)
            rec.log(f"{root}/image", rr.Image(frame, color_model="RGB", draw_order=0.0))
            if regions is not None and cam in regions:
                rec.log(f"{root}/regions",
                        rr.SegmentationImage(regions[cam][t], opacity=0.35, draw_order=1.0))
            if ep.has_segments():
                rec.log(f"{root}/objects",
                        rr.SegmentationImage(ep.segments(t, cam).astype(np.uint16),
                                             opacity=0.5, draw_order=1.5))
            for method, cams in methods.items():
                if cam in cams:
                    layer = saliency_layer(_fit(ep.saliency(method, cam, t), frame.shape[:2]))
                    rec.log(f"{root}/saliency/{_entity_part(method)}",
                            rr.Image(layer, color_model="RGBA", draw_order=2.0))
        for cam in ep.display_cameras:
            rec.log(f"display/{_entity_part(cam)}/image", rr.Image(ep.display_frame(t, cam),
                                                     color_model="RGB"))
        if progress is not None:
            progress(t + 1, n)


def _summary(ep: Episode) -> str:
    """The episode in a few lines, then its metadata (what reproduces the run)."""
    m = ep.metadata
    pol = m.get("policy", {})
    lines = [f"# {ep.path.name}", "",
             f"- scene **{m.get('scene', '?')}**, task **{m.get('task', '?')}**, variant "
             f"{m.get('variant', '?')}, seed {m.get('seed', '?')}",
             f"- instruction: \"{m.get('instruction', '')}\"",
             f"- policy: {pol.get('name') or pol.get('id') or '?'}",
             f"- {ep.n_steps} steps, {'success' if ep.success else 'failure'}",
             f"- cameras: {', '.join(ep.cameras)}",
             f"- saliency maps: {', '.join(ep.saliency_methods()) or 'none'}",
             f"- interventions: "
             f"{'; '.join(intervention_text(i) for i in m.get('interventions', [])) or 'none'}",
             "", "```json", json.dumps(m, indent=1, default=str), "```"]
    return "\n".join(lines)
