"""The variance estimate for images that come without one."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.errors import FormatError, InvalidRequestError
from recreate.io import estimate_variance

SHAPE = (300, 300)


@pytest.mark.parametrize("sigma", [0.01, 3.0, 250.0])
def test_pure_gaussian_noise_of_known_sigma(sigma):
    rng = np.random.default_rng(11)
    image = 1000.0 + rng.normal(0.0, sigma, SHAPE)
    variance, description = estimate_variance(image, None)
    assert variance.dtype == np.float32
    assert variance.shape == SHAPE
    assert np.sqrt(variance[0, 0]) == pytest.approx(sigma, rel=0.02)
    assert np.ptp(variance) == 0.0
    assert "3-sigma-clipped MAD" in description


def test_sources_and_masked_pixels_do_not_inflate_the_noise():
    rng = np.random.default_rng(12)
    image = rng.normal(0.0, 5.0, SHAPE)
    image[100:140, 100:140] += 5000.0  # a bright galaxy: clipped away
    mask = np.zeros(SHAPE, np.int32)
    image[:, :20] = 1e6  # a bad column block: masked
    mask[:, :20] = 1
    variance, _ = estimate_variance(image, mask)
    assert np.sqrt(variance[200, 200]) == pytest.approx(5.0, rel=0.03)


def test_poisson_term_with_gain():
    rng = np.random.default_rng(13)
    image = 200.0 + rng.normal(0.0, 10.0, SHAPE)
    image[50, 60] += 4000.0
    variance, description = estimate_variance(image, None, gain=2.0)
    sky_variance = np.median(variance)
    assert sky_variance == pytest.approx(100.0, rel=0.1)
    # (image - sky) / gain on top of the sky term.
    expected = sky_variance + (image[50, 60] - 200.0) / 2.0
    assert variance[50, 60] == pytest.approx(expected, rel=0.01)
    assert "gain 2" in description


def test_non_finite_pixels_get_infinite_variance():
    rng = np.random.default_rng(14)
    image = rng.normal(0.0, 1.0, SHAPE)
    image[3, 3] = np.nan
    variance, _ = estimate_variance(image, None)
    assert np.isinf(variance[3, 3])
    assert np.isfinite(variance[4, 4])


def test_too_few_pixels():
    image = np.ones((4, 4))
    with pytest.raises(FormatError, match="only 16 usable pixels"):
        estimate_variance(image, None)


def test_constant_image_has_no_noise():
    with pytest.raises(FormatError, match="no scatter"):
        estimate_variance(np.ones((20, 20)), None)


def test_bad_gain_and_mask_shape():
    image = np.random.default_rng(15).normal(size=(20, 20))
    with pytest.raises(InvalidRequestError, match="gain -1"):
        estimate_variance(image, None, gain=-1.0)
    with pytest.raises(InvalidRequestError, match="mask shape"):
        estimate_variance(image, np.zeros((3, 3), np.int32))
