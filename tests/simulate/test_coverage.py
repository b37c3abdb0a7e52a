import numpy as np
import pytest

from recreate.simulate.coverage import (
    coverage_fraction,
    coverage_mask,
    detector_corners_sky,
)
from recreate.simulate.instrument import Camera

CAMERA = Camera(width=200, height=100, gap=4)


def _wcs(ra=10.0, dec=-20.0, rotation=0.0, detector=4):
    return CAMERA.detector_wcs(detector, ra, dec, rotation)


def test_an_image_covers_itself():
    wcs = _wcs()
    shape = (CAMERA.height, CAMERA.width)
    corners = detector_corners_sky(wcs, shape)
    assert coverage_mask(shape, wcs, [corners]).all()
    assert coverage_fraction(wcs, shape, [corners]) == 1.0


def test_half_shifted_footprint_covers_half():
    shape = (CAMERA.height, CAMERA.width)
    wcs = _wcs()
    # The same detector pointed 100 px (half its width) further along x.
    shift = 100 * 0.2 / 3600 / np.cos(np.radians(-20.0))
    other = detector_corners_sky(_wcs(ra=10.0 - shift), shape)
    mask = coverage_mask(shape, wcs, [other])
    assert mask.mean() == pytest.approx(0.5, abs=0.02)
    # The covered half is the high-x half (RA decreases with x).
    assert mask[:, -1].all()
    assert not mask[:, 0].any()
    assert coverage_fraction(wcs, shape, [other]) == pytest.approx(
        0.5, abs=0.01
    )


def test_footprint_far_away_covers_nothing():
    shape = (CAMERA.height, CAMERA.width)
    far = detector_corners_sky(_wcs(ra=30.0), shape)
    assert not coverage_mask(shape, _wcs(), [far]).any()
    assert coverage_fraction(_wcs(), shape, [far]) == 0.0


def test_rotated_footprint_is_a_convex_patch():
    shape = (CAMERA.height, CAMERA.width)
    rotated = detector_corners_sky(_wcs(rotation=30.0), shape)
    mask = coverage_mask(shape, _wcs(), [rotated])
    # A rectangle rotated by 30 deg about the same centre: the centre is
    # covered, the corners are not.
    assert mask[50, 100]
    assert not mask[0, 0] and not mask[-1, -1]
    # Each row's covered pixels are contiguous (a convex shape).
    for row in mask:
        idx = np.flatnonzero(row)
        if idx.size:
            assert idx[-1] - idx[0] + 1 == idx.size
