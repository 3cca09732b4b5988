"""A policy plugin that declares an environment of its own (``make.environment = "openpi"``)
is served from that virtualenv by itself: real ``vlascope serve`` processes in the openpi
environment (scripts/openpi_env.sh, numpy<2), driven through the ``remote`` plugin. Its
actions equal the in-process policy's; its server lives exactly as long as the policy (close,
collection, session close, process exit); an environment that is not built or not known
says how to fix it in one line."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from openpi_env import openpi_python  # noqa: F401 - the session fixture

from vlascope.app.controller import served_by
from vlascope.core.environments import ENVIRONMENTS, env_python
from vlascope.core.errors import PluginError, UnknownNameError
from vlascope.core.plugins import PluginRegistry
from vlascope.core.policy import Observation, common_noise
from vlascope.core.session import Session
from vlascope.policies.reference.policy import make_reference

REPO = Path(__file__).resolve().parents[1]
KNOWN = ", ".join(sorted(ENVIRONMENTS))
PLUGIN = '''
from vlascope.policies.reference.policy import make_reference


def make(**options):
    return make_reference(**options)


make.environment = {env!r}
POLICIES = {{{name!r}: make}}
'''


def _folder(root: Path, name: str = "ref-in-openpi", env: str = "openpi") -> Path:
    folder = root / f"plugins-{name}"
    folder.mkdir()
    (folder / "env_plugin.py").write_text(PLUGIN.format(env=env, name=name))
    return folder


def _socket_dir(policy) -> Path:
    return Path(policy.url.removeprefix("unix://")).parent


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, openpi_python):  # noqa: F811 - the fixture
    return _folder(tmp_path_factory.mktemp("envs"))


def test_served_from_its_environment_with_the_same_actions(folder, openpi_python):  # noqa: F811
    policy = PluginRegistry.discover([folder]).create_policy("ref-in-openpi")
    pid, sock_dir = policy.server_pid, _socket_dir(policy)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].decode() == str(openpi_python)  # numpy<2 there, not here
        assert policy.environment == "openpi" and sock_dir.is_dir()
        assert policy.policy_id == "remote:vlascope/reference"
        assert served_by(policy) is not None  # the app closes it when it is replaced
        local = make_reference()
        assert policy.weights_hash == local.weights_hash
        rng = np.random.default_rng(0)
        frames = [Observation({c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
                               for c in ("front", "wrist")},
                              rng.normal(size=4).astype(np.float32), "pick up the red cube")
                  for _ in range(3)]
        with common_noise(policy), common_noise(local):
            np.testing.assert_allclose(policy.batch_infer(frames), local.batch_infer(frames),
                                       rtol=0, atol=1e-5)
    finally:
        policy.close()
    assert _gone(pid), "the server outlived close()"
    assert not sock_dir.exists()
    policy.close()  # twice: nothing more to do


def test_session_close_and_collection_stop_the_server(folder):
    session = Session(registry=PluginRegistry.discover([folder]))
    policy = session.load_policy("ref-in-openpi")
    pid, sock_dir = policy.server_pid, _socket_dir(policy)
    del policy
    session.close()  # what the app's worker does when the window closes
    assert _gone(pid) and not sock_dir.exists()

    policy = PluginRegistry.discover([folder]).create_policy("ref-in-openpi")
    pid, sock_dir = policy.server_pid, _socket_dir(policy)
    del policy
    gc.collect()
    assert _gone(pid) and not sock_dir.exists()


def test_cli_record_with_the_plugin_folder(folder, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "ep.h5"
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": str(folder), "TMPDIR": str(tmp)}
    proc = subprocess.run([sys.executable, "-m", "vlascope.cli", "record", "--policy",
                           "ref-in-openpi", "--task", "pick_red", "--max-steps", "3", "--out",
                           str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and out.stat().st_size > 0
    assert list(tmp.iterdir()) == []  # the server stopped at exit, its folder removed


def test_an_environment_not_built_says_how_to_build_it(folder, tmp_path):
    env = {**os.environ, "VLASCOPE_PLUGIN_PATH": str(folder),
           "XDG_CACHE_HOME": str(tmp_path)}  # no environment built under here
    proc = subprocess.run([sys.executable, "-m", "vlascope.cli", "record", "--policy",
                           "ref-in-openpi", "--task", "pick_red", "--max-steps", "3", "--out",
                           str(tmp_path / "x.h5")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "policy plugin 'ref-in-openpi' needs the environment 'openpi', which is not " \
        "built on this machine: `bash scripts/setup.sh env openpi` builds it" in proc.stderr
    assert not (tmp_path / "x.h5").exists()


def test_an_unknown_environment_is_named_with_the_known_ones(tmp_path):
    folder = _folder(tmp_path, "elsewhere", env="no-such-env")
    with pytest.raises(PluginError, match=r"policy plugin 'elsewhere': unknown environment "
                       rf"'no-such-env' \(known: {KNOWN}\)"):
        PluginRegistry.discover([folder]).create_policy("elsewhere")
    with pytest.raises(UnknownNameError, match=f"known: {KNOWN}"):
        env_python("no-such-env")
    setup = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "env", "no-such-env"],
                           capture_output=True, text=True, timeout=60)
    assert setup.returncode != 0
    assert f"unknown environment 'no-such-env' (known: {KNOWN})" in setup.stderr


def test_setup_env_prints_the_built_environment(openpi_python):  # noqa: F811
    assert "openpi" in ENVIRONMENTS
    setup = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "env", "openpi"],
                           capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr[-3000:]
    assert setup.stdout.strip().splitlines()[-1] == str(openpi_python)
    assert env_python("openpi") == openpi_python


def test_in_its_environment_it_loads_in_process(folder, monkeypatch):
    monkeypatch.setenv("VLASCOPE_ENVIRONMENT", "openpi")  # what the spawned server has
    policy = PluginRegistry.discover([folder]).create_policy("ref-in-openpi")
    assert type(policy).__name__ == "ReferencePolicy"
    assert not hasattr(policy, "server_pid")


def test_an_installed_plugins_source_checkout_goes_first_on_the_environments_path():
    """An environment holds an install of a plugin made when it was built; the spawner puts
    the plugin's source folder first so the served code is the code the app imported."""
    import vlascope_lerobot

    from vlascope.remote.spawn import _child_env, package_root

    plugin = REPO / "plugins" / "vlascope-lerobot"
    assert Path(vlascope_lerobot.__file__).resolve().is_relative_to(plugin)
    assert package_root("vlascope_lerobot.smolvla") == plugin
    assert package_root(np.__name__) is None  # a site-packages: never put on the path
    env = _child_env("lerobot", None, package_root("vlascope_lerobot"))
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(REPO), str(plugin)]
    assert env["VLASCOPE_ENVIRONMENT"] == "lerobot"
