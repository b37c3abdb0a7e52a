"""Tests of the PSF FWHM measured from stars."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.pipeline.sources.psfsize import compact_locus, measure_psf_fwhm
from recreate.simulate.render import NoiseModel, SourceTable
from tests.pipeline.scenes import (
    SCALE,
    field,
    gaussian_star_image,
    render,
    stars,
    tan_wcs,
)

PLANES = MaskPlanes.afw_default()


@pytest.mark.parametrize("profile", ["kolmogorov", "moffat"])
@pytest.mark.parametrize("fwhm", [0.6, 0.9, 1.3])
def test_fwhm_of_rendered_stars_among_galaxies(profile, fwhm):
    # About as many galaxies as stars, of all sizes down to 0.3".
    result = field(
        (384, 384),
        n_stars=40,
        n_galaxies=40,
        fwhm=fwhm,
        profile=profile,
        seed=11,
    )
    measured = measure_psf_fwhm(
        result.image, result.variance, result.mask, result.mask_planes
    )
    assert measured == pytest.approx(fwhm / SCALE, rel=0.03)


@pytest.mark.parametrize("sigma", [1.2, 2.0, 3.0])
def test_fwhm_of_gaussian_stars(sigma):
    rng = np.random.default_rng(int(10 * sigma))
    count = 30
    xs = rng.uniform(20, 280, count)
    ys = rng.uniform(20, 280, count)
    # Keep the stars apart so that none is blended.
    keep = np.ones(count, dtype=bool)
    for i in range(count):
        distance = np.hypot(xs[:i] - xs[i], ys[:i] - ys[i])
        keep[i] = np.all(distance[keep[:i]] > 12 * sigma)
    image, variance = gaussian_star_image(
        (300, 300),
        xs[keep],
        ys[keep],
        10 ** rng.uniform(4, 5, np.count_nonzero(keep)),
        sigma,
        10.0,
        seed=1,
    )
    mask = np.zeros(image.shape, dtype=np.int32)
    measured = measure_psf_fwhm(image, variance, mask, PLANES)
    assert measured == pytest.approx(2.3548 * sigma, rel=0.03)


def test_broad_psf_triggers_a_second_pass():
    # 10 px FWHM is 2.5x the first guess: detection is redone with it.
    result = field(
        (400, 400),
        n_stars=25,
        n_galaxies=5,
        fwhm=2.0,
        profile="moffat",
        seed=3,
    )
    measured = measure_psf_fwhm(
        result.image, result.variance, result.mask, result.mask_planes
    )
    assert measured == pytest.approx(2.0 / SCALE, rel=0.03)


def test_saturated_stars_are_not_used():
    shape = (300, 300)
    wcs = tan_wcs(shape)
    rng = np.random.default_rng(4)
    grid = np.arange(40, 280, 60, dtype=float)
    gx, gy = np.meshgrid(grid, grid)
    sources = SourceTable.concatenate(
        stars(wcs, gx.ravel(), gy.ravel(), 10 ** rng.uniform(4.5, 5.3, 16)),
        stars(wcs, [70.0, 190.0, 250.0], [70.0, 130.0, 250.0], 3e7),
    )
    result = render(shape, sources, fwhm=0.8, seed=4)
    assert np.any(result.mask & PLANES.value("SAT"))
    measured = measure_psf_fwhm(
        result.image, result.variance, result.mask, result.mask_planes
    )
    assert measured == pytest.approx(0.8 / SCALE, rel=0.03)


def test_too_few_stars_raise_with_the_count():
    shape = (200, 200)
    sources = stars(tan_wcs(shape), [50.0, 150.0, 100.0], [50, 60, 150], 1e5)
    result = render(shape, sources, seed=2)
    with pytest.raises(ProcessingError, match=r"3 usable stars .* need 5"):
        measure_psf_fwhm(
            result.image, result.variance, result.mask, result.mask_planes
        )


def test_blank_image_raises():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (100, 100)).astype(np.float32)
    variance = np.ones_like(image)
    with pytest.raises(ProcessingError, match="0 usable stars"):
        measure_psf_fwhm(
            image, variance, np.zeros((100, 100), np.int32), PLANES
        )


def test_noise_does_not_stop_a_measurement_with_nan_regions():
    result = field(
        (300, 300),
        n_stars=30,
        n_galaxies=10,
        fwhm=0.9,
        profile="kolmogorov",
        seed=8,
    )
    image = result.image.copy()
    variance = result.variance.copy()
    mask = result.mask.copy()
    image[:, :40] = np.nan
    variance[:, :40] = np.inf
    mask[:, :40] = PLANES.value("NO_DATA")
    measured = measure_psf_fwhm(image, variance, mask, result.mask_planes)
    assert measured == pytest.approx(0.9 / SCALE, rel=0.03)


def test_measurement_is_deterministic():
    result = field(
        (256, 256),
        n_stars=20,
        n_galaxies=10,
        fwhm=0.9,
        profile="kolmogorov",
        seed=5,
    )
    parts = (result.image, result.variance, result.mask, result.mask_planes)
    assert measure_psf_fwhm(*parts) == measure_psf_fwhm(*parts)


def test_compact_locus_prefers_the_tight_cluster():
    rng = np.random.default_rng(2)
    star_sizes = rng.normal(2.0, 0.03, 12)
    galaxy_sizes = rng.uniform(2.2, 6.0, 40)
    sizes = np.concatenate([galaxy_sizes, star_sizes, [np.nan, 0.5]])
    members = compact_locus(sizes)
    assert np.all(members[40:52])
    assert np.count_nonzero(members[:40]) <= 3
    assert not members[-1] and not members[-2]
    assert not np.any(compact_locus(np.array([np.nan])))


def test_noise_model_without_saturation_still_measures():
    shape = (256, 256)
    rng = np.random.default_rng(6)
    xs, ys = rng.uniform(15, 240, 20), rng.uniform(15, 240, 20)
    sources = stars(tan_wcs(shape), xs, ys, 10 ** rng.uniform(4.5, 6, 20))
    noise = NoiseModel(
        sky_electrons=877.0, njy_per_electron=0.548, saturation_electrons=None
    )
    result = render(shape, sources, fwhm=0.7, seed=6, noise=noise)
    measured = measure_psf_fwhm(
        result.image, result.variance, result.mask, result.mask_planes
    )
    assert measured == pytest.approx(0.7 / SCALE, rel=0.03)
