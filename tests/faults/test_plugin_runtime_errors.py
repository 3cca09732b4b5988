"""Issue 22, defect 9: a plugin that fails at run time (raises in batch_infer, returns no
array, returns the wrong shape, calls sys.exit) is named in one line: `error:` from the CLI,
a dialog with the traceback under its details in the GUI, which keeps running."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QPushButton

from vlascope.core.errors import ObservationError, PluginError
from vlascope.core.plugins import PluginRegistry
from vlascope.core.runner import rollout
from vlascope.core.scene import Scene

PLUGIN = """
import sys

import numpy as np

from vlascope.scenes.tabletop import TabletopScene


class Zeros:
    cameras = ("front",)
    def batch_infer(self, observations):
        return np.zeros((len(observations), 1, 4), np.float32)

class Raises(Zeros):
    def batch_infer(self, observations):
        raise RuntimeError("the model fell over")

class ReturnsText(Zeros):
    def batch_infer(self, observations):
        return "move the red block"

class WrongShape(Zeros):
    def batch_infer(self, observations):
        return np.zeros(4)

class WrongWidth(Zeros):
    def batch_infer(self, observations):
        return np.zeros((len(observations), 1, 9))

class Exits(Zeros):
    def batch_infer(self, observations):
        sys.exit(3)

class ExitsOnReset(Zeros):
    def reset(self):
        sys.exit(4)

class StepFails(TabletopScene):
    name = "step_fails"
    def step(self, action):
        raise ValueError("the simulator diverged")

POLICIES = {"zeros": Zeros, "raises": Raises, "returns_text": ReturnsText,
            "wrong_shape": WrongShape, "wrong_width": WrongWidth, "exits": Exits,
            "exits_on_reset": ExitsOnReset}
SCENES = {"step_fails": StepFails}
"""


@pytest.fixture
def plugin_dir(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "runtime_faults.py").write_text(PLUGIN)
    return folder


def run_failing_cli(plugin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh process with the test's plugin folder (``cli_process.run_cli``
    expects success and no user plugins)."""
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": str(plugin_dir),
           "XDG_DATA_HOME": str(plugin_dir / "xdg")}
    return subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def assert_one_error_line(out: subprocess.CompletedProcess, *expected: str) -> None:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlascope: error:"), out.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("args,expected", [
    (("--policy", "raises"),
     ("policy plugin 'raises'", "runtime_faults.py", "RuntimeError: the model fell over")),
    (("--policy", "returns_text"), ("policy plugin 'returns_text'", "returned a str")),
    (("--policy", "wrong_shape"), ("policy plugin 'wrong_shape'", "shape (4,)")),
    (("--policy", "wrong_width"), ("policy plugin 'wrong_width'", "shape (1, 1, 9)")),
    (("--policy", "exits"), ("policy plugin 'exits'", "sys.exit(3)")),
    (("--policy", "zeros", "--scene", "step_fails"),
     ("scene plugin 'step_fails'", "step()", "the simulator diverged")),
])
def test_record_names_the_failing_plugin_in_one_line(plugin_dir, tmp_path, args, expected):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = run_failing_cli(plugin_dir, "record", *args, "--task", "pick_red", "--max-steps",
                          "3", "--out", str(out_dir / "episode.h5"))
    assert_one_error_line(out, *expected)
    assert not list(out_dir.iterdir())  # no episode, no partial file


def test_eval_names_a_policy_that_exits_in_reset(plugin_dir):
    out = run_failing_cli(plugin_dir, "eval", "--policy", "exits_on_reset", "--tasks",
                          "pick_red", "--episodes", "1")
    assert_one_error_line(out, "policy plugin 'exits_on_reset'", "reset()", "sys.exit(4)")


def test_iss_with_a_failing_policy_leaves_the_episode_as_it_was(plugin_dir, tmp_path, scene):
    reg = PluginRegistry.discover([plugin_dir])
    path = tmp_path / "episode.h5"
    rollout(scene, reg.create_policy("zeros"), "pick_red", 0, max_steps=3, record_to=path)
    before = path.read_bytes()
    out = run_failing_cli(plugin_dir, "iss", str(path), "--policy", "raises", "--n", "4",
                          "--every", "2", "--check", "0")
    assert_one_error_line(out, "policy plugin 'raises'", "the model fell over")
    assert path.read_bytes() == before


