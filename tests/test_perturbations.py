"""The visual-corruption catalogue: shapes, strength, determinism, severity and errors."""

import re

import numpy as np
import pytest

from vlascope.core.errors import ObservationError, UnknownNameError, VLAScopeError
from vlascope.core.perturbations import (
    CATALOGUE,
    GROUPS,
    STOCHASTIC_KINDS,
    perturb_image,
    perturb_images,
    perturbation_kinds,
)

KINDS = perturbation_kinds()
SEVERITY_FREE = {"flip_horizontal"}  # a flip has no degrees
# Kinds whose strength must rise at every step 1 -> 5 (one or more per group).
STRICTLY_MONOTONE = [
    "gaussian_noise", "impulse_noise", "speckle_noise", "gaussian_blur", "motion_blur",
    "defocus_blur", "glass_blur", "grayscale", "hue_shift", "color_jitter", "brightness",
    "contrast", "low_light", "fog", "shadow", "occlusion_patch", "random_patches",
    "center_occlusion", "rotate", "zoom", "shear", "jpeg", "pixelate", "posterize",
]


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Colourful smooth pattern + fine noise + flat rectangles: something for every kind."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 90 * np.sin(x / 7 + 1.3 * c) * np.cos(y / 11 - 0.7 * c)
                    for c in range(3)], -1)
    img += rng.normal(0, 25, (h, w, 3))
    for _ in range(6):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y0:y0 + rng.integers(5, h // 3), x0:x0 + rng.integers(5, w // 3)] = \
            rng.integers(0, 256, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


IMG = textured(96, 96)
IMG_WIDE = textured(64, 80, seed=1)


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_catalogue_has_at_least_24_grouped_kinds():
    assert len(KINDS) >= 24
    assert perturbation_kinds() == list(CATALOGUE)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in KINDS)
    grouped = [k for kinds in GROUPS.values() for k in kinds]
    assert sorted(grouped) == sorted(KINDS)  # every kind in exactly one group
    assert len(GROUPS) >= 6 and all(GROUPS.values())
    assert STOCHASTIC_KINDS.issubset(KINDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("img", [IMG, IMG_WIDE], ids=["96x96", "64x80"])
def test_shape_dtype_preserved_and_input_untouched(kind, img):
    before = img.copy()
    for severity in range(1, 6):
        out = perturb_image(img, kind, severity, seed=severity)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.shares_memory(out, img)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("kind", KINDS)
def test_image_actually_changes(kind):
    assert diff(perturb_image(IMG, kind, 3), IMG) > 2.0
    assert diff(perturb_image(IMG_WIDE, kind, 3), IMG_WIDE) > 2.0


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_for_a_seed(kind):
    a = perturb_image(IMG, kind, 4, seed=7)
    np.testing.assert_array_equal(a, perturb_image(IMG, kind, 4, seed=7))
    # The catalogue's functions are usable directly with a generator.
    np.testing.assert_array_equal(CATALOGUE[kind](IMG, 4, np.random.default_rng(3)),
                                  CATALOGUE[kind](IMG, 4, np.random.default_rng(3)))
    outs = [perturb_image(IMG, kind, 4, seed=s) for s in range(8)]
    distinct = {o.tobytes() for o in outs}
    if kind in STOCHASTIC_KINDS:
        assert len(distinct) > 1, f"{kind} ignores its seed"
    else:
        assert len(distinct) == 1, f"{kind} is not listed as stochastic but depends on the seed"


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in SEVERITY_FREE])
def test_severity_5_stronger_than_1(kind):
    for img in (IMG, IMG_WIDE):
        for seed in (0, 1):
            weak = diff(perturb_image(img, kind, 1, seed), img)
            strong = diff(perturb_image(img, kind, 5, seed), img)
            assert strong > weak, (kind, img.shape, seed, weak, strong)


@pytest.mark.parametrize("kind", STRICTLY_MONOTONE)
def test_severity_monotone_for_representative_kinds(kind):
    strengths = [diff(perturb_image(IMG, kind, s, seed=2), IMG) for s in range(1, 6)]
    assert all(a < b for a, b in zip(strengths, strengths[1:], strict=False)), strengths


