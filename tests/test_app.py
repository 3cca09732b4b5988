"""The inspector window, driven by real key and mouse events in an offscreen Qt: play, pause,
scrub, explain a frame, open episodes, survive failing plugins and workers, keep the
recording when closed mid-run, remember its layout."""

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from vlascope.app.launch import check_display
from vlascope.app.main_window import MainWindow
from vlascope.core.colormap import normalise
from vlascope.core.display import upsample
from vlascope.core.episode import Episode
from vlascope.core.errors import PluginError, VLAScopeError
from vlascope.core.interventions import Prompt
from vlascope.core.metrics import nmr_at_k
from vlascope.core.metrics import top_k_mask as nmr_top_k
from vlascope.core.plugins import PluginRegistry
from vlascope.core.recording import FileRecording
from vlascope.core.regions import ACTION_CRITICAL
from vlascope.core.runner import rollout

POLICY = "reference"
WAIT_MS = 120_000

FAILING = """
import numpy as np

class ExplodingPolicy:
    cameras = ("front",)
    def __init__(self):
        self.calls = 0
    def batch_infer(self, observations):
        self.calls += 1
        if self.calls > 2:
            raise RuntimeError("the policy crashed on its third call")
        return np.zeros((len(observations), 1, 4), np.float32)

def wont_load(**options):
    raise FileNotFoundError("no checkpoint at /nowhere/model.safetensors")

POLICIES = {"exploding": ExplodingPolicy, "wont_load": wont_load}
"""


@pytest.fixture
def plugin_dir(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "failing.py").write_text(FAILING)
    (folder / "broken_import.py").write_text("import a_module_that_does_not_exist\n")
    return folder


def new_window(qtbot, tmp_path, plugin_dirs=()):
    """A window with its own settings file and recordings folder under ``tmp_path``."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(registry=PluginRegistry.discover(list(plugin_dirs)), settings=settings,
                        record_dir=tmp_path / "recordings")
    qtbot.addWidget(window)
    return window


def make_window(qtbot, tmp_path, plugin_dir, policy=POLICY):
    window = new_window(qtbot, tmp_path, [plugin_dir])
    window.workspace.update_run(policy=policy, task="pick_red", seed=0)
    window.workspace.update_saliency(n_masks=24)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    window.start()
    qtbot.waitUntil(lambda: window.workspace.policy_label != "", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.scene_dock.task_box.count() > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.workspace.recording is not None, timeout=WAIT_MS)
    idle(qtbot, window)
    return window


@pytest.fixture
def window(qtbot, tmp_path, plugin_dir):
    w = make_window(qtbot, tmp_path, plugin_dir)
    yield w
    w.close()


def shown_map(view, values):
    """A map as the Scene dock shows it: normalised, upsampled onto the shown frame."""
    return upsample(normalise(values), view.shown)


def idle(qtbot, window):
    qtbot.waitUntil(lambda: not window.engine.busy(), timeout=WAIT_MS)


def play_steps(qtbot, window, n):
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.workspace.n_steps >= n, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    idle(qtbot, window)
    assert not window.workspace.playing


def actions_of(path):
    """An episode file's executed actions and metadata."""
    with Episode(path) as ep:
        return ep.actions(), ep.metadata


def errors_shown(window):
    return [d for d in window.findChildren(QMessageBox) if d.isVisible()]


def dismiss_errors(qtbot, window):
    """Close the dialogs and give the focus back to the window, as a window manager would."""
    for d in errors_shown(window):
        d.close()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)


