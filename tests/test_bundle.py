"""The one-folder bundle (packaging/build.sh, docs/packaging.md).

The plugin-folder rules the bundle relies on run in the normal suite (``sys.frozen`` set as
PyInstaller sets it). Checking a built bundle takes a build of many minutes first, so that
test runs only on request: ``bash packaging/build.sh`` then
``VLASCOPE_TEST_BUNDLE=1 .venv/bin/pytest tests/test_bundle.py`` (another bundle folder:
``VLASCOPE_TEST_BUNDLE=/path/to/VLAScope``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlascope.core.plugins import WHEELS_SUBFOLDER, PluginRegistry

REPO = Path(__file__).resolve().parents[1]


def unpacked_wheel(site: Path) -> None:
    """What `unzip plugin.whl -d site` leaves: a module and its dist-info with an entry
    point."""
    site.mkdir(parents=True)
    (site / "bundle_probe_plugin.py").write_text(
        "class Policy:\n    pass\n\ndef make(**options):\n    return Policy()\n")
    info = site / "bundle_probe_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bundle-probe-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("[vlascope.policies]\n"
                                           "bundle-probe = bundle_probe_plugin:make\n")


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # what discovery adds is undone
    monkeypatch.delitem(sys.modules, "bundle_probe_plugin", raising=False)
    unpacked_wheel(tmp_path / WHEELS_SUBFOLDER)
    return tmp_path


def test_bundle_finds_a_plugin_wheel_unpacked_into_the_plugin_folder(plugin_dir, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    reg = PluginRegistry.discover([plugin_dir])
    entry = reg.get("policy", "bundle-probe")
    assert entry.ok and "bundle-probe-plugin" in entry.source
    assert str(plugin_dir / WHEELS_SUBFOLDER) == sys.path[-1]  # after the bundle's own


def test_outside_the_bundle_pip_installs_plugins(plugin_dir, monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    reg = PluginRegistry.discover([plugin_dir])
    assert "bundle-probe" not in reg.names("policy")
    assert str(plugin_dir / WHEELS_SUBFOLDER) not in sys.path


def test_bundle_says_where_a_missing_first_party_plugin_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    hint = PluginRegistry([]).not_installed("scene")["libero"]
    assert "this bundle does not carry it" in hint
    assert f"unzip -o vlascope_libero-*.whl -d {tmp_path}/vlascope/plugins/site-packages" in hint
    assert "setup.sh" not in hint


def test_entry_script_runs_code_like_python_c():
    """The doctor probes in `sys.executable -c CODE`: the bundle's executable does that."""
    out = subprocess.run([sys.executable, str(REPO / "packaging" / "vlascope_main.py"), "-c",
                          "import sys; print('probe', sys.argv)", "x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "probe ['-c', 'x']"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VLASCOPE_TEST_BUNDLE"),
                    reason="needs a built bundle: bash packaging/build.sh, then "
                           "VLASCOPE_TEST_BUNDLE=1")
def test_built_bundle_starts_in_a_clean_environment():
    value = os.environ["VLASCOPE_TEST_BUNDLE"]
    bundle = Path(value) if value not in ("1", "yes", "true") else REPO / "dist" / "VLAScope"
    out = subprocess.run(["bash", str(REPO / "packaging" / "check_bundle.sh"), str(bundle)],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0 and "ALL CHECKS PASSED" in out.stdout, out.stdout + out.stderr
