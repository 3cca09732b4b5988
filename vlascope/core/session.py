"""The live side of the inspector: the loaded scene and policy, the running rollout, and
saliency of a frame. The GUI's worker owns one and calls it from its own thread only
(MuJoCo's offscreen GL context belongs to the thread that made it); scripts use it directly.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .episode import fit_observation, safe_name
from .errors import VLAScopeError
from .features import FeatureSet, capture_frames, describe, train_features, visual_positions
from .live import LiveRollout, StepRecord
from .plugins import PluginRegistry, accepts
from .policy import HookPointInfo, Observation, hook_points
from .sae import load_sae, save_sae
from .scene import Scene
from .workspace import RunSettings, SaliencySettings

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


def default_recordings_dir() -> Path:
    """Where the inspector records rollouts unless told otherwise."""
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data_home / "vlascope" / "recordings"


class Session:
    """Scene + policy + the current rollout. Not thread-safe by design (see module doc)."""

    def __init__(self, registry: PluginRegistry | None = None,
                 record_dir: str | Path | None = None):
        self.registry = registry if registry is not None else PluginRegistry.discover()
        self.record_dir = Path(record_dir) if record_dir is not None else default_recordings_dir()
        self.scene: Scene | None = None
        self.scene_name = ""
        self.policy: Any = None
        self.policy_key: tuple = ()
        self.live: LiveRollout | None = None
        self._explainers: dict[tuple, Callable] = {}
        self.code_allowed: set[str] = set()  # checkpoint folders whose own code may run
        # Options a policy plugin is built with besides device and weights, by plugin name
        # (the remote plugin's url, token, timeout): jobs that only name the policy get the
        # policy the user connected to, not the plugin's defaults.
        self.policy_options: dict[str, dict[str, Any]] = {}
        self._replay: Scene | None = None  # the free camera's own scene (never the live one)

    def allow_code(self, folder: str | Path) -> None:
        """The user allowed this checkpoint folder's own code (asked after the adapter
        raised CheckpointCodeRequired); later loads of it pass ``trust_remote_code``."""
        self.code_allowed.add(str(Path(folder).expanduser().resolve()))

    def free_camera_model(self, metadata: dict[str, Any]) -> Any:
        """The simulator model of a rollout for the free camera, from a scene of its kind
        kept apart from the live one (it is reset to the rollout's task, seed and variant,
        which a running rollout must not see); see core/free_camera.py."""
        from .free_camera import replay_model

        name = str(metadata.get("scene", ""))
        if self._replay is None or self._replay.name != name:
            if self._replay is not None:
                self._replay.close()
                self._replay = None
            self._replay = self.registry.create_scene(name)
        return replay_model(self._replay, metadata)

    # loading ----------------------------------------------------------------------------
    def load_scene(self, name: str) -> Scene:
        if self.scene is None or name != self.scene_name:
            self.stop()
            scene = self.registry.create_scene(name)
            if self.scene is not None:
                self.scene.close()
            self.scene, self.scene_name = scene, name
        return self.scene

    def load_policy(self, name: str, device: str = "auto", weights: str | None = None) -> Any:
        """Build a policy plugin (cached while name, device, weights and the plugin's
        ``policy_options`` stay the same)."""
        extra = dict(self.policy_options.get(name, {}))
        key = (name, device, weights, tuple(sorted(extra.items())))
        if self.policy is None or key != self.policy_key:
            entry = self.registry.get("policy", name)
            options: dict[str, Any] = dict(extra)
            if device != "auto" and accepts(entry.factory, "device"):
                options["device"] = device
            if weights is not None:  # the registry says so if the policy takes none
                options["weights"] = weights
                if str(Path(weights).expanduser().resolve()) in self.code_allowed:
                    options["trust_remote_code"] = True
            policy = self.registry.create_policy(name, **options)
            self.stop()
            self.policy, self.policy_key = policy, key
            self._explainers.clear()
        return self.policy

    def policy_hook_points(self) -> list[HookPointInfo]:
        return hook_points(self.policy) if self.policy is not None else []

    def policy_device(self) -> str:
        dev = getattr(self.policy, "device", None)
        return str(dev) if dev is not None else "cpu"

    # rollouts ---------------------------------------------------------------------------
    def start(self, run: RunSettings, weights: str | None = None,
              record: bool = True, interventions: Sequence[dict] = (),
              display_size: tuple[int, int] | None = None,
              record_display: bool = False) -> LiveRollout:
        """Reset scene and policy for a new rollout (the previous one is published first);
        ``interventions`` (e.g. the steering sliders' settings) act from its first step;
        ``display_size`` asks for a display render per step (``record_display``: also in
        the episode file)."""
        self.stop()
        scene = self.load_scene(run.scene)
        policy = self.load_policy(run.policy, run.device, weights)
        task = run.task or scene.tasks()[0].name
        path = None
        if record:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            variant = scene.variant(run.variant or None).name
            stem = f"{stamp}_{safe_name(task)}_{safe_name(variant)}_seed{run.seed}"
            path = self.record_dir / f"{stem}.h5"
            n = 2
            while path.exists():  # two rollouts in one second must not overwrite
                path, n = self.record_dir / f"{stem}-{n}.h5", n + 1
        self.live = LiveRollout(scene, policy, task, run.seed, run.variant or None,
                                record_to=path, policy_name=run.policy,
                                instruction=run.instruction or None, render_all=True,
                                interventions=list(interventions),
                                record_display=record_display)
        self.live.display_size = display_size
        return self.live

    def step(self, display_size: tuple[int, int] | None = None) -> StepRecord:
        """One step of the running rollout, with a display render at ``display_size``."""
        if self.live is None:
            raise VLAScopeError("no rollout is running; press play or reset first")
        self.live.display_size = display_size
        return self.live.step()

    def set_interventions(self, interventions: Sequence[dict]) -> list[dict] | None:
        """What acts on the running rollout from its next step; returns the rollout's
        interventions with their step windows (None: no rollout is running)."""
        if self.live is None:
            return None
        self.live.set_interventions(interventions)
        return list(self.live.interventions)

    def train_features(self, observations: Sequence[Observation], layer: str, *,
                       expansion: int, k: int, steps: int, task: str = "",
                       phases: Sequence[str] | None = None,
                       progress: Callable | None = None, train_progress: Callable | None = None,
                       should_cancel: Callable[[], bool] | None = None) -> FeatureSet:
        """Capture ``layer`` over the frames, train an SAE on it, save the SAE (steering
        refers to it by path, so an episode that used it can be re-run) and describe it."""
        samples = capture_frames(self.policy, self.fit(observations), layer,
                                 progress=progress, should_cancel=should_cancel)
        features = train_features(samples, self.policy.visual_token_layout(),
                                  visual_positions(self.policy, layer), expansion=expansion,
                                  k=k, steps=steps, task=task, phases=phases,
                                  progress=train_progress, should_cancel=should_cancel)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        features.path = str(save_sae(features.sae, self.record_dir / "saes" /
                                     f"{stamp}_{safe_name(layer)}"))
        return features

    def describe_features(self, path: str, observations: Sequence[Observation],
                          task: str = "", phases: Sequence[str] | None = None,
                          progress: Callable | None = None,
                          should_cancel: Callable[[], bool] | None = None,
                          layer: str = "") -> FeatureSet:
        """A saved SAE, described on these frames (its layer is captured again). An
        Action Atlas checkpoint reads the hook point its layer name maps to on this policy,
        else ``layer`` (the dock's layer picker)."""
        sae = load_sae(path, policy=getattr(self.policy, "family", None))
        if "atlas" in sae.metadata and sae.cfg.layer not in self.policy.layers():
            if not layer:
                raise VLAScopeError(
                    f"vlascope knows no hook point of {getattr(self.policy, 'family', '?')} "
                    f"for Action Atlas' layer '{sae.cfg.layer}'; pick the layer and load again")
            sae = load_sae(path, layer=layer)
        samples = capture_frames(self.policy, self.fit(observations), sae.cfg.layer,
                                 progress=progress, should_cancel=should_cancel)
        features = describe(sae, samples, self.policy.visual_token_layout(),
                            visual_positions(self.policy, sae.cfg.layer), task, phases=phases)
        features.path = str(path)
        return features

    def feature_effects(self, features: FeatureSet, observations: Sequence[Observation],
                        which: Sequence[int], tick: Callable[[], None] | None = None,
                        should_cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """Largest action change over the frames when each feature alone is ablated."""
        from .experiments import ablation_effects

        return ablation_effects(self.policy, self.fit(observations), sae=features.path,
                                layer=features.layer, features=list(which), tick=tick,
                                should_cancel=should_cancel)

    def fit(self, observations: Sequence[Observation]) -> list[Observation]:
        """Recorded observations at the loaded policy's image size (a dataset's frames are
        larger; the maps come back at the policy's size and are drawn upsampled)."""
        size = getattr(self.policy, "image_size", None)
        return [fit_observation(obs, size) for obs in observations]

    def stop(self) -> str | None:
        """Publish the running rollout's recording (also when stopped midway)."""
        live, self.live = self.live, None
        return live.close() if live is not None else None

    # saliency ---------------------------------------------------------------------------
    def explain(self, obs: Observation, settings: SaliencySettings,
                reference_frames: Sequence[Observation] = (),
                progress: ProgressFn | None = None,
                should_cancel: CancelFn | None = None) -> dict[str, Any]:
        """Saliency maps of one frame for the current policy, per camera it reads."""
        from .saliency.iss import pixel_iss, token_iss, visual_token_mean
        from .saliency.methods import explainer

        if self.policy is None:
            raise VLAScopeError("load a policy before computing saliency")
        settings.check()
        cfg = settings.iss_config()
        obs = self.fit([obs])[0]
        reference_frames = self.fit(reference_frames)
        cams = [c for c in (getattr(self.policy, "cameras", None) or obs.images)
                if c in obs.images]
        size = getattr(self.policy, "image_size", None)
        if size is not None:
            obs.check_images(tuple(size))
        if settings.method == "iss":
            result = pixel_iss(self.policy, obs, cfg, cameras=cams, progress=progress,
                               should_cancel=should_cancel)
        elif settings.method == "token-iss":
            if not reference_frames:
                raise VLAScopeError("token ISS needs recorded frames for the mean token")
            key = ("mean-token", len(reference_frames))
            if key not in self._explainers:
                self._explainers[key] = visual_token_mean(self.policy, reference_frames,
                                                          cfg.batch_size)
            result = token_iss(self.policy, obs, self._explainers[key], cfg,
                               progress=progress, should_cancel=should_cancel)
        else:
            result = explainer(self.policy, settings.method, cfg)(obs, cams)
            if progress is not None:
                progress(1, 1)
        return {"maps": result.maps, "key": settings.key(), "n_forward": result.n_forward}

    def close(self) -> None:
        self.stop()
        for scene in (self.scene, self._replay):
            if scene is not None:
                scene.close()
        self.scene = self._replay = None
        close = getattr(self.policy, "close", None)
        if callable(close):  # a served policy: its connection (and a server we started) ends
            self.policy = None
            with contextlib.suppress(Exception):  # a dead link: nothing to end
                close()
