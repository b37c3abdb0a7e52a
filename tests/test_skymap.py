import numpy as np
import pytest

from recreate.errors import DataNotFoundError
from recreate.skymap import PatchGeometry, SkyMap, Tract

GEOM = PatchGeometry()


def test_patch_bbox_matches_lsst_cells_v1():
    # Rubin's tract 5063 patch 14 has its outer corner at (11800, 2800)
    # and is 3400 px on a side: patch x=4, y=1.
    tract = Tract(5063, 53.0, -28.0, GEOM)
    assert tract.patch_outer_bbox(14) == (11800, 2800, 3400, 3400)
    assert tract.patch_inner_bbox(14) == (12000, 3000, 3000, 3000)
    assert tract.patch_xy(14) == (4, 1)


def test_patch_wcs_is_the_tract_wcs_shifted_by_xy0():
    tract = Tract(0, 150.0, 2.0, GEOM)
    x0, y0, _, _ = tract.patch_outer_bbox(57)
    patch = tract.patch_wcs(57)
    sky_patch = patch.pixel_to_world_values(10.0, 20.0)
    sky_tract = tract.wcs().pixel_to_world_values(10.0 + x0, 20.0 + y0)
    np.testing.assert_allclose(sky_patch, sky_tract, rtol=0, atol=1e-12)


def test_tract_centre_is_the_tangent_point():
    tract = Tract(0, 10.0, -30.0, GEOM)
    centre = (GEOM.tract_inner - 1) / 2
    ra, dec = tract.wcs().pixel_to_world_values(centre, centre)
    assert ra == pytest.approx(10.0, abs=1e-12)
    assert dec == pytest.approx(-30.0, abs=1e-12)


def test_patches_overlapping_a_point_near_a_corner():
    tract = Tract(0, 10.0, -30.0, GEOM)
    # A point 100 px inside patch (3, 3)'s inner corner is also in the
    # border of patches (2, 2), (3, 2) and (2, 3).
    ra, dec = tract.wcs().pixel_to_world_values(9100.0, 9100.0)
    assert tract.patches_overlapping([ra], [dec]) == [22, 23, 32, 33]


def test_bad_patch_and_tract_are_named():
    tract = Tract(3, 10.0, -30.0, GEOM)
    with pytest.raises(DataNotFoundError, match="patch 100 is not in tract 3"):
        tract.patch_xy(100)
    skymap = SkyMap("sm", [tract], GEOM)
    with pytest.raises(DataNotFoundError, match="tract 9 is not in"):
        skymap.tract(9)


def test_skymap_round_trips_through_its_dict():
    skymap = SkyMap("sm", [Tract(1, 5.0, 6.0, GEOM)], GEOM)
    again = SkyMap.from_dict(skymap.to_dict())
    assert again == skymap
