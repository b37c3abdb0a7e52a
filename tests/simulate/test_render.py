"""Tests of the pixel renderer: flux, positions, PSF, noise, saturation."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS, Sip

from recreate.exposure import MaskPlanes
from recreate.simulate.render import (
    NoiseModel,
    PsfModel,
    RenderResult,
    SourceTable,
    draw_psf_grid,
    expose,
    render_image,
)

SCALE = 0.2  # arcsec per pixel
SHAPE = (256, 256)
R_BAND = NoiseModel(sky_electrons=877.0, njy_per_electron=0.548)
SAT = MaskPlanes.afw_default().value("SAT")
REPO_ROOT = Path(__file__).resolve().parents[2]


def tan_wcs(
    shape=SHAPE, cd=((-SCALE / 3600, 0.0), (0.0, SCALE / 3600)), sip=False
):
    """Return a TAN (or TAN-SIP) WCS centred on the array."""
    wcs = WCS(naxis=2)
    suffix = "-SIP" if sip else ""
    wcs.wcs.ctype = [f"RA---TAN{suffix}", f"DEC--TAN{suffix}"]
    wcs.wcs.crval = [53.1, -28.1]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cd = np.array(cd)
    if sip:
        # A few pixels of quadratic and cubic distortion at the corners.
        a = np.zeros((4, 4))
        b = np.zeros((4, 4))
        a[2, 0], a[1, 1], a[0, 2], a[3, 0] = 8e-5, -5e-5, 3e-5, 4e-7
        b[2, 0], b[1, 1], b[0, 2], b[0, 3] = -4e-5, 6e-5, 7e-5, -5e-7
        wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    return wcs


def rotated_sip_wcs(shape=SHAPE, degrees=37.0):
    """Return a rotated TAN-SIP WCS with the usual parity."""
    t = np.radians(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    cd = rotation @ np.diag([-SCALE / 3600, SCALE / 3600])
    return tan_wcs(shape, cd=cd, sip=True)


def stars_at(wcs, xs, ys, flux):
    """Return stars at array positions, through the WCS."""
    ra, dec = wcs.pixel_to_world_values(np.asarray(xs), np.asarray(ys))
    return SourceTable.stars(ra, dec, np.broadcast_to(flux, np.shape(xs)))


def galaxy_at(wcs, x, y, flux, hlr=1.0, n=1.0, g1=0.0, g2=0.0):
    """Return one galaxy at an array position."""
    ra, dec = wcs.pixel_to_world_values(np.array([x]), np.array([y]))
    return SourceTable(
        ra=ra,
        dec=dec,
        flux=[flux],
        is_galaxy=[True],
        half_light_radius=[hlr],
        sersic_n=[n],
        g1=[g1],
        g2=[g2],
    )


def empty_sources():
    return SourceTable.stars([], [], [])


def render(sources, wcs=None, psf=None, noise=R_BAND, seed=1, shape=SHAPE):
    return render_image(
        shape,
        wcs if wcs is not None else tan_wcs(shape),
        sources,
        psf or PsfModel(fwhm=1.1),
        noise,
        seed=seed,
    )


def small_scene(seed):
    """Render a small mixed scene: used in and out of process."""
    wcs = rotated_sip_wcs((128, 128))
    rng = np.random.default_rng(7)
    n = 12
    xs, ys = rng.uniform(-5, 133, n), rng.uniform(-5, 133, n)
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    sources = SourceTable(
        ra=ra,
        dec=dec,
        flux=rng.uniform(1e3, 1e6, n),
        is_galaxy=np.arange(n) % 2 == 0,
        half_light_radius=rng.uniform(0.3, 1.5, n),
        sersic_n=np.where(np.arange(n) % 4 == 0, 4.0, 1.0),
        g1=rng.uniform(-0.3, 0.3, n),
        g2=rng.uniform(-0.3, 0.3, n),
    )
    psf = PsfModel(fwhm=0.9, gradient=(0.1, 0.05), g1=0.02)
    return render(sources, wcs=wcs, psf=psf, seed=seed, shape=(128, 128))


def plane_hash(result: RenderResult) -> str:
    digest = hashlib.sha256()
    for plane, dtype in (
        (result.image, "<f4"),
        (result.variance, "<f4"),
        (result.mask, "<i4"),
        (result.model, "<f4"),
        (result.psf_grid.images, "<f4"),
    ):
        digest.update(np.ascontiguousarray(plane, dtype=dtype).tobytes())
    return digest.hexdigest()


def weighted_centroid(image, x, y, sigma=2.5, iterations=40):
    """Iterate a Gaussian-weighted centroid from a first guess.

    For a point-symmetric profile the fixed point is its centre, so the
    estimate is unbiased whatever the window.
    """
    yy, xx = np.indices(image.shape, dtype=float)
    for _ in range(iterations):
        weight = image * np.exp(
            -((xx - x) ** 2 + (yy - y) ** 2) / sigma**2 / 2
        )
        x = float(np.sum(weight * xx) / np.sum(weight))
        y = float(np.sum(weight * yy) / np.sum(weight))
    return x, y


def adaptive_moments(image, iterations=60):
    """Return (Mxx, Myy, Mxy) of an elliptical-Gaussian matched weight.

    The matched weight makes the moments transform like the profile
    under a linear map of the coordinates.
    """
    yy, xx = np.indices(image.shape, dtype=float)
    cy, cx = (np.array(image.shape) - 1) / 2
    dx, dy = xx - cx, yy - cy
    m = np.array([[4.0, 0.0], [0.0, 4.0]])
    for _ in range(iterations):
        inv = np.linalg.inv(m)
        q = inv[0, 0] * dx**2 + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy**2
        weight = image * np.exp(-q / 2)
        total = weight.sum()
        measured = (
            np.array(
                [
                    [np.sum(weight * dx * dx), np.sum(weight * dx * dy)],
                    [np.sum(weight * dx * dy), np.sum(weight * dy * dy)],
                ]
            )
            / total
        )
        # For a Gaussian, the weighted moments are half the true ones.
        m = 2 * measured
    return m[0, 0], m[1, 1], m[0, 1]


def half_max_fwhm(image):
    """FWHM (pixels) of a centred image, from its radial profile."""
    yy, xx = np.indices(image.shape, dtype=float)
    cy, cx = (np.array(image.shape) - 1) / 2
    r = np.hypot(xx - cx, yy - cy).ravel()
    values = image.ravel() / image.max()
    near = (values > 0.3) & (values < 0.7)
    slope, intercept = np.polyfit(r[near], values[near], 1)
    return 2 * (0.5 - intercept) / slope


# --- source table ---------------------------------------------------------


def mixed_table(n=6):
    """Return stars and galaxies with a distinct value in every cell."""
    rows = np.arange(n, dtype=float)
    return SourceTable(
        ra=53.0 + rows,
        dec=-28.0 - rows,
        flux=1.0e4 * (rows + 1),
        is_galaxy=rows % 2 == 0,
        half_light_radius=0.5 + 0.1 * rows,
        sersic_n=1.0 + 0.5 * rows,
        g1=0.01 * rows,
        g2=-0.02 * rows,
    )


COLUMNS = (
    "ra",
    "dec",
    "flux",
    "is_galaxy",
    "half_light_radius",
    "sersic_n",
    "g1",
    "g2",
)


def test_take_selects_rows_by_mask_or_indices():
    table = mixed_table()
    mask = np.array([True, False, False, True, True, False])
    by_mask = table.take(mask)
    by_index = table.take(np.array([5, 0, 0]))
    assert len(by_mask) == 3
    assert len(by_index) == 3
    for name in COLUMNS:
        column = getattr(table, name)
        np.testing.assert_array_equal(getattr(by_mask, name), column[mask])
        np.testing.assert_array_equal(
            getattr(by_index, name), column[[5, 0, 0]]
        )
        assert getattr(by_mask, name).dtype == column.dtype
    # The selection owns its columns: editing it leaves the source alone.
    by_index.flux[:] = 0.0
    assert table.flux[0] == 1.0e4
    assert len(table.take(np.zeros(6, dtype=bool))) == 0
    assert len(table.take(np.array([], dtype=np.intp))) == 0
    with pytest.raises(IndexError):
        table.take(np.array([True, False]))


def test_concatenate_joins_tables_in_order():
    table = mixed_table()
    first, second = table.take(np.arange(4)), table.take(np.arange(4, 6))
    stars = SourceTable.stars([10.0], [-5.0], [7.0])
    joined = SourceTable.concatenate(first, second, stars)
    assert len(joined) == 7
    for name in COLUMNS:
        expected = np.concatenate([getattr(table, name), getattr(stars, name)])
        np.testing.assert_array_equal(getattr(joined, name), expected)
        assert getattr(joined, name).dtype == expected.dtype
    assert len(SourceTable.concatenate()) == 0
    assert len(SourceTable.concatenate(empty_sources(), stars)) == 1


# --- flux -----------------------------------------------------------------


def test_noiseless_star_model_sums_to_its_flux():
    flux = 2.0e6
    result = render(stars_at(tan_wcs(), [127.3], [128.6], flux))
    assert result.model.sum() == pytest.approx(flux, rel=0.01)
    assert result.drawn.tolist() == [True]


def test_aperture_flux_of_bright_star_on_noisy_image():
    flux = 1.0e6
    result = render(stars_at(tan_wcs(), [128.4], [127.7], flux), seed=3)
    yy, xx = np.indices(SHAPE)
    aperture = np.hypot(xx - 128.4, yy - 127.7) < 5 * 1.1 / SCALE
    measured = result.image[aperture].sum(dtype=np.float64)
    assert measured == pytest.approx(flux, rel=0.03)
    # The noise, not the model, is what separates them.
    noiseless = result.model[aperture].sum(dtype=np.float64)
    error = np.sqrt(result.variance[aperture].sum(dtype=np.float64))
    assert abs(measured - noiseless) < 5 * error


def test_galaxy_flux_is_conserved_and_its_shear_shows():
    flux = 5.0e5
    wcs = tan_wcs()
    result = render(galaxy_at(wcs, 128.2, 127.9, flux, hlr=1.0, g1=0.3))
    assert result.model.sum() == pytest.approx(flux, rel=0.01)
    mxx, myy, _ = adaptive_moments(result.model[96:161, 96:161])
    # g1 > 0 stretches East-West, which is along x in this WCS.
    assert mxx > 1.5 * myy


def test_de_vaucouleurs_galaxy_flux_is_conserved():
    flux = 5.0e5
    wcs = tan_wcs()
    result = render(galaxy_at(wcs, 128.0, 128.0, flux, hlr=0.8, n=4.0))
    assert result.model.sum() == pytest.approx(flux, rel=0.01)


# --- positions ------------------------------------------------------------


@pytest.mark.parametrize(
    "wcs", [tan_wcs(), rotated_sip_wcs()], ids=["tan", "rotated-sip"]
)
def test_star_centroid_lands_at_its_wcs_position(wcs):
    xs = np.array([40.37, 200.81, 63.5, 181.12, 128.02])
    ys = np.array([52.66, 48.29, 201.93, 190.5, 127.45])
    sources = stars_at(wcs, xs, ys, 3.0e5)
    result = render(sources, wcs=wcs)
    # The expected positions come from astropy, independently.
    expect_x, expect_y = wcs.world_to_pixel_values(sources.ra, sources.dec)
    for x, y in zip(expect_x, expect_y, strict=True):
        got = weighted_centroid(result.model, round(x), round(y))
        assert np.hypot(got[0] - x, got[1] - y) < 0.02
    np.testing.assert_allclose(result.x, expect_x, atol=1e-6)
    np.testing.assert_allclose(result.y, expect_y, atol=1e-6)


def test_star_partly_off_the_image_is_drawn_and_clipped_correctly():
    big_shape = (256, 320)
    flux = 1.0e6
    # The same sky on a wider canvas: its column 64 is column 0 here.
    wcs = tan_wcs()
    big = wcs.deepcopy()
    big.wcs.crpix = [wcs.wcs.crpix[0] + 64, wcs.wcs.crpix[1]]
    sources = stars_at(wcs, [-3.2], [100.4], flux)
    clipped = render(sources, wcs=wcs)
    full = render(sources, wcs=big, shape=big_shape)
    assert clipped.drawn.tolist() == [True]
    assert 0.05 * flux < clipped.model.sum() < 0.5 * flux
    np.testing.assert_allclose(
        clipped.model, full.model[:, 64:], atol=1e-4 * full.model.max()
    )


def test_source_far_off_the_image_is_skipped():
    wcs = tan_wcs()
    sources = stars_at(wcs, [-2000.0, 5000.0], [100.0, 80.0], 1.0e6)
    result = render(sources, wcs=wcs)
    assert result.drawn.tolist() == [False, False]
    assert not result.model.any()


# --- PSF ------------------------------------------------------------------


def test_psf_grid_images_have_unit_sum_and_span_the_image():
    grid = render(empty_sources()).psf_grid
    assert grid.images.shape == (5, 5, 41, 41)
    np.testing.assert_allclose(
        grid.images.sum(axis=(2, 3), dtype=np.float64), 1.0, atol=1e-5
    )
    np.testing.assert_allclose(grid.xs, np.linspace(0, 255, 5))
    np.testing.assert_allclose(grid.ys, np.linspace(0, 255, 5))
    peak = np.unravel_index(np.argmax(grid.images[2, 2]), (41, 41))
    assert peak == (20, 20)


def test_psf_fwhm_matches_the_model_at_centre_and_corners():
    psf = PsfModel(fwhm=1.1, gradient=(0.15, -0.1), curvature=0.1)
    shape = (257, 257)
    grid = draw_psf_grid(shape, tan_wcs(shape), psf, size=5, stamp=41)
    centre = half_max_fwhm(grid.images[2, 2]) * SCALE
    assert centre == pytest.approx(psf.fwhm_at(128, 128, shape), rel=0.05)
    for row, col in ((0, 0), (0, 4), (4, 0), (4, 4)):
        x, y = grid.xs[col], grid.ys[row]
        expected = psf.fwhm_at(x, y, shape)
        measured = half_max_fwhm(grid.images[row, col]) * SCALE
        assert measured == pytest.approx(expected, rel=0.05)
        # The pixel response broadens all alike: ratios are tighter.
        assert measured / centre == pytest.approx(expected / psf.fwhm, 0.02)


def test_fwhm_model_follows_its_formula():
    psf = PsfModel(fwhm=1.0, gradient=(0.1, 0.2), curvature=0.05)
    shape = (101, 201)
    assert psf.fwhm_at(100, 50, shape) == pytest.approx(1.0)
    assert psf.fwhm_at(0, 0, shape) == pytest.approx(1 - 0.1 - 0.2 + 0.1)
    assert psf.fwhm_at(200, 0, shape) == pytest.approx(1 + 0.1 - 0.2 + 0.1)
    assert psf.fwhm_at(200, 100, shape) == pytest.approx(1.4)


def test_star_is_exactly_the_psf_grid_image_at_a_node():
    shape = (257, 257)
    wcs = rotated_sip_wcs(shape)
    psf = PsfModel(fwhm=1.0, gradient=(0.2, 0.1), g1=0.05, g2=-0.03)
    flux = 1.0e6
    # The node at (192, 64) lies on a pixel centre.
    sources = stars_at(wcs, [192.0], [64.0], flux)
    result = render(sources, wcs=wcs, psf=psf, shape=shape)
    assert result.psf_grid.xs[3] == 192.0
    assert result.psf_grid.ys[1] == 64.0
    cutout = result.model[44:85, 172:213].astype(np.float64)
    cutout /= cutout.sum()
    node = result.psf_grid.images[1, 3]
    assert np.max(np.abs(cutout - node)) < 2e-3 * node.max()


def test_psf_shape_follows_the_wcs_jacobian():
    # Pixels 0.2" wide and 0.25" tall: a round PSF covers more of them
    # along x, by the ratio of the scales.
    shape = (129, 129)
    cd = ((-0.2 / 3600, 0.0), (0.0, 0.25 / 3600))
    grid = draw_psf_grid(shape, tan_wcs(shape, cd=cd), PsfModel(fwhm=1.2))
    mxx, myy, mxy = adaptive_moments(grid.images[2, 2].astype(float))
    assert mxx / myy == pytest.approx((0.25 / 0.2) ** 2, rel=0.05)
    assert abs(mxy) < 0.01 * mxx


def test_psf_ellipticity_rotates_with_the_wcs():
    shape = (129, 129)
    s = SCALE / 3600
    sheared = PsfModel(fwhm=1.0, g2=0.2)
    # Usual orientation: +x is West (+u), +y North (+v); g2 > 0
    # stretches along u = v, so along x = y.
    usual = draw_psf_grid(shape, tan_wcs(shape), sheared).images[2, 2]
    assert adaptive_moments(usual.astype(float))[2] > 0.1
    # +x North, +y East (-u): now g1 > 0 (along u) stretches along y.
    turned = tan_wcs(shape, cd=((0.0, s), (s, 0.0)))
    along_u = PsfModel(fwhm=1.0, g1=0.2)
    image = draw_psf_grid(shape, turned, along_u).images[2, 2]
    mxx, myy, _ = adaptive_moments(image.astype(float))
    assert myy / mxx == pytest.approx((1.2 / 0.8) ** 2, rel=0.08)


def test_moffat_profile_is_available():
    shape = (129, 129)
    psf = PsfModel(fwhm=1.0, profile="moffat", moffat_beta=3.5)
    grid = draw_psf_grid(shape, tan_wcs(shape), psf)
    assert half_max_fwhm(grid.images[2, 2]) * SCALE == pytest.approx(
        1.0, rel=0.05
    )


# --- noise ----------------------------------------------------------------


def test_blank_sky_noise_matches_the_variance():
    result = render(empty_sources(), seed=11)
    sigma = np.sqrt(result.variance.astype(np.float64))
    pulls = result.image / sigma
    assert np.std(pulls) == pytest.approx(1.0, abs=0.03)
    assert abs(np.mean(pulls)) < 5 / np.sqrt(pulls.size)
    expected = (877.0 + 6.2**2) * 0.548**2
    np.testing.assert_allclose(result.variance, expected, rtol=1e-6)


def test_variance_carries_the_source_poisson_term():
    flux = 1.0e6
    result = render(stars_at(tan_wcs(), [128.0], [128.0], flux))
    electrons = result.model.astype(np.float64) / 0.548
    expected = (877.0 + electrons + 6.2**2) * 0.548**2
    np.testing.assert_allclose(result.variance, expected, rtol=1e-5)
    assert result.variance[128, 128] > 10 * result.variance[0, 0]


def test_same_seed_gives_identical_pixels_in_separate_processes():
    script = (
        "from tests.simulate.test_render import plane_hash, small_scene;"
        "print(plane_hash(small_scene(seed=42)))"
    )
    digests = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert digests[0] == digests[1] == plane_hash(small_scene(seed=42))


def test_different_seeds_give_different_noise_on_the_same_model():
    first, second = small_scene(seed=1), small_scene(seed=2)
    assert np.array_equal(first.model, second.model)
    assert not np.array_equal(first.image, second.image)
    assert np.array_equal(first.variance, second.variance)


# --- saturation -----------------------------------------------------------


def test_bright_star_saturates_clips_and_bleeds_along_columns():
    well = 1.0e5
    result = render(stars_at(tan_wcs(), [128.3], [127.6], 3.0e8))
    saturated = (result.mask & SAT) != 0
    ceiling = np.float32((well - 877.0) * 0.548)
    assert saturated.sum() > 20
    np.testing.assert_array_equal(result.image[saturated], ceiling)
    assert result.image.max() <= ceiling
    # The bleed trail makes the SAT footprint taller than it is wide.
    rows, cols = np.nonzero(saturated)
    assert np.ptp(rows) > 2 * np.ptp(cols)
    # Without a well nothing is clipped or masked.
    unclipped = render(
        stars_at(tan_wcs(), [128.3], [127.6], 3.0e8),
        noise=NoiseModel(877.0, 0.548, saturation_electrons=None),
    )
    assert not np.any(unclipped.mask & SAT)
    assert unclipped.image.max() > 10 * ceiling


def test_bleed_conserves_charge_along_the_column():
    noise = NoiseModel(
        sky_electrons=100.0,
        njy_per_electron=1.0,
        read_noise=0.0,
        saturation_electrons=1000.0,
    )
    well = 900.0  # full well above the sky, in nJy
    model = np.zeros((20, 5), dtype=np.float32)
    model[10, 2] = 5 * well  # four wells too many: two up, two down
    image, _, mask, _ = expose(model, noise, np.random.default_rng(0))
    rows = np.flatnonzero(mask[:, 2] & SAT)
    assert rows.tolist() == [8, 9, 10, 11, 12]
    assert not np.any(mask[:, [0, 1, 3, 4]] & SAT)
    np.testing.assert_array_equal(image[rows, 2], well)


# --- validation -----------------------------------------------------------


def test_bad_inputs_are_rejected_with_their_value():
    with pytest.raises(ValueError, match="differ in length"):
        SourceTable.stars([1.0, 2.0], [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="flux -1"):
        SourceTable.stars([1.0], [1.0], [-1.0])
    with pytest.raises(ValueError, match="sersic_n 9"):
        galaxy_at(tan_wcs(), 10.0, 10.0, 1.0, n=9.0)
    with pytest.raises(ValueError, match="fwhm -1"):
        PsfModel(fwhm=-1.0)
    with pytest.raises(ValueError, match="full well 500"):
        NoiseModel(877.0, 0.548, saturation_electrons=500.0)
    with pytest.raises(ValueError, match="stamp side 40"):
        draw_psf_grid(SHAPE, tan_wcs(), PsfModel(1.0), stamp=40)
    with pytest.raises(ValueError, match="non-positive FWHM"):
        render(empty_sources(), psf=PsfModel(1.0, gradient=(1.5, 0.0)))


def test_a_source_the_wcs_cannot_place_on_the_image_is_an_error():
    # x' = x + 0.02 x^2 (about CRPIX) never goes below -12.5 px: a sky
    # point 40 px left of CRPIX on the linear grid has no pixel.
    wcs = tan_wcs(sip=True)
    a = np.zeros((3, 3))
    a[2, 0] = 0.02
    wcs.sip = Sip(a, np.zeros((3, 3)), None, None, wcs.wcs.crpix)
    ra, dec = tan_wcs().pixel_to_world_values(
        np.array([87.5]), np.array([100.0])
    )
    with pytest.raises(ValueError, match="cannot place source 0"):
        render(SourceTable.stars(ra, dec, [1.0e5]), wcs=wcs)
