"""Write a LeRobot v3 dataset from VLAScope episodes with LeRobot's own writer
(``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``; its videos
encoded by LeRobot with PyAV), so the tests read what LeRobot really writes.

    python tests/make_lerobot_dataset.py OUT_DIR EPISODE.h5 [EPISODE.h5 ...] [--vcodec C]

Run in its own process: LeRobot's import patches torchvision (vlascope_lerobot.compat).
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("episodes", nargs="+")
    parser.add_argument("--vcodec", default="libsvtav1")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--display", action="store_true",
                        help="the episodes' display renders as the camera frames (larger than "
                        "the policy's input, as a real dataset's are)")
    args = parser.parse_args()

    from vlascope_lerobot.compat import prepare_torchvision

    prepare_torchvision()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from vlascope.core.episode import Episode, policy_instruction

    with Episode(args.episodes[0]) as first:
        cams = first.cameras
        frame = first.display_frame if args.display else first.frame
        h, w = frame(0, cams[0]).shape[:2]
        features = {f"observation.images.{c}": {"dtype": "video", "shape": (h, w, 3),
                                                "names": ["height", "width", "channels"]}
                    for c in cams}
        features["observation.state"] = {"dtype": "float32", "shape": first.states().shape[1:],
                                         "names": None}
        features["action"] = {"dtype": "float32", "shape": first.actions().shape[1:],
                              "names": None}
        features["next.success"] = {"dtype": "bool", "shape": (1,), "names": None}
    ds = LeRobotDataset.create(repo_id="vlascope/test", fps=args.fps, features=features,
                               root=args.out, robot_type="vlascope-tabletop", use_videos=True,
                               vcodec=args.vcodec)
    for path in args.episodes:
        with Episode(path) as ep:
            states, actions, successes = ep.states(), ep.actions(), ep.successes()
            image = ep.display_frame if args.display else ep.frame
            for t in range(ep.n_steps):
                frame = {f"observation.images.{c}": image(t, c) for c in cams}
                frame["observation.state"] = states[t].astype(np.float32)
                frame["action"] = actions[t].astype(np.float32)
                frame["next.success"] = np.array([successes[t]], bool)
                frame["task"] = policy_instruction(ep.metadata, t)
                ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()


if __name__ == "__main__":
    main()
