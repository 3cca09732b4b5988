"""What the window's actions do: load, reset, step, play, scrub, explain. Turns user intent
into engine jobs and feeds their results into the workspace, which the docks follow."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from vlascope.core.errors import CheckpointCodeRequired, VLAScopeError
from vlascope.core.live import StepRecord
from vlascope.core.recording import FileRecording, LiveRecording
from vlascope.core.session import Session
from vlascope.core.workspace import Workspace

from .engine import Engine, JobContext


def served_by(policy: Any) -> dict[str, str] | None:
    """Where a policy in another process runs and what it serves (None: in process)."""
    if not callable(getattr(policy, "reconnect", None)) or not getattr(policy, "url", None):
        return None
    served = str(getattr(policy, "policy_id", "?")).removeprefix("remote:")
    if served.startswith("openpi:"):
        served = "openpi server"
    return {"url": str(policy.url), "policy": served,
            "unavailable": str(getattr(policy, "unavailable", "") or ""),
            # a family started in its own environment (vlascope.remote.spawn): its address
            # is a private socket that ends with it
            "environment": str(getattr(policy, "environment", "") or "")}


@dataclass
class StepResult:
    record: StepRecord
    done: bool


class Controller(QObject):
    """The one place where GUI intent meets the worker. Lives on the GUI thread."""

    error = Signal(str, str, str)  # title, message, details
    status = Signal(str)
    saliency_progress = Signal(int, int)  # done, total (0, 0 = idle)
    faithfulness_ready = Signal(int, object)  # step, FaithfulnessCurves of its shown map
    fps_changed = Signal(float)
    policy_state = Signal(str)  # "loading", "ready", "failed"
    policy_hooks = Signal(list)  # HookPointInfo of the loaded policy
    # Why the loaded policy lacks hook points, attention, ... ("" when it lacks nothing it
    # could have: a plain openpi server says why, an in-process policy says nothing).
    policy_unavailable = Signal(str)
    # A policy in another process: "connected", "disconnected" or "" (in process), and a
    # line for the status bar.
    connection = Signal(str, str, str)  # state, status-bar line, why (its tooltip)
    features_progress = Signal(str, int, int, dict)  # phase, done, total, training info
    ab_state = Signal(str)  # "running", "done", "failed", "cancelled"
    video_progress = Signal(str, int, int, str)  # state, done, total, path when done
    ab_ready = Signal(object)  # a Comparison
    features_ready = Signal(object)  # a FeatureSet
    feature_map_ready = Signal(int, int, dict)  # feature, step, camera -> map

    def __init__(self, workspace: Workspace, engine: Engine, parent: QObject | None = None):
        super().__init__(parent)
        self.ws, self.engine = workspace, engine
        self.weights: str | None = None
        self._stepping = False
        self._live_done = True
        self._stamps: deque[float] = deque(maxlen=30)
        self._pending_saliency: set[tuple[str, int]] = set()
        self.steering: list[dict[str, Any]] = []  # interventions the sliders hold
        self._hook_names: set[str] = set()
        # Asked before a checkpoint's own code runs (the window sets a dialog); the answer
        # per folder holds for the session, so the question comes once.
        self.ask_code: Callable[[CheckpointCodeRequired], bool] = lambda e: False
        self._code_answers: dict[str, bool] = {}
        self.engine.on_unhandled_error = lambda m, d: self.error.emit("Worker error", m, d)
        self.engine.connection_lost.connect(self._connection_lost)
        self.served: dict[str, str] | None = None  # url and served policy, when remote
        self.connection_state = ""  # "connected", "disconnected" or "" (in process)
        self.ws.file_damaged.connect(lambda m: self.error.emit("Damaged episode file", m, ""))
        # The Scene dock's render size for a live rollout (None: show the policy's frames)
        # and whether episodes also keep those renders (Run menu).
        self.display_size: tuple[int, int] | None = None
        self.record_display = False

    # helpers ----------------------------------------------------------------------------
    def _fail(self, title: str) -> Callable[[str, str], None]:
        def report(message: str, details: str) -> None:
            self.ws.set_playing(False)
            self._stepping = False
            self.error.emit(title, message, details)
        return report

    @property
    def live(self) -> bool:
        """A rollout is running in the worker and can take more steps."""
        return isinstance(self.ws.recording, LiveRecording) and not self._live_done

    # policy -----------------------------------------------------------------------------
    def load_policy(self, name: str | None = None, weights: str | None = None,
                    device: str | None = None, options: dict[str, Any] | None = None) -> None:
        """Load (or reload) the policy in the worker; ``options`` (the remote plugin's url,
        token, timeout) hold for every later job that loads this plugin. On failure a dialog
        explains why and the previous policy stays in use."""
        name = name or self.ws.run.policy
        device = device or self.ws.run.device
        previous = (self.ws.run.policy, self.ws.run.device, self.weights)
        # Jobs queued from now on (a reset, an explain) use the new policy.
        self.ws.update_run(policy=name, device=device)
        self.weights = weights
        self.policy_state.emit("loading")

        def job_allowing(folder: str | None) -> Callable[[Session, JobContext], Any]:
            def job(session: Session, ctx: JobContext) -> Any:
                if folder is not None:
                    session.allow_code(folder)
                kept, before = session.policy_options.get(name), session.policy
                if options is not None:
                    session.policy_options[name] = dict(options)
                try:
                    policy = session.load_policy(name, device, weights)
                except CheckpointCodeRequired as e:
                    return e  # asked on the GUI thread, then loaded again or not
                except BaseException:
                    if kept is not None:  # the policy still in use keeps its address
                        session.policy_options[name] = kept
                    raise
                if before is not None and before is not policy and served_by(before):
                    with contextlib.suppress(Exception):  # a dead link: nothing to end
                        before.close()  # the server's session for it ends now, not at exit
                return name if weights is None else f"{name} ({Path(weights).name})", \
                    session.policy_device(), session.policy_hook_points(), \
                    served_by(policy)
            return job

        def done(result: Any) -> None:
            if isinstance(result, CheckpointCodeRequired):
                if self._may_run_code(result):
                    self.engine.submit("load-policy", job_allowing(result.folder),
                                       on_done=done, on_error=failed)
                else:
                    failed(f"{result.family}: nothing loaded: {result.folder} ships its own "
                           "code and you chose not to run it (asked once per folder in a "
                           "session; restart the app to be asked again)", "")
                return
            label, dev, hooks, served = result
            if self.steering and {p.name for p in hooks} != self._hook_names:
                self.steering = []  # its hook points belong to the previous policy
                self.status.emit("steering cleared: the new policy has other hook points")
            self._hook_names = {p.name for p in hooks}
            if self.live:  # the worker ended the old policy's rollout: start afresh
                self._live_done = True
                self.reset()
            self.ws.set_policy_loaded(label, dev)
            self.policy_hooks.emit(hooks)
            self.served = served
            self.policy_unavailable.emit(served["unavailable"] if served else "")
            self._show_connection("connected" if served else "")
            self.policy_state.emit("ready")
            self.status.emit(f"policy {label} ready on {dev}")

        def failed(message: str, details: str) -> None:
            self.policy_state.emit("failed")
            if self.ws.run.policy == name:  # back to the policy still in use
                self.ws.update_run(policy=previous[0], device=previous[1])
                self.weights = previous[2]
            self._fail("Could not load the policy")(message, details)

        self.engine.submit("load-policy", job_allowing(None), on_done=done, on_error=failed)

    def connect_remote(self, url: str, token: str = "", timeout: float = 60.0) -> None:
        """Use the policy served at ``url`` (``vlascope serve`` or an openpi server): the
        ``remote`` plugin, loaded in the worker like any other policy."""
        options: dict[str, Any] = {"url": url.strip(), "timeout": float(timeout)}
        if token:
            options["token"] = token
        self.load_policy("remote", options=options)

    def reconnect(self) -> None:
        """A fresh connection to the same server, in the worker (after it went away)."""
        if self.served is None:
            self.status.emit("the loaded policy runs in this process: nothing to reconnect")
            return
        self.status.emit(f"reconnecting to {self.served['url']} ...")

        def job(session: Session, ctx: JobContext) -> None:
            session.policy.reconnect()

        def failed(message: str, details: str) -> None:
            self._show_connection("disconnected", message)
            self.error.emit("Could not reconnect", message, details)

        self.engine.submit("reconnect", job,
                           on_done=lambda _r: self._show_connection("connected"),
                           on_error=failed)

    def _connection_lost(self, message: str) -> None:
        """A job found the server gone: the rollout ends (its steps are published), the
        status bar says so; the job's own error dialog follows."""
        self._show_connection("disconnected", message)
        if self.live:
            self.stop()

    def _show_connection(self, state: str, why: str = "") -> None:
        self.connection_state = state if self.served is not None else ""
        if not state or self.served is None:
            self.connection.emit("", "", "")
            return
        env = self.served.get("environment")
        where = f"Policy: served from the '{env}' environment" if env else \
            f"Policy: remote {self.served['url']}"
        text = f"{where} ({self.served['policy']})" if state == "connected" else \
            f"{where} (disconnected)"
        self.connection.emit(state, text, why)

    def _may_run_code(self, needed: CheckpointCodeRequired) -> bool:
        """The user's answer for this folder: asked the first time, remembered after."""
        if needed.folder not in self._code_answers:
            self._code_answers[needed.folder] = bool(self.ask_code(needed))
        return self._code_answers[needed.folder]

    # rollouts ---------------------------------------------------------------------------
    def reset(self, then_play: bool = False) -> None:
        """Start a fresh rollout with the current run settings (publishing the old one)."""
        self.ws.set_playing(False)
        self.engine.cancel("step")
        run, weights, steering = self.ws.run, self.weights, list(self.steering)
        display, record_display = self.display_size, self.record_display

        def job(session: Session, ctx: JobContext) -> dict[str, Any]:
            old = session.stop()
            live = session.start(run, weights, interventions=steering,
                                 display_size=display, record_display=record_display)
            return {"old": old, "metadata": live.metadata, "cameras": list(live.cameras),
                    "path": str(live.path) if live.path is not None else None,
                    "device": session.policy_device(), "task": live.task,
                    "variant": live.variant, "preview": live.peek(),
                    "preview_display": live.render_display()}

        def done(result: dict[str, Any]) -> None:
            self._live_done = False
            self._stamps.clear()
            self._store_live_maps(result["old"], self.ws.live_episode_saliency())
            self.ws.begin_live(result["metadata"], result["cameras"], result["path"],
                               result["preview"], result["preview_display"])
            self.ws.update_run(task=result["task"], variant=result["variant"])
            if not self.ws.policy_label:
                self.ws.set_policy_loaded(run.policy, result["device"])
            if result["old"]:
                self.status.emit(f"recorded {result['old']}")
            if then_play:
                self.play()

        def failed(message: str, details: str) -> None:
            self._live_done = True  # the worker has no rollout now: play starts a fresh one
            self._fail("Could not start")(message, details)

        self.engine.submit("reset", job, on_done=done, on_error=failed)

    def set_display_size(self, size: tuple[int, int] | None) -> None:
        """The Scene dock's render size from the next step on; the scene as reset is
        rendered again at once, so the first frame is crisp too."""
        self.display_size = size
        rec = self.ws.recording
        if size is None or not self.live or rec is None or rec.n_steps:
            return

        def job(session: Session, ctx: JobContext) -> dict[str, Any] | None:
            if session.live is None or session.live.t:
                return None
            session.live.display_size = size
            return session.live.render_display()

        def done(images: dict[str, Any] | None) -> None:
            if images and self.ws.recording is rec and rec.n_steps == 0:
                rec.preview_display = images
                self.ws.step_changed.emit(self.ws.step)  # the views redraw

        self.engine.submit("preview", job, on_done=done,
                           on_error=lambda m, d: self.status.emit(f"no display render: {m}"))

    def step_once(self) -> None:
        """Simulate one step (starting a rollout when none is running)."""
        if not self.live:
            self.reset()
        if self._stepping:
            return
        self._stepping = True

        display = self.display_size

        def job(session: Session, ctx: JobContext) -> StepResult:
            record = session.step(display)
            return StepResult(record, session.live.done if session.live else True)

        self.engine.submit("step", job, on_done=self._stepped,
                           on_error=self._fail("The rollout failed"),
                           on_cancel=lambda _m: setattr(self, "_stepping", False))

    def _stepped(self, result: StepResult) -> None:
        self._stepping = False
        if self.connection_state == "disconnected":  # the policy answered: the remote
            self._show_connection("connected")      # plugin reconnected on its own
        self._stamps.append(time.perf_counter())
        if len(self._stamps) > 1:
            span = self._stamps[-1] - self._stamps[0]
            self.fps_changed.emit((len(self._stamps) - 1) / span if span > 0 else 0.0)
        if not isinstance(self.ws.recording, LiveRecording):
            return
        self.ws.append_step(result.record)
        if self.ws.saliency.live:
            self.explain_live(result.record.t)
        if result.done:
            self._live_done = True
            self.ws.set_playing(False)
            self.stop()
        elif self.ws.playing:
            self.step_once()

    def play(self) -> None:
        if not self.live:
            self.reset(then_play=True)
            return
        self.ws.set_playing(True)
        if self.ws.step < self.ws.n_steps - 1:
            self.ws.set_step(self.ws.n_steps - 1)
        self.step_once()

    def pause(self) -> None:
        self.ws.set_playing(False)

    def toggle_play(self) -> None:
        self.pause() if self.ws.playing else self.play()

    def stop(self) -> None:
        """Publish the running rollout's recording."""
        self.ws.set_playing(False)
        self._live_done = True

        def done(path: str | None) -> None:
            self.ws.live_published(path)
            if path:
                self.status.emit(f"recorded {path}")
            self._store_live_maps(path, self.ws.live_episode_saliency())

        self.engine.submit("stop", lambda session, ctx: session.stop(), on_done=done,
                           on_error=self._fail("Could not save the recording"))

    def _store_live_maps(self, path: str | None, result) -> None:
        """A published rollout whose every step has a live map keeps them in its file (the
        video export and a later scrub read them there), as `vlascope iss` stores its own."""
        if not path or result is None:
            return
        from vlascope.core.saliency.temporal import store

        def job(session: Session, ctx: JobContext) -> str:
            store(path, result)
            return path

        self.engine.submit("store-live", job,
                           on_done=lambda p: self.status.emit(f"live maps stored in {p}"),
                           on_error=self._fail("Could not store the live maps"))

    # scrubbing --------------------------------------------------------------------------
    def next_step(self) -> None:
        """Right arrow: scrub forward; at the end of a running rollout, simulate a step."""
        if self.ws.step < self.ws.n_steps - 1:
            self.ws.set_step(self.ws.step + 1)
        elif not self.ws.playing:
            self.step_once()

    def previous_step(self) -> None:
        self.pause()
        self.ws.set_step(self.ws.step - 1)

    def first_step(self) -> None:
        self.pause()
        self.ws.set_step(0)

    def last_step(self) -> None:
        self.ws.set_step(self.ws.n_steps - 1)

    def open_episode(self, path: str) -> bool:
        """Show a recorded episode; a bad file gives a dialog and changes nothing."""
        self.pause()
        if self.live:
            self.stop()
        try:
            self.ws.open_episode(path)
        except VLAScopeError as e:
            self.error.emit("Could not open the episode", str(e), "")
            return False
        self.status.emit(f"opened {path}")
        return True

    def import_dataset_episode(self, root: str, index: int, *,
                               on_done: Callable[[str], None],
                               on_progress: Callable[[int, int], None] | None = None,
                               on_end: Callable[[], None] | None = None) -> None:
        """Decode a LeRobot dataset's episode into its linked episode file (the first time;
        afterwards the file is reused) in the worker, then hand its path to ``on_done``."""
        from vlascope.core.linked_episode import import_episode

        def job(session: Session, ctx: JobContext) -> str:
            return str(import_episode(root, index, session.record_dir, progress=ctx.progress,
                                      should_cancel=ctx.cancelled))

        def finish(then: Callable[..., None] | None, *args: Any) -> None:
            if on_end is not None:
                on_end()
            if then is not None:
                then(*args)

        self.engine.submit("import-dataset", job, on_done=lambda p: finish(on_done, p),
                           on_error=lambda m, d: finish(
                               self._fail("Could not read the dataset episode"), m, d),
                           on_progress=on_progress,
                           on_cancel=lambda m: finish(self.status.emit, m))

    def predict_open_loop(self) -> bool:
        """Run the loaded policy on every frame of the shown episode (open loop) in the
        worker, store its chunks in the episode, and show them on the timeline."""
        from vlascope.core.open_loop import read_open_loop, run_open_loop

        rec = self.ws.recording
        if not isinstance(rec, FileRecording):
            self.error.emit("Nothing to predict on", "Open a recorded episode or a dataset "
                            "episode first (File > Open LeRobot dataset...).", "")
            return False
        path, run, weights = rec.path, self.ws.run, self.weights

        def job(session: Session, ctx: JobContext) -> tuple[dict[str, Any], np.ndarray]:
            policy = session.load_policy(run.policy, run.device, weights)
            summary = run_open_loop(path, policy, run.policy, progress=ctx.progress,
                                    should_cancel=ctx.cancelled)
            return summary, read_open_loop(path, summary["name"])

        def done(result: tuple[dict[str, Any], np.ndarray]) -> None:
            summary, actions = result
            if self.ws.recording is rec:  # the user may have opened another meanwhile
                self.ws.put_open_loop(summary["name"], actions)
            how = (f"MSE {summary['mse']:.4g} against the recorded actions"
                   if "mse" in summary else summary.get("not_compared", ""))
            self.status.emit(f"{run.policy} open loop on {Path(path).name}: {how}")

        self._on_saliency_bar("open-loop", job, done, "Open-loop prediction failed")
        return True

    def compare_episodes(self, path_a: str, path_b: str) -> bool:
        """Show episode B with episode A beside it, step by step (an A/B run's baseline is
        A); a file that cannot be read gives a dialog and changes nothing."""
        try:
            other = FileRecording(path_a)  # read before B replaces what is shown
        except VLAScopeError as e:
            self.error.emit("Could not open the episode", str(e), "")
            return False
        if not self.open_episode(path_b):
            other.close()
            return False
        self.ws.set_comparison(other)
        self.status.emit(f"comparing A = {path_a} with B = {path_b}")
        return True

    # saliency ---------------------------------------------------------------------------
    def explain(self, t: int | None = None) -> None:
        """Compute the overlay of step ``t`` (default: current) unless cached or queued."""
        self._explain(t, live=False)

    def explain_live(self, t: int | None = None) -> None:
        """Live mode: step ``t`` at the live budget of forward passes, pooled in time with
        the steps explained so far (it shows at once and is refined as more arrive)."""
        self._explain(t, live=True)

    def _explain(self, t: int | None, live: bool) -> None:
        rec = self.ws.recording
        if rec is None or rec.n_steps == 0:
            self.status.emit("nothing to explain yet: run or open an episode")
            return
        t = self.ws.step if t is None else t
        settings = self.ws.saliency
        key = (settings.live_key() if live else settings.key(), t)
        done_already = (t in self.ws.live_steps()) if live else (
            self.ws.frame_maps_at(t) is not None)
        if done_already or key in self._pending_saliency:
            return
        obs = rec.observation(t)
        refs = ([rec.observation(i) for i in range(0, rec.n_steps,
                                                   max(1, rec.n_steps // 16))]
                if settings.method == "token-iss" else [])
        weights = self.weights
        run = self.ws.run
        computed = settings.for_live_step(t) if live else settings
        self._pending_saliency.add(key)
        # comparing A|B: A's frame beside this step is explained with the same settings
        s_other = None if live else self.ws.comparison_step(t)
        other = (self.ws.comparison.observation(s_other)
                 if s_other is not None and self.ws.comparison_maps_at(t) is None else None)
        other_path = self.ws.baseline_path

        def job(session: Session, ctx: JobContext) -> dict[str, Any]:
            session.load_policy(run.policy, run.device, weights)
            parts = 1 if other is None else 2
            result = session.explain(obs, computed, refs, should_cancel=ctx.cancelled,
                                     progress=lambda d, n: ctx.progress(d, n * parts))
            if other is not None:
                result["other"] = session.explain(
                    other, computed, refs, should_cancel=ctx.cancelled,
                    progress=lambda d, n: ctx.progress(n + d, 2 * n))["maps"]
            return result

        def finish() -> None:
            self._pending_saliency.discard(key)
            if not self._pending_saliency:
                self.saliency_progress.emit(0, 0)

        def done(result: dict[str, Any]) -> None:
            finish()
            if live:
                self.ws.put_live_maps(t, key[0], result["maps"])
            else:
                if "other" in result and self.ws.baseline_path == other_path:
                    self.ws.put_comparison_maps(s_other, result["key"], result["other"])
                self.ws.put_maps(t, result["key"], result["maps"])

        def failed(message: str, details: str) -> None:
            finish()
            self.ws.update_saliency(live=False)
            self.error.emit("Saliency failed", message, details)

        def cancelled(message: str) -> None:
            finish()
            self.status.emit(message)

        self.saliency_progress.emit(0, computed.n_masks)
        self.engine.submit("saliency", job, on_done=done, on_error=failed,
                           on_progress=lambda d, n: self.saliency_progress.emit(d, n),
                           on_cancel=cancelled)

    def faithfulness(self, t: int | None = None) -> None:
        """Deletion and insertion curves of step ``t``'s shown map (default: current), in
        the worker, with progress on the Saliency dock's bar."""
        from vlascope.core.saliency.faithfulness import faithfulness_curves

        rec = self.ws.recording
        t = self.ws.step if t is None else t
        maps = self.ws.maps_at(t) if rec is not None and rec.n_steps else None
        if maps is None:
            self.status.emit("no map at this step: explain the frame first")
            return
        obs, weights, run = rec.observation(t), self.weights, self.ws.run
        sigma, seed = self.ws.saliency.sigma, self.ws.saliency.seed

        def job(session: Session, ctx: JobContext):
            policy = session.load_policy(run.policy, run.device, weights)
            return faithfulness_curves(policy, session.fit([obs])[0], maps, sigma=sigma,
                                       seed=seed, progress=ctx.progress,
                                       should_cancel=ctx.cancelled)

        self._on_saliency_bar("faithfulness", job,
                              lambda curves: self.faithfulness_ready.emit(t, curves),
                              "Faithfulness failed")

    def _on_saliency_bar(self, name: str, job: Callable[[Session, JobContext], Any],
                         then: Callable[[Any], None], failure: str) -> None:
        """A job whose progress shows on the Saliency dock's bar (its Cancel cancels it):
        the bar is reset however the job ends, a failure is a dialog titled ``failure``."""
        def done(result: Any) -> None:
            self.saliency_progress.emit(0, 0)
            then(result)

        def failed(message: str, details: str) -> None:
            self.saliency_progress.emit(0, 0)
            self.error.emit(failure, message, details)

        def cancelled(message: str) -> None:
            self.saliency_progress.emit(0, 0)
            self.status.emit(message)

        self.saliency_progress.emit(0, 1)
        self.engine.submit(name, job, on_done=done, on_error=failed,
                           on_progress=lambda d, n: self.saliency_progress.emit(d, n),
                           on_cancel=cancelled)

    def cancel_saliency(self) -> None:
        self.ws.update_saliency(live=False)
        self.engine.cancel("saliency")
        self.engine.cancel("faithfulness")
        self.engine.cancel("open-loop")  # shows its progress on the same bar

    def shutdown(self) -> bool:
        """Stop workers; the running rollout's recording is published by the session."""
        self.ws.set_playing(False)
        return self.engine.shutdown()

    # features ---------------------------------------------------------------------------
    def _frames(self) -> tuple[list, str, list | None] | None:
        """The shown episode's observations, task and motion phase of each step."""
        from vlascope.core.measures import motion_phases

        rec = self.ws.recording
        if rec is None or rec.n_steps == 0:
            self.status.emit("no frames yet: run or open an episode first")
            return None
        frames = [rec.observation(t) for t in range(rec.n_steps)]
        try:
            phases = list(motion_phases(np.stack([f.state for f in frames]), rec.actions()))
        except (VLAScopeError, ValueError, IndexError):  # a scene without a gripper
            phases = None
        return frames, str(rec.metadata.get("task", "")), phases

    def train_features(self, layer: str, expansion: int, k: int, steps: int) -> None:
        """Capture ``layer`` over the shown episode's frames and train an SAE on it in the
        worker; progress (capture, then training with loss and FVE) comes as signals."""
        got = self._frames()
        if got is None:
            return
        frames, task, phases = got
        run, weights = self.ws.run, self.weights

        def job(session: Session, ctx: JobContext):
            session.load_policy(run.policy, run.device, weights)
            return session.train_features(
                frames, layer, expansion=expansion, k=k, steps=steps, task=task,
                phases=phases,
                progress=lambda d, n: self.features_progress.emit("capture", d, n, {}),
                train_progress=lambda d, n, info: self.features_progress.emit(
                    "train", d, n, {key: float(v) for key, v in info.items()
                                    if isinstance(v, int | float)}),
                should_cancel=ctx.cancelled)

        self._submit_features(job, "SAE training failed", self.features_ready.emit)

    def load_features(self, path: str, layer: str = "") -> None:
        """A saved SAE, described on the shown episode's frames; ``layer``: the hook point
        of an Action Atlas SAE whose layer name has none on this policy."""
        got = self._frames()
        if got is None:
            return
        frames, task, phases = got
        run, weights = self.ws.run, self.weights

        def job(session: Session, ctx: JobContext):
            session.load_policy(run.policy, run.device, weights)
            return session.describe_features(
                path, frames, task, phases, should_cancel=ctx.cancelled,
                progress=lambda d, n: self.features_progress.emit("capture", d, n, {}),
                layer=layer)

        self._submit_features(job, "Could not load the SAE", self.features_ready.emit)

    def _submit_features(self, job, title: str, then: Callable[[Any], None],
                         on_progress: Callable[[int, int], None] | None = None) -> None:
        """A Features-dock job (one at a time, cancelled by the dock's Cancel): however it
        ends, the dock's progress returns to idle; ``then`` takes its result."""
        def finish() -> None:
            self.features_progress.emit("done", 0, 0, {})

        def done(result) -> None:
            finish()
            then(result)

        def failed(message: str, details: str) -> None:
            finish()
            self.error.emit(title, message, details)

        def cancelled(message: str) -> None:
            finish()
            self.status.emit(message)

        self.engine.submit("train-features", job, on_done=done, on_error=failed,
                           on_cancel=cancelled, on_progress=on_progress)

    def feature_effects(self, features, which: list[int]) -> None:
        """Measure the action effect of ablating each of ``which`` over the shown
        episode's frames, in the worker; the Features dock's table gets a column."""
        got = self._frames()
        if got is None:
            return
        frames = got[0]
        run, weights = self.ws.run, self.weights
        done_count = [0]

        def tick() -> None:
            done_count[0] += 1
            self.features_progress.emit("effects", done_count[0], len(which), {})

        def job(session: Session, ctx: JobContext):
            session.load_policy(run.policy, run.device, weights)
            return session.feature_effects(features, frames, which, tick=tick,
                                           should_cancel=ctx.cancelled)

        def measured(values) -> None:
            features.effects[list(which)] = values
            self.features_ready.emit(features)

        self._submit_features(job, "Measuring effects failed", measured)

    def store_feature_maps(self, features, feature: int) -> None:
        """Write the feature's map over every step into the shown episode's file, beside
        its saliency maps, so a video can show it (``--method feature-N@layer``)."""
        rec = self.ws.recording
        path = getattr(rec, "path", None)
        if rec is None or path is None or self.live or not Path(path).is_file():
            self.status.emit("stop the rollout (or open an episode) to store maps in it")
            return
        run, weights = self.ws.run, self.weights

        def job(session: Session, ctx: JobContext) -> str:
            from vlascope.core.features import store_feature_maps

            policy = session.load_policy(run.policy, run.device, weights)
            return store_feature_maps(policy, features, str(path), feature,
                                      progress=ctx.progress, should_cancel=ctx.cancelled)

        def stored(name: str) -> None:
            self.status.emit(f"stored {name} in {Path(path).name} (video export: maps "
                             f"'{name}')")

        self.features_progress.emit("capture", 0, 1, {})
        self._submit_features(job, "Could not store the feature's maps", stored,
                              on_progress=lambda d, n: self.features_progress.emit(
                                  "capture", d, n, {}))

    def feature_map(self, features, feature: int, t: int | None = None) -> None:
        """The feature's activation over the visual tokens of step ``t`` (default: shown)."""
        rec = self.ws.recording
        if rec is None or rec.n_steps == 0:
            return
        t = self.ws.step if t is None else t
        try:
            obs = rec.observation(t)
        except VLAScopeError as e:  # a closed or foreign recording: nothing to map
            self.status.emit(f"no feature map: {e}")
            return
        run, weights = self.ws.run, self.weights
        self.engine.cancel("feature-map")  # only the latest request matters

        def job(session: Session, ctx: JobContext) -> dict:
            from vlascope.core.features import frame_feature_map

            policy = session.load_policy(run.policy, run.device, weights)
            return frame_feature_map(policy, features.sae, features.layer,
                                     session.fit([obs])[0], feature)

        self.engine.submit("feature-map", job,
                           on_done=lambda maps: self.feature_map_ready.emit(feature, t, maps),
                           on_error=self._fail("Feature map failed"),
                           on_cancel=lambda _m: None)

    def set_steering(self, interventions: list[dict[str, Any]]) -> None:
        """The sliders' interventions: they act on the running rollout from its next step
        and on every rollout started after (the recording says which acted when)."""
        self.steering = [dict(i) for i in interventions]
        wanted = list(self.steering)

        def job(session: Session, ctx: JobContext) -> list[dict] | None:
            return session.set_interventions(wanted)

        def done(records: list[dict] | None) -> None:
            if records is not None:  # the live recording's windows, for the timeline
                self.ws.interventions = records
                self.ws.interventions_changed.emit(records)
                self.status.emit(f"{len(wanted)} intervention(s) act from the next step")

        self.engine.submit("steer", job, on_done=done,
                           on_error=self._fail("Could not apply the intervention"))

    # A/B comparisons --------------------------------------------------------------------
    def run_ab(self, interventions: list[dict[str, Any]], run=None) -> None:
        """The unmodified and the intervened policy from the run's task, variant and seed
        (or ``run``'s: a re-run of an opened episode), both recorded; the intervened
        episode is then shown with the baseline's actions drawn under its own."""
        self.pause()
        run, weights = run or self.ws.run, self.weights
        wanted = [dict(i) for i in interventions]
        display = self.display_size if self.record_display else None
        self.ab_state.emit("running")

        def job(session: Session, ctx: JobContext):
            from vlascope.core.atomic import new_folder
            from vlascope.core.compare import compare, resolve_prompts

            session.stop()  # the scene is shared: publish a running rollout first
            scene = session.load_scene(run.scene)
            policy = session.load_policy(run.policy, run.device, weights)
            task = run.task or scene.tasks()[0].name
            ivs = resolve_prompts(wanted, scene.task(task).instruction)
            out = new_folder(session.record_dir / "ab", time.strftime("%Y%m%d-%H%M%S"))
            return compare(scene, policy, task, run.seed, run.variant or None, ivs, out,
                           policy_name=run.policy, should_cancel=ctx.cancelled,
                           display_size=display)

        def done(result) -> None:
            self._live_done = True
            self.compare_episodes(str(result.baseline.path), str(result.intervened.path))
            self.ab_state.emit("done")
            self.ab_ready.emit(result)

        def failed(message: str, details: str) -> None:
            self._live_done = True  # the job published the running rollout first
            self.ab_state.emit("failed")
            self.error.emit("A/B run failed", message, details)

        def cancelled(message: str) -> None:
            self._live_done = True
            self.ab_state.emit("cancelled")
            self.status.emit(message)

        self.engine.submit("ab", job, on_done=done, on_error=failed, on_cancel=cancelled)

    # video ------------------------------------------------------------------------------
    def export_video(self, paths: list[str], out: str, layout, fps: float,
                     steps: tuple[int, int] | None, labels=(), overwrite: bool = False) -> None:
        """Compose and encode in the worker, with progress and cancel; the file appears
        only when complete, and replaces an existing one only with ``overwrite`` (the
        export dialog asks first)."""
        from .video import export_job

        def done(path: str) -> None:
            self.video_progress.emit("done", 0, 0, path)
            self.status.emit(f"video -> {path}")

        def failed(message: str, details: str) -> None:
            self.video_progress.emit("failed", 0, 0, "")
            self.error.emit("Video export failed", message, details)

        def cancelled(message: str) -> None:
            self.video_progress.emit("cancelled", 0, 0, "")
            self.status.emit(message)

        self.video_progress.emit("running", 0, 0, "")
        self.engine.submit("video", export_job(paths, out, layout, fps, steps, labels,
                                                   overwrite),
                           on_done=done, on_error=failed, on_cancel=cancelled,
                           on_progress=lambda d, n: self.video_progress.emit(
                               "running", d, n, ""))

