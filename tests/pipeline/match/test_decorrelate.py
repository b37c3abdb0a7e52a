import numpy as np
import pytest
import scipy.signal

from recreate.exposure import MaskPlanes
from recreate.pipeline.match.decorrelate import (
    decorrelated_psf,
    decorrelation_kernel,
    full_convolution,
    variance_levels,
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
    return science - matched


def _apply(image, decorrelation):
    """Apply the kernel as the render does: a correlation."""
    return scipy.signal.correlate(image, decorrelation.image, mode="same")


def test_delta_kernel_gives_a_delta():
    kernel = np.zeros((21, 21))
    kernel[10, 10] = 1.0
    out = decorrelation_kernel(kernel, 4.0, 1.0, 10)
    expected = np.zeros((21, 21))
    expected[10, 10] = 1.0
    np.testing.assert_allclose(out.image, expected, atol=1e-7)
    assert out.science_weight == pytest.approx(1.0, rel=1e-6)
    assert out.template_weight == pytest.approx(1.0, rel=1e-6)


def test_decorrelated_noise_is_white_with_the_predicted_variance():
    kernel = _gaussian_kernel(sigma=2.5)
    # A noisy template: its convolved noise is comparable to the science.
    s, t = 1.0, 30.0
    diff = _noise_pair(shape=(512, 512), s=s, t=t, kernel=kernel)
    out = decorrelation_kernel(kernel, s, t, 10)
    inner = _apply(diff, out)[40:-40, 40:-40]
    before = diff[40:-40, 40:-40]
    corr_before = np.corrcoef(before[:, :-1].ravel(), before[:, 1:].ravel())
    corr_after = np.corrcoef(inner[:, :-1].ravel(), inner[:, 1:].ravel())
    assert corr_before[0, 1] > 0.2
    assert abs(corr_after[0, 1]) < 0.03
    # The variance weights predict the measured variance.
    predicted = out.science_weight * s + out.template_weight * t
    assert np.var(inner) == pytest.approx(predicted, rel=0.05)


def test_the_kernel_is_compact_symmetric_float32_and_unit_sum():
    kernel = 0.97 * _gaussian_kernel(sigma=1.8)
    out = decorrelation_kernel(kernel, 5.0, 1.0, 10)
    assert out.image.shape == (21, 21)
    assert out.image.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(
        out.image, out.image.astype(np.float32).astype(np.float64)
    )
    np.testing.assert_allclose(out.image, out.image[::-1, ::-1], atol=1e-9)
    # A DP1-like depth: the box holds all but a sliver of the energy.
    assert 0.0 <= out.truncation < 1e-8


def test_masked_pixels_do_not_enter_the_variance_levels():
    svar = np.full((64, 64), 2.0, np.float32)
    svar[:8] = 1e6  # flagged BAD below
    mask = np.zeros(svar.shape, np.int32)
    mask[:8] |= PLANES.value("BAD")
    science, template = variance_levels(
        svar, np.ones_like(svar), mask, PLANES, IGNORE
    )
    assert science == pytest.approx(2.0)
    assert template == pytest.approx(1.0)


def test_weights_are_the_full_grid_means_of_the_filter():
    # Parseval: sum D^2 and sum (K * D)^2 are v29's means of |corr|^2
    # and |K corr|^2 over the grid, for the kernel applied.
    rng = np.random.default_rng(3)
    kernel = rng.random((5, 5))
    kernel /= kernel.sum() * 1.02
    out = decorrelation_kernel(kernel, 120.0, 45.0, 8)
    grid = (64, 64)
    d_ft = np.fft.fft2(np.roll(_padded(out.image, grid), (-8, -8), (0, 1)))
    k_ft = np.fft.fft2(np.roll(_padded(kernel, grid), (-2, -2), (0, 1)))
    assert out.science_weight == pytest.approx(
        np.mean(np.abs(d_ft) ** 2), rel=1e-12
    )
    assert out.template_weight == pytest.approx(
        np.mean(np.abs(k_ft * d_ft) ** 2), rel=1e-12
    )


def test_deterministic():
    kernel = _gaussian_kernel()
    a = decorrelation_kernel(kernel, 3.0, 1.0, 10)
    b = decorrelation_kernel(kernel, 3.0, 1.0, 10)
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.science_weight, a.template_weight) == (
        b.science_weight,
        b.template_weight,
    )


def test_flux_is_preserved_whatever_the_kernel_sum():
    # A point source in the difference keeps its flux: corr(0) = 1.
    kernel = 0.9 * _gaussian_kernel(sigma=1.5)
    image = np.zeros((128, 128))
    image[64, 64] = 1000.0
    out = _apply(image, decorrelation_kernel(kernel, 1.0, 0.3, 10))
    assert float(out.sum()) == pytest.approx(1000.0, rel=1e-6)


def test_decorrelated_psf_matches_a_filtered_point_source():
    kernel = _gaussian_kernel(sigma=2.0)
    psf = _gaussian_kernel(size=41, sigma=2.5)
    # A point source with this PSF in an image, decorrelated...
    image = np.zeros((128, 128))
    image[44:85, 44:85] = psf * 1000.0
    # (a template 9 times noisier than the science image: a wide filter,
    # whose box is taken wide enough here)
    out = _apply(image, decorrelation_kernel(kernel, 1.0, 9.0, 30))
    # ... has the decorrelated PSF.
    expected = decorrelated_psf(psf, kernel, 1.0, 9.0)
    np.testing.assert_allclose(out[44:85, 44:85] / 1000.0, expected, atol=2e-6)
    assert expected.max() > psf.max()  # the filter sharpens


def test_truncation_says_what_a_narrow_box_leaves_out():
    kernel = _gaussian_kernel(sigma=2.0)
    deep = decorrelation_kernel(kernel, 5.0, 1.0, 10)
    shallow = decorrelation_kernel(kernel, 1.0, 9.0, 10)
    wide = decorrelation_kernel(kernel, 1.0, 9.0, 30)
    assert deep.truncation < 1e-8 < shallow.truncation
    assert wide.truncation < shallow.truncation


def _padded(image, grid):
    out = np.zeros(grid)
    out[: image.shape[0], : image.shape[1]] = image
    return out


@pytest.mark.parametrize("sides", [(25, 25), (21, 35), (35, 21), (29, 29)])
def test_full_convolution_has_scipy_signals_bits(sides):
    # The template weight of every stored solution depends on these
    # bits: the direct sum must add its products in scipy's order.
    rng = np.random.default_rng(sum(sides))
    for _ in range(20):
        first = rng.normal(size=(sides[0], sides[0]))
        second = rng.normal(size=(sides[1], sides[1]))
        second = second.astype(np.float32).astype(np.float64)
        expected = scipy.signal.convolve(first, second, method="direct")
        got = full_convolution(first, second)
        assert got.tobytes() == expected.tobytes()
