"""``vlascope iss`` on one episode file, as a function a sweep cell can run anywhere: the
maps computed with the worker's policy, stored in the file, overlay PNGs if asked, and a
JSON summary back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import save_image_atomic
from ..episode import Episode
from ..errors import PolicyConnectionLost
from .faithfulness import episode_faithfulness
from .iss import ISSConfig
from .temporal import episode_iss, pooled_episode_iss, store


def overlay_png(frame: np.ndarray, sal: np.ndarray, path: Path) -> None:
    """Frame | saliency heat map blended over it, for a quick look."""
    from PIL import Image

    s = (sal - sal.min()) / max(float(np.ptp(sal)), 1e-12)
    heat = np.stack([s, 0.25 * np.ones_like(s), 1 - s], -1) * 255
    if heat.shape[:2] != frame.shape[:2]:
        heat = np.asarray(Image.fromarray(heat.astype(np.uint8)).resize(frame.shape[1::-1]))
    blend = (0.5 * frame + 0.5 * heat).astype(np.uint8)
    save_image_atomic(path, np.concatenate([frame, blend], axis=1))


def explain_episode(episode: str, policy: str, policy_options: dict, config: dict,
                    method: str, budget: int, bandwidth: float | None, every: int | None,
                    check: int, png: str | None = None, faithfulness: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Saliency of every step of ``episode`` stored in it: at ``budget`` passes per step,
    pooled in time, or (``every``, or a method other than ISS) the toolkit's keyframes
    and interpolation; with ``faithfulness`` N, deletion/insertion curves of the maps on N
    steps, stored with them. Returns what was made."""
    from ..sweep import worker
    from . import ISS_METHODS

    cfg = ISSConfig(**config)
    cfg.check()
    pol = worker.policy(policy, policy_options)
    keyframes = every is not None or method not in ISS_METHODS
    with Episode(episode) as ep:
        try:
            if keyframes:
                result = episode_iss(pol, ep, cfg, every=every or 1, check=check,
                                     progress=progress, method=method)
            else:
                result = pooled_episode_iss(pol, ep, cfg, budget=budget, bandwidth=bandwidth,
                                            progress=progress, method=method)
        except PolicyConnectionLost as e:  # maps are stored only once all are computed
            raise PolicyConnectionLost(f"{e}; nothing stored in {episode}") from e
        if faithfulness > 0:
            result.made["faithfulness"] = episode_faithfulness(
                pol, ep, result.maps, faithfulness, cfg.sigma, cfg.seed)
        frames = ({c: [ep.frame(t, c) for t in result.computed_steps] for c in result.maps}
                  if png else {})
    store(episode, result)
    for c, cam_frames in frames.items():
        out = Path(png)
        out.mkdir(parents=True, exist_ok=True)
        for t, frame in zip(result.computed_steps, cam_frames, strict=True):
            overlay_png(frame, result.maps[c][t], out / f"{c}_{t:04d}.png")
    summary = {"episode": episode, "method": result.method, **result.made}
    summary.pop("config", None)
    return summary
