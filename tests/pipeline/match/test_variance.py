"""Tests of ScaleVariance, its binned background and clipped statistics."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.numerics.order_stats import order_statistics, percentiles
from recreate.numerics.robust import (
    IQR_TO_STDEV,
    clipped_mean_std,
    clipped_mean_std_of_plane,
    clipped_means_by_row,
    pairwise_sum,
)
from recreate.pipeline.config import BackgroundConfig, SubtractConfig
from recreate.pipeline.match.background import binned_background
from recreate.pipeline.match.variance import scale_variance
from recreate.pipeline.sources.detection import set_detection_planes
from tests.pipeline.scenes import field

PLANES = MaskPlanes.afw_default()
CONFIG = SubtractConfig()
BG32 = BackgroundConfig(bin_size=32)
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


# The compiled statistics and background reproduce the plain numpy /
# scipy formulation bit for bit; the references below are that
# formulation.


def reference_clipped_mean_std(values):
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return float("nan"), float("nan")
    q1, median, q3 = np.percentile(data, (25.0, 50.0, 75.0))
    center, std = float(median), IQR_TO_STDEV * float(q3 - q1)
    for _ in range(3):
        kept = data[np.abs(data - center) <= 3.0 * std]
        if kept.size < 2:
            break
        center, std = float(kept.mean()), float(kept.std(ddof=1))
    return center, std


def reference_row_means(rows):
    ordered = np.sort(rows, axis=1)
    counts = np.isfinite(ordered).sum(axis=1)
    index = np.arange(len(rows))

    def quantile(fraction):
        position = fraction * np.maximum(counts - 1, 0)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, np.maximum(counts - 1, 0))
        weight = position - low
        return (1.0 - weight) * ordered[index, low] + weight * ordered[
            index, high
        ]

    median = quantile(0.5)
    width = 3.0 * IQR_TO_STDEV * (quantile(0.75) - quantile(0.25))
    shifted = np.nan_to_num(ordered - median[:, None], nan=0.0)
    zeros = np.zeros((len(rows), 1))
    total = np.concatenate([zeros, np.cumsum(shifted, axis=1)], axis=1)
    squares = np.concatenate([zeros, np.cumsum(shifted**2, axis=1)], axis=1)
    center = np.zeros(len(rows))
    for _ in range(3):
        middle = median + center
        with np.errstate(invalid="ignore"):
            low = np.count_nonzero(ordered < (middle - width)[:, None], axis=1)
            high = np.count_nonzero(
                ordered <= (middle + width)[:, None], axis=1
            )
        n_kept = high - low
        safe_n = np.maximum(n_kept, 1)
        mean = (total[index, high] - total[index, low]) / safe_n
        sum_sq = squares[index, high] - squares[index, low]
        var = np.maximum(sum_sq - safe_n * mean**2, 0.0) / np.maximum(
            n_kept - 1, 1
        )
        center = np.where(n_kept >= 2, mean, center)
        width = np.where(n_kept >= 2, 3.0 * np.sqrt(var), width)
    return np.where(counts > 0, median + center, np.nan)


def test_percentiles_match_numpy_bit_for_bit():
    rng = np.random.default_rng(11)
    for size in (1, 2, 3, 7, 100, 4097, 50_000, 300_001):
        for kind in range(4):
            data = rng.normal(3.0, 2.0, size)
            if kind == 1:
                data = np.round(data)  # ties
            elif kind == 2:
                data[: size // 7] = 1e12  # far outliers
            elif kind == 3:
                data = np.exp(rng.normal(0.0, 8.0, size))  # heavy tail
            q = [0.0, 25.0, 50.0, 75.0, 100.0, *rng.uniform(0, 100, 4)]
            assert np.array_equal(percentiles(data, q), np.percentile(data, q))
    # A sky-dominated variance plane: every rank in one narrow bin of a
    # histogram that the bright-star tail stretches.
    sky = rng.normal(275.18, 0.007, 400_000)
    sky[::97] = rng.uniform(300.0, 36_000.0, len(sky[::97]))
    q = [25.0, 50.0, 75.0]
    assert np.array_equal(percentiles(sky, q), np.percentile(sky, q))
    constant = np.full(10_000, 2.5)
    assert np.array_equal(percentiles(constant, [25, 75]), [2.5, 2.5])
    with pytest.raises(ValueError, match="percentiles"):
        percentiles(np.array([]), [50])


def test_order_statistics_match_sorting():
    rng = np.random.default_rng(12)
    data = rng.standard_cauchy(200_000)
    ranks = np.array([0, 1, 7, 99_999, 100_000, 199_999])
    assert np.array_equal(order_statistics(data, ranks), np.sort(data)[ranks])
    with pytest.raises(ValueError, match="outside"):
        order_statistics(data, np.array([200_000]))


def test_clipped_statistics_of_a_plane_use_only_usable_finite_pixels():
    rng = np.random.default_rng(15)
    plane = rng.normal(100.0, 5.0, (60, 70)).astype(np.float32)
    plane[3, :] = np.nan
    plane[:, 4] = 1e6
    usable = rng.random(plane.shape) > 0.2
    expected = clipped_mean_std(plane[usable])
    assert clipped_mean_std_of_plane(plane, usable) == expected
    nothing = np.zeros(plane.shape, dtype=bool)
    assert np.isnan(clipped_mean_std_of_plane(plane, nothing)[0])
    with pytest.raises(ValueError, match="one shape"):
        clipped_mean_std_of_plane(plane, usable[1:])


def test_pairwise_sum_matches_numpy_sum():
    rng = np.random.default_rng(13)
    for size in (*range(300), 1000, 4097, 123_457):
        data = rng.normal(size=size) * 10 ** rng.uniform(-6, 6, size)
        assert pairwise_sum(data, 0, size) == np.sum(data)
    assert pairwise_sum(data, 5, 1000) == np.sum(data[5:1005])


def test_clipped_mean_std_matches_the_numpy_formulation():
    rng = np.random.default_rng(14)
    for trial in range(60):
        size = int(rng.integers(1, 20_000))
        values = rng.normal(5.0, 3.0, size)
        if trial % 3 == 1:
            values[: size // 8] = 1e5
        if trial % 3 == 2:
            values = np.round(values)
        if trial % 4 == 0:
            values[rng.integers(0, size, size // 5 + 1)] = np.nan
            values[0] = np.inf
        expected = reference_clipped_mean_std(values)
        got = clipped_mean_std(
            values.astype(np.float32) if trial % 5 == 0 else values
        )
        if trial % 5 == 0:
            expected = reference_clipped_mean_std(values.astype(np.float32))
        assert got == expected or (np.isnan(got[0]) and np.isnan(expected[0]))


def test_row_clipped_means_match_the_numpy_formulation():
    rng = np.random.default_rng(15)
    rows = rng.normal(10.0, 3.0, (300, 1024))
    rows[:, :40] += 100.0
    rows[rng.random(rows.shape) < 0.1] = np.nan
    rows[3] = np.nan
    rows[4, 1:] = np.nan
    rows[5, 2:] = np.nan
    rows[6] = 7.0
    rows[7, :500] = np.round(rows[7, :500])
    expected = reference_row_means(rows)
    assert np.array_equal(clipped_means_by_row(rows), expected, equal_nan=True)
    ordered = np.sort(rows, axis=1)
    assert np.array_equal(
        clipped_means_by_row(ordered, presorted=True), expected, equal_nan=True
    )


def test_scale_variance_does_not_depend_on_thread_count(monkeypatch):
    image, variance, mask = noise_image((700, 520))
    mask[100:140, 200:260] = PLANES.value("DETECTED")
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("RECREATE_THREADS", threads)
        scaled, factor = scale_variance(
            image, variance / 3, mask, PLANES, CONFIG
        )
        background = binned_background(image, mask == 0, BG32)
        results.append(
            (
                hashlib.sha256(scaled.tobytes()).hexdigest(),
                factor,
                hashlib.sha256(background.tobytes()).hexdigest(),
            )
        )
    assert results[0] == results[1] == results[2]


def test_big_endian_and_integer_planes_give_the_same_result():
    # FITS planes arrive big-endian; the compiled kernels take them as
    # their native-endian values.
    image, variance, mask = noise_image((200, 180))
    mask[10:20, 30:60] = PLANES.value("DETECTED")
    expected = scale_variance(image, variance, mask, PLANES, CONFIG)
    swapped = scale_variance(
        image.astype(">f4"),
        variance.astype(">f4"),
        mask.astype(">i4"),
        PLANES,
        CONFIG,
    )
    assert swapped[1] == expected[1]
    assert np.array_equal(swapped[0], expected[0])
    rounded = np.round(image).astype(np.int32)
    as_int = scale_variance(rounded, variance, mask, PLANES, CONFIG)
    as_float = scale_variance(
        rounded.astype(float), variance, mask, PLANES, CONFIG
    )
    assert as_int[1] == as_float[1]
