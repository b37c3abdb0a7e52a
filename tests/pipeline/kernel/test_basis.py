import json
import math
from dataclasses import replace

import numpy as np
import pytest

from recreate.errors import FormatError, ProcessingError
from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel.basis import (
    SIGMA_TO_FWHM,
    KernelBasis,
    basis_sigmas,
    check_sum_carrier,
    make_basis,
)
from recreate.pipeline.kernel.spatial import spatial_terms

CONFIG = KernelConfig()
#: The rules alone, without v29's getPsfFwhm factor (the upstream fix).
TRUE_FWHM = replace(CONFIG, psf_fwhm_per_sigma=SIGMA_TO_FWHM)


def _fwhm(sigma):
    return sigma * SIGMA_TO_FWHM


def _v29_basis(science_sigma, template_sigma):
    """ip_diffim v29's widths and size, step by step from its formulas.

    getPsfFwhm: 2 ln(2 sqrt 2) * trace radius; makeKernelBasisList:
    / (2 sqrt(2 ln 2)); _calculateBasisSigmas; int(6 sigma) made odd and
    clipped to [21, 35].
    """
    fwhm_s = 2 * math.log(2 * math.sqrt(2)) * science_sigma
    fwhm_t = 2 * math.log(2 * math.sqrt(2)) * template_sigma
    ref = fwhm_s / (2 * math.sqrt(2 * math.log(2)))
    tgt = fwhm_t / (2 * math.sqrt(2 * math.log(2)))
    min_sig = 0.7 if ref > tgt else 0.4
    k = max(math.sqrt(abs(ref**2 - tgt**2)), min_sig)
    first = k / 2 if k / 2 > min_sig else k
    sigmas = (first, 2 * first, 4 * first)
    size = int(6 * sigmas[-1])
    size += 0 if size % 2 else 1
    return sigmas, min(35, max(size, 21))


def test_basis_has_27_images_with_unit_and_zero_sums():
    basis = KernelBasis(21, (0.75, 1.5, 3.0), (4, 2, 2))
    images = basis.images()
    assert images.shape == (27, 21, 21)
    sums = images.sum(axis=(1, 2))
    assert sums[0] == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(sums[1:], 0.0, atol=1e-14)
    np.testing.assert_allclose(basis.sums(), sums, atol=1e-14)


