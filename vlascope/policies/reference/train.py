"""Training of the reference VLA on expert demonstrations (frozen encoders, cached features)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from vlascope import __version__
from vlascope.core.atomic import atomic_path, write_text_atomic
from vlascope.core.errors import CancelledError, VLAScopeError

from .data import Demos, collect_demos, encode_images
from .efficientnet_lite import load_pretrained
from .language import InstructionEncoder
from .model import ReferenceConfig, ReferenceTrunk


@dataclass
class TrainSettings:
    variant: str = "diverse"
    tasks: tuple[str, ...] = ()  # empty: every task of the scene
    scene: str = "tabletop"  # a scene plugin with an expert policy (Scene.expert_policy)
    episodes_per_task: int = 50
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    noise_std: float = 0.3
    noisy_fraction: float = 0.5
    frame_stride: int = 1  # keep every k-th demo step (see collect_demos)
    extra: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    trunk: ReferenceTrunk
    history: list[dict]
    seconds: dict[str, float]
    demos: int
    demo_episodes: int


def _autocast(device: torch.device):
    """bf16 on a GPU. On a CPU fp32: without AVX-512, bf16 matmuls are emulated and a training
    step took 9x longer than in fp32 on the 2-core dev machine (31 s vs 3.5 s at batch 128)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def featurize(demos: Demos, cfg: ReferenceConfig, device: torch.device) -> dict[str, torch.Tensor]:
    encoder = load_pretrained(cfg.encoder_depth, taps=cfg.encoder_taps).to(device)
    vision = torch.stack([encode_images(encoder, demos.images[c], device=device)
                          for c in cfg.cameras], dim=1)  # (N, cams, tokens, C)
    text_enc = InstructionEncoder(cfg.text_tokens, device=device)
    uniq = sorted(set(demos.instructions))
    emb, mask = text_enc(uniq)
    index = torch.tensor([uniq.index(t) for t in demos.instructions])
    return {"vision": vision, "text": emb.cpu()[index], "text_mask": mask.cpu()[index],
            "state": torch.from_numpy(demos.states), "actions": torch.from_numpy(demos.chunks)}


def train_trunk(data: dict[str, torch.Tensor], cfg: ReferenceConfig, st: TrainSettings,
                device: torch.device, progress: Callable[[int, int, dict], None] | None = None,
                should_cancel: Callable[[], bool] | None = None) -> tuple[ReferenceTrunk, list]:
    torch.manual_seed(st.seed)
    trunk = ReferenceTrunk(cfg).to(device)
    opt = torch.optim.AdamW(trunk.parameters(), lr=st.lr, weight_decay=st.weight_decay)
    n = len(data["state"])
    steps_per_epoch = max(1, n // st.batch_size)
    total = steps_per_epoch * st.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * s / total)))
    gen = torch.Generator().manual_seed(st.seed)
    history = []
    step = 0
    for epoch in range(st.epochs):
        trunk.train()
        perm = torch.randperm(n, generator=gen)
        sums = {"l1": 0.0, "flow": 0.0}
        for b in range(steps_per_epoch):
            if should_cancel is not None and should_cancel():
                raise CancelledError("training cancelled")
            idx = perm[b * st.batch_size:(b + 1) * st.batch_size]
            batch = {k: v[idx].to(device) for k, v in data.items()}
            state = batch["state"] + 0.003 * torch.randn_like(batch["state"])
            with _autocast(device):
                losses = trunk.losses(batch["vision"].float(), batch["text"], batch["text_mask"],
                                      state, batch["actions"])
            loss = losses["l1"] + losses["flow"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trunk.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            for k in sums:
                sums[k] += float(losses[k].detach())
        row = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()}}
        history.append(row)
        if progress is not None:
            progress(epoch + 1, st.epochs, row)
    return trunk.eval(), history