def test_play_pause_scrub_match_the_episode_file(qtbot, window, tmp_path):
    ws = window.workspace
    # before play, the scene as reset is on screen
    assert ws.n_steps == 0 and set(ws.recording.preview) == {"front", "wrist"}
    # ... rendered again at the display size once the view has its size (a crisp frame)
    qtbot.waitUntil(lambda: bool(ws.recording.preview_display), timeout=WAIT_MS)
    for cam, view in window.scene_dock.views.items():
        assert ws.recording.preview_display[cam].shape[0] > ws.recording.preview[cam].shape[0]
        np.testing.assert_array_equal(view.frame.image, ws.recording.preview_display[cam])
    play_steps(qtbot, window, 8)
    n = ws.n_steps
    assert n >= 8 and ws.step == n - 1
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert ws.step == 0
    for _ in range(3):
        qtbot.keyClick(window, Qt.Key.Key_Right)
    assert ws.step == 3
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert ws.step == 2
    # a click on the timeline plot moves the cursor to the clicked step
    plot = window.timeline_dock.plot
    vb = plot.plotItem.vb
    target = 5
    scene_pt = vb.mapViewToScene(vb.mapSceneToView(vb.sceneBoundingRect().center()))
    scene_pt.setX(vb.mapViewToScene(vb.mapSceneToView(scene_pt)).x())
    view_pt = vb.mapSceneToView(scene_pt)
    view_pt.setX(target)
    widget_pt = plot.mapFromScene(vb.mapViewToScene(view_pt))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(widget_pt))
    assert ws.step == target
    # publishing the recording (Ctrl+R starts the next rollout), then compare with the file
    live = ws.recording
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    idle(qtbot, window)
    path = live.path
    assert path is not None and path.is_file() and path.parent == tmp_path / "recordings"
    window.open_episode(str(path))
    qtbot.keyClick(window, Qt.Key.Key_End)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    t = ws.step
    assert t == n - 2
    with Episode(path) as ep:
        assert ep.n_steps == n
        for cam, view in window.scene_dock.views.items():
            np.testing.assert_array_equal(view.frame.image, ep.frame(t, cam))
        np.testing.assert_allclose(window.timeline_dock.action_curves[0].yData,
                                   ep.actions()[:, 0])
    assert window.timeline_dock.cursor.value() == t
    assert window.timeline_dock.slider.value() == t
    assert f"step {t + 1} / {n}" in window.timeline_dock.label.text()


