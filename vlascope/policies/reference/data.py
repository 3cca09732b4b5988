"""Demonstrations for the reference policy: a scene's scripted expert (the tabletop's own,
MetaWorld's), with noise injected into the executed actions (labels stay the expert's clean
actions), so the policy also sees how to recover from its own mistakes. Frozen features are
cached once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vlascope.core.errors import CancelledError
from vlascope.core.policy import Policy
from vlascope.core.scene import Scene

from .model import ReferenceConfig


@dataclass
class Demos:
    images: dict[str, np.ndarray]  # camera -> (N, H, W, 3) uint8
    states: np.ndarray  # (N, S) float32
    instructions: list[str]  # (N,)
    chunks: np.ndarray  # (N, horizon, A) float32: the expert's next actions
    episode: np.ndarray  # (N,) int32
    n_episodes: int
    successes: int

    def __len__(self) -> int:
        return len(self.states)


def collect_demos(scene: Scene, expert: Policy, cfg: ReferenceConfig, tasks: Sequence[str],
                  variant: str, episodes_per_task: int, seed: int = 0,
                  noise_std: float = 0.3, noisy_fraction: float = 0.5, frame_stride: int = 1,
                  progress: Callable[[int, int], None] | None = None,
                  should_cancel: Callable[[], bool] | None = None) -> Demos:
    """Roll out the expert; a fraction of episodes executes noisy actions. Only every
    ``frame_stride``-th step (from a random phase) is kept as a sample: neighbouring frames
    are near duplicates, and distinct layouts, not more frames of one, are what keep the
    policy from memorising scenes. Labels are always the full expert action sequence."""
    rng = np.random.default_rng(seed)
    size = (cfg.image_size, cfg.image_size)
    imgs: dict[str, list[np.ndarray]] = {c: [] for c in cfg.cameras}
    states, instr, chunks, epi = [], [], [], []
    total, done, successes, dropped = len(tasks) * episodes_per_task, 0, 0, 0
    for task in tasks:
        limit = scene.task(task).max_steps
        for _ in range(episodes_per_task):
            if should_cancel is not None and should_cancel():
                raise CancelledError("demonstration collection cancelled")
            scene.reset(task, seed * 100_003 + done + dropped, variant)
            noisy = rng.random() < noisy_fraction
            actions, kept, n_before = [], [], len(states)
            phase = int(rng.integers(frame_stride))
            for t in range(limit):
                keep = t % frame_stride == phase
                frame = scene.observe(cameras=cfg.cameras if keep else (), size=size)
                obs = frame.observation
                a = expert.batch_infer([obs])[0, 0].astype(np.float32)
                if keep:
                    for c in cfg.cameras:
                        imgs[c].append(obs.images[c])
                    states.append(obs.state)
                    instr.append(obs.instruction)
                    epi.append(done)
                    kept.append(t)
                actions.append(a)
                executed = a.copy()
                if noisy:
                    executed[:3] += rng.normal(0, noise_std, 3)
                scene.step(executed)
                if scene.unstable or scene.success():
                    break
            if scene.unstable:  # the simulator reset itself mid-episode: drop the episode
                for c in cfg.cameras:
                    del imgs[c][n_before:]
                del states[n_before:], instr[n_before:], epi[n_before:]
                dropped += 1
                continue
            successes += scene.success()
            acts = np.stack(actions)
            hold = np.zeros((cfg.horizon, acts.shape[1]), np.float32)
            hold[:, 3] = acts[-1, 3]  # after the end: stay, keep the gripper as it was
            padded = np.concatenate([acts, hold])
            chunks.extend(padded[t:t + cfg.horizon] for t in kept)
            done += 1
            if progress is not None:
                progress(done + dropped, total)
    return Demos({c: np.stack(v) for c, v in imgs.items()}, np.stack(states), instr,
                 np.stack(chunks).astype(np.float32), np.asarray(epi, np.int32), done,
                 successes)


@torch.inference_mode()
def encode_images(encoder: torch.nn.Module, images: np.ndarray, batch: int = 256,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, tokens, C) float16 frozen features."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).to(device).permute(0, 3, 1, 2)
        f = encoder(x)
        out.append(f.flatten(2).transpose(1, 2).to(torch.float16).cpu())
    return torch.cat(out)
