"""Our DP1-layout output must read back with lsst.images' afw reader."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.exposure import Exposure
from recreate.io import write_dp1
from tests.support.exposures import difference_planes, make_exposure

images = pytest.importorskip("lsst.images")

#: Renamings the difference-image plane map applies (old name -> new).
RENAMED = {
    "SAT": "SATURATED",
    "INTRP": "INTERPOLATED",
    "CR": "COSMIC_RAY",
    "EDGE": "DETECTION_EDGE",
}


def _legacy_compatible_exposure() -> Exposure:
    """Return an exposure whose set bits are all in the difference map.

    read_legacy raises for set bits of planes its plane map does not
    name, and drops unnamed bits; keep to named, mapped planes here.
    """
    exposure = make_exposure()
    named = np.int32(
        sum(1 << bit for bit in difference_planes().bits.values())
    )
    exposure.mask &= named
    return exposure


def _read_legacy(path):
    return images.MaskedImage.read_legacy(
        path, plane_map=images.get_legacy_difference_image_mask_planes()
    )


@pytest.mark.parametrize("compress", [True, False])
def test_read_legacy_sees_our_pixels(tmp_path, compress):
    exposure = _legacy_compatible_exposure()
    path = tmp_path / "diff.fits"
    write_dp1(exposure, path, compress=compress)
    legacy = _read_legacy(path)
    assert legacy.image.array.tobytes() == exposure.image.tobytes()
    assert legacy.variance.array.tobytes() == exposure.variance.tobytes()
    assert (legacy.bbox.y.start, legacy.bbox.x.start) == (
        exposure.xy0[1],
        exposure.xy0[0],
    )
    assert str(legacy.image.unit) == "nJy"


def test_read_legacy_sees_our_mask_planes(tmp_path):
    exposure = _legacy_compatible_exposure()
    path = tmp_path / "diff.fits"
    write_dp1(exposure, path)
    legacy = _read_legacy(path)
    planes = exposure.mask_planes
    for old in ("BAD", "SAT", "CR", "DETECTED_NEGATIVE", "SAT_TEMPLATE"):
        ours = (exposure.mask & planes.value(old)) != 0
        theirs = legacy.mask.get(RENAMED.get(old, old))
        assert ours.any()
        np.testing.assert_array_equal(theirs, ours, err_msg=old)


def test_read_legacy_refuses_set_planes_it_cannot_map(tmp_path):
    # Documents the limitation: a plane outside the difference-image map
    # with pixels set makes read_legacy fail unless the caller extends
    # its plane_map.
    exposure = _legacy_compatible_exposure()
    exposure.mask_planes = exposure.mask_planes.with_planes("OUR_OWN_PLANE")
    exposure.mask[2, 2] |= exposure.mask_planes.value("OUR_OWN_PLANE")
    path = tmp_path / "diff.fits"
    write_dp1(exposure, path)
    with pytest.raises(RuntimeError, match="OUR_OWN_PLANE"):
        _read_legacy(path)
    plane_map = images.get_legacy_difference_image_mask_planes()
    plane_map["OUR_OWN_PLANE"] = images.MaskPlane("OUR_OWN_PLANE", "ours")
    legacy = images.MaskedImage.read_legacy(path, plane_map=plane_map)
    assert legacy.mask.get("OUR_OWN_PLANE")[2, 2]
