"""A catalogue of visual corruptions applied to a policy's camera images.

Why: a VLA policy that succeeds on clean renders can fail on a slightly noisy, blurred, dimmed
or partly occluded camera image. Robustness probing, as in the Action Atlas paper's scripts
(24 corruption kinds), replays rollouts with each corruption applied to every observed frame
and compares success rates and internal activations with the clean run. This module is the
data side of that: a named catalogue of corruptions grouped by family (:data:`GROUPS`).

Conventions, so that results are comparable across kinds and runs:

- ``severity`` is an int in 1..5, as in ImageNet-C (Hendrycks & Dietterich, 2019): 1 barely
  visible, 5 severe. Within a kind a higher severity is a stronger corruption. Spatial
  parameters (blur radii, patch sizes, shifts) are fractions of the image's shorter side, so a
  severity means the same thing at 96x96 and at 224x224.
- Every corruption is deterministic given its ``numpy.random.Generator``; kinds that use it are
  listed in :data:`STOCHASTIC_KINDS` (a random occlusion position, noise, a random angle...).
  The same seed at a higher severity reuses the same random draws (same patch position, same
  direction), so severities of one seed form a sweep of one corruption.
- Input and output are HxWx3 uint8 images of any size; the input is never modified.
- Everything is numpy, ``scipy.fft`` and PIL (no OpenCV), and cheap
  enough to run on every step of a closed-loop rollout (well under 2 ms for 96x96).

``flip_horizontal`` is the one kind that has no degrees: it ignores ``severity``.
"""

from __future__ import annotations

import functools
import io
import numbers
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import fft

from .errors import ObservationError, UnknownNameError, VLAScopeError

Perturbation = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

CATALOGUE: dict[str, Perturbation] = {}
_GROUPS: dict[str, list[str]] = {}
_STOCHASTIC: set[str] = set()


def _register(group: str, stochastic: bool = False) -> Callable[[Perturbation], Perturbation]:
    def deco(fn: Perturbation) -> Perturbation:
        CATALOGUE[fn.__name__] = fn
        _GROUPS.setdefault(group, []).append(fn.__name__)
        if stochastic:
            _STOCHASTIC.add(fn.__name__)
        return fn

    return deco


# --------------------------------------------------------------------------- helpers


def _f(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    return img.astype(np.float32) * np.float32(1 / 255)


def _u8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] (clipped) -> uint8, rounded."""
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def _px(img: np.ndarray, frac: float, minimum: int = 1) -> int:
    """A length that is ``frac`` of the image's shorter side, in whole pixels."""
    return max(minimum, round(frac * min(img.shape[:2])))


def _pick(params: tuple, severity: int) -> Any:
    """The parameter for ``severity`` from a tuple of five (severity 1 first)."""
    return params[severity - 1]


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _gray(x: np.ndarray) -> np.ndarray:
    return (x @ _LUMA)[..., None]


def _pad(x: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Pad an HxWxC array, reflecting where the image is big enough, else repeating edges."""
    big = min(x.shape[:2]) > max(top, bottom, left, right)
    return np.pad(x, ((top, bottom), (left, right), (0, 0)), mode="reflect" if big else "edge")


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of float HxWx3 ``x`` with a sparse odd-sized 2-D kernel.

    Summed as shifted copies of the padded image (a motion-blur line has few taps, and its
    angle is random, so nothing can be cached); dense fixed kernels use :func:`_filter`.
    """
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = _pad(x, ph, ph, pw, pw)
    h, w = x.shape[:2]
    acc = np.zeros(x.shape, np.float32)
    for i, j in np.argwhere(kernel > 1e-4):  # correlation with the flipped kernel
        acc += np.float32(kernel[kh - 1 - i, kw - 1 - j]) * padded[i:i + h, j:j + w]
    return acc


def _gaussian_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3.5 * sigma)))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.outer(g, g)


def _disk_kernel(radius: float) -> np.ndarray:
    n = int(np.ceil(radius))
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    # Soft edge: coverage falls linearly over one pixel around the rim.
    return np.clip(radius + 0.5 - np.sqrt(yy * yy + xx * xx), 0, 1)


