"""Named hook points on third-party torch models.

Model families disagree on where an activation can be read: a decoder layer's own
``forward`` may never be called (LeRobot's SmolVLA runs its layers' submodules itself), a
module may return a tuple, the residual stream is a layer's *input*. ``ModuleHooks`` hides
that behind the one contract the inspector uses: ``hook(name, fn)``, where ``fn(act)`` sees
a (batch, tokens, features) tensor and may return a replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from vlascope.core.errors import VLAScopeError

HookFn = Callable[[torch.Tensor], "torch.Tensor | None"]
WHERE = ("output", "input")


@dataclass
class Point:
    module: nn.Module
    where: str  # "output" or "input"
    copy_output: bool = False  # the model adds into this output in place afterwards
    read_only: str = ""  # why a replacement would not take effect, if it would not


class ModuleHooks:
    """name -> a forward hook on a module's output (first element of a tuple), or a
    pre-hook on its first input (positional or ``hidden_states``).

    ``copy_output``: the model writes into the module's output in place after the call
    (LeRobot adds the residual into ``o_proj``'s and ``mlp``'s outputs), so a reader that
    keeps the tensor would see it change; the model gets a copy instead. ``read_only``: a
    replacement would not reach the model, so returning one is an error, not a silent no-op.
    """

    def __init__(self) -> None:
        self.points: dict[str, Point] = {}

    def add(self, name: str, module: nn.Module, where: str = "output", *,
            copy_output: bool = False, read_only: str = "") -> None:
        if where not in WHERE:
            raise ValueError(f"hook point '{name}': where must be one of {WHERE}")
        self.points[name] = Point(module, where, copy_output, read_only)

    def modules(self) -> dict[str, nn.Module]:
        return {name: p.module for name, p in self.points.items()}

    @contextmanager
    def hook(self, name: str, fn: HookFn) -> Iterator[None]:
        if name not in self.points:
            raise KeyError(f"no hook point '{name}' (known: {', '.join(self.points)})")
        p = self.points[name]
        if p.read_only:
            fn = _refuse_replacement(fn, name, p.read_only)
        if p.where == "output":
            handle = p.module.register_forward_hook(_output_hook(fn, p.copy_output))
        else:
            handle = p.module.register_forward_pre_hook(_input_hook(fn), with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()


def _refuse_replacement(fn: HookFn, name: str, why: str) -> HookFn:
    def run(x: torch.Tensor) -> None:
        if fn(x) is not None:
            raise VLAScopeError(f"hook point '{name}' can be read but not replaced: {why}")
    return run


def _output_hook(fn: HookFn, copy_output: bool):
    def run(module: nn.Module, args, out):
        first = out[0] if isinstance(out, tuple) else out
        new = fn(first)
        if new is None and copy_output:
            new = first.clone()
        if new is None:
            return None
        return (new, *out[1:]) if isinstance(out, tuple) else new
    return run


def _input_hook(fn: HookFn):
    def run(module: nn.Module, args, kwargs):
        if args:
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        new = fn(kwargs["hidden_states"])
        return None if new is None else (args, {**kwargs, "hidden_states": new})
    return run


class TokenTap(nn.Module):
    """Identity on some positions of a token sequence (the visual tokens entering the
    language model): a hook on this module sees exactly those tokens, (B, n, d), in the
    order of ``visual_token_layout()``, and what it returns is written back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def apply(self, embeds: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
        if not positions:
            return embeds
        index = torch.as_tensor(list(positions), device=embeds.device)
        picked = embeds[:, index]
        out = self(picked)
        if out is picked:
            return embeds
        embeds = embeds.clone()
        embeds[:, index] = out.to(embeds.dtype)
        return embeds


def fixed_positions(mask: torch.Tensor, what: str) -> list[int]:
    """Column indices where a (B, L) boolean mask is set, required equal in every row (the
    adapters pad prompts so that they are; a hook over ragged rows would be ambiguous)."""
    rows = [torch.nonzero(m).flatten().tolist() for m in mask]
    if any(r != rows[0] for r in rows[1:]):
        raise RuntimeError(f"{what} sit at different positions in different batch rows")
    return rows[0]
