"""Tests of the detector defects: cosmic rays and bad columns."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.exposure import MaskPlanes
from recreate.simulate.defects import add_bad_columns, add_cosmic_rays
from recreate.simulate.render import NoiseModel, PsfModel, render_image
from tests.simulate.test_render import empty_sources, stars_at, tan_wcs

PLANES = MaskPlanes.afw_default()
CR, INTRP, BAD, SAT = (PLANES.value(n) for n in ("CR", "INTRP", "BAD", "SAT"))
SHAPE = (256, 256)
NOISE = NoiseModel(sky_electrons=877.0, njy_per_electron=0.548)


def blank_planes(seed=5):
    """Return (image, variance, mask) of a rendered blank sky."""
    result = render_image(
        SHAPE, tan_wcs(SHAPE), empty_sources(), PsfModel(1.1), NOISE, seed=seed
    )
    return result.image, result.variance, result.mask


def copies(planes):
    return tuple(plane.copy() for plane in planes)


# --- cosmic rays ----------------------------------------------------------


def test_cosmic_rays_are_reproducible_from_the_generator_seed():
    first, second = copies(blank_planes()), copies(blank_planes())
    truth_a = add_cosmic_rays(*first, np.random.default_rng(9), 300.0)
    truth_b = add_cosmic_rays(*second, np.random.default_rng(9), 300.0)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(truth_a.hit_x, truth_b.hit_x)
    np.testing.assert_array_equal(truth_a.deposit, truth_b.deposit)
    other = copies(blank_planes())
    add_cosmic_rays(*other, np.random.default_rng(10), 300.0)
    assert not np.array_equal(other[2], first[2])


def test_detected_cosmic_rays_are_masked_and_interpolated():
    original = blank_planes()
    image, variance, mask = copies(original)
    truth = add_cosmic_rays(
        image, variance, mask, np.random.default_rng(1), 300.0
    )
    assert truth.n_rays > 5
    repaired = np.zeros(SHAPE, dtype=bool)
    repaired[truth.repaired_y, truth.repaired_x] = True
    # Exactly the repaired pixels carry CR and INTRP.
    np.testing.assert_array_equal((mask & CR) != 0, repaired)
    np.testing.assert_array_equal((mask & INTRP) != 0, repaired)
    # Every strong hit was detected and repaired.
    sigma = np.sqrt(original[1][truth.hit_y, truth.hit_x])
    strong = truth.deposit > 5 * sigma
    assert strong.sum() > 20
    assert repaired[truth.hit_y[strong], truth.hit_x[strong]].all()
    # Repaired pixels look like the sky around them, not like the rays.
    pulls = image[repaired] / np.sqrt(variance[repaired])
    assert np.max(np.abs(pulls)) < 5.0
    assert np.max(truth.deposit) > 20 * sigma.max()


def test_undetected_cosmic_ray_charge_stays_in_the_image():
    original = blank_planes()
    image, variance, mask = copies(original)
    truth = add_cosmic_rays(
        image, variance, mask, np.random.default_rng(2), 300.0
    )
    repaired = np.zeros(SHAPE, dtype=bool)
    repaired[truth.repaired_y, truth.repaired_x] = True
    left = ~repaired[truth.hit_y, truth.hit_x]
    assert left.any()
    assert not left.all()
    # The truth says which hits kept their charge.
    np.testing.assert_array_equal(truth.left_in_image, left)
    ys, xs = truth.hit_y[left], truth.hit_x[left]
    np.testing.assert_allclose(
        image[ys, xs] - original[0][ys, xs],
        truth.deposit[left],
        rtol=1e-4,
        atol=1e-3,
    )
    # Untouched pixels are untouched.
    touched = repaired.copy()
    touched[truth.hit_y, truth.hit_x] = True
    np.testing.assert_array_equal(image[~touched], original[0][~touched])


def test_repaired_variance_stays_at_the_local_level():
    image, variance, mask = blank_planes()
    before = variance.copy()
    truth = add_cosmic_rays(
        image, variance, mask, np.random.default_rng(3), 300.0
    )
    repaired = variance[truth.repaired_y, truth.repaired_x]
    np.testing.assert_allclose(repaired, before[0, 0], rtol=1e-5)


def test_cosmic_rays_leave_saturated_pixels_alone():
    result = render_image(
        SHAPE,
        tan_wcs(SHAPE),
        stars_at(tan_wcs(SHAPE), [128.0], [128.0], 3.0e8),
        PsfModel(1.1),
        NOISE,
        seed=4,
    )
    image, variance, mask = result.image, result.variance, result.mask
    saturated = (mask & SAT) != 0
    before = image[saturated].copy()
    add_cosmic_rays(image, variance, mask, np.random.default_rng(4), 3000.0)
    np.testing.assert_array_equal(image[saturated], before)
    assert not np.any(mask[saturated] & CR)


def test_a_zero_rate_changes_nothing():
    original = blank_planes()
    image, variance, mask = copies(original)
    truth = add_cosmic_rays(
        image, variance, mask, np.random.default_rng(0), 0.0
    )
    assert truth.n_rays == 0
    assert len(truth.repaired_x) == 0
    for got, want in zip((image, variance, mask), original, strict=True):
        np.testing.assert_array_equal(got, want)


def test_cosmic_ray_count_follows_the_rate():
    counts = [
        add_cosmic_rays(
            *blank_planes(), np.random.default_rng(seed), 500.0
        ).n_rays
        for seed in range(5)
    ]
    expected = 500.0 * SHAPE[0] * SHAPE[1] / 1e6  # about 33
    assert np.mean(counts) == pytest.approx(expected, rel=0.25)


# --- bad columns ----------------------------------------------------------


def test_bad_columns_are_masked_and_interpolated_along_rows():
    original = blank_planes()
    image, variance, mask = copies(original)
    truth = add_bad_columns(
        image,
        variance,
        mask,
        np.random.default_rng(6),
        6,
        partial_fraction=0.5,
    )
    assert len(truth.columns) == 6
    expected = np.zeros(SHAPE, dtype=bool)
    for x, start, stop in zip(
        truth.columns, truth.y_start, truth.y_stop, strict=True
    ):
        assert stop - start >= 1
        expected[start:stop, x] = True
    np.testing.assert_array_equal((mask & BAD) != 0, expected)
    np.testing.assert_array_equal((mask & INTRP) != 0, expected)
    np.testing.assert_array_equal(image[~expected], original[0][~expected])
    # Between two good neighbours a bad pixel is their mean.
    checked = 0
    for x in truth.columns[(truth.columns > 0) & (truth.columns < 255)]:
        rows = expected[:, x] & ~expected[:, x - 1] & ~expected[:, x + 1]
        for plane, got in ((original[0], image), (original[1], variance)):
            mean = (plane[rows, x - 1] + plane[rows, x + 1]) / 2
            np.testing.assert_allclose(
                got[rows, x], mean, rtol=1e-5, atol=1e-3
            )
        checked += rows.sum()
    assert checked > 100


def test_bad_columns_are_reproducible_and_partial_ones_reach_an_edge():
    first, second = copies(blank_planes()), copies(blank_planes())
    a = add_bad_columns(*first, np.random.default_rng(8), 20)
    b = add_bad_columns(*second, np.random.default_rng(8), 20)
    np.testing.assert_array_equal(a.columns, b.columns)
    np.testing.assert_array_equal(first[0], second[0])
    partial = (a.y_stop - a.y_start) < SHAPE[0]
    assert partial.any()
    assert np.all((a.y_start[partial] == 0) | (a.y_stop[partial] == SHAPE[0]))


def test_defect_parameters_are_checked():
    image, variance, mask = blank_planes()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_columns 300"):
        add_bad_columns(image, variance, mask, rng, 300)
    with pytest.raises(ValueError, match="rate -1"):
        add_cosmic_rays(image, variance, mask, rng, -1.0)
    with pytest.raises(ValueError, match="one shape"):
        add_cosmic_rays(image, variance[:10], mask, rng)
