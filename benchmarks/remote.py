"""Policies out of process (issue 24), on the shipped reference policy (two cameras, 96x96):

(i)   pixel ISS of one frame in process (the floor),
(ii)  the same ISS through `vlascope serve` on loopback (the remote plugin; one batched
      request per ISS batch, common noise pinned on the server),
(iii) the same ISS through openpi's own `WebsocketPolicyServer` serving the reference
      policy in the openpi virtualenv (scripts/openpi_env.sh): the remote plugin's plain
      openpi path, one request per observation,
(iv)  a rollout step's added latency through `vlascope serve`: `LiveRollout.step()` (scene
      observe + render, policy call, scene step; no recording) and a bare one-observation
      `batch_infer`, in process and remote.

Same ISSConfig everywhere (N masks, the CLI's default estimator `toolkit-improved`, batches
of 50); the ways are interleaved within each repeat, so they see the same machine load, and
medians are reported. Server and client share this machine's cores.

    .venv/bin/python benchmarks/remote.py [--n 100] [--repeats 5] [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vlascope.core.live import LiveRollout  # noqa: E402
from vlascope.core.saliency.iss import ISSConfig, pixel_iss  # noqa: E402
from vlascope.policies.reference.policy import ReferencePolicy  # noqa: E402
from vlascope.remote.client import make_remote  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # openpi_env.py: the openpi virtualenv and server


@contextlib.contextmanager
def vlascope_served() -> Iterator[str]:
    """`vlascope serve --port 0` (the reference policy) in a child process; yields its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "vlascope.cli", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "VLASCOPE_PLUGIN_PATH": ""})
    try:
        for line in proc.stdout:
            m = re.search(r" on (ws://\S+)$", line.strip())
            if m:
                yield m.group(1)
                return
        raise RuntimeError("vlascope serve exited before listening")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def episode_step_ms(scene: TabletopScene, policy: object, seed: int, steps: int) -> float:
    """Mean wall time of one `LiveRollout.step()` over one episode (no recording)."""
    live = LiveRollout(scene, policy, "stack_red_on_blue", seed, max_steps=steps)
    t0, n = time.perf_counter(), 0
    while not live.done:
        live.step()
        n += 1
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="ISS masks")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30, help="rollout steps per episode")
    ap.add_argument("--calls", type=int, default=200, help="one-observation calls timed")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads in every process (servers too, via OMP_NUM_THREADS); "
                    "1 on a machine others load: an OpenMP team of 2 on 2 busy cores "
                    "waits for its descheduled thread at every barrier")
    ap.add_argument("--skip-openpi", action="store_true",
                    help="leave out (iii) (no openpi virtualenv)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the servers' torch
    load0 = os.getloadavg()[0]
    policy = ReferencePolicy(device="cpu")
    cfg = ISSConfig(n_masks=args.n, estimator="toolkit-improved", batch_size=50)
    with contextlib.ExitStack() as stack:
        scene = stack.enter_context(TabletopScene())
        scene.reset("stack_red_on_blue", 0)
        obs = scene.observe(cameras=policy.cameras, size=policy.image_size).observation
        remote = make_remote(stack.enter_context(vlascope_served()))
        stack.callback(remote.close)
        ways = {"local": policy, "served": remote}
        if not args.skip_openpi:
            from openpi_env import build_openpi_env, openpi_served

            url = stack.enter_context(openpi_served(build_openpi_env()))
            ways["openpi"] = make_remote(url, cameras="front,wrist", image_size="96x96")
            stack.callback(ways["openpi"].close)
        one = replace(cfg, batch_size=1)  # the openpi path's calls, without the wire
        maps = {k: pixel_iss(p, obs, cfg).maps for k, p in ways.items()}  # warm-up
        diff = {k: max(float(np.abs(m[c] - maps["local"][c]).max()) for c in m)
                for k, m in maps.items()}
        iss: dict[str, list[float]] = {k: [] for k in (*ways, "local-1")}
        for _ in range(args.repeats):  # interleaved: every way sees the same machine load
            for k, p in ways.items():
                iss[k].append(timed(lambda p=p: pixel_iss(p, obs, cfg)))
            if "openpi" in ways:
                iss["local-1"].append(timed(lambda: pixel_iss(policy, obs, one)))
        steps: dict[str, list[float]] = {"local": [], "served": []}
        for seed in range(args.repeats + 1):
            for k in steps:
                ms = episode_step_ms(scene, ways[k], seed, args.steps)
                if seed:  # the first episode warms renderer and caches
                    steps[k].append(ms)
        calls: dict[str, list[float]] = {"local": [], "served": [], "trip": []}
        for _ in range(args.calls):
            for k in ("local", "served"):
                calls[k].append(timed(lambda k=k: ways[k].batch_infer([obs])) * 1000)
            calls["trip"].append(timed(remote.reset) * 1000)  # no forward pass: the wire
    med = {k: float(np.median(v)) for k, v in iss.items()}
    step = {k: float(np.median(v)) for k, v in steps.items()}
    call = {k: float(np.median(v)) for k, v in calls.items()}
    rows = [("(i) ISS in process (floor)", f"{med['local']:.3f} s", "1.00x"),
            ("(ii) ISS via vlascope serve (batched)", f"{med['served']:.3f} s",
             f"{med['served'] / med['local']:.2f}x (target <= 1.2x)")]
    if "openpi" in med:
        rows.append(("(iii) ISS via openpi's WebsocketPolicyServer (1 obs/request)",
                     f"{med['openpi']:.3f} s", f"{med['openpi'] / med['local']:.2f}x"))
        rows.append(("(iii') the same 1-obs calls in process (ISS batch_size 1)",
                     f"{med['local-1']:.3f} s", f"{med['local-1'] / med['local']:.2f}x"))
    rows += [("(iv) rollout step, in process", f"{step['local']:.2f} ms", ""),
             ("(iv) rollout step, via vlascope serve", f"{step['served']:.2f} ms",
              f"{step['served'] - step['local']:+.2f} ms (target <= +5 ms)"),
             ("(iv) one-observation batch_infer, in process", f"{call['local']:.2f} ms", ""),
             ("(iv) one-observation batch_infer, via vlascope serve", f"{call['served']:.2f} ms",
              f"{call['served'] - call['local']:+.2f} ms"),
             ("(iv) round trip of a request without forward pass (reset)",
              f"{call['trip']:.2f} ms", "")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} torch thread(s) per process, device {policy.device}; load average "
          f"{load0:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"ISS: N={args.n}, toolkit-improved, batches of 50, cameras "
          f"{', '.join(policy.cameras)} at {policy.image_size[0]}x{policy.image_size[1]}; "
          f"medians of {args.repeats}, interleaved; max |map diff| vs in process: "
          + ", ".join(f"{k} {v:.1e}" for k, v in diff.items() if k != "local"))
    print(f"rollout: stack_red_on_blue, {args.steps} steps per episode, medians of "
          f"{args.repeats} episodes; batch_infer: medians of {args.calls} calls, interleaved")
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>10}  {ratio}")


if __name__ == "__main__":
    main()