def test_live_mode_explains_every_step_and_refines_them(qtbot, window, tmp_path):
    """Live mode: each step explained as it arrives at the live budget (budget - 1 masks,
    its own seed) and pooled in time; once paused, every step's map is the pooling of all
    steps' own maps, as the core computes it from the same frames."""
    from vlascope.core.policy import common_noise
    from vlascope.core.saliency.iss import pixel_iss
    from vlascope.core.saliency.pooled import PooledMaps
    from vlascope.policies.reference.policy import ReferencePolicy

    ws = window.workspace
    dock = window.saliency_dock
    dock.raise_()
    dock.budget.setValue(4)
    dock.live.setChecked(True)  # real click path: the checkbox drives the settings
    assert ws.saliency.live and ws.saliency.budget == 4
    play_steps(qtbot, window, 12)
    qtbot.waitUntil(lambda: ws.live_steps() == list(range(ws.n_steps)), timeout=WAIT_MS)
    n = ws.n_steps
    assert all(ws.maps_at(t) is not None for t in range(n))
    # the same pooling from the core, on per-frame maps computed here from the same frames
    policy = ReferencePolicy(name="reference")
    pool = PooledMaps()
    with common_noise(policy):
        for t in range(n):
            cfg = ws.saliency.for_live_step(t).iss_config()
            assert cfg.n_masks == 3 and cfg.seed == ws.saliency.seed + t
            pool.add(t, pixel_iss(policy, ws.recording.observation(t), cfg).maps)
    assert ws.live_bandwidth() == pool.bandwidth
    expected = pool.pooled()
    for t in (0, n // 2, n - 1):
        for cam in ("front", "wrist"):
            np.testing.assert_allclose(ws.maps_at(t)[cam], expected[t][cam], rtol=1e-4,
                                       atol=1e-6)
    # the overlay shows the current step's live map, the dock says how it was pooled
    for cam, view in window.scene_dock.views.items():
        np.testing.assert_allclose(view.overlay.image, shown_map(view, ws.maps_at()[cam]))
    assert f"live maps: {n} steps at 4 passes each" in dock.pooling.text()
    window.grab().save(str(tmp_path / "live.png"))
    # an explained frame at the full N takes over its step; the live maps stay for others
    qtbot.keyClick(window, Qt.Key.Key_Home)
    qtbot.mouseClick(dock.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ws.frame_maps_at(0) is not None, timeout=WAIT_MS)
    assert ws.maps_at(0) is ws.frame_maps_at(0)
    assert not np.allclose(ws.maps_at(0)["front"], expected[0]["front"])
    assert ws.frame_maps_at(1) is None and ws.maps_at(1) is not None
    # publishing keeps the live maps in the episode file, as `vlascope iss` stores its own
    live = ws.recording
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    idle(qtbot, window)
    with Episode(live.path) as ep:
        assert ep.saliency_methods() == ["iss-toolkit-improved"]
        made = ep.metadata["saliency.iss-toolkit-improved"]
        assert made["budget"] == 4 and made["config"]["n_masks"] == 3
        assert made["computed_steps"] == list(range(n))
        np.testing.assert_allclose(ep.saliency("iss-toolkit-improved", "wrist", n // 2),
                                   expected[n // 2]["wrist"], rtol=1e-4, atol=1e-6)


def test_explain_shows_the_overlay_and_nmr(qtbot, window):
    ws = window.workspace
    play_steps(qtbot, window, 3)
    dock = window.saliency_dock
    dock.raise_()
    qtbot.mouseClick(dock.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ws.maps_at() is not None, timeout=WAIT_MS)
    maps = ws.maps_at()
    assert set(maps) == {"front", "wrist"}
    for cam, view in window.scene_dock.views.items():
        assert view.overlay.image is not None
        # the Scene dock shows a display render larger than the policy's 96 px input, the
        # overlay upsampled smoothly onto it
        assert view.shown[0] > maps[cam].shape[0] and view.frame.image.shape[:2] == view.shown
        np.testing.assert_allclose(view.overlay.image, shown_map(view, maps[cam]))
        assert view.overlay.opacity() == pytest.approx(ws.saliency.opacity)
        assert np.ptp(maps[cam]) > 0  # a real map, not a constant
    assert dock.nmr.text().startswith("NMR@10: 0.") or dock.nmr.text() == "NMR@10: 1.000"
    # the Scene dock outlines the joint top k% of the map, as the Regions dock and NMR count it
    from scipy import ndimage

    top = nmr_top_k(maps, ws.saliency.k)
    for cam, view in window.scene_dock.views.items():
        big = cv2.resize(top[cam].astype(np.uint8), view.shown[::-1],
                         interpolation=cv2.INTER_NEAREST).astype(bool)
        edge = big & ~ndimage.binary_erosion(big)
        assert edge.any()
        np.testing.assert_array_equal(view.outline.image, edge.astype(np.uint8))
    # View > Show what the policy sees: exactly the policy's frames and maps
    window.actions_by_name["policy-view"].trigger()
    for cam, view in window.scene_dock.views.items():
        np.testing.assert_array_equal(view.frame.image, ws.recording.frame(ws.step, cam))
        np.testing.assert_allclose(view.overlay.image, normalise(maps[cam]))
    assert window.controller.display_size is None  # no display render asked for
    window.actions_by_name["policy-view"].trigger()
    assert window.controller.display_size is not None
    outline = window.actions_by_name["outline"]
    outline.trigger()  # View > Top-k outline off
    assert not outline.isChecked()
    assert all(v.outline.image is None for v in window.scene_dock.views.values())
    outline.trigger()
    assert window.scene_dock.views["front"].outline.image is not None
    # the opacity slider drives the overlay
    dock.opacity.setValue(20)
    assert window.scene_dock.views["front"].overlay.opacity() == pytest.approx(0.2)
    # scrubbing to a step without maps clears the overlay; back again shows the cached one
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert window.scene_dock.views["front"].overlay.image is None
    qtbot.keyClick(window, Qt.Key.Key_End)
    assert window.scene_dock.views["front"].overlay.image is not None
    # painting the regions moves the NMR of both docks, to the core's value for the new map
    regions = window.regions_dock
    regions.raise_()
    regions.set_tool("fill")
    regions.set_label(ACTION_CRITICAL)
    for cam in ("front", "wrist"):
        regions.camera_box.setCurrentText(cam)
        qtbot.waitUntil(lambda: regions.label_item.image is not None, timeout=WAIT_MS)
        view = regions.graphics.viewport()
        for y in range(4, 96, 12):  # flood every area of the frame with action-critical
            for x in range(4, 96, 12):
                pos = regions.graphics.mapFromScene(regions.label_item.mapToScene(QPoint(x, y)))
                qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pos)
    labels = ws.annotation.labels_at(ws.step)
    expected = nmr_at_k(maps, labels, ws.saliency.k)
    assert dock.nmr.text() == regions.nmr_frame.text() == f"NMR@10: {expected:.3f}"
    assert expected < 0.05  # almost everything is action-critical now
    assert not errors_shown(window)


def test_faithfulness_curves_of_the_shown_map(qtbot, window, tmp_path):
    """Issue 28, part 5: the dock's curves are the core's on the same frame and map."""
    from vlascope.core.saliency.faithfulness import faithfulness_curves
    from vlascope.policies.reference.policy import ReferencePolicy

    ws = window.workspace
    play_steps(qtbot, window, 3)
    dock = window.saliency_dock
    dock.raise_()
    qtbot.mouseClick(dock.faithful, Qt.MouseButton.LeftButton)  # no map yet: says so
    assert dock.curves.curves is None
    qtbot.mouseClick(dock.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ws.maps_at() is not None, timeout=WAIT_MS)
    idle(qtbot, window)
    with qtbot.waitSignal(window.controller.faithfulness_ready, timeout=WAIT_MS):
        qtbot.mouseClick(dock.faithful, Qt.MouseButton.LeftButton)
    shown = dock.curves.curves
    expected = faithfulness_curves(ReferencePolicy(name="reference"),
                                   ws.recording.observation(ws.step), ws.maps_at(),
                                   sigma=ws.saliency.sigma, seed=ws.saliency.seed)
    assert shown.ks == expected.ks
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        np.testing.assert_allclose(getattr(shown, name), getattr(expected, name), rtol=1e-3,
                                   atol=1e-7)
    assert "deletion area" in dock.faithful_text.text()
    dock.grab().save(str(tmp_path / "faithfulness.png"))
    image = dock.curves.grab().toImage()
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 2)
               for y in range(0, image.height(), 2)}
    assert {"#d62728", "#1f77b4"} <= colours  # both curves drawn
    qtbot.keyClick(window, Qt.Key.Key_Home)  # another step: its curves are not these
    assert dock.curves.curves is None and dock.faithful_text.text() == ""
    assert not errors_shown(window)


def test_cancel_saliency_leaves_the_app_usable(qtbot, window):
    ws = window.workspace
    play_steps(qtbot, window, 2)
    ws.update_saliency(n_masks=5000)
    window.saliency_dock.compute.click()
    qtbot.waitUntil(lambda: window.saliency_dock.cancel.isEnabled(), timeout=WAIT_MS)
    qtbot.mouseClick(window.saliency_dock.cancel, Qt.MouseButton.LeftButton)
    idle(qtbot, window)
    assert ws.maps_at() is None and not errors_shown(window)
    play_steps(qtbot, window, ws.n_steps + 2)


def test_open_saved_episode_and_bad_files(qtbot, window, scene, expert, tmp_path):
    path = rollout(scene, expert, "place_red_on_plate", 4, record_to=tmp_path / "ep.h5",
                   max_steps=30, interventions=[Prompt(text="", start=8)]).path
    assert window.open_episode(path)
    ws = window.workspace
    assert isinstance(ws.recording, FileRecording) and ws.n_steps == 30
    # the timeline marks where the intervention's window starts
    assert [m.value() for m in window.timeline_dock.markers] == [8]
    qtbot.keyClick(window, Qt.Key.Key_End)
    with Episode(path) as ep:
        np.testing.assert_array_equal(window.scene_dock.views["wrist"].frame.image,
                                      ep.frame(29, "wrist"))
    assert window.recent_files()[0] == str(path)
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    assert not window.open_episode(str(bad))
    assert any("Could not open" in d.windowTitle() for d in errors_shown(window))
    assert str(ws.recording.path) == path and ws.n_steps == 30  # nothing lost


def test_failing_plugins_and_worker_errors_do_not_kill_the_app(qtbot, window, tmp_path):
    table = window.plugins_dock.table
    rows = {table.item(i, 1).text(): table.item(i, 2).text() for i in range(table.rowCount())}
    assert rows["broken_import"] == "failed" and rows["reference"] == "ok"
    errors = {table.item(i, 1).text(): table.item(i, 3).text() for i in range(table.rowCount())}
    assert "a_module_that_does_not_exist" in errors["broken_import"]
    # a policy whose factory raises: a dialog, and the previous policy keeps working
    window.scene_dock.policy_box.setCurrentText("wont_load")
    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
    assert "no checkpoint" in errors_shown(window)[0].text()
    dismiss_errors(qtbot, window)
    # a checkpoint folder without weights: a clear error naming the missing file
    window.plugins_dock.load_checkpoint(str(tmp_path))
    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
    assert "model.safetensors" in errors_shown(window)[0].text()
    assert window.workspace.run.policy == POLICY
    dismiss_errors(qtbot, window)
    # a policy that raises mid-rollout: the run stops with the traceback in a dialog
    window.scene_dock.policy_box.setCurrentText("exploding")
    idle(qtbot, window)
    assert window.workspace.policy_label == "exploding"
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
    dialog = errors_shown(window)[0]
    assert "third call" in dialog.text() and "Traceback" in dialog.detailedText()
    assert not window.workspace.playing
    dismiss_errors(qtbot, window)
    # still usable: back to the reference policy, a fresh rollout runs
    window.scene_dock.policy_box.setCurrentText(POLICY)
    window.controller.reset()
    idle(qtbot, window)
    play_steps(qtbot, window, 3)
    assert not errors_shown(window)


def test_closing_mid_run_keeps_the_recording(qtbot, tmp_path, plugin_dir):
    window = make_window(qtbot, tmp_path, plugin_dir)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.workspace.n_steps >= 3, timeout=WAIT_MS)
    assert window.workspace.playing
    window.close()
    files = list((tmp_path / "recordings").glob("*.h5"))
    assert len(files) == 1
    with Episode(files[0]) as ep:
        assert ep.n_steps >= 3 and ep.metadata["stopped_early"] is True
        assert ep.metadata["policy"]["name"] == POLICY


