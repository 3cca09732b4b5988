"""The inspector's state without the GUI (napari style): what is loaded, which rollout is
shown, the current step, saliency settings and cached maps, interventions. Views subscribe
to its events; workers compute and hand results back through its methods. Single-threaded:
mutate it only from the thread that owns the views."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .annotation import AnnotationStore, RegionAnnotation, annotation_dir, episode_shapes
from .errors import VLAScopeError
from .events import Event
from .live import StepRecord
from .metrics import nmr_at_k
from .recording import FileRecording, LiveRecording, Recording
from .saliency import ISS_METHODS, METHODS
from .saliency.iss import ISSConfig
from .saliency.pooled import PooledMaps
from .saliency.temporal import EpisodeSaliency, pooled_result


@dataclass(frozen=True)
class RunSettings:
    """What the next rollout uses; ``instruction`` None means the task's own words."""

    policy: str = "reference"
    scene: str = "tabletop"
    task: str = ""
    variant: str = ""
    seed: int = 0
    instruction: str | None = None
    device: str = "auto"


@dataclass(frozen=True)
class SaliencySettings:
    """How overlays are computed and shown. ``key()`` names a cache entry: maps made with
    different parameters never mix."""

    method: str = "iss"
    n_masks: int = 100
    p_keep: float = 0.3
    sigma: float = 10.0
    grid: int = 7
    estimator: str = "toolkit-improved"
    seed: int = 0
    opacity: float = 0.5
    k: float = 10.0
    live: bool = False
    budget: int = 10  # live mode: forward passes per step (budget - 1 masks), pooled in time

    def iss_config(self) -> ISSConfig:
        cfg = ISSConfig(n_masks=self.n_masks, grid=self.grid, p_keep=self.p_keep,
                        sigma=self.sigma, estimator=self.estimator, seed=self.seed)
        cfg.check()
        return cfg

    def key(self) -> str:
        return self._key(f"n{self.n_masks}")

    def live_key(self) -> str:
        """The cache entry of live maps: every step at ``budget`` passes, pooled in time."""
        return self._key(f"live{self.budget}")

    def _key(self, masks: str) -> str:
        if self.method in ISS_METHODS:
            return (f"{self.method}-{self.estimator}:{masks}:p{self.p_keep:g}"
                    f":g{self.grid}:s{self.sigma:g}:seed{self.seed}")
        return self.method

    def for_live_step(self, t: int) -> SaliencySettings:
        """The per-frame settings of step ``t`` in live mode (temporal.step_config)."""
        if self.method not in ISS_METHODS:
            return self
        return replace(self, n_masks=self.budget - 1, seed=self.seed + t)

    def check(self) -> None:
        if self.method not in METHODS:
            raise VLAScopeError(f"unknown saliency method '{self.method}' "
                                f"(known: {', '.join(METHODS)})")
        if not 0.0 <= self.opacity <= 1.0:
            raise VLAScopeError("overlay opacity must be in [0, 1]")
        if not 0 < self.k <= 100:
            raise VLAScopeError(f"k must be in (0, 100], got {self.k}")
        if self.budget < 2:
            raise VLAScopeError("the live budget needs at least 2 forward passes per step "
                                "(the unperturbed action and one mask)")
        self.iss_config()


