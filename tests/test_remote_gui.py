"""A policy served by ``vlascope serve`` in another process, used from the window with real
events: connect through the dialog (in the worker), play, explain, train an SAE and steer
as in process; a server killed mid-rollout ends the job with a dialog and Reconnect brings
it back; a plain openpi server shows why the hook-based features are off."""

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from served import served
from test_app import WAIT_MS, actions_of, dismiss_errors, errors_shown, idle, play_steps
from test_features_dock import steer_from_gui, train_from_gui

from vlascope.app.connect_dialog import ConnectDialog, recent_addresses
from vlascope.remote.wire import pack, unpack


def connect_from_dialog(qtbot, window, url):
    """Click Connect... beside the policy picker, type the address, click Connect."""
    qtbot.mouseClick(window.scene_dock.connect_button, Qt.MouseButton.LeftButton)
    dialog = next(d for d in window.findChildren(ConnectDialog) if d.isVisible())
    dialog.address.clear()
    qtbot.keyClicks(dialog.address, url)
    dialog.timeout.setValue(30.0)
    qtbot.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    # the click returned while the worker still connects: the window did not wait
    assert window.engine.busy("load-policy")
    label = window.connection_label
    qtbot.waitUntil(lambda: label.isVisible() and url in label.text(), timeout=WAIT_MS)
    idle(qtbot, window)
    focus(qtbot, window)


def focus(qtbot, window):
    """The dialog has gone: the window is active again, as a window manager makes it."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)


@pytest.mark.slow
def test_a_served_policy_plays_explains_trains_and_steers(qtbot, window, tmp_path):
    ws = window.workspace
    with served() as server:
        connect_from_dialog(qtbot, window, server.url)
        assert window.connection_label.text() == \
            f"Policy: remote {server.url} (vlascope/reference)"
        assert window.engine.session.policy.url == server.url  # the worker's is remote
        assert ws.run.policy == "remote" and window.scene_dock.policy_box.currentText() == \
            "remote"
        assert recent_addresses(window.settings) == [server.url]
        assert not window.reconnect_button.isVisible()

        # play: frames come from the served policy's actions
        play_steps(qtbot, window, 8)
        assert ws.n_steps >= 8
        assert ws.recording.metadata["policy"]["id"] == "remote:vlascope/reference"
        # explain the shown frame with ISS, computed through the server
        dock = window.saliency_dock
        dock.raise_()
        qtbot.mouseClick(dock.compute, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: ws.maps_at() is not None, timeout=WAIT_MS)
        idle(qtbot, window)
        for cam, m in ws.maps_at().items():
            assert np.isfinite(m).all() and np.ptp(m) > 0, cam
        window.grab().save(str(tmp_path / "remote.png"))  # mid-rollout, connected

        # an SAE on a served layer, trained from the Features dock
        features = train_from_gui(qtbot, window, steps=40)
        fs = features.features
        assert fs.n_features > 0 and features.model.rowCount() == fs.n_features
        assert len(fs.samples.x) == ws.n_steps * len(fs.positions)

        # steer with its densest feature: a fresh rollout, 3 plain steps, slider up, 4 more
        densest = int(np.argmax(fs.stats.density))
        features.select_feature(densest)
        steer_from_gui(qtbot, window, features)
        for _ in range(4):
            window.controller.step_once()
            idle(qtbot, window)
        window.controller.reset()  # publishes the steered recording
        idle(qtbot, window)
    recordings = sorted((tmp_path / "recordings").glob("*.h5"))
    runs = [actions_of(p) for p in recordings]
    (plain, _), = [(a, m) for a, m in runs if not m.get("interventions")]
    (steered, meta), = [(a, m) for a, m in runs if m.get("interventions")]
    assert meta["interventions"][-1]["kind"] == "steer"
    assert len(steered) == 7 and len(plain) >= 7
    np.testing.assert_allclose(steered[:3], plain[:3], atol=1e-6)  # same seed, unsteered
    assert np.abs(steered[3:] - plain[3:7]).max() > 1e-4  # the served policy was steered
    assert not errors_shown(window)


@pytest.mark.slow
def test_a_server_killed_mid_rollout_and_one_click_reconnect(qtbot, window):
    ws = window.workspace
    with served() as server:
        window.actions_by_name["connect"].trigger()  # the Policy menu's entry
        dialog = next(d for d in window.findChildren(ConnectDialog) if d.isVisible())
        dialog.address.setText(server.url)
        qtbot.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)
        label = window.connection_label
        qtbot.waitUntil(lambda: "(vlascope/reference)" in label.text(), timeout=WAIT_MS)
        idle(qtbot, window)
        focus(qtbot, window)
        assert not errors_shown(window)
        qtbot.keyClick(window, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: ws.n_steps >= 3, timeout=WAIT_MS)
        server.kill()
        qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
        idle(qtbot, window)
    shown = errors_shown(window)[0]
    assert shown.windowTitle() == "The rollout failed"
    assert "went away" in shown.text() and server.url in shown.text()
    # the app is up, the steps it showed stay, the status bar says what happened
    assert not ws.playing and ws.n_steps >= 3
    assert label.text() == f"Policy: remote {server.url} (disconnected)"
    assert "went away" in label.toolTip()
    assert window.reconnect_button.isVisible()
    dismiss_errors(qtbot, window)
    before = ws.step
    qtbot.keyClick(window, Qt.Key.Key_Left)  # scrubbing still works
    assert ws.step == before - 1

    # Reconnect while the server is still down: a dialog, still disconnected
    qtbot.mouseClick(window.reconnect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
    assert errors_shown(window)[0].windowTitle() == "Could not reconnect"
    assert window.reconnect_button.isVisible()
    dismiss_errors(qtbot, window)

    # the server is back on its address: one click reconnects, play works again
    port = server.url.rsplit(":", 1)[1]
    with served("--port", port) as again:
        assert again.url == server.url
        qtbot.mouseClick(window.reconnect_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "(vlascope/reference)" in label.text(), timeout=WAIT_MS)
        idle(qtbot, window)
        assert not window.reconnect_button.isVisible()
        play_steps(qtbot, window, 2)
        assert ws.n_steps >= 2
    assert not errors_shown(window)


class PlainOpenpiServer:
    """openpi's websocket policy server as openpi runs it: empty metadata, then one
    observation map in, one ``actions`` map out (the tabletop's 4-D actions)."""

    def __init__(self):
        from websockets.sync.server import serve

        self.server = serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, ws) -> None:
        ws.send(pack({}))
        for message in ws:
            assert "prompt" in unpack(message)
            ws.send(pack({"actions": np.zeros((1, 4), np.float32)}))

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


