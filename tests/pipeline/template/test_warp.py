"""The afw-style warp and stitching kernels, on plain arrays."""

import hashlib

import numba
import numpy as np
import pytest
from astropy.wcs import WCS

from recreate.pipeline.template.lanczos import (
    KERNEL_CACHE_SIZE,
    CoarseMap,
    interpolation_nodes,
    lanczos_table,
    lanczos_weights,
)
from recreate.pipeline.template.warp import (
    PlacedPlanes,
    Planes,
    count_flagged,
    merge_patches,
    merge_warped,
    warp_planes,
)
from tests.support.exposures import tan_sip_wcs

NO_DATA = 1 << 8
EDGE = 1 << 4
BAD = 1 << 0


def _planes(image, variance=None, mask=None):
    image = np.asarray(image, np.float32)
    if variance is None:
        variance = np.ones_like(image)
    if mask is None:
        mask = np.zeros(image.shape, np.int32)
    return Planes(image, np.asarray(variance, np.float32), mask)


def _affine(matrix, offset):
    """Return dest (x, y) -> source (x, y) = matrix @ (x, y) + offset."""
    (a, b), (c, d) = matrix

    def transform(x, y):
        return a * x + b * y + offset[0], c * x + d * y + offset[1]

    return transform


def _rotation(degrees, scale=1.0):
    t = np.radians(degrees)
    return scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _warp(source, shape, transform, grow_bits=EDGE):
    coarse = CoarseMap.build(shape, transform, 100)
    return warp_planes(source, coarse, no_data=NO_DATA, grow_bits=grow_bits)


def _gaussians(x, y):
    """A smooth positive image: a pedestal and three wide Gaussians.

    Lanczos3 is not exact for a gradient: its normalised weights have a
    first moment of up to 0.02 px, depending on the sub-pixel phase. The
    widths keep that error under 1e-4 of the value.
    """
    out = 100.0 + 0.0 * x
    for x0, y0, s, a in (
        (90, 110, 80, 30),
        (170, 150, 100, 25),
        (140, 90, 120, 20),
    ):
        out = out + a * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * s * s))
    return out


def _star(x, y, x0, y0, sigma=2.0, flux=1000.0):
    r2 = (x - x0) ** 2 + (y - y0) ** 2
    return flux * np.exp(-r2 / (2 * sigma**2)) / (2 * np.pi * sigma**2)


def test_lanczos_weights_are_normalised_and_exact_at_whole_pixels():
    table = lanczos_table(3)
    assert table.shape == (KERNEL_CACHE_SIZE + 1, 6)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert table[0].tolist() == [0, 0, 1, 0, 0, 0]
    assert table[-1].tolist() == [0, 0, 0, 1, 0, 0]
    # Half way, the kernel is symmetric about the two middle taps.
    half = lanczos_weights(3, np.array([0.5]))[0]
    np.testing.assert_allclose(half, half[::-1], rtol=0, atol=1e-15)
    # L(x) = sinc(x) sinc(x/3) before normalisation.
    raw = np.sinc(np.arange(-2, 4) - 0.3) * np.sinc(
        (np.arange(-2, 4) - 0.3) / 3
    )
    np.testing.assert_allclose(
        lanczos_weights(3, np.array([0.3]))[0], raw / raw.sum(), rtol=1e-14
    )


def test_interpolation_nodes_follow_afw():
    assert interpolation_nodes(250, 100).tolist() == [-1, 99, 199, 249]
    assert interpolation_nodes(200, 100).tolist() == [-1, 99, 199]
    assert interpolation_nodes(1, 100).tolist() == [-1, 0]


def test_whole_pixel_shift_copies_every_plane_exactly():
    rng = np.random.default_rng(3)
    source = _planes(
        rng.normal(5, 3, (90, 100)),
        rng.uniform(1, 4, (90, 100)),
        rng.integers(0, 64, (90, 100)).astype(np.int32),
    )
    out = _warp(source, (60, 70), _affine(np.eye(2), (11.0, 13.0)))
    assert np.array_equal(out.image, source.image[13:73, 11:81])
    assert np.array_equal(out.variance, source.variance[13:73, 11:81])
    assert np.array_equal(out.mask, source.mask[13:73, 11:81])


def test_smooth_image_survives_shift_and_rotation():
    yy, xx = np.mgrid[0:260, 0:260].astype(float)
    source = _planes(_gaussians(xx, yy))
    transform = _affine(_rotation(17.0), (75.3, 12.6))
    out = _warp(source, (150, 160), transform)
    dy, dx = np.mgrid[0:150, 0:160].astype(float)
    sx, sy = transform(dx, dy)
    interior = (sx > 10) & (sx < 250) & (sy > 10) & (sy < 250)
    assert interior.sum() > 15000
    expected = _gaussians(sx, sy)
    relative = np.abs(out.image / expected - 1.0)[interior]
    assert relative.max() < 1e-4


