"""The full-size table (issue 25): one policy family at its published size, with random
weights, on this machine's CPU: exact parameter count, peak memory, load time, the time of
one step and of one pixel ISS frame (N = 100), printed as one markdown row.

1. The family's own builder writes the published configuration with random weights, by the
   family's own classes and save_pretrained, into <cache>/<family>-<hash of the builder
   source, where the configuration is written> (a temporary folder renamed when complete, so
   a half-written one is never reused; a complete one is). Families of the "lerobot"
   environment (xvla, groot) are built there.
2. A fresh process loads it through the public plugin loader
   (``PluginRegistry.discover().create_policy(NAME, weights=..., device="cpu")``; xvla and
   groot are then served from their environment, and memory is the server's) and measures:
   parameters (from the safetensors headers), load time, peak resident memory (VmHWM of the
   process holding the model), one step (``batch_infer`` of one tabletop frame fed to each of
   the checkpoint's cameras; a warm-up, then the median of --repeats) and one ISS frame:
   a real ISS run of one full batch (N = B masks, the CLI's estimator, the same code path);
   N = 100 is then run as well when that run predicts it fits --iss-budget, else N = 100 is
   extrapolated linearly from it, and the row says which.

    .venv/bin/python benchmarks/full_size.py --family smolvla [--cache DIR] [--iss-batch B]
        [--threads T] [--dtype auto|float32|bfloat16] [--repeats 3] [--iss-budget 900]
        [--build-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 2 ** 30
N_FULL = 100  # the paper's ISS setting


@dataclass(frozen=True)
class Family:
    plugin: str  # folder under plugins/
    module: str  # the builder, run as ``python -m module *args`` ("{out}": the folder)
    args: tuple[str, ...]
    environment: str | None  # where the builder runs (None: this python)
    sources: tuple[str, ...]  # files of the plugin's package holding the configuration
    nominal: float  # the published parameter count: the estimates before building
    build_bytes: int  # bytes per parameter in memory while building
    disk_bytes: int  # bytes per parameter the build writes


FAMILIES = {
    "smolvla": Family("vlascope-lerobot", "vlascope_lerobot.published", ("{out}",), None,
                      ("published.py", "tiny.py"), 0.45e9, 4, 2),
    "pi0": Family("vlascope-transformers", "vlascope_transformers.published", ("pi0", "{out}"),
                  None, ("published.py", "tiny.py"), 3.5e9, 2, 2),
    "pi05": Family("vlascope-transformers", "vlascope_transformers.published",
                   ("pi05", "{out}"), None, ("published.py", "tiny.py"), 3.35e9, 2, 2),
    "xvla": Family("vlascope-lerobot", "vlascope_lerobot.xvla_build",
                   ("{out}", "--size", "published"), "lerobot", ("xvla_build.py",), 0.88e9,
                   4, 4),
    # float32; base/ and the policy on disk, and a staged copy of base/ while building
    "groot": Family("vlascope-lerobot", "vlascope_lerobot.groot_build",
                    ("{out}", "--size", "published"), "lerobot",
                    ("groot_build.py", "groot_assets.py"), 2.41e9, 4, 12),
}


def refused(message: str) -> SystemExit:
    """A clear one-line reason the benchmark cannot run here (printed, exit status 1)."""
    return SystemExit(f"full_size: {message}")


# Machine ---------------------------------------------------------------------------------
def meminfo(key: str = "MemAvailable") -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise refused(f"/proc/meminfo has no {key}")


def vm_hwm(pid: int) -> int:
    """Peak resident memory of process ``pid`` (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def machine() -> str:
    """CPU model, the vector extensions that decide matmul speed, cores, memory."""
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")),
                 platform.processor() or "?")
    flags = set(next((x.split(":", 1)[1].split() for x in info if x.startswith("flags")), []))
    isa = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"),
                                        ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), "no AVX2")
    return f"{model} ({isa}), {os.cpu_count()} cores, {meminfo('MemTotal') / GIB:.0f} GiB"


