"""The README's picture of the free camera, from a real rollout: the shipped reference policy
picks up the red cube on the tabletop (recorded with its simulator state); at the step with
the most contacts on the robot the dock shows the scene from the side the policy's cameras
do not see, with contact points and forces, the planned hand path of the step's chunk, and
a clicked body named with its region class and object id.

    QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl .venv/bin/python scripts/free_camera_screenshot.py \
        --out docs/images/free-camera.png

About half a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")


def robot_contacts(path: Path) -> list[int]:
    """Per step, the contacts touching the robot, from the recorded states."""
    import mujoco

    from vlascope.core.episode import Episode
    from vlascope.core.free_camera import STATE_SPEC
    from vlascope.scenes.tabletop import TabletopScene

    with Episode(path) as ep, TabletopScene() as scene:
        m = ep.metadata
        scene.reset(m["task"], m["seed"], m["variant"])
        model, data = scene.model, mujoco.MjData(scene.model)
        counts = []
        for t in range(ep.n_steps):
            mujoco.mj_setState(model, data, ep.sim_state(t), STATE_SPEC)
            mujoco.mj_forward(model, data)
            root = lambda g: mujoco.mj_id2name(  # noqa: E731
                model, mujoco.mjtObj.mjOBJ_BODY, int(model.body_rootid[model.geom_bodyid[g]]))
            counts.append(sum(1 for c in data.contact[:data.ncon]
                              if "robot" in (root(c.geom1) or "") + (root(c.geom2) or "")))
        return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/images/free-camera.png")
    args = ap.parse_args()

    import numpy as np
    from PySide6.QtWidgets import QApplication

    from vlascope.app.docks.free_camera import FreeCameraDock
    from vlascope.core.free_camera import replay_model
    from vlascope.core.runner import rollout
    from vlascope.core.workspace import Workspace
    from vlascope.policies.reference.policy import ReferencePolicy
    from vlascope.scenes.tabletop import TabletopScene

    app = QApplication.instance() or QApplication([])
    path = Path(tempfile.mkdtemp(prefix="vlascope-freecam-shot-")) / "ep.h5"
    with TabletopScene() as scene:
        rollout(scene, ReferencePolicy(name="reference"), "pick_red", 3, max_steps=40,
                record_to=path)
    counts = robot_contacts(path)
    from vlascope.core.recording import FileRecording

    rec = FileRecording(path)  # the longest plan: in free space
    reach = [float(np.linalg.norm(np.ptp(rec.hand_path(t).planned, axis=0)))
             for t in range(rec.n_steps)]
    rec.close()
    step = max(range(len(counts)), key=lambda t: reach[t])
    print(f"step {step}: {counts[step]} contacts on the robot, plan spans {reach[step]:.3f} m")

    replay = TabletopScene()
    ws = Workspace()
    dock = FreeCameraDock(ws, lambda meta, done: done(replay_model(replay, meta)))
    dock.resize(900, 700)
    dock.show()
    ws.open_episode(path)
    ws.set_step(step)
    for box in (dock.contacts, dock.forces):
        box.setChecked(True)
    while dock.camera is None:
        app.processEvents()
    dock.render_now()  # the first frame of a rollout puts the camera at its default
    cam = dock.camera.camera
    cam.azimuth += 35  # round to the side the front camera does not see
    cam.elevation = -22
    cam.distance *= 0.45
    hand = ws.recording.hand_path(step).planned[0]
    cam.lookat[:] = hand - [0, 0, 0.08]
    dock.render_now()
    h, w = dock.camera.size
    found = None
    for y in range(0, h, 6):  # click the red cube
        for x in range(0, w, 6):
            sel = dock.camera.select(x, y)
            if sel is not None and sel.object_name == "cube_a":
                found = (x, y)
                break
        if found:
            break
    if found:
        dock.select_at(*found)
    app.processEvents()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not dock.grab().save(str(out)):
        raise SystemExit(f"could not save {out}")
    print(f"wrote {out} ({dock.message.text()})")
    dock.close()
    ws.recording.close()
    replay.close()


if __name__ == "__main__":
    main()