def test_the_guard_keeps_type_and_capabilities(plugin_dir):
    reg = PluginRegistry.discover([plugin_dir])
    plain = reg.get("policy", "reference").factory()
    policy = reg.create_policy("reference")
    assert type(policy) is type(plain)  # provenance records the plugin's own class
    for capability in ("layers", "hook", "visual_token_layout", "token_groups",
                       "common_noise"):
        assert hasattr(policy, capability) == hasattr(plain, capability)
    assert hasattr(policy, "layers") and policy.layers()
    with reg.create_scene("step_fails") as scene:
        assert isinstance(scene, Scene) and scene.cameras == ("front", "wrist")
        scene.reset("pick_red", 0)
        with pytest.raises(PluginError, match="scene plugin 'step_fails'"):
            scene.step([0, 0, 0, 0])


def test_plugin_error_carries_the_traceback_across_processes(plugin_dir, scene):
    policy = PluginRegistry.discover([plugin_dir]).create_policy("raises")
    with pytest.raises(PluginError) as caught:
        rollout(scene, policy, "pick_red", 0, max_steps=2)
    assert "Traceback" in caught.value.details and "runtime_faults.py" in caught.value.details
    again = pickle.loads(pickle.dumps(caught.value))  # eval --jobs raises it from a worker
    assert str(again) == str(caught.value) and again.details == caught.value.details
    wide = PluginRegistry.discover([plugin_dir]).create_policy("wrong_width")
    with pytest.raises(ObservationError, match="policy plugin 'wrong_width'"):
        rollout(scene, wide, "pick_red", 0, max_steps=2)


def wait_for_dialog(qtbot, window):
    from test_app import errors_shown

    qtbot.waitUntil(lambda: bool(errors_shown(window)), timeout=60_000)
    return errors_shown(window)[0]


def test_gui_shows_a_dialog_naming_the_plugin_and_keeps_running(qtbot, tmp_path, plugin_dir):
    from PySide6.QtCore import Qt
    from test_app import dismiss_errors, errors_shown, idle, make_window, play_steps

    window = make_window(qtbot, tmp_path, plugin_dir)
    try:
        # sys.exit in batch_infer: a dialog, not a dead worker thread
        window.scene_dock.policy_box.setCurrentText("exits")
        idle(qtbot, window)
        assert window.workspace.policy_label == "exits"
        qtbot.keyClick(window, Qt.Key.Key_Space)
        dialog = wait_for_dialog(qtbot, window)
        assert "policy plugin 'exits'" in dialog.text() and "sys.exit(3)" in dialog.text()
        assert "Traceback" in dialog.detailedText()
        assert "runtime_faults.py" in dialog.detailedText()
        assert not window.workspace.playing
        for button in dialog.findChildren(QPushButton):  # "Show Details..." opened
            if button.text().startswith("Show"):
                button.click()
        assert dialog.grab().save(str(tmp_path / "plugin_error_dialog.png"))
        dismiss_errors(qtbot, window)
        # a non-array result, one step at a time
        window.scene_dock.policy_box.setCurrentText("returns_text")
        idle(qtbot, window)
        window.controller.step_once()
        dialog = wait_for_dialog(qtbot, window)
        assert "policy plugin 'returns_text'" in dialog.text()
        assert "returned a str" in dialog.text()
        dismiss_errors(qtbot, window)
        # sys.exit in reset (the new policy restarts the rollout): it cannot start, and
        # the window says so
        window.scene_dock.policy_box.setCurrentText("exits_on_reset")
        idle(qtbot, window)
        dialog = wait_for_dialog(qtbot, window)
        assert "policy plugin 'exits_on_reset'" in dialog.text()
        assert "sys.exit(4)" in dialog.text() and "Could not start" in dialog.windowTitle()
        dismiss_errors(qtbot, window)
        qtbot.keyClick(window, Qt.Key.Key_Space)  # play tries again, and says so again
        dialog = wait_for_dialog(qtbot, window)
        assert "policy plugin 'exits_on_reset'" in dialog.text()
        idle(qtbot, window)
        assert not window.workspace.playing
        dismiss_errors(qtbot, window)
        # still usable: back to the reference policy, a fresh rollout runs
        window.scene_dock.policy_box.setCurrentText("reference")
        idle(qtbot, window)
        window.controller.reset()
        idle(qtbot, window)
        play_steps(qtbot, window, 3)
        assert not errors_shown(window)
        assert window.engine._thread.is_alive()
    finally:
        window.close()
