"""Tests of ScaleVariance, its binned background and clipped statistics."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.pipeline.config import SubtractConfig
from recreate.pipeline.detection import set_detection_planes
from recreate.pipeline.robust import clipped_mean_std, clipped_means_by_row
from recreate.pipeline.variance import binned_background, scale_variance
from tests.pipeline.scenes import field

PLANES = MaskPlanes.afw_default()
CONFIG = SubtractConfig()
NOISE = 10.0


def noise_image(shape=(300, 340), seed=2, background=True):
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, NOISE, shape)
    if background:
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
        image += 200.0 + 0.3 * xx - 0.2 * yy + 30 * np.sin(xx / 60.0)
    variance = np.full(shape, NOISE**2, dtype=np.float32)
    return image.astype(np.float32), variance, np.zeros(shape, np.int32)


def test_correct_variance_gives_factor_one():
    image, variance, mask = noise_image()
    scaled, factor = scale_variance(image, variance, mask, PLANES, CONFIG)
    # 0.74 (not 0.7413) IQR per sigma: the truth is 0.9965.
    assert factor == pytest.approx(1.0, abs=0.03)
    assert scaled.dtype == np.float32
    assert np.allclose(scaled, variance * np.float32(factor))


def test_variance_four_times_too_small_gives_four():
    image, variance, mask = noise_image()
    _, factor = scale_variance(image, variance / 4, mask, PLANES, CONFIG)
    assert factor == pytest.approx(4.0, rel=0.03)


def test_rendered_image_variance_is_right():
    # A realistic image: sources are DETECTED (as calibrateImage leaves
    # a visit image) and ignored; the renderer's variance includes the
    # sources' Poisson noise.
    result = field(
        (256, 256),
        n_stars=30,
        n_galaxies=10,
        fwhm=0.9,
        profile="kolmogorov",
        seed=4,
    )
    mask, planes = set_detection_planes(
        result.image,
        result.variance,
        result.mask,
        result.mask_planes,
        0.9 / 0.2,
        CONFIG,
    )
    assert np.count_nonzero(mask & planes.value("DETECTED")) > 1000
    for truth in (1.0, 4.0):
        _, factor = scale_variance(
            result.image, result.variance / truth, mask, planes, CONFIG
        )
        assert factor == pytest.approx(truth, rel=0.03)


def test_masked_and_non_finite_pixels_are_ignored():
    image, variance, mask = noise_image()
    image[50:100, 50:100] = 1e6
    mask[50:100, 50:100] = PLANES.value("DETECTED")
    image[200:220, :] = np.nan
    variance[0:10, :] = np.inf
    variance[10:20, :] = 0.0
    _, factor = scale_variance(image, variance / 4, mask, PLANES, CONFIG)
    assert factor == pytest.approx(4.0, rel=0.03)


def test_falls_back_to_image_based_estimate():
    # In 49.5 % of the pixels the variance plane is 1e8 times too small:
    # the pixel-based factor (about 15) exceeds the limit, but the median
    # variance is right, so the image-based estimate (about 1) is used.
    image, variance, mask = noise_image(background=False)
    order = np.random.default_rng(9).permutation(image.size)
    wrong = np.zeros(image.size, dtype=bool)
    wrong[order[: int(0.495 * image.size)]] = True
    wrong = wrong.reshape(image.shape)
    variance = np.where(wrong, variance / 1e8, variance).astype(np.float32)
    scaled, factor = scale_variance(image, variance, mask, PLANES, CONFIG)
    assert factor == pytest.approx(1.0, abs=0.05)
    assert np.allclose(scaled, variance * np.float32(factor))


def test_raises_when_both_estimates_exceed_the_limit():
    image, variance, mask = noise_image()
    with pytest.raises(ProcessingError, match="exceeds the limit 10"):
        scale_variance(image, variance / 20, mask, PLANES, CONFIG)
    # A higher limit lets the same factor (about 20) through.
    loose = replace(CONFIG, scale_variance_limit=30.0)
    _, factor = scale_variance(image, variance / 20, mask, PLANES, loose)
    assert factor == pytest.approx(20.0, rel=0.03)


def test_too_few_usable_pixels_give_one():
    image, variance, mask = noise_image((40, 40))
    mask[:] = PLANES.value("BAD")
    mask[0, 0] = 0
    scaled, factor = scale_variance(image, variance, mask, PLANES, CONFIG)
    assert factor == 1.0
    assert np.array_equal(scaled, variance)


def test_constant_image_raises_instead_of_zeroing_the_variance():
    image = np.full((64, 64), 3.0, dtype=np.float32)
    variance = np.ones_like(image)
    mask = np.zeros(image.shape, dtype=np.int32)
    with pytest.raises(ProcessingError, match="not positive"):
        scale_variance(image, variance, mask, PLANES, CONFIG)


def test_absent_planes_are_skipped_and_inputs_untouched():
    image, variance, mask = noise_image((100, 100))
    planes = MaskPlanes({"BAD": 0})
    before = variance.copy()
    _, factor = scale_variance(image, variance / 4, mask, planes, CONFIG)
    assert factor == pytest.approx(4.0, rel=0.05)
    assert np.array_equal(variance, before)


def test_mismatched_shapes_raise():
    image, variance, mask = noise_image((40, 40))
    with pytest.raises(ValueError, match="one shape"):
        scale_variance(image, variance[:30], mask, PLANES, CONFIG)


def test_background_reproduces_a_plane_everywhere():
    # Akima splines and afw's endpoint extrapolation are exact for a
    # linear function, including beyond the outer bin centres.
    yy, xx = np.mgrid[0:150, 0:170].astype(float)
    plane = 5.0 + 0.25 * xx - 0.4 * yy
    good = np.ones(plane.shape, dtype=bool)
    background = binned_background(plane, good, 32)
    assert np.allclose(background, plane, atol=1e-9)


def test_background_follows_a_smooth_surface_with_few_bins():
    # 2-4 bins per axis: linear and natural-cubic interpolation.
    for shape in ((40, 70), (80, 110)):
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
        plane = 3.0 + 0.1 * xx + 0.05 * yy
        good = np.ones(shape, dtype=bool)
        assert np.allclose(binned_background(plane, good, 32), plane)


def test_background_ignores_bad_pixels_and_empty_bins():
    image = np.full((128, 128), 100.0)
    good = np.ones(image.shape, dtype=bool)
    image[40:60, 40:60] = 1e9
    good[40:60, 40:60] = False
    # afw's bins for 128 px and binSize 32: 5 bins ending at 26, 51, 77,
    # 102, 128. Empty the corner bin and a whole column of bins.
    good[0:26, 102:128] = False
    good[:, 0:26] = False
    background = binned_background(image, good, 32)
    assert np.allclose(background, 100.0)
    assert not np.any(binned_background(image, good & False, 32))


def test_clipped_statistics_reject_outliers():
    rng = np.random.default_rng(3)
    values = rng.normal(10.0, 2.0, 5000)
    values[:200] = 1e4
    mean, std = clipped_mean_std(values)
    assert mean == pytest.approx(10.0, abs=0.1)
    assert std == pytest.approx(2.0, rel=0.1)
    assert np.isnan(clipped_mean_std([np.nan])[0])


def test_row_clipped_means_match_the_one_dimensional_version():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(40, 300)) * 3 + 10
    rows[:, :20] += 100
    rows[5, 100:] = np.nan
    rows[7, :] = np.nan
    rows[8, 1:] = np.nan
    means = clipped_means_by_row(rows)
    expected = np.array([clipped_mean_std(row)[0] for row in rows])
    assert np.isnan(means[7]) and np.isnan(expected[7])
    assert np.allclose(means, expected, equal_nan=True)


def test_scale_variance_is_deterministic():
    image, variance, mask = noise_image()

    def digest():
        scaled, factor = scale_variance(
            image, variance / 3, mask, PLANES, CONFIG
        )
        return hashlib.sha256(scaled.tobytes()).hexdigest(), factor

    assert digest() == digest()