def test_basis_images_after_the_first_have_unit_norm():
    images = KernelBasis(25, (1.0, 2.0, 4.0), (4, 2, 2)).images()
    norms = np.sqrt((images[1:] ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-13)
    # The first is the plain unit-sum Gaussian: not unit norm.
    assert np.sqrt((images[0] ** 2).sum()) < 0.5


def test_basis_order_and_orientation_follow_afw():
    images = KernelBasis(21, (0.75, 1.5, 3.0), (4, 2, 2)).images()
    x_term, y_term, xy_term = images[1], images[2], images[4]
    # Basis 1 is G * u: odd along columns (u), even along rows (v).
    np.testing.assert_allclose(x_term[:, ::-1], -x_term, atol=1e-15)
    np.testing.assert_allclose(x_term[::-1, :], x_term, atol=1e-15)
    assert x_term[10, 12] > 0.0
    # Basis 2 is G * v: odd along rows.
    np.testing.assert_allclose(y_term[::-1, :], -y_term, atol=1e-15)
    assert y_term[12, 10] > 0.0
    np.testing.assert_allclose(xy_term, xy_term.T, atol=1e-15)
    # Basis 15 is the second Gaussian, made zero-sum by subtracting basis 0.
    second = images[15]
    assert second[10, 10] < 0.0 < second[10, 16]


def test_basis_is_cached_read_only_and_deterministic():
    a = KernelBasis(23, (0.9, 1.8, 3.6), (4, 2, 2))
    b = KernelBasis(23, (0.9, 1.8, 3.6), (4, 2, 2))
    assert a.images() is b.images()
    with pytest.raises(ValueError, match="read-only"):
        a.images()[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    ("science", "template", "sigmas", "size"),
    [
        # Science broader, sigma_K / 2 above 0.7: [sK/2, sK, 2 sK].
        (2.0, 1.0, (math.sqrt(3) / 2, math.sqrt(3), 2 * math.sqrt(3)), 21),
        # Science barely broader: floored at 0.7, then [sK, 2sK, 4sK].
        (1.3, 1.2, (0.7, 1.4, 2.8), 21),
        # Template broader ("deconvolution"), the DP1 case of the recipe.
        (1.90, 1.97, (0.5205, 1.0410, 2.0820), 21),
        # Template barely broader: floored at 0.4, not 0.7.
        (1.90, 1.9001, (0.4, 0.8, 1.6), 21),
        # Template much broader: sK / 2 above 0.4.
        (1.0, 3.0, (math.sqrt(2), math.sqrt(8), math.sqrt(32)), 33),
        # Equal widths: the configured sigmas.
        (1.7, 1.7, (0.7, 1.5, 3.0), 21),
        # Very different: the size is clipped to 35.
        (5.0, 1.0, (math.sqrt(6), math.sqrt(24), math.sqrt(96)), 35),
    ],
)
def test_sigma_and_size_rules(science, template, sigmas, size):
    basis = make_basis(_fwhm(science), _fwhm(template), TRUE_FWHM)
    np.testing.assert_allclose(basis.sigmas, sigmas, rtol=2e-4)
    assert basis.size == size
    assert basis.degrees == (4, 2, 2)


@pytest.mark.parametrize(
    ("science", "template", "sigmas", "size"),
    [
        # Science broader: 0.883 x (sK/2, sK, 2 sK) = (0.7648, ...); the
        # true widths (0.866, ...) would give the same clipped 21.
        (2.0, 1.0, (0.76475, 1.52950, 3.05900), 21),
        # Template much broader: 29 px where the true widths give 33.
        (1.0, 3.0, (1.24883, 2.49766, 4.99533), 29),
        # DP1's tutorial PSFs: sK = 0.4596 is above the 0.4 floor, so the
        # widths start there (0.52 with the true widths).
        (1.90, 1.97, (0.45961, 0.91923, 1.83846), 21),
        # On the clip: int(6 x 8.652) = 51 -> 35.
        (5.0, 1.0, (2.16304, 4.32608, 8.65216), 35),
        # At the clip: int(6 x 5.924) = 35 (true widths: 40 -> 35); and
        # just under it: int(6 x 5.554) = 33 (true widths: 37 -> 35).
        (3.5, 1.0, (1.48093, 2.96186, 5.92373), 35),
        (3.3, 1.0, (1.38854, 2.77707, 5.55414), 33),
    ],
)
def test_basis_reproduces_v29_getpsffwhm_factor(
    science, template, sigmas, size
):
    # v29 (and v30.0.x) report 2 ln(2 sqrt 2) sigma as the FWHM and
    # makeKernelBasisList divides by 2.3548: every width is 0.883 x.
    assert CONFIG.psf_fwhm_per_sigma == pytest.approx(2.0794415416798357)
    expected_sigmas, expected_size = _v29_basis(science, template)
    np.testing.assert_allclose(expected_sigmas, sigmas, rtol=2e-5)
    assert expected_size == size
    basis = make_basis(_fwhm(science), _fwhm(template), CONFIG)
    np.testing.assert_allclose(basis.sigmas, sigmas, rtol=2e-5)
    assert basis.size == size
    true_widths = make_basis(_fwhm(science), _fwhm(template), TRUE_FWHM)
    assert basis.sigmas[0] < true_widths.sigmas[0]


def test_kernel_size_is_made_odd():
    # Largest sigma 3.7 px: int(6 * 3.7) = 22, made 23.
    sigmas = basis_sigmas(math.hypot(1.0, 1.85), 1.0, CONFIG)
    assert sigmas[2] == pytest.approx(3.7)
    basis = make_basis(_fwhm(math.hypot(1.0, 1.85)), _fwhm(1.0), TRUE_FWHM)
    assert basis.size == 23
    for science in np.linspace(1.0, 6.0, 26):
        size = make_basis(_fwhm(science), _fwhm(0.9), CONFIG).size
        assert size % 2 == 1
        assert 21 <= size <= 35


def test_basis_round_trips_through_json():
    basis = make_basis(_fwhm(2.123456789), _fwhm(1.0987654321), CONFIG)
    again = KernelBasis.from_dict(json.loads(json.dumps(basis.to_dict())))
    assert again == basis
    assert again.sigmas == basis.sigmas
    np.testing.assert_array_equal(again.images(), basis.images())


@pytest.mark.parametrize(
    ("size", "sigmas", "degrees"),
    [(20, (1.0,), (2,)), (21, (1.0, 2.0), (2,)), (21, (-1.0,), (2,))],
)
def test_bad_basis_is_refused(size, sigmas, degrees):
    with pytest.raises(FormatError):
        KernelBasis(size, sigmas, degrees)


def test_bad_fwhm_is_refused():
    with pytest.raises(FormatError, match="science PSF FWHM"):
        make_basis(float("nan"), 3.0, CONFIG)


def test_chebyshev_terms_span_the_bbox_pixel_edges():
    bbox = (10, 20, 100, 50)
    edges = spatial_terms([9.5, 109.5], [19.5, 69.5], bbox, 1)
    np.testing.assert_allclose(edges[1], [-1.0, 1.0])
    np.testing.assert_allclose(edges[2], [-1.0, 1.0])
    x, y = 0.3, -0.6
    terms = spatial_terms(
        10 - 0.5 + (x + 1) * 50, 20 - 0.5 + (y + 1) * 25, bbox, 2
    )
    np.testing.assert_allclose(
        terms, [1.0, x, y, 2 * x * x - 1, x * y, 2 * y * y - 1], atol=1e-12
    )


@pytest.mark.parametrize(
    ("size", "sigmas", "degrees"),
    [
        (21, (0.75, 1.5, 3.0), (4, 2, 2)),
        (35, (2.1, 4.2, 8.4), (4, 2, 2)),
        (23, (1.0,), (0,)),
    ],
)
def test_every_basis_keeps_the_sum_in_basis_zero(size, sigmas, degrees):
    images = KernelBasis(size, sigmas, degrees).images()
    check_sum_carrier(images)  # raises if the contract breaks
    assert images[0].sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(images[1:].sum(axis=(1, 2))).max(initial=0.0) < 1e-12


def test_every_basis_the_recipe_makes_keeps_the_contract():
    # PSF FWHMs from 1.5 to 12 px (0.3" to 2.4" at 0.2"/px), both ways:
    # make_basis builds each basis through the checked path.
    widths = np.linspace(1.5, 12.0, 22)
    for science in widths:
        for template in widths:
            basis = make_basis(science, template, CONFIG)
            check_sum_carrier(basis.images())


def test_a_basis_that_moves_the_sum_is_refused():
    images = KernelBasis(21, (0.75, 1.5, 3.0), (4, 2, 2)).images()
    swapped = images[[1, 0, *range(2, len(images))]]
    with pytest.raises(ProcessingError, match="basis 0 sums to"):
        check_sum_carrier(swapped)
    leaking = images.copy()
    leaking[5] += images[0] * 1e-6
    with pytest.raises(ProcessingError, match="basis 5 sums to"):
        check_sum_carrier(leaking)