def check_memory(what: str, params: float, bytes_per: int, hint: str = "") -> None:
    """Refuse before starting when ``params`` at ``bytes_per`` bytes cannot fit."""
    need = params * bytes_per * 1.2 + 1.5 * GIB  # + working memory, torch and the libraries
    have = meminfo()
    if need > have:
        raise refused(f"{what} needs about {need / GIB:.1f} GiB ({params / 1e9:.2f} B "
                      f"parameters x {bytes_per} bytes + working memory) and this machine has "
                      f"{have / GIB:.1f} GiB available (MemAvailable); free memory{hint}")


# Checkpoint ------------------------------------------------------------------------------
def safetensors_params(folder: Path) -> tuple[int, Counter]:
    """Exact parameter count and dtypes of the checkpoint's weight files (its top-level
    ``model*.safetensors``), read from their headers without loading a tensor."""
    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        raise refused(f"{folder} has no model*.safetensors")
    total, dtypes = 0, Counter()
    for f in files:
        with open(f, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, t in header.items():
            if name != "__metadata__":
                n = 1
                for d in t["shape"]:
                    n *= d
                total += n
                dtypes[t["dtype"]] += n
    return total, dtypes


def config_hash(name: str, fam: Family) -> str:
    h = hashlib.sha256(name.encode())
    package = REPO / "plugins" / fam.plugin / fam.module.split(".")[0]
    for src in fam.sources:
        path = package / src
        if not path.is_file():
            raise refused(f"{name}'s builder {fam.module} is not in this checkout ({path})")
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def child_env(fam: Family, threads: int) -> dict[str, str]:
    """This checkout and the family's plugin first on the path, offline, T threads."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    paths = [str(REPO), str(REPO / "plugins" / fam.plugin)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, env.get("PYTHONPATH", "")
                                                        .split(os.pathsep))])
    return env


def ensure_built(name: str, fam: Family, root: Path, threads: int) -> tuple[Path, bool]:
    """The complete checkpoint folder (built now, or reused), and whether it was reused."""
    final = root / f"{name}-{config_hash(name, fam)}"
    if final.is_dir() and any(final.glob("model*.safetensors")):
        return final, True
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".{final.name}.partial-*"):  # a crashed build's leftovers
        pid = int(stale.name.rsplit("-", 1)[1])
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    check_memory(f"building {name} at published size", fam.nominal, fam.build_bytes)
    free = shutil.disk_usage(root).free
    if free < fam.nominal * fam.disk_bytes * 1.1:
        raise refused(f"building {name} needs about {fam.nominal * fam.disk_bytes / GIB:.0f} "
                      f"GiB of disk and {root} has {free / GIB:.0f} GiB free (--cache DIR)")
    partial = root / f".{final.name}.partial-{os.getpid()}"
    if fam.environment is None:
        python = sys.executable
    else:
        from vlascope.core.environments import require_python

        python = str(require_python(fam.environment, f"building {name}"))
    cmd = [python, "-m", fam.module, *(a.replace("{out}", str(partial)) for a in fam.args)]
    print(f"building {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=child_env(fam, threads), cwd=REPO)
    if proc.returncode != 0 or not any(partial.glob("model*.safetensors")):
        shutil.rmtree(partial, ignore_errors=True)
        raise refused(f"the {name} builder failed (exit status {proc.returncode}; its "
                      "messages are above)")
    partial.rename(final)
    print(f"built {final} in {time.perf_counter() - t0:.0f} s", flush=True)
    return final, False


def tabletop_frame(path: Path) -> None:
    """One tabletop observation (both cameras, the scene's 224x224), saved for the child."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np

    from vlascope.scenes.tabletop import TabletopScene

    with TabletopScene() as scene:
        scene.reset("stack_red_on_blue", 0)
        obs = scene.observe(cameras=("front", "wrist")).observation
    np.savez(path, front=obs.images["front"], wrist=obs.images["wrist"],
             state=np.asarray(obs.state, np.float32), instruction=obs.instruction)


# Measurement (the child process) ---------------------------------------------------------
def observation(frames: Path, policy):
    """The tabletop frame fed to each of the checkpoint's cameras (front, wrist, front, ...),
    its state zero-padded (or cut) to the policy's state size."""
    import numpy as np

    from vlascope.core.policy import Observation

    data = np.load(frames)
    cams = list(getattr(policy, "cameras", None) or ("front", "wrist"))
    shots = [data["front"], data["wrist"]]
    images = {}
    for i, c in enumerate(cams):
        img = shots[i % 2]
        size = getattr(policy, "image_size", None)
        if size and tuple(size) != img.shape[:2]:  # a fixed input size: nearest neighbour
            rows = np.arange(size[0]) * img.shape[0] // size[0]
            cols = np.arange(size[1]) * img.shape[1] // size[1]
            img = img[rows][:, cols]
        images[c] = np.ascontiguousarray(img)
    dim = int(getattr(policy, "state_dim", None) or len(data["state"]))
    state = np.zeros(dim, np.float32)
    n = min(dim, len(data["state"]))
    state[:n] = data["state"][:n]
    return Observation(images=images, state=state, instruction=str(data["instruction"]))


def measure(args: argparse.Namespace) -> dict:
    import torch

    from vlascope.core.plugins import PluginRegistry
    from vlascope.core.saliency.iss import ISSConfig, pixel_iss

    torch.set_num_threads(args.threads)
    options = {"weights": args.weights, "device": "cpu"}
    if args.dtype != "auto":
        options["dtype"] = args.dtype
    t0 = time.perf_counter()
    policy = PluginRegistry.discover().create_policy(args.family, **options)
    load = time.perf_counter() - t0
    holder = int(getattr(policy, "server_pid", None) or os.getpid())
    if hasattr(policy, "link"):  # served: a batch of a big model outlasts the default 60 s
        policy.link.timeout = max(policy.link.timeout, args.call_timeout)
    obs = observation(Path(args.frames), policy)

    calls: list[tuple[int, float]] = []  # (observations, seconds) of every policy call
    inner = policy.batch_infer

    def batch_infer(observations):
        t = time.perf_counter()
        out = inner(observations)
        calls.append((len(observations), time.perf_counter() - t))
        return out

    policy.batch_infer = batch_infer  # ISS calls it through the instance, as the app does
    policy.batch_infer([obs])  # warm-up
    calls.clear()
    for _ in range(args.repeats):
        policy.batch_infer([obs])
    step = statistics.median(t for _, t in calls)
    b = min(args.iss_batch, N_FULL)
    cfg = ISSConfig(n_masks=b, batch_size=b, estimator="toolkit-improved")
    calls.clear()
    t0 = time.perf_counter()
    pixel_iss(policy, obs, cfg)
    small = time.perf_counter() - t0
    batch = calls[-1][1]  # its one batch of B masks (the first call is the unmasked frame)
    predicted = small + (N_FULL - b) / b * batch  # linear in the masks
    if b == N_FULL:
        iss, how = small, "measured"
    elif predicted <= args.iss_budget:
        cfg = ISSConfig(n_masks=N_FULL, batch_size=b, estimator="toolkit-improved")
        t0 = time.perf_counter()
        pixel_iss(policy, obs, cfg)
        iss, how = time.perf_counter() - t0, "measured"
    else:
        iss, how = predicted, "extrapolated"
    result = {"load_s": load, "step_s": step, "iss_s": iss, "iss_how": how, "iss_batch": b,
              "iss_small_s": small, "iss_batch_s": batch, "peak_bytes": vm_hwm(holder),
              "served": holder != os.getpid(), "cameras": list(obs.images),
              "dtype": str(getattr(policy, "dtype", "")).replace("torch.", "")}
    if hasattr(policy, "close"):
        policy.close()
    return result


# The row -----------------------------------------------------------------------------------
def run_child(name: str, fam: Family, folder: Path, frames: Path,
              args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--family", name, "--measure",
           "--weights", str(folder), "--frames", str(frames), "--threads", str(args.threads),
           "--dtype", args.dtype, "--repeats", str(args.repeats), "--iss-batch",
           str(args.iss_batch), "--iss-budget", str(args.iss_budget),
           "--call-timeout", str(args.call_timeout)]
    proc = subprocess.run(cmd, env=child_env(fam, args.threads), cwd=REPO,
                          stdout=subprocess.PIPE, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout, file=sys.stderr)
        raise refused(f"measuring {name} failed (exit status {proc.returncode}; its messages "
                      "are above)")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "vlascope" / "full-size"),
                    help="folder holding the built checkpoints (<family>-<hash>)")
    ap.add_argument("--iss-batch", type=int, default=10,
                    help="masks per ISS batch; one batch is always measured")
    ap.add_argument("--iss-budget", type=float, default=900.0,
                    help="run N = 100 when predicted to take at most this many seconds")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch threads (the server's too)")
    ap.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                    help="the adapter's dtype (auto: float32 on the CPU)")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps after the warm-up")
    ap.add_argument("--build-only", action="store_true",
                    help="build (or find) the checkpoint, print its parameter count, stop")
    ap.add_argument("--call-timeout", type=float, default=3600.0, help=argparse.SUPPRESS)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--frames", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.iss_batch < 1 or args.repeats < 1 or args.threads < 1:
        raise refused("--iss-batch, --repeats and --threads must be at least 1")
    if args.measure:
        print("RESULT " + json.dumps(measure(args)), flush=True)
        return
    name, fam = args.family, FAMILIES[args.family]
    load0 = os.getloadavg()[0]
    run_bytes = 2 if args.dtype == "bfloat16" else 4
    run_as = "bfloat16" if run_bytes == 2 else "float32"
    hint = "" if run_bytes == 2 else ", or pass --dtype bfloat16"
    if not args.build_only:
        check_memory(f"{name} at published size in {run_as}", fam.nominal, run_bytes, hint)
    folder, reused = ensure_built(name, fam, Path(args.cache).expanduser(), args.threads)
    params, dtypes = safetensors_params(folder)
    if args.build_only:
        print(f"{name}: {folder} ({'reused' if reused else 'built now'}), {params:,} parameters "
              f"({', '.join(f'{k} {v:,}' for k, v in sorted(dtypes.items()))})")
        return
    check_memory(f"{name} at published size in {run_as}", params, run_bytes, hint)
    frames = folder.parent / f".{folder.name}.frame-{os.getpid()}.npz"
    tabletop_frame(frames)
    try:
        r = run_child(name, fam, folder, frames, args)
    finally:
        frames.unlink(missing_ok=True)
    disk = "+".join(sorted(dtypes))
    dtype = f"{disk.lower()} on disk -> {r['dtype'] or args.dtype + ' (server)'} in memory"
    where = "server process" if r["served"] else "process"
    iss = (f"{r['iss_s']:.1f} (N={N_FULL}, {r['iss_how']}"
           + (f" from a measured N={r['iss_batch']} run: {r['iss_small_s']:.1f} s, its batch "
              f"of {r['iss_batch']} {r['iss_batch_s']:.1f} s)"
              if r["iss_how"] == "extrapolated" else f", batches of {r['iss_batch']})"))
    print(f"checkpoint: {folder} ({'reused' if reused else 'built now'}); cameras "
          f"{', '.join(r['cameras'])} fed the tabletop's front/wrist frames at 224x224; "
          f"step = median of {args.repeats} after a warm-up; peak memory = VmHWM of the "
          f"{where} holding the model; load average {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    print("| family | params | dtype | peak memory | load s | step s | ISS frame s | threads "
          "| machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {name} | {params:,} ({params / 1e9:.2f} B) | {dtype} | "
          f"{r['peak_bytes'] / GIB:.2f} GiB | {r['load_s']:.1f} | {r['step_s']:.2f} | {iss} | "
          f"{args.threads} | {machine()} |")


if __name__ == "__main__":
    main()
