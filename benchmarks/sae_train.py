"""TopK SAE training speed (samples/s) and time to the quality target (FVE >= 0.9 at
L0 <= 64 with < 10% dead features) on 200k real activation vectors of the reference policy.

Activations come from ``--activations FILE.npy`` (N, d) when given; otherwise the shipped
reference policy is rolled out in the built-in tabletop scene (CPU) and every token of
``--layer`` is recorded, cached to ``--cache`` so reruns skip the rollouts.

    .venv/bin/python benchmarks/sae_train.py [--activations X.npy] [--vectors 200000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vlascope.core.sae import SAE, SAEConfig, evaluate_sae, train_sae  # noqa: E402
from vlascope.core.sae.train import holdout_split  # noqa: E402

TARGET_FVE, TARGET_L0, TARGET_DEAD = 0.9, 64, 0.1


def collect_activations(layer: str, n_vectors: int, variant: str) -> np.ndarray:
    """Roll out the reference policy over every task (seeds 0, 1, ...) and keep each token
    of ``layer`` at every policy call until ``n_vectors`` vectors are gathered."""
    from vlascope.core.live import LiveRollout
    from vlascope.policies.reference.policy import ReferencePolicy
    from vlascope.scenes.tabletop import TabletopScene

    policy = ReferencePolicy(device="cpu")
    chunks: list[np.ndarray] = []
    total, steps, t0 = 0, 0, time.perf_counter()

    def grab(out: torch.Tensor) -> None:
        nonlocal total
        a = out.detach().float().reshape(-1, out.shape[-1]).cpu().numpy()
        chunks.append(a)
        total += len(a)

    with TabletopScene() as scene, policy.hook(layer, grab):
        tasks = [t.name for t in scene.tasks()]
        seed = 0
        while total < n_vectors:
            for task in tasks:
                rollout = LiveRollout(scene, policy, task, seed, variant)
                while not rollout.done and total < n_vectors:
                    rollout.step()
                    steps += 1
                rollout.close()
                if total >= n_vectors:
                    break
            seed += 1
            print(f"  collected {total} vectors, {steps} steps, seeds 0..{seed - 1} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return np.concatenate(chunks)[:n_vectors].astype(np.float32)


def load_or_collect(args: argparse.Namespace) -> np.ndarray:
    if args.activations:
        x = np.load(args.activations, allow_pickle=False)
        return np.asarray(x, np.float32).reshape(-1, x.shape[-1])[: args.vectors]
    cache = Path(args.cache)
    if cache.exists():
        x = np.load(cache, allow_pickle=False)
        if len(x) >= args.vectors:
            print(f"activations: cached {cache} {x.shape}")
            return x[: args.vectors]
    print(f"activations: rolling out the reference policy, recording '{args.layer}'")
    t0 = time.perf_counter()
    x = collect_activations(args.layer, args.vectors, args.variant)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.partial.npy")
    np.save(tmp, x, allow_pickle=False)
    os.replace(tmp, cache)
    print(f"activations: {x.shape} in {time.perf_counter() - t0:.0f} s, cached to {cache}")
    return x


def plain_topk_rate(x: torch.Tensor, d_sae: int, k: int, batch: int, steps: int) -> float:
    """Samples/s of a textbook TopK SAE step (dense decode, no unit-norm, no AuxK)."""
    g = torch.Generator().manual_seed(0)
    d = x.shape[1]
    w_enc = (torch.randn(d, d_sae, generator=g) / d**0.5).requires_grad_()
    w_dec = (torch.randn(d_sae, d, generator=g) / d_sae**0.5).requires_grad_()
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(d, requires_grad=True)
    opt = torch.optim.Adam([w_enc, w_dec, b_enc, b_dec], lr=3e-4)
    xb = x[:batch]
    t0 = 0.0
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        pre = (xb - b_dec) @ w_enc + b_enc
        v, idx = pre.topk(k, dim=1)
        codes = torch.zeros_like(pre).scatter(1, idx, v.relu())
        loss = ((codes @ w_dec + b_dec - xb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--activations", default=None, help="(N, d) .npy to use instead")
    ap.add_argument("--cache", default="/tmp/vlascope_sae_bench_trunk2_resid.npy")
    ap.add_argument("--layer", default="trunk.2.resid")
    ap.add_argument("--variant", default="diverse")
    ap.add_argument("--vectors", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps of 4096 (default: train_sae's default length)")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()

    x = load_or_collect(args)
    if args.collect_only:
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    cfg = SAEConfig(d_in=x.shape[1], layer=args.layer)
    print(f"data: {x.shape[0]} vectors x {x.shape[1]} dims; SAE {cfg.kind} k={cfg.k} "
          f"d_sae={cfg.d_sae}, batch 4096, lr 3e-4, "
          f"{args.steps or 'default'} steps, defaults otherwise")

    # train_sae's own held-out split, evaluated here at checkpoints; train_sae's clock
    # excludes the callback, so "time to quality" is training time only.
    x_hold = x[holdout_split(len(x), 0.1, 0)[1].numpy()]
    reached: tuple[int, float] | None = None

    def progress(step: int, total: int, info: dict) -> None:
        nonlocal reached
        if step % args.eval_every and step != total:
            return
        sae: SAE = info["model"]
        r = evaluate_sae(sae, x_hold)
        secs = info["seconds"]
        ok = r.fve >= TARGET_FVE and r.l0 <= TARGET_L0 and r.dead_fraction < TARGET_DEAD
        if ok and reached is None:
            reached = (step, secs)
        print(f"{step:>6} {secs:>8.1f} {r.fve:>7.4f} {r.l0:>6.1f} {r.dead_fraction:>6.3f}"
              f"{'  <- target' if ok and reached == (step, secs) else ''}", flush=True)

    print(f"{'step':>6} {'seconds':>8} {'FVE':>7} {'L0':>6} {'dead':>6}")
    sae, res = train_sae(x, cfg, steps=args.steps, device=args.device, progress=progress)
    print(f"final (held-out, train_sae's report): FVE {res.report.fve:.4f}, "
          f"L0 {res.report.l0:.1f}, dead {res.report.dead_fraction:.3f}")
    print(f"training: {res.steps} steps in {res.seconds:.1f} s, "
          f"{res.samples_per_s:,.0f} samples/s (checkpoint evaluations excluded)")
    if reached is None:
        print(f"time to quality: NOT reached in {res.steps} steps")
    else:
        print(f"time to quality (FVE >= {TARGET_FVE}, L0 <= {TARGET_L0}, dead < "
              f"{TARGET_DEAD:.0%}): {reached[1]:.1f} s at step {reached[0]} "
              f"({reached[0] * 4096 / len(x):.1f} epochs)")
    if not args.no_baseline:
        z = torch.from_numpy((x - x.mean(0)) / np.maximum(x.std(0), 1e-6))
        base = plain_topk_rate(z, cfg.d_sae, cfg.k, 4096, 20)
        print(f"plain TopK step (dense decode, no tricks): {base:,.0f} samples/s; "
              f"this trainer {res.samples_per_s / base:.2f}x")


if __name__ == "__main__":
    main()