def test_a_scene_that_is_not_installed_says_how_to_install_it(qtbot, tmp_path):
    found = PluginRegistry.discover([])
    reg = PluginRegistry([e for e in found.entries if e.name != "libero"])
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(registry=reg, settings=settings, record_dir=tmp_path / "rec")
    qtbot.addWidget(window)
    window.show()
    window.scene_dock.set_scenes(reg.names("scene"), reg.not_installed("scene"))
    box = window.scene_dock.scene_box
    index = box.findData("libero")
    assert box.itemText(index) == "libero (not installed)"
    box.setCurrentIndex(index)
    assert window.workspace.run.scene == "tabletop" and box.currentData() == "tabletop"
    shown = errors_shown(window)
    assert shown and "setup.sh libero" in shown[0].text()
    with pytest.raises(PluginError, match="not installed: install it with"):
        reg.create_scene("libero")
    window.close()


def test_layout_and_settings_persist(qtbot, tmp_path, plugin_dir):
    window = make_window(qtbot, tmp_path, plugin_dir)
    window.plugins_dock.close()
    window.workspace.update_saliency(n_masks=77, opacity=0.35)
    window.close()
    again = make_window(qtbot, tmp_path, plugin_dir)
    assert again.plugins_dock.isHidden()
    assert again.workspace.saliency.n_masks == 24  # make_window sets it after the restore
    assert again.workspace.saliency.opacity == pytest.approx(0.35)
    assert again.saliency_dock.opacity.value() == 35
    again.actions_by_name["reset-layout"].trigger()
    assert not again.plugins_dock.isHidden()
    again.close()