@dataclass
class Workspace:
    """Everything the docks show. Change it through the methods so events fire."""

    run: RunSettings = field(default_factory=RunSettings)
    saliency: SaliencySettings = field(default_factory=SaliencySettings)

    def __post_init__(self) -> None:
        self.recording: Recording | None = None
        self.step = 0
        self.playing = False
        self.interventions: list[dict[str, Any]] = []
        # A/B: the other run (A), shown beside the shown episode (B) at the same step, and
        # its executed actions, drawn under B's on the timeline
        self.comparison: FileRecording | None = None
        self.baseline: np.ndarray | None = None
        self.baseline_path: str | None = None
        self._comparison_maps: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self.policy_label = ""
        self.device = ""
        self._maps: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self._nmr: dict[tuple[str, int, float], float | None] = {}
        # live maps: every step explained at a budget and pooled in time (saliency.pooled);
        # a step's pooled map is made when it arrives and refined on demand once the
        # rollout pauses (then the later steps it did not see yet are in)
        self._live: PooledMaps | None = None
        self._live_key = ""
        self._live_seen: dict[int, int] = {}  # step -> how many steps its map had seen
        self._annotation: RegionAnnotation | None = None
        self.run_changed = Event("run_changed")
        self.saliency_settings_changed = Event("saliency_settings_changed")
        self.recording_changed = Event("recording_changed")
        self.steps_appended = Event("steps_appended")
        self.step_changed = Event("step_changed")
        self.saliency_changed = Event("saliency_changed")
        self.interventions_changed = Event("interventions_changed")
        self.baseline_changed = Event("baseline_changed")
        self.playing_changed = Event("playing_changed")
        self.policy_loaded = Event("policy_loaded")
        self.regions_changed = Event("regions_changed")  # set of (camera, step) edited
        self.open_loop_changed = Event("open_loop_changed")  # a policy's name
        # a damaged part of the shown file, found while reading it (message); once each
        self.file_damaged = Event("file_damaged")
        self._damage_told: set[str] = set()

    # settings ---------------------------------------------------------------------------
    def update_run(self, **changes: Any) -> None:
        new = replace(self.run, **changes)
        if new != self.run:
            self.run = new
            self.run_changed.emit(new)

    def update_saliency(self, **changes: Any) -> None:
        new = replace(self.saliency, **changes)
        new.check()
        if new != self.saliency:
            self.saliency = new
            self.saliency_settings_changed.emit(new)

    def set_playing(self, playing: bool) -> None:
        if playing != self.playing:
            self.playing = playing
            self.playing_changed.emit(playing)
            if not playing and self.live_steps():  # live maps refine now: redraw them
                self.saliency_changed.emit(self.step)

    def set_policy_loaded(self, label: str, device: str) -> None:
        self.policy_label, self.device = label, device
        self.policy_loaded.emit(label, device)

    # recordings -------------------------------------------------------------------------
    def _replace_recording(self, rec: Recording | None) -> None:
        if self.recording is not None and self.recording is not rec:
            self.recording.close()
        self.recording = rec
        self._maps.clear()
        self._nmr.clear()
        self._live, self._live_key, self._live_seen = None, "", {}
        self._damage_told.clear()
        self._annotation = None
        self.step = 0
        self.interventions = list(rec.metadata.get("interventions", [])) if rec else []
        self._drop_comparison()
        self.recording_changed.emit(rec)
        self.baseline_changed.emit(None)
        self.interventions_changed.emit(self.interventions)
        self.step_changed.emit(self.step)

    def begin_live(self, metadata: dict[str, Any], cameras: list[str],
                   path: str | Path | None,
                   preview: dict[str, np.ndarray] | None = None,
                   preview_display: dict[str, np.ndarray] | None = None) -> LiveRecording:
        rec = LiveRecording(metadata, cameras, path)
        rec.preview = dict(preview or {})
        rec.preview_display = dict(preview_display or {})
        self._replace_recording(rec)
        return rec

    def append_step(self, record: StepRecord) -> None:
        """A new step of the live rollout; the cursor follows when it was at the end."""
        rec = self.recording
        if not isinstance(rec, LiveRecording):
            raise VLAScopeError("no live rollout to append to")
        follow = rec.n_steps == 0 or self.step >= rec.n_steps - 1
        rec.append(record)
        if self._annotation is not None:
            self._annotation.set_n_steps(rec.n_steps)
        self.steps_appended.emit(rec.n_steps)
        if follow:
            self.step = rec.n_steps - 1
            self.step_changed.emit(self.step)

    def open_episode(self, path: str | Path) -> FileRecording:
        """Show an episode file; its saved region edits are checked first, so an edit that
        does not fit it (size, camera, step) refuses the open instead of vanishing."""
        rec = FileRecording(path)
        try:
            AnnotationStore(annotation_dir(rec.path)).load(episode_shapes(rec), rec.n_steps)
        except VLAScopeError:
            rec.close()
            raise
        self._replace_recording(rec)
        return rec

    def put_open_loop(self, name: str, actions: np.ndarray) -> None:
        """A policy's open-loop actions on the shown episode's frames, just stored in its
        file (open_loop.py): drawn without reopening it (the cursor and maps stay)."""
        if not isinstance(self.recording, FileRecording):
            raise VLAScopeError("open-loop actions belong to an episode file")
        self.recording.add_open_loop(name, actions)
        self.open_loop_changed.emit(name)

    def live_published(self, path: str | None) -> None:
        """The live rollout's file is complete on disk."""
        if isinstance(self.recording, LiveRecording) and path:
            self.recording.path = Path(path)
            self.recording_changed.emit(self.recording)

    # cursor -----------------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        return self.recording.n_steps if self.recording is not None else 0

    def set_step(self, t: int) -> None:
        if self.recording is None or self.n_steps == 0:
            return
        t = int(np.clip(t, 0, self.n_steps - 1))
        if t != self.step:
            self.step = t
            self.step_changed.emit(t)

    # saliency ---------------------------------------------------------------------------
    def maps_at(self, t: int | None = None) -> dict[str, np.ndarray] | None:
        """Maps of step ``t`` (default: current) for the current settings, if computed: its
        own (explained frame, or stored in the file), else its live map."""
        found = self._maps_with_key(self.step if t is None else t)
        return found[1] if found else None

    def frame_maps_at(self, t: int | None = None) -> dict[str, np.ndarray] | None:
        """The step's own maps at the settings' N (not a live map)."""
        t = self.step if t is None else t
        key = (self.saliency.key(), t)
        if key not in self._maps and self.recording is not None and 0 <= t < self.n_steps:
            try:
                stored = self.recording.stored_saliency(self._stored_name(), t)
            except VLAScopeError as e:  # e.g. non-finite maps: shown as none, said once
                stored = None
                if str(e) not in self._damage_told:
                    self._damage_told.add(str(e))
                    self.file_damaged.emit(str(e))
            if stored:
                self._maps[key] = stored
        return self._maps.get(key)

    def _maps_with_key(self, t: int) -> tuple[str, dict[str, np.ndarray]] | None:
        own = self.frame_maps_at(t)
        if own is not None:
            return self.saliency.key(), own
        key = self.saliency.live_key()
        if self._live is None or key != self._live_key or t not in self._live.raw:
            return None
        if not self.playing and self._live_seen.get(t) != len(self._live.raw):
            self._refine_live(t)  # later steps arrived since: pool them in now
        return key, self._maps[(key, t)]

    def _refine_live(self, t: int) -> None:
        assert self._live is not None
        self._maps[(self._live_key, t)] = self._live.map_at(t)
        self._live_seen[t] = len(self._live.raw)
        self._nmr = {k: v for k, v in self._nmr.items() if k[:2] != (self._live_key, t)}

    def _stored_name(self) -> str:
        from .saliency.methods import stored_name  # torch-free callers never reach here

        return stored_name(self.saliency.method, self.saliency.iss_config())

    def put_maps(self, t: int, key: str, maps: dict[str, np.ndarray]) -> None:
        self._maps[(key, t)] = {c: np.asarray(m, np.float32) for c, m in maps.items()}
        self._nmr = {k: v for k, v in self._nmr.items() if k[:2] != (key, t)}
        self.saliency_changed.emit(t)

    def put_live_maps(self, t: int, key: str, maps: dict[str, np.ndarray]) -> None:
        """A live step's own few-mask maps: pooled with the steps so far and shown."""
        if self._live is None or key != self._live_key:
            noisy = self.saliency.method in ISS_METHODS  # the others: exact maps
            self._live, self._live_key, self._live_seen = (
                PooledMaps(None if noisy else 0.0), key, {})
        self._live.add(t, maps)
        self._refine_live(t)
        self.saliency_changed.emit(t)

    def live_steps(self) -> list[int]:
        """Steps with live maps for the current settings."""
        if self._live is None or self.saliency.live_key() != self._live_key:
            return []
        return self._live.steps

    def live_episode_saliency(self) -> EpisodeSaliency | None:
        """The shown rollout's live maps, each pooled with every step, and how they were
        made, to store in its file; None unless every step has one."""
        steps = self.live_steps()
        if not steps or steps != list(range(self.n_steps)):
            return None
        assert self._live is not None
        s = self.saliency
        return pooled_result(self._stored_name(), s.iss_config(), s.budget, self._live)

    def live_bandwidth(self) -> float | None:
        """The pooling the live maps use now (steps), None without live maps."""
        return self._live.bandwidth if self.live_steps() else None

    def cached_steps(self) -> list[int]:
        key = self.saliency.key()
        return sorted({t for k, t in self._maps if k == key} | set(self.live_steps()))

    # region annotation -----------------------------------------------------------------
    @property
    def annotation(self) -> RegionAnnotation | None:
        """The region annotation of the shown rollout (seeded from its ground truth, edits
        autosaved beside its file), made on first use; None before the first step."""
        rec = self.recording
        if self._annotation is None and rec is not None and rec.n_steps > 0:
            shapes = {c: tuple(rec.frame(0, c).shape[:2]) for c in rec.cameras}
            store = AnnotationStore(annotation_dir(rec.path)) if rec.path is not None else None
            self._annotation = RegionAnnotation(rec.cameras, shapes, rec.n_steps, rec.regions,
                                                rec.segments, store)
            self._annotation.listeners.append(self._regions_edited)
        return self._annotation

    def _regions_edited(self, frames: set[tuple[str, int]]) -> None:
        steps = {t for _c, t in frames}
        self._nmr = {k: v for k, v in self._nmr.items() if k[1] not in steps}
        self.regions_changed.emit(frames)

    def regions_at(self, t: int | None = None) -> dict[str, np.ndarray] | None:
        """Region labels of a step: the ground truth with the user's edits on top; None when
        there is neither."""
        t = self.step if t is None else t
        if self.recording is None or not 0 <= t < self.n_steps:
            return None
        ann = self.annotation  # its seed is the recording's map, read once and cached
        if ann is None:
            return self.recording.regions(t)
        if not ann.has_ground_truth(t) and all(ann.edit(c, t) is None for c in ann.cameras):
            return None
        return ann.labels_at(t)

    def nmr_episode(self) -> tuple[float | None, int]:
        """Mean NMR@k over the steps that have maps and labels -> (mean or None, steps)."""
        values = [v for t in range(self.n_steps)
                  if (v := self.nmr_at(t)) is not None and not np.isnan(v)]
        return (float(np.mean(values)) if values else None), len(values)

    def nmr_at(self, t: int | None = None) -> float | None:
        """NMR@k of a step from its maps and region labels; None when either is missing,
        NaN when the map is flat (the policy ignored every perturbation)."""
        t = self.step if t is None else t
        found = self._maps_with_key(t)
        if found is None or self.recording is None:
            return None
        key, maps = found
        memo = (key, t, self.saliency.k)
        if memo in self._nmr:
            return self._nmr[memo]
        regions = self.regions_at(t)
        value = None
        if regions and all(c in regions for c in maps):
            if all(np.ptp(m) == 0 for m in maps.values()):
                value = float("nan")  # a flat map has no top k%: NMR is undefined
            else:
                value = float(nmr_at_k(maps, {c: regions[c] for c in maps}, self.saliency.k))
        self._nmr[memo] = value
        return value

    # comparison (A|B) -------------------------------------------------------------------
    def set_comparison(self, other: FileRecording | None) -> None:
        """Show the opened episode ``other`` as run A beside the shown episode (B): frames
        and overlays at the same step, its actions under B's on the timeline (the workspace
        closes it when done with it); None ends the comparison."""
        self._drop_comparison()
        if other is not None:
            self.comparison = other
            self.baseline = other.actions()
            self.baseline_path = str(other.path)
        self.baseline_changed.emit(self.baseline)

    def _drop_comparison(self) -> None:
        if self.comparison is not None:
            self.comparison.close()
        self.comparison, self.baseline, self.baseline_path = None, None, None
        self._comparison_maps.clear()

    def comparison_step(self, t: int | None = None) -> int | None:
        """Run A's step shown beside B's step ``t``: the same, or A's last when A ended
        sooner (None without a comparison)."""
        if self.comparison is None or self.comparison.n_steps == 0:
            return None
        return min(self.step if t is None else t, self.comparison.n_steps - 1)

    def comparison_maps_at(self, t: int | None = None) -> dict[str, np.ndarray] | None:
        """Run A's maps beside B's step ``t`` for the current settings: computed here, or
        stored in A's file."""
        s = self.comparison_step(t)
        if s is None:
            return None
        key = (self.saliency.key(), s)
        if key not in self._comparison_maps:
            try:
                stored = self.comparison.stored_saliency(self._stored_name(), s)
            except VLAScopeError:
                stored = None
            if not stored:
                return None
            self._comparison_maps[key] = stored
        return self._comparison_maps[key]

    def put_comparison_maps(self, t: int, key: str, maps: dict[str, np.ndarray]) -> None:
        """Maps of run A's step ``t`` (computed when B's step was explained)."""
        self._comparison_maps[(key, t)] = {c: np.asarray(m, np.float32)
                                           for c, m in maps.items()}
        self.saliency_changed.emit(self.step)

    # interventions ----------------------------------------------------------------------
    def add_intervention(self, intervention: dict[str, Any]) -> None:
        self.interventions.append(dict(intervention))
        self.interventions_changed.emit(self.interventions)

    def state(self) -> dict[str, Any]:
        """Settings to persist between sessions."""
        return {"run": asdict(self.run), "saliency": asdict(self.saliency)}

    def restore(self, state: dict[str, Any]) -> None:
        """Apply persisted settings, ignoring what no longer fits (a renamed field)."""
        for attr, cls, event in (("run", RunSettings, self.run_changed),
                                 ("saliency", SaliencySettings, self.saliency_settings_changed)):
            known = {f for f in cls.__dataclass_fields__}
            values = {k: v for k, v in (state.get(attr) or {}).items() if k in known}
            try:
                new = cls(**{**asdict(getattr(self, attr)), **values})
                if isinstance(new, SaliencySettings):
                    new.check()
            except (TypeError, ValueError, VLAScopeError):
                continue
            setattr(self, attr, new)
            event.emit(new)
