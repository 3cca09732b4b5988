"""``vlascope doctor`` (issue 30, part 4): every check reports what works here, and a broken
piece (no display, no EGL driver, a plugin that fails to import, an extra not installed)
is one clear line with its fix. The broken pieces are real: the probes run in child
processes with the environment that breaks them."""

import json
import sys

from cli_process import cli_process

from vlascope.core.doctor import (
    FAIL,
    OK,
    WARN,
    check_display,
    check_extras,
    check_plugins,
    check_rendering,
    cuda_torch_hint,
    report,
    run_checks,
)
from vlascope.core.plugins import PluginRegistry


def test_this_machine_renders_and_says_so():
    checks = {c.name: c for c in run_checks()}
    for name in ("python", "packages", "rendering", "display", "gpu", "disk",
                 "plugin policy reference", "plugin scene tabletop", "extra ray"):
        assert name in checks, name
    assert checks["python"].status == OK and checks["packages"].status == OK
    assert checks["rendering"].status == OK and "rendered 32x32" in checks["rendering"].detail
    assert checks["plugin policy reference"].status == OK
    assert "GiB free for recordings" in checks["disk"].detail


def test_no_egl_driver_is_one_line_with_the_fix():
    check = check_rendering({"MUJOCO_GL": "egl", "__EGL_VENDOR_LIBRARY_DIRS": "/nonexistent"})
    assert check.status == FAIL
    assert "Cannot initialize a EGL device display" in check.detail
    assert "libegl1" in check.fix


def test_no_display_and_a_display_that_is_not_there():
    unset = check_display({"DISPLAY": "", "WAYLAND_DISPLAY": "", "QT_QPA_PLATFORM": ""})
    assert unset.status == FAIL and "no display" in unset.detail and "Xvfb" in unset.fix
    gone = check_display({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"})  # Qt aborts: probed
    assert gone.status == FAIL and "could not connect to display :99" in gone.detail
    offscreen = check_display({"QT_QPA_PLATFORM": "offscreen"})
    assert offscreen.status == WARN and "screenshot" in offscreen.detail


def test_a_plugin_that_fails_to_import_is_named(tmp_path):
    (tmp_path / "broken.py").write_text("import a_module_that_does_not_exist\n")
    checks = check_plugins(PluginRegistry.discover([tmp_path]))
    bad = [c for c in checks if c.status == FAIL]
    assert len(bad) == 1 and "a_module_that_does_not_exist" in bad[0].detail
    assert "broken.py" in bad[0].detail and bad[0].fix
    assert any(c.name == "plugin policy reference" and c.status == OK for c in checks)


def test_a_missing_extra_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "rerun" else real(name, *a))
    rerun = next(c for c in check_extras() if c.name == "extra rerun")
    assert rerun.status == WARN and rerun.fix == "bash scripts/setup.sh rerun"
    text = report([rerun])
    assert "[warn] extra rerun" in text and "fix: bash scripts/setup.sh rerun" in text
    # installed from a wheel there is no setup script: pip's extra; a bundle has neither
    import vlascope.core.environments as environments

    monkeypatch.setattr(environments, "checkout", lambda: None)
    rerun = next(c for c in check_extras() if c.name == "extra rerun")
    assert rerun.fix == "pip install 'vlascope[rerun]'"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    rerun = next(c for c in check_extras() if c.name == "extra rerun")
    assert rerun.fix.startswith("the bundle leaves it out") and "vlascope[rerun]" in rerun.fix



def test_system_fixes_follow_the_installation(monkeypatch):
    """A checkout's fixes may name its setup script; a wheel's and a bundle's may not (they
    have none): the same broken EGL says apt-get alone there."""
    no_egl = {"MUJOCO_GL": "egl", "__EGL_VENDOR_LIBRARY_DIRS": "/nonexistent"}
    assert "scripts/setup.sh" in check_rendering(no_egl).fix
    assert "scripts/setup.sh" in cuda_torch_hint("2.13.0+cpu")
    import vlascope.core.environments as environments

    monkeypatch.setattr(environments, "checkout", lambda: None)
    fix = check_rendering(no_egl).fix
    assert "apt-get install libegl1" in fix and "setup.sh" not in fix
    assert cuda_torch_hint("2.13.0+cpu") == ("pip install --force-reinstall torch==2.13.0 "
                                             "(PyPI's CUDA build)")
    gone = check_display({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"})
    assert "libxcb-cursor0" in gone.fix and "setup.sh" not in gone.fix
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert "CPU torch only" in cuda_torch_hint("2.13.0+cpu")

def test_the_command_prints_every_check_and_fails_on_a_broken_piece():
    # no display here (CI): one problem, exit status 1, the JSON lists every check
    out = cli_process("doctor", "--json")
    checks = json.loads(out.stdout)
    names = [c["name"] for c in checks]
    assert names[:5] == ["python", "packages", "rendering", "display", "gpu"]
    failed = [c for c in checks if c["status"] == FAIL]
    assert out.returncode == (1 if failed else 0)
    assert all(c["fix"] for c in failed)