def test_a_plain_openpi_server_shows_why_hooks_are_unavailable(qtbot, window):
    # picking "remote" in the policy picker asks for the address; the picker stays put
    window.scene_dock.policy_box.setCurrentText("remote")
    dialog = next(d for d in window.findChildren(ConnectDialog) if d.isVisible())
    assert dialog.address.text() == "ws://127.0.0.1:8000" and dialog.recent.count() == 0
    assert window.scene_dock.policy_box.currentText() == "reference"
    # nobody there: a dialog says so, the in-process policy stays
    dialog.address.setText("ws://127.0.0.1:1")
    qtbot.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=WAIT_MS)
    idle(qtbot, window)
    assert "no policy server at ws://127.0.0.1:1" in errors_shown(window)[0].text()
    assert window.workspace.run.policy == "reference" and not window.connection_label.isVisible()
    assert recent_addresses(window.settings) == []  # only addresses that connected
    dismiss_errors(qtbot, window)

    server = PlainOpenpiServer()
    try:
        connect_from_dialog(qtbot, window, server.url)
        again = window.connect_dialog()  # the address that worked comes first next time
        assert again.address.text() == server.url and again.recent.item(0).text() == server.url
        again.reject()
        assert window.connection_label.text() == \
            f"Policy: remote {server.url} (openpi server)"
        why = window.engine.session.policy.unavailable
        assert "plain openpi server" in why
        features = window.features_dock
        assert not features.train.isEnabled() and features.train.toolTip() == why
        assert why in features.status.text()
        interventions = window.interventions_dock
        assert not interventions.inject_layer.isEnabled()
        assert why in interventions.inject_layer.toolTip()
        assert why in window.plugins_dock.hooks_label.text()
    finally:
        window.close()
        server.close()
