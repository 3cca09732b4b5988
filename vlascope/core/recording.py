"""What the timeline scrubs: a rollout still running (kept in memory as it is recorded to
disk) or an episode file. Both answer the same questions, so every view reads one API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .episode import Episode, episode_observation
from .errors import VLAScopeError
from .live import StepRecord
from .policy import Observation

DISPLAY_BUDGET = 1 << 30  # bytes of display renders a live recording keeps in memory


class Recording:
    """Base: per-step frames, regions, actions and success of one rollout."""

    metadata: dict[str, Any]
    cameras: list[str]
    path: Path | None = None

    @property
    def n_steps(self) -> int:
        raise NotImplementedError

    def frame(self, t: int, camera: str) -> np.ndarray:
        raise NotImplementedError

    def regions(self, t: int) -> dict[str, np.ndarray] | None:
        raise NotImplementedError

    def display_frame(self, t: int, camera: str) -> np.ndarray | None:
        """The display render of step ``t`` (None where none was rendered or kept)."""
        return None

    def segments(self, t: int) -> dict[str, np.ndarray] | None:
        """Simulator object ids per pixel, when the scene recorded them."""
        return None

    def segment_names(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in (self.metadata.get("segment_names") or {}).items()}

    def actions(self) -> np.ndarray:
        """(T, action_dim) executed actions."""
        raise NotImplementedError

    def successes(self) -> np.ndarray:
        raise NotImplementedError

    def observation(self, t: int) -> Observation:
        """What the policy saw at step ``t`` (for saliency of a scrubbed frame)."""
        raise NotImplementedError

    def stored_saliency(self, name: str, t: int) -> dict[str, np.ndarray] | None:
        return None

    @property
    def title(self) -> str:
        m = self.metadata
        return f"{m.get('task', '?')} / {m.get('variant', '?')} / seed {m.get('seed', '?')}"

    def check_step(self, t: int) -> int:
        if not 0 <= t < self.n_steps:
            raise VLAScopeError(f"step {t} outside 0..{self.n_steps - 1}")
        return t

    def close(self) -> None:  # noqa: B027 - optional
        """Release the file, if any."""


class LiveRecording(Recording):
    """Steps of a running rollout, appended as the worker produces them."""

    def __init__(self, metadata: dict[str, Any], cameras: list[str],
                 path: str | Path | None = None):
        self.metadata = dict(metadata)
        self.cameras = list(cameras)
        self.path = Path(path) if path is not None else None
        self.steps: list[StepRecord] = []
        self._actions: list[np.ndarray] = []
        # The scene after reset, shown until the first step arrives.
        self.preview: dict[str, np.ndarray] = {}
        self.preview_display: dict[str, np.ndarray] = {}
        self._display_bytes = 0
        self._display_from = 0  # display renders of earlier steps were let go

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def append(self, record: StepRecord) -> None:
        if record.t != len(self.steps):
            raise VLAScopeError(f"step {record.t} arrived after step {len(self.steps) - 1}")
        self.steps.append(record)
        self._actions.append(np.asarray(record.action, np.float32))
        self._keep_display(record)

    def _keep_display(self, record: StepRecord) -> None:
        """Display renders are large (a 480 px frame is 0.7 MB): past DISPLAY_BUDGET bytes
        the oldest are let go, and scrubbing back to them shows the policy's frames."""
        if not record.display:
            return
        self._display_bytes += sum(v.nbytes for v in record.display.values())
        while self._display_bytes > DISPLAY_BUDGET and self._display_from < len(self.steps):
            old = self.steps[self._display_from]
            if old.display:
                self._display_bytes -= sum(v.nbytes for v in old.display.values())
                old.display = None
            self._display_from += 1

    def display_frame(self, t: int, camera: str) -> np.ndarray | None:
        shown = self.steps[self.check_step(t)].display
        return shown.get(camera) if shown else None

    def frame(self, t: int, camera: str) -> np.ndarray:
        return self.steps[self.check_step(t)].observation.images[camera]

    def regions(self, t: int) -> dict[str, np.ndarray] | None:
        return self.steps[self.check_step(t)].regions

    def segments(self, t: int) -> dict[str, np.ndarray] | None:
        return self.steps[self.check_step(t)].segments

    def actions(self) -> np.ndarray:
        if not self._actions:
            return np.zeros((0, int(self.metadata.get("action_dim", 0))), np.float32)
        return np.stack(self._actions)

    def successes(self) -> np.ndarray:
        return np.array([s.success for s in self.steps], bool)

    def observation(self, t: int) -> Observation:
        return self.steps[self.check_step(t)].observation


class FileRecording(Recording):
    """An episode file opened for scrubbing; arrays read once, frames on demand."""

    def __init__(self, path: str | Path):
        self.episode = Episode(path)
        self.path = self.episode.path
        self.metadata = self.episode.metadata
        self.cameras = self.episode.cameras
        if not self.cameras:
            self.episode.close()
            raise VLAScopeError(f"{self.path}: episode has no camera frames to show")
        self._actions = self.episode.actions()
        self._successes = self.episode.successes()
        self._has_regions = self.episode.has_regions()
        self._has_segments = self.episode.has_segments()
        self._display_cameras = set(self.episode.display_cameras)

    @property
    def n_steps(self) -> int:
        return self.episode.n_steps

    def frame(self, t: int, camera: str) -> np.ndarray:
        return self.episode.frame(self.check_step(t), camera)

    def display_frame(self, t: int, camera: str) -> np.ndarray | None:
        if camera not in self._display_cameras:
            return None
        return self.episode.display_frame(self.check_step(t), camera)

    def regions(self, t: int) -> dict[str, np.ndarray] | None:
        if not self._has_regions:
            return None
        return {c: self.episode.regions(self.check_step(t), c) for c in self.cameras}

    def segments(self, t: int) -> dict[str, np.ndarray] | None:
        if not self._has_segments:
            return None
        return {c: self.episode.segments(self.check_step(t), c) for c in self.cameras}

    def actions(self) -> np.ndarray:
        return self._actions

    def successes(self) -> np.ndarray:
        return self._successes

    def observation(self, t: int) -> Observation:
        return episode_observation(self.episode, self.check_step(t), self.cameras, None)

    def stored_saliency(self, name: str, t: int) -> dict[str, np.ndarray] | None:
        cams = self.episode.saliency_cameras(name)
        if not cams:
            return None
        return {c: self.episode.saliency(name, c, self.check_step(t)) for c in cams}

    def close(self) -> None:
        self.episode.close()
