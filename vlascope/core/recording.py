"""What the timeline scrubs: a rollout still running (kept in memory as it is recorded to
disk) or an episode file. Both answer the same questions, so every view reads one API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .episode import Episode, episode_observation
from .errors import VLAScopeError
from .live import StepRecord
from .paths import HandPath, hand_path_at, path_pixels
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

    def action_chunk(self, t: int) -> np.ndarray:
        """(H, action_dim) the chunk step ``t``'s action came from."""
        raise NotImplementedError

    def open_loop_actions(self) -> dict[str, np.ndarray]:
        """Per policy, (T, action_dim) the action it predicts on each recorded frame (the
        first of its chunk; see open_loop.py); empty where none were computed."""
        return {}

    def chunk_index(self, t: int) -> int:
        """The position of step ``t``'s action in its chunk (0: predicted at ``t``)."""
        raise NotImplementedError

    # The planned-vs-executed path; None where it was not recorded.
    def hand_path(self, t: int) -> HandPath | None:
        return None

    def camera_matrix(self, t: int, camera: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        """The camera's (3, 4) projection at step ``t`` and the image size it is for."""
        return None

    def sim_state(self, t: int) -> np.ndarray | None:
        """The simulator's state at step ``t`` (the free camera re-renders it); None where
        it was not recorded (an older episode, a scene that cannot restore a state)."""
        return None

    def planned_path(self, t: int, sizes: dict[str, tuple[int, int]] | None = None,
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """Per camera (planned (H + 1, 2), executed (M, 2)) pixel coordinates of the hand
        path of the chunk step ``t`` executes, in the camera's image at step ``t`` (scaled
        to ``sizes[camera]`` = (H, W) where the shown image has another size); None when
        the recording has no path (an older episode, a scene without the capability)."""
        path = self.hand_path(self.check_step(t))
        if path is None:
            return None
        out = {}
        for cam in self.cameras:
            found = self.camera_matrix(t, cam)
            if found is not None:
                matrix, size = found
                out[cam] = path_pixels(path, matrix, size, (sizes or {}).get(cam))
        return out or None

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

    def action_chunk(self, t: int) -> np.ndarray:
        return np.asarray(self.steps[self.check_step(t)].action_chunk)

    def chunk_index(self, t: int) -> int:
        return int(self.steps[self.check_step(t)].chunk_index)

    def hand_path(self, t: int) -> HandPath | None:
        step = self.steps[self.check_step(t)]
        if step.planned_hand is None:
            return None
        origin = max(0, t - step.chunk_index)
        stop = min(len(self.steps), origin + len(step.planned_hand))
        hands = [s.hand for s in self.steps[origin:stop]]
        if any(h is None for h in hands):
            return None
        return HandPath(origin, np.asarray(step.planned_hand, np.float64),
                        np.asarray(hands, np.float64).reshape(-1, 3))

    def sim_state(self, t: int) -> np.ndarray | None:
        return self.steps[self.check_step(t)].sim_state

    def camera_matrix(self, t: int, camera: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        step = self.steps[self.check_step(t)]
        matrix = (step.camera_matrices or {}).get(camera)
        image = step.observation.images.get(camera)
        if matrix is None or image is None:
            return None
        return matrix, image.shape[:2]


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
        self._chunks = self.episode.action_chunks()
        self._chunk_index = self.episode.chunk_indices()
        self._hands = self._planned = None
        self._matrices: dict[str, np.ndarray] = {}
        if self.episode.has_paths():
            self._hands = self.episode.hand_positions()
            self._planned = self.episode.planned_hands()
            self._matrices = {c: self.episode.camera_matrices(c)
                              for c in self.episode.matrix_cameras() if c in self.cameras}
        self._has_sim_state = self.episode.has_sim_state()
        self._frame_size = {c: self.episode.frame(0, c).shape[:2] for c in self.cameras}
        self._open_loop = {name: self.episode.open_loop(name)[:, 0]
                           for name in self.episode.open_loop_names()}

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

    def action_chunk(self, t: int) -> np.ndarray:
        return self._chunks[self.check_step(t)]

    def chunk_index(self, t: int) -> int:
        return int(self._chunk_index[self.check_step(t)])

    def open_loop_actions(self) -> dict[str, np.ndarray]:
        return dict(self._open_loop)

    def add_open_loop(self, name: str, actions: np.ndarray) -> None:
        """Predictions just stored in the file (the newest is drawn)."""
        self._open_loop.pop(name, None)
        self._open_loop[name] = np.asarray(actions)

    def hand_path(self, t: int) -> HandPath | None:
        if self._planned is None:
            return None
        t = self.check_step(t)
        return hand_path_at(t, self.chunk_index(t), self._planned[t], self._hands)

    def camera_matrix(self, t: int, camera: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        if camera not in self._matrices:
            return None
        return self._matrices[camera][self.check_step(t)], self._frame_size[camera]

    def sim_state(self, t: int) -> np.ndarray | None:
        return self.episode.sim_state(self.check_step(t)) if self._has_sim_state else None

    def stored_saliency(self, name: str, t: int) -> dict[str, np.ndarray] | None:
        cams = self.episode.saliency_cameras(name)
        if not cams:
            return None
        return {c: self.episode.saliency(name, c, self.check_step(t)) for c in cams}

    def close(self) -> None:
        self.episode.close()
