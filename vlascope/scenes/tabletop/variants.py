"""Variants of the tabletop as data: each is a set of distributions over scene parameters,
read from ``assets/variants.json`` (or a user's file), sampled per seed, applied to the model.
No variant has code of its own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from vlascope.core.errors import VLAScopeError
from vlascope.core.jsonfile import read_json

from . import textures
from .model import COLORS, DISTRACTORS


@dataclass(frozen=True)
class Variant:
    name: str
    description: str = ""
    light_intensity: tuple[float, float] = (0.55, 0.55)
    light_tint: tuple[tuple[float, float, float], ...] = ((1.0, 1.0, 1.0),)
    light_offset: float = 0.0  # metres the key light may move horizontally
    floor: tuple[str, ...] = ("wood",)
    wall: tuple[str, ...] = ("paint",)
    wall_tint: tuple[tuple[float, float, float], ...] = ((1.0, 1.0, 1.0),)
    distractors: tuple[int, int] = (2, 2)  # inclusive range of how many are on the table
    distractor_placement: str = "random"  # or "near_objects"
    camera_jitter: tuple[float, float] = (0.0, 0.0)  # (metres, radians) for the front camera
    cube_colors: tuple[str, str] = ("red", "blue")
    cue: str | None = None  # None, "target" (the cue pad lies under the cube to move) or "other"
    # Probability that the instruction leaves out the colours ("pick up the cube"): makes the
    # shortcut cue the only reliable signal in part of the shortcut training data.
    instruction_dropout: float = 0.0

    def check(self) -> None:
        bad = [f for f in self.floor if f not in textures.FLOORS]
        bad += [w for w in self.wall if w not in textures.WALLS]
        bad += [c for c in self.cube_colors if c not in COLORS]
        if bad:
            raise VLAScopeError(f"variant '{self.name}': unknown texture or colour {bad}")
        lo, hi = self.distractors
        if not 0 <= lo <= hi <= len(DISTRACTORS):
            raise VLAScopeError(
                f"variant '{self.name}': distractors must be within 0..{len(DISTRACTORS)}")
        if self.cue not in (None, "target", "other"):
            raise VLAScopeError(f"variant '{self.name}': cue must be null, 'target' or 'other'")
        if not 0.0 <= self.instruction_dropout <= 1.0:
            raise VLAScopeError(f"variant '{self.name}': instruction_dropout must be in [0, 1]")
        if self.distractor_placement not in ("random", "near_objects"):
            raise VLAScopeError(f"variant '{self.name}': unknown distractor_placement")


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def load_variants(path: str | Path | None = None) -> dict[str, Variant]:
    """Read variant definitions; unknown keys are errors so typos do not pass silently."""
    if path is not None:
        raw = read_json(path)
    else:
        raw = json.loads(files("vlascope.scenes.tabletop").joinpath("assets/variants.json")
                         .read_text(encoding="utf-8"))
    known = {f.name for f in fields(Variant)} - {"name"}
    out = {}
    for name, spec in raw.items():
        unknown = set(spec) - known
        if unknown:
            raise VLAScopeError(f"variant '{name}': unknown keys {sorted(unknown)}")
        variant = Variant(name=name, **{k: _freeze(v) for k, v in spec.items()})
        variant.check()
        out[name] = variant
    return out


@dataclass
class VariantSample:
    """One draw of a variant's distributions: everything reset() applies to the model."""

    light_diffuse: np.ndarray
    light_offset: np.ndarray
    floor: str
    wall: str
    wall_tint: np.ndarray
    n_distractors: int
    camera_dpos: np.ndarray
    camera_drot: np.ndarray  # small rotation vector
    cube_colors: tuple[str, str]
    drop_colors: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def sample(variant: Variant, rng: np.random.Generator) -> VariantSample:
    lo, hi = variant.light_intensity
    tint = np.asarray(variant.light_tint[rng.integers(len(variant.light_tint))])
    pos_j, rot_j = variant.camera_jitter
    return VariantSample(
        light_diffuse=tint * rng.uniform(lo, hi),
        light_offset=np.append(rng.uniform(-1, 1, 2) * variant.light_offset, 0.0),
        floor=variant.floor[rng.integers(len(variant.floor))],
        wall=variant.wall[rng.integers(len(variant.wall))],
        wall_tint=np.asarray(variant.wall_tint[rng.integers(len(variant.wall_tint))]),
        n_distractors=int(rng.integers(variant.distractors[0], variant.distractors[1] + 1)),
        camera_dpos=rng.uniform(-1, 1, 3) * pos_j,
        camera_drot=rng.uniform(-1, 1, 3) * rot_j,
        cube_colors=tuple(variant.cube_colors),
        drop_colors=bool(rng.random() < variant.instruction_dropout),
    )
