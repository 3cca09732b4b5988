"""Whether an SAE trained on another tool's capture of a layer reads what our hook point
reads: Action Atlas hooks a decoder layer's output, ``sae/atlas_format`` applies that SAE at
our ``{stack}.{i+1}.resid`` (the stream entering the next layer). Measured on the model's
own modules, in the process (and environment) that runs it; imports nothing heavier than
torch, so it runs in the plugins' environments too."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import numpy as np

from vlascope.core.hook_ops import Capture
from vlascope.core.policy import Observation, common_noise


def layer_outputs_feed_the_next(policy: Any, obs: Observation, stack: str,
                                layers: Any) -> dict[int, float]:
    """For each layer i but the last of ``layers`` (modules, as another tool finds them):
    the largest difference, over every call of one inference, between layer i's output as
    a forward hook sees it (Action Atlas's capture of ``{group}_L{i}``) and our point
    ``{stack}.{i+1}.resid`` (the stream entering layer i + 1, where ``sae/atlas_format``
    applies that SAE). 0.0 means their SAE reads exactly what ours does; ``inf``: the two
    fired a different number of times. Runs the adapter in this process (its modules)."""
    import torch

    layers = list(layers)
    theirs: dict[int, list] = {i: [] for i in range(len(layers) - 1)}
    ours = {i: Capture() for i in theirs}

    def grab(i: int):
        def hook(_module, _args, output):
            out = output[0] if isinstance(output, tuple) else output
            theirs[i].append(out.detach().float().cpu().numpy())
        return hook

    handles = [layers[i].register_forward_hook(grab(i)) for i in theirs]
    try:
        with ExitStack() as stack_ctx, torch.no_grad(), common_noise(policy):
            for i, cap in ours.items():
                stack_ctx.enter_context(policy.hook(f"{stack}.{i + 1}.resid", cap))
            policy.batch_infer([obs])
    finally:
        for h in handles:
            h.remove()
    out = {}
    for i in theirs:
        a, b = theirs[i], ours[i].values
        if len(a) != len(b) or not a:
            out[i] = float("inf")
            continue
        out[i] = max(float(np.abs(x - y).max()) if x.shape == y.shape else float("inf")
                     for x, y in zip(a, b, strict=True))
    return out