def test_no_display_is_a_clear_error():
    with pytest.raises(VLAScopeError, match="no display"):
        check_display({}, platform="linux")
    check_display({"DISPLAY": ":0"}, platform="linux")
    check_display({"QT_QPA_PLATFORM": "offscreen"}, platform="linux")


def test_device_choice_is_checked(qtbot, window):
    import torch

    box = window.scene_dock.device_box
    if torch.cuda.is_available():
        box.setCurrentText("cuda")
        idle(qtbot, window)
        assert window.workspace.device.startswith("cuda")
        return
    box.setCurrentText("cuda")
    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
    assert "no CUDA GPU" in errors_shown(window)[0].text()
    assert window.workspace.run.device == "auto" and box.currentText() == "auto"
    box.setCurrentText("cpu")
    idle(qtbot, window)
    assert window.workspace.device == "cpu" and not window.workspace.playing


def test_launch_without_a_display_says_so(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "vlascope.cli"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("vlascope: error: no display found")
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_screenshot_command_draws_scene_overlay_and_plot(tmp_path):
    from PIL import Image

    from vlascope.app.screenshot import take_screenshot

    out = take_screenshot(tmp_path / "shot.png", policy=POLICY, steps=4, n_masks=24,
                          record_dir=tmp_path / "rec", size=(1200, 760))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec", "shot.png"]
    img = np.asarray(Image.open(out).convert("RGB")).astype(np.float32)
    assert img.shape[:2] == (760, 1200)
    assert img.std() > 30  # not a blank or black window
    assert len(list((tmp_path / "rec").glob("*.h5"))) == 1


def test_display_renders_follow_the_view_and_are_recorded_when_asked(qtbot, window, tmp_path):
    ws, dock = window.workspace, window.scene_dock
    play_steps(qtbot, window, 2)
    qtbot.wait(400)  # the views settle, their size is asked for after a resize pause
    asked = window.controller.display_size
    assert asked is not None and asked[0] > 96  # the view is larger than the policy image
    play_steps(qtbot, window, ws.n_steps + 1)
    live = ws.recording
    assert live.display_frame(ws.step, "front").shape[:2] == asked
    # episodes keep the policy's frames only, unless asked (Run > Record display frames)
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    idle(qtbot, window)
    with Episode(live.path) as ep:
        assert ep.display_cameras == [] and ep.frame(0, "front").shape[:2] == (96, 96)
    window.actions_by_name["record-display"].trigger()
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    idle(qtbot, window)
    play_steps(qtbot, window, 2)
    window.resize(900, 640)  # a smaller view mid-rollout: recorded renders keep one size
    qtbot.waitUntil(lambda: window.controller.display_size != asked, timeout=WAIT_MS)
    play_steps(qtbot, window, ws.n_steps + 2)
    live = ws.recording
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    idle(qtbot, window)
    with Episode(live.path) as ep:
        assert ep.display_cameras == ["front", "wrist"]
        assert ep.display_frame(0, "front").shape[:2] == ep.display_frame(-1, "front").shape[:2]
        assert ep.display_frame(0, "front").shape[0] > 96
        assert ep.frame(0, "front").shape[:2] == (96, 96)
        n = ep.n_steps
    # an opened episode shows its recorded renders, scaled into the policy image's pixels
    window.open_episode(str(live.path))
    qtbot.keyClick(window, Qt.Key.Key_End)
    with Episode(live.path) as ep:
        for cam, view in dock.views.items():
            np.testing.assert_array_equal(view.frame.image, ep.display_frame(n - 1, cam))
            assert view.shape == (96, 96)
            rect = view.frame.mapRectToParent(view.frame.boundingRect())
            assert (rect.width(), rect.height()) == pytest.approx((96, 96))
    dock.grab().save(str(tmp_path / "scene-display.png"))