def test_star_keeps_its_flux_and_lands_where_the_transform_says():
    yy, xx = np.mgrid[0:80, 0:80].astype(float)
    source = _planes(_star(xx, yy, 40.3, 38.7))
    matrix = _rotation(30.0)
    offset = np.array([27.3, -9.4])
    out = _warp(source, (70, 70), _affine(matrix, offset))
    # The destination pixel that maps onto the star centre.
    expected = np.linalg.solve(matrix, np.array([40.3, 38.7]) - offset)
    flux = np.nansum(out.image.astype(float))
    assert flux == pytest.approx(1000.0, rel=1e-3)
    dy, dx = np.mgrid[0:70, 0:70]
    centroid = np.array(
        [np.nansum(dx * out.image) / flux, np.nansum(dy * out.image) / flux]
    )
    assert np.abs(centroid - expected).max() < 0.01


def test_pixel_area_keeps_flux_when_the_scale_changes():
    # Destination pixels are 1.1 source pixels wide: afw multiplies each
    # by its area in source pixels (1.21), so the star's flux is kept.
    yy, xx = np.mgrid[0:90, 0:90].astype(float)
    source = _planes(_star(xx, yy, 44.6, 45.2), np.full((90, 90), 2.0))
    out = _warp(source, (70, 70), _affine(_rotation(10.0, 1.1), (5.0, 3.0)))
    assert np.nansum(out.image.astype(float)) == pytest.approx(
        1000.0, rel=1e-3
    )
    # Variance: 2 * sum(w**2) * area**2, area = 1.21.
    finite = np.isfinite(out.image)
    assert finite.sum() > 3000
    assert np.all(out.variance[finite] <= 2.0 * 1.21**2 * (1 + 1e-6))
    assert np.all(out.variance[finite] > 0.2 * 2.0 * 1.21**2)


def test_variance_is_warped_with_squared_weights():
    source = _planes(np.zeros((40, 40)), np.full((40, 40), 3.0))
    out = _warp(source, (20, 20), _affine(np.eye(2), (10.25, 10.5)))
    wx = lanczos_weights(3, np.array([0.25]))[0]
    wy = lanczos_weights(3, np.array([0.5]))[0]
    expected = 3.0 * (wx**2).sum() * (wy**2).sum()
    np.testing.assert_allclose(out.variance, expected, rtol=1e-6)


def test_mask_uses_the_bilinear_footprint_except_grow_bits():
    mask = np.zeros((40, 40), np.int32)
    mask[20, 20] = BAD
    mask[10, 30] = EDGE
    source = _planes(np.zeros((40, 40)), mask=mask)
    out = _warp(source, (40, 40), _affine(np.eye(2), (0.4, 0.3)))
    # Source pixel (20, 20) has non-zero bilinear weight for destination
    # pixels whose source position lies in (19, 21): x-0.4, y-0.3.
    bad = np.argwhere(out.mask & BAD)
    assert sorted(map(tuple, bad)) == [(19, 19), (19, 20), (20, 19), (20, 20)]
    # EDGE is grown to the whole 6x6 Lanczos footprint: taps i-2 ... i+3.
    edge = np.argwhere(out.mask & EDGE)
    rows, cols = set(edge[:, 0]), set(edge[:, 1])
    assert rows == set(range(7, 13)) and cols == set(range(27, 33))
    assert len(edge) == 36


def test_pixels_whose_footprint_leaves_the_source_are_edge_pixels():
    source = _planes(np.ones((30, 30)))
    # Source x = destination x - 2.5: floor(x) >= 2 needs dest x >= 5,
    # floor(x) <= 30 - 4 needs dest x <= 29; y = dest y + 0.5 likewise.
    out = _warp(source, (30, 40), _affine(np.eye(2), (-2.5, 0.5)))
    good = ~np.isnan(out.image)
    assert np.flatnonzero(good.any(axis=0)).tolist() == list(range(5, 30))
    assert np.flatnonzero(good.any(axis=1)).tolist() == list(range(2, 27))
    assert np.all(out.variance[~good] == np.inf)
    assert np.all(out.mask[~good] == NO_DATA)
    assert np.all(out.mask[good] == 0)


