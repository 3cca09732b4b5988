"""Defect 3: OpenVLA-OFT loaded its checkpoint through openvla-oft's ``get_vla``, which runs
the folder's own Python code (``trust_remote_code``), without saying so. Running a
checkpoint's code is now the user's explicit choice: ``--policy-option
trust_remote_code=1`` in the CLI, a question naming the folder (once per folder and
session) in the app; without it, one error line naming the folder and how to allow it.
The same mechanism (``CheckpointCodeRequired``) covers a VLM whose files name code."""

import json
import os
import subprocess
import sys

import pytest

from vlascope.core.errors import CheckpointCodeRequired
from vlascope.core.plugins import PluginRegistry

pytest.importorskip("vlascope_transformers")


def oft_folder(path):
    """What the adapter checks before anything else: an OpenVLA-OFT folder's two files."""
    path.mkdir()
    for name in ("config.json", "dataset_statistics.json"):
        (path / name).write_text("{}")
    return path


def cli(*args):
    return subprocess.run([sys.executable, "-m", "vlascope.cli", *args], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})


def test_cli_needs_the_option_and_names_the_folder(tmp_path):
    folder = oft_folder(tmp_path / "oft")
    base = ["record", "--policy", "openvla-oft", "--weights", str(folder), "--task",
            "pick_red", "--max-steps", "1", "--out", str(tmp_path / "ep.h5")]
    run = cli(*base)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert lines[0].startswith("vlascope: error: OpenVLA-OFT")
    assert str(folder.resolve()) in lines[0] and "ships its own code" in lines[0]
    assert "--policy-option trust_remote_code=1" in lines[0]

    allowed = cli(*base, "--policy-option", "trust_remote_code=1")
    assert allowed.returncode != 0  # openvla-oft is not installed here: the next check
    assert "ships its own code" not in allowed.stderr
    assert "openvla-oft is not installed" in allowed.stderr

    typo = cli(*base, "--policy-option", "trust_remote_code=maybe")
    assert typo.returncode != 0 and "expects 1 or 0, got 'maybe'" in typo.stderr
    assert not (tmp_path / "ep.h5").exists()


def test_a_vlm_whose_files_name_code_asks_too(tmp_path):
    """transformers would import a folder's modeling file named in ``auto_map``."""
    from vlascope_transformers.tiny import write_tiny_vlm_head

    folder = write_tiny_vlm_head(tmp_path / "vlm")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageTextToText": "modeling_evil.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    registry = PluginRegistry.discover(plugin_dirs=[])
    with pytest.raises(CheckpointCodeRequired, match="auto_map in config.json") as e:
        registry.create_policy("vlm-head", weights=str(folder), device="cpu")
    assert e.value.folder == str(folder.resolve())


# the app ---------------------------------------------------------------------------------

@pytest.fixture
def answers(monkeypatch):
    """The question dialog, answered by the test; every question asked is kept."""
    from PySide6.QtWidgets import QMessageBox

    state = {"answer": QMessageBox.StandardButton.No, "asked": []}

    def question(parent, title, text, buttons, default):
        state["asked"].append(text)
        assert default == QMessageBox.StandardButton.No  # No unless the user says yes
        return state["answer"]

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return state


def _load(qtbot, window, folder):
    errors = []
    window.controller.error.connect(lambda title, message, details: errors.append(message))
    window.controller.load_policy("openvla-oft", weights=str(folder))
    qtbot.waitUntil(lambda: bool(errors), timeout=60_000)
    qtbot.waitUntil(lambda: not window.engine.busy(), timeout=60_000)
    return errors[-1]


def test_the_app_asks_once_per_folder_and_no_loads_nothing(qtbot, window, answers, tmp_path):
    folder = oft_folder(tmp_path / "oft")
    message = _load(qtbot, window, folder)
    assert len(answers["asked"]) == 1 and str(folder.resolve()) in answers["asked"][0]
    assert "nothing loaded" in message and str(folder.resolve()) in message
    assert window.workspace.run.policy == "reference"  # the previous policy stays
    message = _load(qtbot, window, folder)
    assert len(answers["asked"]) == 1  # not asked again in this session
    assert "nothing loaded" in message


def test_yes_loads_with_the_code_allowed(qtbot, window, answers, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    answers["answer"] = QMessageBox.StandardButton.Yes
    folder = oft_folder(tmp_path / "oft")
    message = _load(qtbot, window, folder)
    assert len(answers["asked"]) == 1
    assert "openvla-oft is not installed" in message  # past the question, to the loader
    message = _load(qtbot, window, folder)
    assert len(answers["asked"]) == 1 and "openvla-oft is not installed" in message
    other = oft_folder(tmp_path / "other")
    _load(qtbot, window, other)
    assert len(answers["asked"]) == 2 and str(other.resolve()) in answers["asked"][1]
