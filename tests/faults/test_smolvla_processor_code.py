"""Defect 2: LeRobot imports and calls any ``"class"`` a processor file names, so a
SmolVLA checkpoint could run a command on load. The adapter now reads both processor files
first and refuses every step that is not one of SmolVLA's registered steps, naming the file
and the step; the command never runs. A checkpoint LeRobot wrote itself still loads."""

import json
import shutil

import pytest

pytest.importorskip("lerobot")

from vlascope_lerobot.tiny import write_tiny_smolvla  # noqa: E402

from vlascope.core.errors import PluginError  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover(plugin_dirs=[])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_smolvla(tmp_path_factory.mktemp("smolvla") / "ckpt")


def _planted(checkpoint, tmp_path, file, step, index=0):
    """A copy of the checkpoint whose ``file`` has ``step`` in place of step ``index``."""
    folder = tmp_path / "planted"
    shutil.copytree(checkpoint, folder)
    data = json.loads((folder / file).read_text())
    data["steps"][index] = step
    (folder / file).write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("file", ["policy_preprocessor.json", "policy_postprocessor.json"])
@pytest.mark.parametrize("kind", ["popen", "system", "class-beside-registry-name"])
def test_a_step_naming_code_is_refused_before_it_runs(registry, checkpoint, tmp_path, file,
                                                      kind):
    marker = tmp_path / "ran"
    command = f"touch {marker}"
    step = {"popen": {"class": "subprocess.Popen", "config": {"args": command, "shell": True}},
            "system": {"class": "os.system", "config": {"command": command}},
            "class-beside-registry-name": {"registry_name": "device_processor",
                                           "class": "subprocess.Popen",
                                           "config": {"args": command, "shell": True}}}[kind]
    folder = _planted(checkpoint, tmp_path, file, step)
    with pytest.raises(PluginError, match=rf"{file} step 0 names the class"):
        registry.create_policy("smolvla", weights=str(folder), device="cpu")
    assert not marker.exists()


def test_registered_steps_smolvla_does_not_use_are_refused(registry, checkpoint, tmp_path):
    """LeRobot's action tokenizer step is registered but loads its tokenizer with
    trust_remote_code=True: not a step SmolVLA uses, so refused."""
    folder = _planted(checkpoint, tmp_path, "policy_preprocessor.json",
                      {"registry_name": "action_tokenizer_processor",
                       "config": {"action_tokenizer_name": str(tmp_path / "code")}})
    with pytest.raises(PluginError, match=r"policy_preprocessor.json step 0 "
                                          r"'action_tokenizer_processor' is not"):
        registry.create_policy("smolvla", weights=str(folder), device="cpu")


def test_a_state_file_outside_the_folder_is_refused(registry, checkpoint, tmp_path):
    data = json.loads((checkpoint / "policy_postprocessor.json").read_text())
    step = dict(data["steps"][0], state_file="../elsewhere.safetensors")
    folder = _planted(checkpoint, tmp_path, "policy_postprocessor.json", step)
    with pytest.raises(PluginError, match=r"step 0 'unnormalizer_processor' reads its state"):
        registry.create_policy("smolvla", weights=str(folder), device="cpu")


def test_a_checkpoint_lerobot_wrote_still_loads(registry, checkpoint):
    policy = registry.create_policy("smolvla", weights=str(checkpoint), device="cpu")
    assert policy.horizon == 8 and policy.cameras == ("front", "wrist")