def test_coarse_grid_matches_astropy_to_a_hundredth_of_a_pixel():
    # A full-size grown science grid with SIP distortion of about a pixel
    # at the corners, mapped into a tract's TAN frame.
    science = tan_sip_wcs()
    tract = WCS(naxis=2)
    tract.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    tract.wcs.crval = [53.3, -27.9]
    tract.wcs.crpix = [15000.5, 15000.5]
    tract.wcs.cd = np.diag([-0.2, 0.2]) / 3600.0
    tract.wcs.set()

    def transform(x, y):
        ra, dec = science.pixel_to_world_values(x - 20.0, y - 20.0)
        return tract.world_to_pixel_values(ra, dec)

    coarse = CoarseMap.build((4040, 4112), transform, 100)
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4112, 400)
    y = rng.integers(0, 4040, 400)
    got_x, got_y = coarse.positions(x, y)
    want_x, want_y = transform(x.astype(float), y.astype(float))
    assert np.hypot(got_x - want_x, got_y - want_y).max() < 0.01
    # The nodes themselves are exact.
    nodes_x, nodes_y = coarse.positions([99, 4111], [99, 4039])
    exact_x, exact_y = transform(
        np.array([99.0, 4111.0]), np.array([99.0, 4039.0])
    )
    np.testing.assert_allclose(nodes_x, exact_x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(nodes_y, exact_y, rtol=0, atol=1e-9)


def test_merge_averages_with_inverse_sigma_weights():
    first = _planes(np.full((4, 6), 10.0), np.full((4, 6), 4.0))
    second = _planes(np.full((4, 6), 16.0), np.full((4, 6), 16.0))
    first.mask[:] = BAD
    second.mask[:] = EDGE
    merged, counts = merge_patches(
        [PlacedPlanes(first, 0, 0), PlacedPlanes(second, 3, 1)],
        (6, 10),
        NO_DATA,
    )
    # Overlap: weights 1/2 and 1/4.
    w1, w2 = 0.5, 0.25
    assert merged.image[2, 4] == pytest.approx((w1 * 10 + w2 * 16) / (w1 + w2))
    assert merged.variance[2, 4] == pytest.approx(
        (w1 * 4 + w2 * 16) / (w1 + w2)
    )
    assert merged.mask[2, 4] == BAD | EDGE
    # Single coverage keeps the pixels exactly; no coverage: zeros.
    assert merged.image[0, 0] == 10.0 and merged.variance[0, 0] == 4.0
    assert merged.image[4, 8] == 16.0 and merged.mask[4, 8] == EDGE
    assert merged.image[5, 0] == 0 and merged.variance[5, 0] == 0
    assert merged.mask[5, 0] == NO_DATA
    assert counts.tolist() == [24, 24]


def test_merge_skips_pixels_without_usable_data():
    first = _planes(np.full((3, 5), 1.0), np.full((3, 5), 1.0))
    second = _planes(np.full((3, 5), 2.0), np.full((3, 5), 1.0))
    first.image[0, 0] = np.nan
    first.variance[0, 1] = 0.0
    first.variance[0, 2] = np.inf
    first.mask[0, 3] = NO_DATA | BAD
    merged, counts = merge_patches(
        [PlacedPlanes(first, 0, 0), PlacedPlanes(second, 0, 0)],
        (3, 5),
        NO_DATA,
    )
    assert merged.image[0, :4].tolist() == [2.0] * 4
    assert merged.mask[0, 3] == 0  # the skipped pixel's bits are dropped
    assert merged.image[1, 1] == 1.5
    assert counts.tolist() == [11, 15]


def test_merge_warped_marks_pixels_no_input_covers():
    first = _planes(
        np.array([[1.0, np.nan, 5.0]]), np.array([[1.0, np.inf, 1.0]])
    )
    second = _planes(
        np.array([[3.0, np.nan, 7.0]]), np.array([[1.0, np.inf, 4.0]])
    )
    first.mask[0, 1] = NO_DATA
    second.mask[0, 1] = NO_DATA | BAD
    second.mask[0, 2] = NO_DATA  # ignored where the other has data
    merged = merge_warped([first, second], NO_DATA)
    assert merged.image[0, 0] == 2.0 and merged.variance[0, 0] == 1.0
    assert np.isnan(merged.image[0, 1]) and merged.variance[0, 1] == np.inf
    assert merged.mask[0, 1] == NO_DATA  # the inputs' other bits dropped
    assert merged.image[0, 2] == 5.0 and merged.mask[0, 2] == 0
    assert count_flagged(merged.mask, NO_DATA) == 1


def test_warp_is_bit_identical_for_any_thread_count():
    rng = np.random.default_rng(5)
    source = _planes(
        rng.normal(0, 1, (300, 300)), rng.uniform(1, 2, (300, 300))
    )
    transform = _affine(_rotation(33.0), (120.0, -30.0))
    digests = set()
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            out = _warp(source, (200, 210), transform)
            digest = hashlib.sha256()
            for plane in out:
                digest.update(plane.tobytes())
            digests.add(digest.hexdigest())
    finally:
        numba.set_num_threads(before)
    assert len(digests) == 1
