"""The first-run window on a 1366x768 and a 1920x1080 screen: it fills the screen, and no
dock cuts off its controls (tests/layout_probe.py, in a process per screen, since a Qt
process cannot change its screens); the screenshots are kept for people to look at."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("layout_probe.py")


@pytest.mark.slow
@pytest.mark.parametrize("width,height", [(1366, 768), (1920, 1080)])
def test_first_run_fills_the_screen_and_no_dock_cuts_off_controls(tmp_path, width, height):
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{
        "name": f"screen-{width}", "x": 0, "y": 0, "width": width, "height": height,
        "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}",
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.run([sys.executable, str(PROBE), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["screen"][2:] == [width, height]
    # the window fills the screen it opened on (offscreen: no title bar to subtract)
    assert report["frame"] == [width, height]
    assert len(report["docks"]) >= 8
    for title, dock in report["docks"].items():
        assert dock["visible"], f"{title} could not be shown"
        assert dock["cut_off"] == [], f"{title} at {width}x{height}: {dock['cut_off']}"
    assert (tmp_path / "window.png").stat().st_size > 10_000
