"""The compiled 3x3 median filter against scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import median_filter

from recreate.numerics.median3 import median_filter_3x3


def _scipy(grid: np.ndarray) -> np.ndarray:
    return median_filter(grid, size=3, mode="reflect")


@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 7), (5, 1), (2, 2), (3, 9), (64, 65), (500, 509)]
)
def test_median_filter_is_scipys_bit_for_bit(shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    grid = rng.normal(5.0, 3.0, shape)
    # Ties and repeated values, as bin medians of quantised data give.
    grid[rng.random(shape) < 0.2] = 1.5
    assert np.array_equal(median_filter_3x3(grid), _scipy(grid))


@pytest.mark.parametrize("special", [0.0, -0.0, np.nan, np.inf])
def test_grids_with_signed_zeros_nan_or_inf_are_scipys_too(special):
    rng = np.random.default_rng(3)
    grid = rng.normal(0.0, 1.0, (40, 30))
    grid[rng.random(grid.shape) < 0.1] = special
    grid[5, 5] = -0.0 if special == 0.0 else grid[5, 5]
    expected = _scipy(grid)
    got = median_filter_3x3(grid)
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_float32_grid_is_filtered_as_float64():
    grid = np.random.default_rng(4).normal(size=(20, 20)).astype(np.float32)
    out = median_filter_3x3(grid)
    assert out.dtype == np.float64
    assert np.array_equal(out, _scipy(grid.astype(np.float64)))