_KERNELS: dict[str, Callable[[float], np.ndarray]] = {
    "gaussian": _gaussian_kernel, "disk": _disk_kernel}


@functools.lru_cache(maxsize=128)
def _spectrum(kernel: str, param: float, h: int, w: int) -> tuple[np.ndarray, int, int, int]:
    """The FFT of a normalised kernel embedded at the padded size for an HxW image (cached)."""
    k = _KERNELS[kernel](param)
    r = k.shape[0] // 2
    ph = fft.next_fast_len(h + 2 * r, real=True)
    pw = fft.next_fast_len(w + 2 * r, real=True)
    embedded = np.zeros((ph, pw), np.float32)
    embedded[:2 * r + 1, :2 * r + 1] = k / k.sum()
    embedded = np.roll(embedded, (-r, -r), axis=(0, 1))  # kernel centre at the origin
    spec = fft.rfft2(embedded)[:, :, None]
    spec.flags.writeable = False  # shared by every call through the cache
    return spec, r, ph, pw


def _filter(x: np.ndarray, kernel: str, param: float) -> np.ndarray:
    """Filter each channel of float HxWx3 ``x`` with a fixed symmetric kernel, via the FFT."""
    h, w = x.shape[:2]
    spec, r, ph, pw = _spectrum(kernel, round(float(param), 6), h, w)
    padded = _pad(x, r, ph - h - r, r, pw - w - r)
    out = fft.irfft2(fft.rfft2(padded, axes=(0, 1)) * spec, s=(ph, pw), axes=(0, 1))
    return out[r:r + h, r:r + w]


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(img))


