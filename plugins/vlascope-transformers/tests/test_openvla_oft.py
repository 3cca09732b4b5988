"""OpenVLA-OFT is served from an environment of its own (scripts/openvla_oft_env.sh: its
PyPI stack, transformers 4.40). Its code, its transformers fork and dlimp are on GitHub only,
so here the adapter's path stops where a user's would without them: the app checks the
folder and asks about its code first, in its own process; the environment's server then says
exactly what to install, and with which python."""

import json
import subprocess
import sys

import pytest
from envs import build_env

from vlascope.core.environments import env_python
from vlascope.core.errors import CheckpointCodeRequired, PluginError
from vlascope.core.plugins import PluginRegistry


@pytest.fixture(scope="module")
def oft_python():
    return build_env("openvla-oft")


@pytest.fixture()
def folder(tmp_path):
    folder = tmp_path / "oft"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"auto_map": {
        "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"}}))
    (folder / "dataset_statistics.json").write_text("{}")
    (folder / "modeling_prismatic.py").write_text("raise SystemExit('must never run')\n")
    return folder


def _no_server_left(before: set[int]) -> bool:
    out = subprocess.run(["pgrep", "-f", "vlascope.cli_serve --policy openvla-oft"],
                         capture_output=True, text=True).stdout.split()
    return not (set(map(int, out)) - before)


def test_the_app_asks_before_anything_is_served(folder, oft_python):
    registry = PluginRegistry.discover(plugin_dirs=[])
    assert registry.environment("openvla-oft") == "openvla-oft"
    with pytest.raises(CheckpointCodeRequired):  # the app's question, not a served error
        registry.create_policy("openvla-oft", weights=str(folder))
    (folder / "dataset_statistics.json").unlink()
    with pytest.raises(PluginError, match="missing dataset_statistics.json"):
        registry.create_policy("openvla-oft", weights=str(folder), trust_remote_code=1)
    assert _no_server_left(set())


def test_its_environment_says_what_to_install_with_which_python(folder, oft_python):
    assert env_python("openvla-oft") == oft_python
    registry = PluginRegistry.discover(plugin_dirs=[])
    with pytest.raises(PluginError) as err:
        registry.create_policy("openvla-oft", weights=str(folder), trust_remote_code=1)
    msg = str(err.value)
    assert msg.startswith("policy plugin 'openvla-oft' in the environment 'openvla-oft': "
                          "vlascope serve exited with status")
    assert "openvla-oft is not installed in this environment" in msg
    assert f"{oft_python} -m pip install --no-deps -e openvla-oft" in msg
    assert "transformers-openvla-oft.git" in msg and "dlimp_openvla" in msg
    assert "Traceback" not in msg


def test_in_its_environment_it_loads_in_process(folder, monkeypatch):
    monkeypatch.setenv("VLASCOPE_ENVIRONMENT", "openvla-oft")  # what the served process has
    registry = PluginRegistry.discover(plugin_dirs=[])
    with pytest.raises(PluginError, match=r"openvla-oft is not installed in this environment "
                       rf"\({sys.prefix}; cannot import 'prismatic'"):
        registry.create_policy("openvla-oft", weights=str(folder), trust_remote_code=1)
