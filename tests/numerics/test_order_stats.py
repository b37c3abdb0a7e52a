"""Order statistics: numpy's values, bit for bit."""

import warnings

import numpy as np
import pytest

from recreate.numerics.order_stats import nan_median


def _numpy_nanmedian(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(values))


def test_nan_median_is_numpys_bit_for_bit():
    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 4, 9, 10, 4097, 4098, 60001, 60002):
        for trial in range(4):
            values = rng.normal(3.0, 1e3, size=n)
            values[rng.random(n) < 0.25] = np.nan
            if trial == 1:
                # Ties across the middle.
                values = np.round(values / 500.0)
            if trial == 2:
                # A sky-dominated plane: values within a few ulps.
                values = 1.0 + rng.integers(0, 4, size=n) * 2.0**-52
            got = nan_median(values.reshape(1, -1))
            want = _numpy_nanmedian(values)
            assert got == want or (np.isnan(got) and np.isnan(want)), n


def test_nan_median_of_nothing_and_of_infinities():
    assert np.isnan(nan_median(np.full((3, 3), np.nan)))
    assert np.isnan(nan_median(np.array([])))
    values = np.array([np.inf, 1.0, np.nan, -np.inf, 2.0, np.inf])
    assert nan_median(values) == _numpy_nanmedian(values) == 2.0


def test_nan_median_takes_float64_only():
    with pytest.raises(TypeError, match="float32"):
        nan_median(np.ones(3, np.float32))