def _affine(img: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp about the image centre by 2x2 ``matrix`` (output -> input), bilinear, black fill."""
    h, w = img.shape[:2]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    (a, b), (d, e) = matrix
    c = cx - a * cx - b * cy
    f = cy - d * cx - e * cy
    out = _pil(img).transform((w, h), Image.Transform.AFFINE, (a, b, c, d, e, f),
                              resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out)


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


# --------------------------------------------------------------------------- noise


@_register("noise", stochastic=True)
def gaussian_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise (sensor read noise)."""
    c = _pick((0.04, 0.08, 0.12, 0.18, 0.26), severity)
    return _u8(_f(img) + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(c))


@_register("noise", stochastic=True)
def shot_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Photon (Poisson) noise, variance proportional to intensity (Gaussian approximation)."""
    photons = _pick((60.0, 25.0, 12.0, 5.0, 3.0), severity)
    x = _f(img)
    sd = np.sqrt(x * np.float32(1 / photons))
    return _u8(x + rng.standard_normal(img.shape, dtype=np.float32) * sd)


@_register("noise", stochastic=True)
def impulse_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: a fraction of channel values set to 0 or 255."""
    amount = _pick((0.03, 0.06, 0.09, 0.17, 0.27), severity)
    u = rng.random(img.shape, dtype=np.float32)
    out = img.copy()
    out[u < amount / 2] = 0
    out[u > 1 - amount / 2] = 255
    return out


@_register("noise", stochastic=True)
def speckle_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative Gaussian noise."""
    c = _pick((0.15, 0.25, 0.35, 0.5, 0.7), severity)
    x = _f(img)
    return _u8(x + x * rng.standard_normal(img.shape, dtype=np.float32) * np.float32(c))


# --------------------------------------------------------------------------- blur


@_register("blur")
def gaussian_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (out-of-focus or low-quality optics)."""
    s = _pick((0.006, 0.01, 0.016, 0.022, 0.03), severity) * min(img.shape[:2])
    return _u8(_filter(_f(img), "gaussian", s))


@_register("blur", stochastic=True)
def motion_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur along a random direction (camera shake, fast arm motion)."""
    length = max(1.5, _pick((0.03, 0.05, 0.08, 0.11, 0.15), severity) * min(img.shape[:2]))
    theta = rng.uniform(0, np.pi)
    n = int(np.ceil(length / 2)) + 1
    # An anti-aliased line: points along it splatted bilinearly into the kernel.
    t = np.linspace(-length / 2, length / 2, int(4 * length) + 1)
    ky, kx = n + t * np.sin(theta), n + t * np.cos(theta)
    y0, x0 = np.floor(ky).astype(int), np.floor(kx).astype(int)
    fy, fx = ky - y0, kx - x0
    kernel = np.zeros((2 * n + 1, 2 * n + 1), np.float64)  # centre (n, n)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(kernel, (y0 + dy, x0 + dx), wy * wx)
    return _u8(_convolve(_f(img), (kernel / kernel.sum()).astype(np.float32)))


@_register("blur")
def defocus_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Defocus: convolution with a disk (the lens's circle of confusion)."""
    radius = _pick((0.012, 0.02, 0.03, 0.04, 0.055), severity) * min(img.shape[:2])
    return _u8(_filter(_f(img), "disk", max(radius, 0.8)))


@_register("blur", stochastic=True)
def glass_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Frosted glass: slight blur plus each pixel taken from a random nearby pixel."""
    sigma = _pick((0.005, 0.006, 0.007, 0.009, 0.011), severity) * min(img.shape[:2])
    reach = np.float32(_pick((0.012, 0.02, 0.03, 0.04, 0.05), severity) * min(img.shape[:2]))
    h, w = img.shape[:2]
    blurred = _filter(_f(img), "gaussian", sigma)
    offsets = np.rint(rng.uniform(-1, 1, size=(2, h, w)).astype(np.float32) * reach)
    ys = np.clip(np.arange(h)[:, None] + offsets[0].astype(np.intp), 0, h - 1)
    xs = np.clip(np.arange(w)[None, :] + offsets[1].astype(np.intp), 0, w - 1)
    return _u8(np.take(blurred.reshape(h * w, 3), ys * w + xs, axis=0))


# --------------------------------------------------------------------------- colour


@_register("colour")
def grayscale(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Desaturation towards luminance; fully grey at severity 5."""
    a = np.float32(_pick((0.3, 0.5, 0.7, 0.85, 1.0), severity))
    x = _f(img)
    return _u8(x + a * (_gray(x) - x))


@_register("colour")
def saturate(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Over-saturated colours (saturation pushed away from luminance)."""
    k = np.float32(_pick((0.5, 1.0, 1.5, 2.2, 3.0), severity))
    x = _f(img)
    g = _gray(x)
    return _u8(g + (1 + k) * (x - g))


@_register("colour", stochastic=True)
def hue_shift(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Hue rotated by a fixed angle in a random direction (a rotation in YIQ space)."""
    angle = np.deg2rad(_pick((15, 30, 60, 90, 150), severity)) * _sign(rng)
    to_yiq = np.array([[0.299, 0.587, 0.114],
                       [0.596, -0.274, -0.322],
                       [0.211, -0.523, 0.312]])
    cs, sn = np.cos(angle), np.sin(angle)
    rot = np.array([[1, 0, 0], [0, cs, -sn], [0, sn, cs]])
    m = (np.linalg.inv(to_yiq) @ rot @ to_yiq).astype(np.float32)
    return _u8(_f(img) @ m.T)


_PERMUTATIONS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


@_register("colour", stochastic=True)
def channel_swap(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blend towards a random permutation of the RGB channels (e.g. an RGB/BGR mix-up)."""
    perm = list(_PERMUTATIONS[rng.integers(len(_PERMUTATIONS))])
    a = np.float32(_pick((0.2, 0.4, 0.6, 0.8, 1.0), severity))
    x = _f(img)
    return _u8(x + a * (x[..., perm] - x))


@_register("colour", stochastic=True)
def color_jitter(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Random per-channel gain and offset (white-balance and colour-cast errors)."""
    a = np.float32(_pick((0.1, 0.2, 0.3, 0.45, 0.6), severity))
    u = rng.uniform(-1, 1, size=(2, 3)).astype(np.float32)
    return _u8(_f(img) * (1 + a * u[0]) + 0.5 * a * u[1])


@_register("colour")
def invert(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blend towards the negative image; the full negative at severity 5."""
    a = np.float32(_pick((0.2, 0.4, 0.6, 0.8, 1.0), severity))
    x = _f(img)
    return _u8(x + a * (1 - 2 * x))


# --------------------------------------------------------------------------- lighting


@_register("lighting")
def brightness(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive brightening."""
    c = np.float32(_pick((0.1, 0.2, 0.3, 0.4, 0.5), severity))
    return _u8(_f(img) + c)


@_register("lighting")
def darken(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative darkening (less light, shorter exposure)."""
    f = np.float32(_pick((0.75, 0.6, 0.45, 0.3, 0.18), severity))
    return _u8(_f(img) * f)


@_register("lighting")
def contrast(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Reduced contrast: values pulled towards the image mean."""
    c = np.float32(_pick((0.6, 0.45, 0.3, 0.2, 0.1), severity))
    x = _f(img)
    m = x.mean()
    return _u8((x - m) * c + m)


@_register("lighting")
def low_light(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gamma darkening: shadows crushed more than highlights."""
    gamma = np.float32(_pick((1.4, 1.8, 2.3, 2.9, 3.6), severity))
    return _u8(_f(img) ** gamma)


@_register("lighting")
def overexposure(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative gain with clipping: highlights saturate to white."""
    gain = np.float32(_pick((1.4, 1.8, 2.3, 3.0, 4.0), severity))
    return _u8(_f(img) * gain)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [0, 1] of ``shape``: two octaves of upsampled noise."""
    h, w = shape
    field = np.zeros(shape, np.float32)
    for cells, weight in ((3, 0.65), (7, 0.35)):
        small = rng.random((cells, cells), dtype=np.float32)
        up = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
        field += weight * np.asarray(up, np.float32)
    lo, hi = field.min(), field.max()
    return (field - lo) / (hi - lo) if hi > lo else np.full(shape, 0.5, np.float32)


@_register("lighting", stochastic=True)
def fog(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Uneven haze: blend towards light grey with a smooth random density."""
    t = np.float32(_pick((0.25, 0.4, 0.55, 0.7, 0.85), severity))
    density = (t * (0.5 + 0.5 * _smooth_field(img.shape[:2], rng)))[..., None]
    return _u8(_f(img) * (1 - density) + density * np.float32(0.85))


@_register("lighting")
def vignette(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Radial darkening towards the corners (lens vignetting)."""
    s = np.float32(_pick((0.3, 0.45, 0.6, 0.75, 0.9), severity))
    h, w = img.shape[:2]
    ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    mask = 1 - s * (ys * ys + xs * xs) * np.float32(0.5)
    return _u8(_f(img) * mask[..., None])


@_register("lighting", stochastic=True)
def shadow(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A cast shadow: one side of a random soft-edged line darkened."""
    s = np.float32(_pick((0.3, 0.42, 0.54, 0.66, 0.78), severity))
    h, w = img.shape[:2]
    theta = rng.uniform(0, 2 * np.pi)
    py, px = rng.uniform(0.25, 0.75, size=2)
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None] - np.float32(py)
    xs = np.linspace(0, 1, w, dtype=np.float32)[None, :] - np.float32(px)
    dist = xs * np.float32(np.cos(theta)) + ys * np.float32(np.sin(theta))
    inside = np.clip(0.5 + dist / np.float32(0.06), 0, 1)  # soft penumbra ~6% of the frame
    return _u8(_f(img) * (1 - s * inside)[..., None])


@_register("lighting", stochastic=True)
def glare(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A bright glare spot at a random position (specular reflection, sun flare)."""
    intensity = np.float32(_pick((0.45, 0.6, 0.75, 0.88, 1.0), severity))
    radius = np.float32(_pick((0.15, 0.2, 0.25, 0.3, 0.35), severity))
    h, w = img.shape[:2]
    cy, cx = rng.uniform(0.2, 0.8, size=2)
    ys = (np.linspace(0, 1, h, dtype=np.float32)[:, None] - np.float32(cy)) * (h / min(h, w))
    xs = (np.linspace(0, 1, w, dtype=np.float32)[None, :] - np.float32(cx)) * (w / min(h, w))
    g = intensity * np.exp(-(ys * ys + xs * xs) / (2 * radius * radius))
    return _u8(1 - (1 - _f(img)) * (1 - g)[..., None])


# --------------------------------------------------------------------------- occlusion


def _square(img: np.ndarray, area: float) -> int:
    h, w = img.shape[:2]
    return int(min(h, w, max(1, round(np.sqrt(area * h * w)))))


def _random_corner(img: np.ndarray, side: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a ``side`` square placed uniformly inside the image (two draws)."""
    h, w = img.shape[:2]
    uy, ux = rng.random(2)
    return int(uy * (h - side + 1)), int(ux * (w - side + 1))


@_register("occlusion", stochastic=True)
def occlusion_patch(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One black square at a random position (an object or the gripper blocking the view)."""
    side = _square(img, _pick((0.03, 0.06, 0.1, 0.15, 0.22), severity))
    y, x = _random_corner(img, side, rng)
    out = img.copy()
    out[y:y + side, x:x + side] = 0
    return out


@_register("occlusion", stochastic=True)
def random_patches(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Cutout: several small squares of random colour at random positions."""
    n = _pick((2, 4, 6, 9, 12), severity)
    side = _square(img, 0.012)
    out = img.copy()
    for _ in range(n):  # drawn one by one: a higher severity adds patches to the same ones
        y, x = _random_corner(img, side, rng)
        colour = rng.integers(0, 256, size=3, dtype=np.uint8)
        out[y:y + side, x:x + side] = colour
    return out


@_register("occlusion")
def center_occlusion(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A black square over the image centre, where the task usually happens."""
    side = _square(img, _pick((0.04, 0.08, 0.12, 0.18, 0.25), severity))
    h, w = img.shape[:2]
    y, x = (h - side) // 2, (w - side) // 2
    out = img.copy()
    out[y:y + side, x:x + side] = 0
    return out


# --------------------------------------------------------------------------- geometric


@_register("geometric", stochastic=True)
def shift(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Translation in a random direction, edges replicated (a displaced camera)."""
    d = _pick((0.04, 0.08, 0.12, 0.16, 0.2), severity)
    theta = rng.uniform(0, 2 * np.pi)
    h, w = img.shape[:2]
    dy = round(d * min(h, w) * np.sin(theta))
    dx = round(d * min(h, w) * np.cos(theta))
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[rows[:, None], cols[None, :]]


@_register("geometric", stochastic=True)
def rotate(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rotation about the centre by a fixed angle in a random direction, black corners."""
    angle = np.deg2rad(_pick((4, 8, 12, 18, 25), severity)) * _sign(rng)
    cs, sn = np.cos(angle), np.sin(angle)
    return _affine(img, np.array([[cs, -sn], [sn, cs]]))


@_register("geometric", stochastic=True)
def shear(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Horizontal shear about the centre in a random direction (a skewed viewpoint)."""
    k = _pick((0.05, 0.1, 0.15, 0.22, 0.3), severity) * _sign(rng)
    return _affine(img, np.array([[1.0, k], [0.0, 1.0]]))


@_register("geometric")
def zoom(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Centre crop resized back to full size (a camera moved closer or a narrower lens)."""
    keep = _pick((0.92, 0.85, 0.78, 0.7, 0.6), severity)
    h, w = img.shape[:2]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    y, x = (h - ch) // 2, (w - cw) // 2
    crop = _pil(img[y:y + ch, x:x + cw])
    return np.asarray(crop.resize((w, h), Image.Resampling.BILINEAR))


@_register("geometric")
def flip_horizontal(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Mirror image left-right (ignores severity: a flip has no degrees)."""
    return img[:, ::-1].copy()


# --------------------------------------------------------------------------- compression


@_register("compression")
def jpeg(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression artefacts (a lossy video stream)."""
    quality = _pick((25, 18, 12, 8, 5), severity)
    buf = io.BytesIO()
    _pil(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"))


@_register("compression")
def pixelate(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Square blocks of averaged colour: a low-resolution camera upscaled."""
    block = _px(img, _pick((0.02, 0.035, 0.05, 0.07, 0.09), severity), minimum=2)
    h, w = img.shape[:2]
    nh, nw = -(-h // block), -(-w // block)
    padded = np.pad(img, ((0, nh * block - h), (0, nw * block - w), (0, 0)), mode="edge")
    means = padded.reshape(nh, block, nw, block, 3).mean(axis=(1, 3), dtype=np.float32)
    blocks = np.repeat(np.repeat(_u8(means * np.float32(1 / 255)), block, 0), block, 1)
    return blocks[:h, :w]


@_register("compression")
def posterize(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Fewer bits per channel (colour banding), levels centred in their bins."""
    bits = _pick((5, 4, 3, 2, 1), severity)
    drop = 8 - bits
    keep_mask = np.uint8((0xFF << drop) & 0xFF)
    return (img & keep_mask) | np.uint8(1 << (drop - 1))


# --------------------------------------------------------------------------- public API

GROUPS: dict[str, tuple[str, ...]] = {g: tuple(kinds) for g, kinds in _GROUPS.items()}
STOCHASTIC_KINDS: frozenset[str] = frozenset(_STOCHASTIC)
"""Kinds whose result depends on the seed; the others ignore their generator."""


def perturbation_kinds() -> list[str]:
    """All kind names, grouped by family in :data:`GROUPS` order."""
    return list(CATALOGUE)


def _check_kind(kind: str) -> Perturbation:
    fn = CATALOGUE.get(kind) if isinstance(kind, str) else None
    if fn is None:
        raise UnknownNameError("perturbation", str(kind), perturbation_kinds())
    return fn


def _check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) \
            or not 1 <= severity <= 5:
        raise VLAScopeError(
            f"perturbation severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def _check_image(image: np.ndarray, what: str = "image") -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ObservationError(
            f"{what}: expected an HxWx3 uint8 image, got "
            f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")


def _rng(seed: int, stream: str = "") -> np.random.Generator:
    """A generator for ``seed`` and a named stream, stable across processes and platforms."""
    entropy = [int(seed) & 0xFFFFFFFFFFFFFFFF]
    if stream:
        entropy.append(zlib.crc32(stream.encode("utf-8")))
    return np.random.default_rng(entropy)


def perturb_image(image: np.ndarray, kind: str, severity: int = 3, seed: int = 0) -> np.ndarray:
    """Return a corrupted copy of one HxWx3 uint8 image; deterministic for a ``seed``."""
    fn = _check_kind(kind)
    severity = _check_severity(severity)
    _check_image(image)
    return _apply(fn, image, severity, _rng(seed))


def _apply(fn: Perturbation, image: np.ndarray, severity: int,
           rng: np.random.Generator) -> np.ndarray:
    out = np.ascontiguousarray(fn(image, severity, rng), dtype=np.uint8)
    # A fresh, writable array: PIL-backed results are read-only, and callers may draw on it.
    return out if out.flags.writeable and not np.shares_memory(out, image) else out.copy()


def perturb_images(images: dict[str, np.ndarray], kind: str, severity: int = 3, seed: int = 0,
                   cameras: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Corrupt each camera's image with its own deterministic random stream.

    Each camera's stream derives from ``seed`` and a stable hash of the camera name, so the
    cameras get independent draws (occlusions at different places) that are the same in
    every run, whichever other cameras are present. ``cameras=None`` corrupts all cameras;
    cameras not listed pass through as the same array objects; a listed name with no image
    is an error, so a typo cannot silently turn a robustness run into a clean one.
    """
    fn = _check_kind(kind)
    severity = _check_severity(severity)
    selected = set(images) if cameras is None else set(cameras)
    missing = sorted(selected - set(images))
    if missing:
        raise UnknownNameError("camera", missing[0], list(images))
    out: dict[str, np.ndarray] = {}
    for cam, img in images.items():
        if cam not in selected:
            out[cam] = img
            continue
        _check_image(img, f"camera '{cam}'")
        out[cam] = _apply(fn, img, severity, _rng(seed, cam))
    return out
