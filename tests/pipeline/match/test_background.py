"""Tests of the binned backgrounds (SubtractBackgroundTask, v29 and v30)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from scipy.interpolate import Akima1DInterpolator, CubicSpline
from scipy.ndimage import median_filter

from recreate.pipeline.config import BackgroundConfig
from recreate.pipeline.match.background import bin_count, binned_background
from tests.pipeline.match.test_variance import reference_row_means

BG32 = BackgroundConfig(bin_size=32)


def test_background_reproduces_a_plane_everywhere():
    # Akima splines and afw's endpoint extrapolation are exact for a
    # linear function, including beyond the outer bin centres.
    yy, xx = np.mgrid[0:150, 0:170].astype(float)
    plane = 5.0 + 0.25 * xx - 0.4 * yy
    good = np.ones(plane.shape, dtype=bool)
    background = binned_background(plane, good, BG32)
    assert np.allclose(background, plane, atol=1e-9)


def test_background_follows_a_smooth_surface_with_few_bins():
    # 2-4 bins per axis: linear and natural-cubic interpolation.
    for shape in ((40, 70), (80, 110)):
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
        plane = 3.0 + 0.1 * xx + 0.05 * yy
        good = np.ones(shape, dtype=bool)
        assert np.allclose(binned_background(plane, good, BG32), plane)


def test_background_ignores_bad_pixels_and_empty_bins():
    image = np.full((128, 128), 100.0)
    good = np.ones(image.shape, dtype=bool)
    image[40:60, 40:60] = 1e9
    good[40:60, 40:60] = False
    # afw's bins for 128 px and binSize 32: 5 bins ending at 26, 51, 77,
    # 102, 128. Empty the corner bin and a whole column of bins.
    good[0:26, 102:128] = False
    good[:, 0:26] = False
    background = binned_background(image, good, BG32)
    assert np.allclose(background, 100.0)
    assert not np.any(binned_background(image, good & False, BG32))


def reference_interpolate(nodes, values, at):
    # One scipy spline over all the columns of ``values``; shape
    # (len(at), n_curves) for 2-D values.
    count = len(nodes)
    if count == 1:
        return np.broadcast_to(values[0], (len(at), *values.shape[1:])).copy()
    if count == 2:
        slope = (values[1] - values[0]) / (nodes[1] - nodes[0])
        return values[0] + np.multiply.outer(at - nodes[0], slope)
    if count >= 5:
        spline = Akima1DInterpolator(nodes, values, axis=0)
    else:
        spline = CubicSpline(nodes, values, axis=0, bc_type="natural")
    inside = (at >= nodes[0]) & (at <= nodes[-1])
    out = np.empty((len(at), *values.shape[1:]))
    out[inside] = spline(at[inside])
    for end, beyond in (
        (nodes[0], at < nodes[0]),
        (nodes[-1], at > nodes[-1]),
    ):
        if np.any(beyond):
            step = at[beyond] - end
            value, slope, curve = (spline(end, nu) for nu in (0, 1, 2))
            out[beyond] = (
                value
                + np.multiply.outer(step, slope)
                + 0.5 * np.multiply.outer(step**2, curve)
            )
    return out


def reference_background(image, good, bin_size):
    height, width = image.shape

    def edges(length):
        count = length // bin_size + 1
        ends = [
            min(((i + 1) * length + count // 2) // count, length)
            for i in range(count)
        ]
        return np.array([0, *ends])

    rows, cols = edges(height), edges(width)
    data = np.where(good, image.astype(np.float64), np.nan)
    size = np.diff(rows).max() * np.diff(cols).max()
    bins = np.full(((len(rows) - 1) * (len(cols) - 1), size), np.nan)
    for k, ((r0, r1), (c0, c1)) in enumerate(
        itertools.product(itertools.pairwise(rows), itertools.pairwise(cols))
    ):
        block = data[r0:r1, c0:c1].ravel()
        bins[k, : block.size] = block
    grid = reference_row_means(bins).reshape(len(rows) - 1, len(cols) - 1)
    y_nodes = rows[:-1] + 0.5 * np.diff(rows) - 0.5
    x_nodes = cols[:-1] + 0.5 * np.diff(cols) - 0.5
    y_out = np.arange(height, dtype=np.float64)
    columns, kept_x = [], []
    for j in range(grid.shape[1]):
        finite = np.isfinite(grid[:, j])
        if np.any(finite):
            columns.append(
                reference_interpolate(y_nodes[finite], grid[finite, j], y_out)
            )
            kept_x.append(x_nodes[j])
    if not columns:
        return np.zeros(image.shape)
    x_out = np.arange(width, dtype=np.float64)
    return reference_interpolate(
        np.asarray(kept_x), np.stack(columns), x_out
    ).T


@pytest.mark.parametrize(
    "shape", [(10, 10), (40, 70), (80, 110), (128, 128), (33, 400), (300, 37)]
)
def test_background_matches_the_scipy_formulation(shape):
    # Per-column splines in y, then one Akima spline over all rows in x,
    # as the scipy calls do; empty bins and a whole empty column too.
    rng = np.random.default_rng(shape[0] * shape[1])
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = rng.normal(100.0, 10.0, shape) + 0.3 * xx + 20 * np.sin(yy / 40)
    good = rng.random(shape) > 0.05
    good[: shape[0] // 3, : shape[1] // 4] = False
    good[:, -min(30, shape[1] // 5) :] = False
    expected = reference_background(image, good, 32)
    assert np.array_equal(binned_background(image, good, BG32), expected)
    as_float32 = image.astype(np.float32)
    assert np.array_equal(
        binned_background(as_float32, good, BG32),
        reference_background(as_float32, good, 32),
    )


def test_background_keeps_each_columns_own_akima_cutoff():
    # A column varying by 1e-12 beside one varying by 1: scipy's Akima
    # cutoff (1e-9 of the largest slope change) is per column in y.
    shape = (320, 64)
    image = np.zeros(shape)
    image[:, :32] = 1e-12 * (np.arange(shape[0]) // 32 % 3)[:, None]
    image[:, 32:] = (np.arange(shape[0]) // 32 % 4)[:, None]
    good = np.ones(shape, dtype=bool)
    expected = reference_background(image, good, 32)
    assert np.array_equal(binned_background(image, good, BG32), expected)


@pytest.mark.parametrize(
    ("length", "v29", "v30"),
    [(4000, 126, 125), (4096, 129, 128), (4072, 128, 128), (4112, 129, 129)],
)
def test_bin_count_follows_meas_algorithms_version(length, v29, v30):
    # v29: W // 32 + 1; v30: ceil(W / 32). They differ on multiples of
    # 32: ITL's 4000 rows and e2v's 4096 columns.
    assert bin_count(length, BG32) == v29
    ceil = BackgroundConfig(bin_size=32, bin_count="ceil")
    assert bin_count(length, ceil) == v30


def test_median_statistic_is_afws():
    # One bin per axis: the background is the bin's median everywhere,
    # afw's for an even count being the two middle values' mean.
    config = BackgroundConfig(
        bin_size=64, statistic="MEDIAN", bin_count="ceil"
    )
    image = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) % 97
    good = np.ones(image.shape, dtype=bool)
    background = binned_background(image, good, config)
    np.testing.assert_array_equal(background, np.median(image))
    good[0, 0] = False  # odd count: the middle value
    background = binned_background(image, good, config)
    np.testing.assert_array_equal(background, np.median(image[good]))


def test_super_pixel_filter_removes_a_bin_outlier():
    # One bin far off: the 3x3 median filter of the grid removes it; an
    # empty bin takes the grid's median first.
    shape = (96, 96)
    image = np.full(shape, 10.0)
    image[32:64, 32:64] = 1000.0
    good = np.ones(shape, dtype=bool)
    good[0:32, 0:32] = False
    raw = BackgroundConfig(bin_size=32, statistic="MEDIAN", bin_count="ceil")
    filtered = BackgroundConfig(
        bin_size=32,
        statistic="MEDIAN",
        bin_count="ceil",
        filter_super_pixels=True,
    )
    assert binned_background(image, good, raw).max() > 500.0
    np.testing.assert_allclose(binned_background(image, good, filtered), 10.0)
    grid = np.full((3, 3), 10.0)
    grid[1, 1] = 1000.0
    assert median_filter(grid, mode="reflect", size=3)[1, 1] == 10.0


def test_linear_interpolation_extrapolates_the_end_segments():
    # LINEAR: piecewise linear between bin centres, the end segments
    # extended beyond them (GSL's linear, afw's extrapolation).
    shape = (8, 96)
    image = np.zeros(shape)
    image[:, 32:64] = 3.0
    good = np.ones(shape, dtype=bool)
    config = BackgroundConfig(
        bin_size=32,
        statistic="MEDIAN",
        interpolation="LINEAR",
        bin_count="ceil",
    )
    row = binned_background(image, good, config)[0]
    # Bin centres 15.5, 47.5, 79.5 with values 0, 3, 0.
    assert row[47] == pytest.approx(3.0 * (1 - 0.5 / 32))
    assert row[31] == pytest.approx(3.0 * 15.5 / 32)
    assert row[0] == pytest.approx(-3.0 * 15.5 / 32)
    assert row[95] == pytest.approx(-3.0 * 15.5 / 32)


def test_columns_interpolate_alike_whether_or_not_some_bins_are_empty():
    # All bins finite takes a shortcut past the grouping of columns by
    # their empty bins; a column must come out the same either way.
    from recreate.pipeline.match.background import interpolate_columns

    rng = np.random.default_rng(3)
    grid = rng.normal(size=(12, 6))
    nodes = np.arange(12) * 8.0 + 3.5
    at = np.arange(96.0)
    whole = interpolate_columns(grid, nodes, at, linear=False)
    holed = grid.copy()
    holed[4, 5] = np.nan  # column 5 alone differs: its own group
    grouped = interpolate_columns(holed, nodes, at, linear=False)
    assert grouped[:5].tobytes() == whole[:5].tobytes()
    assert not np.array_equal(grouped[5], whole[5])


@pytest.mark.parametrize(
    ("shape", "interpolation"),
    [
        ((300, 410), "AKIMA_SPLINE"),  # 9 x 12 bins: Akima
        ((100, 130), "AKIMA_SPLINE"),  # 3 x 4 bins: natural cubic
        ((40, 70), "AKIMA_SPLINE"),  # 1 x 2 bins: constant, linear
        ((300, 410), "LINEAR"),
    ],
)
def test_float32_background_is_the_float64_one_rounded(shape, interpolation):
    rng = np.random.default_rng(shape[1])
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = rng.normal(0.0, 3.0, shape) + 1e-3 * xx * yy + np.sin(xx / 17)
    good = rng.random(shape) > 0.1
    config = replace(BG32, interpolation=interpolation)
    wide = binned_background(image, good, config)
    narrow = binned_background(image, good, config, float32=True)
    assert narrow.dtype == np.float32
    assert np.array_equal(narrow, wide.astype(np.float32))


def test_piecewise_linear_is_the_numpy_formulation_bit_for_bit():
    # y_lo + fraction * (y_hi - y_lo) per segment, end segments
    # extended, as numpy evaluates it over whole arrays.
    from recreate.pipeline.match.interpolation import interpolate

    rng = np.random.default_rng(11)
    nodes = np.cumsum(rng.uniform(20.0, 40.0, 9))
    values = rng.normal(0.0, 1e3, (9, 300))
    at = np.arange(-5.0, nodes[-1] + 30.0, 0.75)
    segment = np.clip(
        np.searchsorted(nodes, at, side="right") - 1, 0, len(nodes) - 2
    )
    fraction = (at - nodes[segment]) / (nodes[segment + 1] - nodes[segment])
    y_lo, y_hi = values[segment].T, values[segment + 1].T
    expected = y_lo + fraction * (y_hi - y_lo)
    got = interpolate(nodes, values, at, per_curve=False, linear=True)
    assert np.array_equal(got, expected)
    narrow = interpolate(
        nodes, values, at, per_curve=False, linear=True, float32=True
    )
    assert np.array_equal(narrow, expected.astype(np.float32))