def test_flip_ignores_severity():
    outs = [perturb_image(IMG, "flip_horizontal", s) for s in range(1, 6)]
    assert all(np.array_equal(outs[0], o) for o in outs)
    np.testing.assert_array_equal(outs[0], IMG[:, ::-1])


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7, 3), (3, 40, 3)])
def test_every_kind_runs_on_tiny_and_odd_images(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for kind in KINDS:
        for severity in (1, 5):
            out = perturb_image(img, kind, severity, seed=1)
            assert out.shape == shape and out.dtype == np.uint8, kind


def test_all_kinds_run_on_96x96():  # runtime sanity: completes; timings are not asserted
    for kind in KINDS:
        for severity in range(1, 6):
            perturb_image(IMG, kind, severity, seed=severity)


def test_perturb_images_per_camera_streams():
    images = {"front": IMG, "wrist": IMG.copy(), "side": IMG_WIDE}
    out = perturb_images(images, "gaussian_noise", 3, seed=5)
    assert set(out) == set(images)
    for cam in images:
        assert out[cam].shape == images[cam].shape and diff(out[cam], images[cam]) > 2.0
    # Same pixels, different cameras -> independent noise.
    assert not np.array_equal(out["front"], out["wrist"])
    again = perturb_images(images, "gaussian_noise", 3, seed=5)
    assert all(np.array_equal(out[c], again[c]) for c in images)
    other = perturb_images(images, "gaussian_noise", 3, seed=6)
    assert not np.array_equal(out["front"], other["front"])
    # A camera's stream does not depend on which other cameras are present or selected.
    alone = perturb_images({"wrist": IMG}, "gaussian_noise", 3, seed=5)
    np.testing.assert_array_equal(alone["wrist"], out["wrist"])


def test_perturb_images_selected_cameras_only():
    images = {"front": IMG, "wrist": IMG_WIDE}
    out = perturb_images(images, "occlusion_patch", 4, seed=0, cameras=["wrist"])
    assert out["front"] is images["front"]
    assert not np.array_equal(out["wrist"], images["wrist"])
    assert perturb_images(images, "jpeg", cameras=[])["wrist"] is images["wrist"]
    # Bad images are only an error for cameras that are perturbed.
    bad = {"front": IMG, "depth": np.zeros((8, 8), np.float32)}
    assert perturb_images(bad, "invert", cameras=["front"])["depth"] is bad["depth"]
    with pytest.raises(ObservationError, match="camera 'depth'"):
        perturb_images(bad, "invert")
    with pytest.raises(UnknownNameError, match="camera 'wirst'"):  # a typo is not a clean run
        perturb_images(images, "invert", cameras=["wirst"])


def test_unknown_kind():
    with pytest.raises(UnknownNameError) as err:
        perturb_image(IMG, "sepia")
    assert err.value.kind == "perturbation" and err.value.known == KINDS
    assert "unknown perturbation 'sepia'" in str(err.value) and "gaussian_noise" in str(err.value)
    with pytest.raises(UnknownNameError):
        perturb_images({"front": IMG}, "sepia")


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, 3.0, True, "3", None])
def test_bad_severity(severity):
    with pytest.raises(VLAScopeError, match="severity must be an integer from 1 to 5"):
        perturb_image(IMG, "gaussian_blur", severity)
    with pytest.raises(VLAScopeError, match="severity"):
        perturb_images({"front": IMG}, "gaussian_blur", severity)


def test_numpy_integer_severity_and_any_int_seed():
    np.testing.assert_array_equal(perturb_image(IMG, "fog", np.int64(2), seed=-3),
                                  perturb_image(IMG, "fog", 2, seed=-3))


@pytest.mark.parametrize("image", [
    IMG.astype(np.float32),
    IMG[..., 0],
    np.zeros((8, 8, 4), np.uint8),
    np.zeros((0, 8, 3), np.uint8),
    IMG.tolist(),
], ids=["float", "gray", "rgba", "empty", "list"])
def test_bad_image(image):
    with pytest.raises(ObservationError, match="expected an HxWx3 uint8 image"):
        perturb_image(image, "brightness")
