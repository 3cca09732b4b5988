"""Commands for LeRobot datasets (``vlascope dataset list|import``) and open-loop prediction
(``vlascope open-loop``), and the one place where ``DATASET#N`` becomes an episode file for
every command that takes episodes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

#: Arguments that name episode files, in any command.
EPISODE_ARGUMENTS = ("episode", "episodes", "compare")


def resolve_episode_arguments(args: argparse.Namespace) -> None:
    """``DATASET#N`` (and, in lists, a whole dataset folder) -> the linked episode file, so
    every command that reads episodes reads dataset episodes too. Imports the episode code
    only when a dataset is named: ``vlascope serve`` runs in policy environments that have
    no h5py."""
    from .core.lerobot_dataset import is_lerobot_dataset, split_reference

    def names_dataset(spec: object) -> bool:
        return isinstance(spec, str) and (split_reference(spec) is not None
                                          or is_lerobot_dataset(spec))

    for name in EPISODE_ARGUMENTS:
        value = getattr(args, name, None)
        items = value if isinstance(value, list) else [value]
        named = [v for v in items if names_dataset(v)]
        if not named:
            continue
        from .core.linked_episode import expand_episodes, resolve_episode

        print(f"vlascope: reading LeRobot dataset episode(s) {', '.join(named)}",
              file=sys.stderr)
        setattr(args, name, expand_episodes(value) if isinstance(value, list)
                else resolve_episode(value))


def cmd_dataset_list(args: argparse.Namespace) -> int:
    from .core.lerobot_dataset import LeRobotDatasetReader
    from .core.linked_episode import describe

    reader = LeRobotDatasetReader(args.dataset)
    rows = describe(reader)
    if args.json:
        print(json.dumps({"dataset": str(reader.root), "fps": reader.fps,
                          "cameras": list(reader.cameras.values()), "episodes": rows},
                         indent=2))
        return 0
    print(f"{reader.root}: {len(rows)} episodes at {reader.fps:g} fps, cameras "
          f"{', '.join(reader.cameras.values()) or 'none'}")
    for r in rows:
        print(f"  #{r['episode']:<5} {r['frames']:>6} frames  {r['task']}")
    return 0


def cmd_dataset_import(args: argparse.Namespace) -> int:
    """Print the linked episode file of each reference (importing it the first time)."""
    for path in args.episodes:
        print(path)
    return 0


def cmd_open_loop(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .cli import _policy_options, _registry
    from .core.open_loop import run_open_loop

    policy = _registry().create_policy(args.policy, **_policy_options(args))
    rows = []
    for path in args.episodes:
        with tqdm(desc="open loop", unit="step", disable=None) as bar:
            rows.append({"episode": path, **run_open_loop(
                path, policy, args.policy, layers=[v for v in args.capture.split(",") if v],
                pooling=args.pooling, progress=_bar(bar))})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        how = (f"MSE {r['mse']:.5f}, MAE {r['mae']:.5f} against the recorded actions"
               if "mse" in r else r["not_compared"])
        print(f"{r['episode']}: {args.policy} predicted {r['horizon']}-step chunks at every "
              f"step, stored as open_loop/{r['name']}; {how}"
              + (f"; captured {', '.join(r['captured'])}" if r.get("captured") else ""))
    return 0


def _bar(bar: Any) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
    return progress


def register(sub: argparse._SubParsersAction, add_common: Callable) -> None:
    group = sub.add_parser("dataset", help="LeRobot v3 datasets (a local folder) as "
                           "episodes: DATASET#N works wherever an episode file does")
    dsub = group.add_subparsers(dest="dataset_command", required=True)
    p = dsub.add_parser("list", help="a dataset's episodes: number, frames, task")
    p.add_argument("dataset")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dataset_list)
    p = dsub.add_parser("import", help="the VLAScope episode file linked to each dataset "
                        "episode (DATASET#N, or DATASET for all), written on first use")
    p.add_argument("episodes", nargs="+")
    p.set_defaults(func=cmd_dataset_import)

    p = sub.add_parser("open-loop", help="the actions a policy predicts on every recorded "
                       "frame, stored in the episode and compared with the recorded ones")
    p.add_argument("episodes", nargs="+", help="episode files, DATASET#N or a dataset folder")
    p.add_argument("--capture", default="", help="comma-separated hook points whose "
                   "activations on each frame are stored too (for `sae train`, probes)")
    p.add_argument("--pooling", default="tokens", choices=("tokens", "mean"))
    p.add_argument("--json", action="store_true")
    add_common(p)
    p.set_defaults(func=cmd_open_loop)
