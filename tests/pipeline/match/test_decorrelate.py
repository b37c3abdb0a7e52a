import numpy as np
import pytest
import scipy.signal

from recreate.exposure import MaskPlanes
from recreate.pipeline.match.decorrelate import (
    _correction_and_weights,
    decorrelate,
)

PLANES = MaskPlanes.afw_default()
IGNORE = ("BAD", "NO_DATA")


def _gaussian_kernel(size=21, sigma=2.0):
    r = np.arange(size) - size // 2
    g = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    return g / g.sum()


def _noise_pair(shape=(256, 256), s=4.0, t=1.0, kernel=None, seed=1):
    rng = np.random.default_rng(seed)
    science = rng.normal(0, np.sqrt(s), shape)
    template = rng.normal(0, np.sqrt(t), shape)
    matched = scipy.signal.fftconvolve(template, kernel, mode="same")
    return (science - matched).astype(np.float32)


def test_delta_kernel_changes_nothing():
    kernel = np.zeros((21, 21))
    kernel[10, 10] = 1.0
    diff = _noise_pair(kernel=kernel)
    mask = np.zeros(diff.shape, np.int32)
    out = decorrelate(
        diff,
        np.full(diff.shape, 4.0, np.float32),
        np.full(diff.shape, 1.0, np.float32),
        mask,
        PLANES,
        kernel,
        IGNORE,
    )
    np.testing.assert_allclose(out.image, diff, atol=1e-5)
    assert out.science_weight == pytest.approx(1.0)
    assert out.template_weight == pytest.approx(1.0)
    np.testing.assert_allclose(out.variance, 5.0, rtol=1e-6)


def test_decorrelated_noise_is_white_with_the_predicted_variance():
    kernel = _gaussian_kernel(sigma=2.5)
    # A noisy template: its convolved noise is comparable to the science.
    s, t = 1.0, 100.0
    diff = _noise_pair(shape=(512, 512), s=s, t=t, kernel=kernel)
    mask = np.zeros(diff.shape, np.int32)
    out = decorrelate(
        diff,
        np.full(diff.shape, s, np.float32),
        np.full(diff.shape, t, np.float32),
        mask,
        PLANES,
        kernel,
        IGNORE,
    )
    inner = out.image[40:-40, 40:-40].astype(np.float64)
    # Correlated before: neighbouring pixels share template noise.
    before = diff[40:-40, 40:-40].astype(np.float64)
    corr_before = np.corrcoef(before[:, :-1].ravel(), before[:, 1:].ravel())
    corr_after = np.corrcoef(inner[:, :-1].ravel(), inner[:, 1:].ravel())
    assert corr_before[0, 1] > 0.2
    assert abs(corr_after[0, 1]) < 0.03
    # The variance plane predicts the measured variance.
    assert np.var(inner) == pytest.approx(
        float(np.mean(out.variance)), rel=0.05
    )


def test_masked_pixels_do_not_enter_the_variance_levels():
    kernel = _gaussian_kernel()
    diff = np.zeros((64, 64), np.float32)
    svar = np.full(diff.shape, 2.0, np.float32)
    svar[:8] = 1e6  # flagged BAD below
    mask = np.zeros(diff.shape, np.int32)
    mask[:8] |= PLANES.value("BAD")
    out = decorrelate(
        diff, svar, np.ones_like(svar), mask, PLANES, kernel, IGNORE
    )
    assert out.science_variance == pytest.approx(2.0)


def test_nan_pixels_stay_nan_and_do_not_spread():
    kernel = _gaussian_kernel()
    diff = np.random.default_rng(2).normal(size=(64, 64)).astype(np.float32)
    diff[30, 30] = np.nan
    ones = np.ones_like(diff)
    out = decorrelate(
        diff,
        ones,
        ones,
        np.zeros(diff.shape, np.int32),
        PLANES,
        kernel,
        IGNORE,
    )
    assert np.isnan(out.image[30, 30])
    assert np.isfinite(np.delete(out.image.ravel(), 30 * 64 + 30)).all()


@pytest.mark.parametrize("shape", [(16, 10), (16, 11)])
def test_filter_weights_are_full_grid_means(shape):
    rng = np.random.default_rng(3)
    kernel = rng.random((5, 5))
    kernel /= kernel.sum() * 1.02
    padded = np.zeros(shape)
    padded[:5, :5] = kernel
    padded = np.roll(padded, (-2, -2), (0, 1))
    levels = (120.0, 45.0)
    numerator = levels[0] + levels[1] * kernel.sum() ** 2
    full_power = np.abs(np.fft.fft2(padded)) ** 2
    full = numerator / (levels[0] + levels[1] * full_power)
    half_ft = np.fft.rfft2(padded)
    correction, w1, w2 = _correction_and_weights(
        half_ft, *levels, kernel.sum(), shape[1]
    )
    assert w1 == pytest.approx(full.mean(), rel=1e-12)
    assert w2 == pytest.approx((full_power * full).mean(), rel=1e-12)
    half = numerator / (levels[0] + levels[1] * np.abs(half_ft) ** 2)
    np.testing.assert_allclose(correction, np.sqrt(half), rtol=1e-7)
    assert correction.dtype == np.float32


def test_deterministic():
    kernel = _gaussian_kernel()
    diff = _noise_pair(kernel=kernel)
    args = (
        diff,
        np.ones_like(diff),
        np.ones_like(diff),
        np.zeros(diff.shape, np.int32),
        PLANES,
        kernel,
        IGNORE,
    )
    a, b = decorrelate(*args), decorrelate(*args)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.variance.tobytes() == b.variance.tobytes()


def test_flux_is_preserved_whatever_the_kernel_sum():
    # A point source in the difference keeps its flux: corr(0) = 1.
    kernel = 0.9 * _gaussian_kernel(sigma=1.5)
    diff = np.zeros((128, 128), np.float32)
    diff[64, 64] = 1000.0
    out = decorrelate(
        diff,
        np.ones_like(diff),
        np.full(diff.shape, 0.3, np.float32),
        np.zeros(diff.shape, np.int32),
        PLANES,
        kernel,
        IGNORE,
    )
    assert float(out.image.sum()) == pytest.approx(1000.0, rel=1e-5)


def test_decorrelated_psf_matches_a_filtered_point_source():
    from recreate.pipeline.match.decorrelate import decorrelated_psf

    kernel = _gaussian_kernel(sigma=2.0)
    psf = _gaussian_kernel(size=41, sigma=2.5)
    # A point source with this PSF in an image, decorrelated...
    image = np.zeros((128, 128), np.float32)
    image[44:85, 44:85] = psf * 1000.0
    ones = np.ones_like(image)
    out = decorrelate(
        image,
        ones,
        np.full_like(image, 9.0),
        np.zeros(image.shape, np.int32),
        PLANES,
        kernel,
        IGNORE,
    )
    # ... has the decorrelated PSF.
    expected = decorrelated_psf(psf, kernel, 1.0, 9.0)
    np.testing.assert_allclose(
        out.image[44:85, 44:85] / 1000.0, expected, atol=2e-6
    )
    assert expected.max() > psf.max()  # the filter sharpens