def _cache_key(cfg: ReferenceConfig, st: TrainSettings, scene_fingerprint: str) -> str:
    """Everything that decides the demonstrations and their features."""
    fields = {k: getattr(st, k) for k in ("scene", "variant", "tasks", "episodes_per_task",
                                          "seed", "noise_std", "noisy_fraction", "frame_stride")}
    enc = {k: getattr(cfg, k) for k in ("cameras", "image_size", "encoder_depth",
                                        "encoder_taps", "text_tokens", "horizon")}
    blob = json.dumps([fields, enc, __version__, scene_fingerprint], sort_keys=True,
                      default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_reference(cfg: ReferenceConfig, st: TrainSettings, device: str = "cpu",
                    log: Callable[[str], None] = print, cache_dir: str | Path | None = None,
                    should_cancel: Callable[[], bool] | None = None) -> TrainResult:
    """The scene's expert demonstrations -> frozen features (cached on disk when
    ``cache_dir`` is given) -> trained trunk, with timings of each phase."""
    from vlascope.core.plugins import PluginRegistry

    dev = torch.device(device)
    reg = PluginRegistry.discover()
    with reg.create_scene(st.scene) as scene:
        key = _cache_key(cfg, st, scene.fingerprint(st.variant))
        cache = Path(cache_dir) / f"features-{key}.pt" if cache_dir else None
        if cache is not None and cache.is_file():
            t0 = time.perf_counter()
            saved = torch.load(cache, weights_only=True)
            data, meta = saved["data"], saved["meta"]
            # The card reports what making the data cost, not the load: the run that wrote
            # the cache measured it (caches from before this was kept report 0).
            made = meta.get("seconds", {})
            times = {"demos": float(made.get("demos", 0.0)),
                     "features": float(made.get("features", 0.0)),
                     "cache_load": time.perf_counter() - t0}
            log(f"features: loaded {tuple(data['vision'].shape)} from {cache}")
        else:
            if not scene.expert_policy:
                raise VLAScopeError(f"scene '{st.scene}' names no expert policy to learn from")
            expert = reg.create_policy(scene.expert_policy)
            data, meta, times = _demos_and_features(scene, expert, cfg, st, dev, log,
                                                    should_cancel)
            if cache is not None:
                with atomic_path(cache) as tmp:
                    torch.save({"data": data, "meta": meta}, tmp)
    return _train(data, cfg, st, dev, times, meta, log, should_cancel)


def _demos_and_features(scene, expert, cfg: ReferenceConfig, st: TrainSettings,
                        dev: torch.device, log: Callable[[str], None],
                        should_cancel: Callable[[], bool] | None):
    from tqdm import tqdm

    times = {}
    t0 = time.perf_counter()
    tasks = scene.resolve_tasks(",".join(st.tasks))
    with tqdm(total=len(tasks) * st.episodes_per_task, desc="demos", unit="ep",
              disable=None) as bar:
        demos = collect_demos(scene, expert, cfg, tasks, st.variant, st.episodes_per_task,
                              st.seed, st.noise_std, st.noisy_fraction, st.frame_stride,
                              progress=lambda d, t: bar.update(d - bar.n),
                              should_cancel=should_cancel)
    times["demos"] = time.perf_counter() - t0
    log(f"demos: {demos.n_episodes} episodes, {len(demos)} steps, expert success "
        f"{demos.successes}/{demos.n_episodes} ({times['demos']:.0f} s)")
    t0 = time.perf_counter()
    data = featurize(demos, cfg, dev)
    times["features"] = time.perf_counter() - t0
    log(f"features: {tuple(data['vision'].shape)} ({times['features']:.0f} s)")
    meta = {"demo_steps": len(demos), "demo_episodes": demos.n_episodes,
            "expert_successes": demos.successes, "seconds": dict(times)}
    return data, meta, times


def _train(data: dict, cfg: ReferenceConfig, st: TrainSettings, dev: torch.device,
           times: dict, meta: dict, log: Callable[[str], None],
           should_cancel: Callable[[], bool] | None) -> TrainResult:
    from tqdm import tqdm

    t0 = time.perf_counter()
    with tqdm(total=st.epochs, desc="train", unit="epoch", disable=None) as bar:
        def progress(e: int, total: int, row: dict) -> None:
            bar.update(1)
            bar.set_postfix(l1=f"{row['l1']:.4f}", flow=f"{row['flow']:.4f}")

        trunk, history = train_trunk(data, cfg, st, dev, progress, should_cancel)
    times["train"] = time.perf_counter() - t0
    log(f"trained {st.epochs} epochs: l1 {history[0]['l1']:.4f} -> {history[-1]['l1']:.4f}, "
        f"flow {history[0]['flow']:.4f} -> {history[-1]['flow']:.4f} ({times['train']:.0f} s)")
    return TrainResult(trunk, history, times, meta["demo_steps"], meta["demo_episodes"])


def save_reference(out_dir: str | Path, result: TrainResult, cfg: ReferenceConfig,
                   st: TrainSettings) -> Path:
    """Write ``model.safetensors`` (fp16) and ``config.json`` (architecture + provenance)."""
    info = {
        "config": cfg.to_dict(),
        "training": {**st.__dict__, "tasks": list(st.tasks), "demo_steps": result.demos,
                     "demo_episodes": result.demo_episodes, "seconds": result.seconds,
                     "history": result.history, "machine": f"{platform.machine()}, "
                     f"{torch.get_num_threads()} threads", "torch": torch.__version__,
                     "vlascope": __version__},
    }
    return _write_checkpoint(out_dir, result.trunk, info)


def _write_checkpoint(out_dir: str | Path, trunk: torch.nn.Module, info: dict) -> Path:
    """``model.safetensors`` (fp16) and ``config.json``, each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous().cpu()
               for k, v in trunk.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "vlascope-reference", "version": "1"})
    write_text_atomic(out / "config.json", json.dumps(info, indent=2))
    return out


def parse_tasks(value: str, all_tasks: Sequence[str]) -> tuple[str, ...]:
    return tuple(all_tasks) if value in ("", "all") else tuple(value.split(","))




def init_reference(out_dir: str | Path, cfg: ReferenceConfig, seed: int = 0) -> Path:
    """An untrained reference checkpoint shaped for another scene (its cameras, state and
    action sizes): the starting point for training on a plugin scene, and a policy that
    reacts to what it sees, for trying the tools there before a trained model exists."""
    torch.manual_seed(seed)
    info = {"config": cfg.to_dict(), "training": {"untrained": True, "seed": seed,
                                                  "vlascope": __version__}}
    return _write_checkpoint(out_dir, ReferenceTrunk(cfg), info)
