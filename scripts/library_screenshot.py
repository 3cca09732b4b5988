"""The README's picture of the Library dock, from real episodes: rollouts of the reference
policies and the scripted expert on several tasks (some fail), one with a counterfactual
prompt, ISS maps stored in two of them (so they have NMR@10), one flagged and one noted.

    QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl .venv/bin/python scripts/library_screenshot.py \
        --out docs/images/library.png

About three minutes on a 2-core CPU (the ISS runs dominate).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")

RUNS = [  # policy, task, variant, seed, max steps, instruction
    ("reference", "pick_red", "default", 0, 40, None),
    ("reference", "pick_blue", "default", 1, 40, None),
    ("reference", "place_red_on_plate", "diverse", 2, 30, None),
    ("reference", "pick_red", "default", 3, 25, "pick up the blue cube"),
    ("reference-shortcut", "pick_red", "shortcut_test", 4, 30, None),
    ("reference-shortcut", "pick_blue", "shortcut_train", 5, 40, None),
    ("expert", "stack_red_on_blue", "default", 6, 80, None),
    ("expert", "place_blue_in_zone", "default", 7, 12, None),
    ("expert", "pick_blue", "dim_light", 8, 40, None),
    ("expert", "place_red_in_zone", "more_distractors", 9, 80, None),
]
WITH_ISS = (0, 4)


def record(folder: Path) -> list[Path]:
    from vlascope.core.plugins import PluginRegistry
    from vlascope.core.runner import rollout
    from vlascope.scenes.tabletop import TabletopScene

    registry = PluginRegistry.discover()
    policies: dict = {}
    paths = []
    with TabletopScene() as scene:
        for policy, task, variant, seed, steps, instruction in RUNS:
            if policy not in policies:
                policies[policy] = registry.create_policy(policy)
            path = folder / f"{policy}__{task}__{variant}__seed{seed}.h5"
            rollout(scene, policies[policy], task, seed, variant, max_steps=steps,
                    record_to=path, policy_name=policy, instruction=instruction)
            paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/library.png")
    args = parser.parse_args()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from vlascope.app.docks.library import LibraryDock
    from vlascope.core.library import Library

    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "recordings"
        folder.mkdir()
        paths = record(folder)
        for i in WITH_ISS:
            subprocess.run([sys.executable, "-m", "vlascope.cli", "iss", str(paths[i])],
                           check=True)
        lib = Library([folder]).load()
        lib.scan()
        rows = {r.path: r for r in lib.rows()}
        lib.set_flag(rows[paths[4]], True)
        lib.set_note(rows[paths[4]], "follows the pad, not the colour")
        lib.set_flag(rows[paths[3]], True)
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        dock = LibraryDock(folder, settings)
        dock.resize(1240, 400)
        dock.show()
        while dock.scanning() or not dock.library.rows():
            app.processEvents()
        app.processEvents()
        dock.failures_first.setChecked(True)
        dock.table.selectRow(0)
        app.processEvents()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not dock.grab().save(str(out)):
            raise SystemExit(f"could not save {out}")
        dock.shutdown()
    print(f"library screenshot -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
