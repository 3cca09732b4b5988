"""Procedural textures for the tabletop: generated from a fixed seed at model build time, so
the scene needs no image files or downloads and renders identically everywhere."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

SIZE = 128


def _noise(rng: np.random.Generator, scale: float) -> np.ndarray:
    return rng.normal(0.0, scale, (SIZE, SIZE, 1))


def _mix(c1: tuple[float, ...], c2: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)[..., None] if t.ndim == 2 else np.clip(t, 0, 1)
    return np.asarray(c1) * (1 - t) + np.asarray(c2) * t


def wood(rng: np.random.Generator) -> np.ndarray:
    y = np.linspace(0, 1, SIZE)[:, None]
    x = np.linspace(0, 1, SIZE)[None, :]
    grain = np.sin(2 * np.pi * (y * 9 + 0.15 * np.sin(2 * np.pi * x * 2))) * 0.5 + 0.5
    img = _mix((0.55, 0.36, 0.2), (0.4, 0.25, 0.13), np.broadcast_to(grain, (SIZE, SIZE)))
    return img + _noise(rng, 0.03)


def tiles(rng: np.random.Generator) -> np.ndarray:
    idx = np.arange(SIZE)
    grout = ((idx % 32) < 2)[:, None] | ((idx % 32) < 2)[None, :]
    img = np.full((SIZE, SIZE, 3), 0.82) + _noise(rng, 0.02)
    img[grout] = 0.45
    return img


def concrete(rng: np.random.Generator) -> np.ndarray:
    coarse = rng.normal(0, 1, (16, 16))
    coarse = np.kron(coarse, np.ones((SIZE // 16, SIZE // 16)))
    return np.full((SIZE, SIZE, 3), 0.55) + 0.04 * coarse[..., None] + _noise(rng, 0.04)


def carpet(rng: np.random.Generator) -> np.ndarray:
    return np.array([0.18, 0.22, 0.38]) + _noise(rng, 0.06)


def paint(rng: np.random.Generator) -> np.ndarray:
    return np.array([0.86, 0.84, 0.8]) + _noise(rng, 0.015)


def brick(rng: np.random.Generator) -> np.ndarray:
    img = np.array([0.62, 0.27, 0.2]) + _noise(rng, 0.05)
    rows = np.arange(SIZE)
    img[(rows % 16) < 2, :] = 0.78
    for r in range(0, SIZE, 16):
        off = 0 if (r // 16) % 2 == 0 else 16
        cols = (np.arange(SIZE) + off) % 32 < 2
        img[r:r + 16, cols] = 0.78
    return img


def stripes(rng: np.random.Generator) -> np.ndarray:
    x = np.arange(SIZE)[None, :]
    band = ((x // 12) % 2).astype(float)
    img = _mix((0.9, 0.88, 0.72), (0.42, 0.6, 0.45), np.broadcast_to(band, (SIZE, SIZE)))
    return img + _noise(rng, 0.01)


def panels(rng: np.random.Generator) -> np.ndarray:
    img = np.array([0.3, 0.22, 0.16]) + _noise(rng, 0.03)
    x = np.arange(SIZE)
    img[:, (x % 43) < 3] = 0.15
    return img


FLOORS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "wood": wood, "tiles": tiles, "concrete": concrete, "carpet": carpet}
WALLS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "paint": paint, "brick": brick, "stripes": stripes, "panels": panels}


def png_bytes(fn: Callable[[np.random.Generator], np.ndarray], seed: int = 0) -> bytes:
    img = np.clip(fn(np.random.default_rng(seed)) * 255, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()
