"""Sky shapes: checks that name the bad value, extents, outlines, regions."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.errors import InvalidRequestError
from recreate.skyshapes import (
    SkyCircle,
    SkyPolygon,
    SkyRange,
    check_shape,
    shape_extent,
    shape_outline,
    shape_region,
)

SQUARE = ((53.0, -28.0), (53.1, -28.0), (53.1, -27.9), (53.0, -27.9))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (SkyCircle(361.0, 0.0, 1.0), "ra must be in"),
        (SkyCircle(10.0, -91.0, 1.0), "dec must be in"),
        (SkyCircle(10.0, 0.0, 0.0), "radius must be in"),
        (SkyCircle(10.0, 0.0, float("nan")), "radius must be in"),
        (SkyRange(10.0, 9.0, 0.0, 1.0), "ra_min 10.0 exceeds ra_max 9.0"),
        (SkyRange(9.0, 10.0, 2.0, 1.0), "dec_min 2.0 exceeds"),
        (SkyPolygon(SQUARE[:2]), "at least 3 vertices, got 2"),
        (
            SkyPolygon((*SQUARE[:2], SQUARE[1])),
            "vertices 2 and 3 are the same",
        ),
        (
            SkyPolygon((SQUARE[0], SQUARE[2], SQUARE[1], SQUARE[3])),
            "crosses itself",
        ),
        (
            SkyPolygon(((10.0, 0.0), (10.05, 0.0), (10.1, 0.0))),
            "has no area",
        ),
        (
            SkyPolygon(((0.0, 0.0), (120.0, 0.0), (240.0, 0.0))),
            "hemisphere",
        ),
    ],
)
def test_malformed_shapes_are_refused_by_name(shape, message):
    with pytest.raises(InvalidRequestError, match=message):
        check_shape(shape)


def test_well_formed_shapes_pass_either_way_round():
    assert check_shape(SkyPolygon(SQUARE)) == SkyPolygon(SQUARE)
    assert check_shape(SkyPolygon(SQUARE[::-1])) == SkyPolygon(SQUARE[::-1])
    # A polygon across ra = 0 is one small square, not a band of sky.
    wrapped = ((359.95, 1.0), (0.05, 1.0), (0.05, 1.1), (359.95, 1.1))
    check_shape(SkyPolygon(wrapped))
    assert shape_extent(SkyPolygon(wrapped)) < 0.2


def test_extents_enclose_the_shapes():
    assert shape_extent(SkyCircle(10.0, 20.0, 0.25)) == 0.5
    diagonal = shape_extent(SkyRange(53.0, 53.1, -28.0, -27.9))
    # The range's diagonal: 0.1 deg of dec, 0.1 * cos(28) of ra.
    expected = np.hypot(0.1, 0.1 * np.cos(np.radians(27.95)))
    assert diagonal == pytest.approx(expected, rel=1e-3)
    assert shape_extent(SkyRange(0.0, float("inf"), 0.0, 1.0)) == 360.0


def test_outlines_lie_on_the_shapes():
    ra, dec = shape_outline(SkyCircle(53.0, -28.0, 0.01))
    centre = np.radians([53.0, -28.0])
    cos_sep = np.sin(centre[1]) * np.sin(np.radians(dec)) + np.cos(
        centre[1]
    ) * np.cos(np.radians(dec)) * np.cos(np.radians(ra) - centre[0])
    separation = np.degrees(np.arccos(np.clip(cos_sep, -1, 1)))
    # Every rim point is at the radius; the last point is the centre.
    np.testing.assert_allclose(separation[:-1], 0.01, rtol=1e-6)
    assert separation[-1] == pytest.approx(0.0, abs=1e-6)
    ra, dec = shape_outline(SkyRange(53.0, 53.1, -28.0, -27.9))
    assert (ra.min(), ra.max()) == pytest.approx((53.0, 53.1))
    assert (dec.min(), dec.max()) == pytest.approx((-28.0, -27.9))
    ra, dec = shape_outline(SkyPolygon(SQUARE))
    # Great arcs between vertices bow towards the pole (south here).
    assert dec.min() < -28.0
    assert dec.min() > -28.0001
    with pytest.raises(InvalidRequestError, match="open range"):
        shape_outline(SkyRange(0.0, float("inf"), 0.0, 1.0))


def test_regions_match_the_shapes():
    from lsst.sphgeom import LonLat, UnitVector3d

    def point(ra, dec):
        return UnitVector3d(LonLat.fromDegrees(ra, dec))

    circle = shape_region(SkyCircle(53.0, -28.0, 0.1))
    assert circle.contains(point(53.05, -28.0))
    assert not circle.contains(point(53.2, -28.0))
    box = shape_region(SkyRange(53.0, 53.1, -28.0, -27.9))
    assert box.contains(point(53.05, -27.95))
    assert not box.contains(point(53.15, -27.95))
    polygon = shape_region(SkyPolygon(SQUARE))
    assert polygon.contains(point(53.05, -27.95))
    assert not polygon.contains(point(52.95, -27.95))
