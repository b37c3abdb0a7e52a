"""Reading real files written by Rubin's afw (kept outside the project)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from recreate.io import read_dp1, read_exposure, write_dp1
from tests.support.exposures import REALDATA

HSC = REALDATA / "lsst_afw" / "HSC-0908120-056-small.fits"
SCIENCE = REALDATA / "lsst_ip_diffim" / "scienceMI.fits"
TEMPLATE = REALDATA / "lsst_ip_diffim" / "templateMI.fits"

HSC_PLANES = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "CROSSTALK": 8,
    "NO_DATA": 9,
    "UNMASKEDNAN": 10,
}
DIFFIM_PLANES = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
}


def _require(path):
    if not path.is_file():
        pytest.skip(f"real afw data not present at {path}")
    return path


def _raw_planes(path):
    with fits.open(path) as hdulist:
        return [np.array(hdulist[i].data) for i in (1, 2, 3)]


def test_hsc_cutout_planes_and_geometry():
    exposure = read_dp1(_require(HSC))
    image, mask, variance = _raw_planes(HSC)
    assert exposure.shape == (200, 200)
    assert exposure.image.dtype == np.float32
    assert exposure.mask.dtype == np.int32
    assert exposure.xy0 == (100, 100)
    assert mask.dtype == np.uint16  # stored int16 + BZERO, as afw does
    np.testing.assert_array_equal(exposure.mask, mask.astype(np.int32))
    np.testing.assert_array_equal(exposure.image, image)
    np.testing.assert_array_equal(exposure.variance, variance)
    assert np.count_nonzero(exposure.mask) > 0
    assert dict(exposure.mask_planes.bits) == HSC_PLANES


def test_hsc_cutout_wcs_matches_astropy_on_the_raw_header():
    exposure = read_dp1(_require(HSC))
    assert exposure.wcs is not None
    assert exposure.wcs.sip is not None
    # What astropy itself makes of afw's header (FK5 fix-ups included).
    direct = WCS(fits.getheader(HSC, 1))
    xs = np.array([0.0, 199.0, 0.0, 199.0, 100.0])
    ys = np.array([0.0, 0.0, 199.0, 199.0, 57.0])
    got = exposure.wcs.pixel_to_world(xs, ys)
    want = direct.pixel_to_world(xs, ys)
    assert np.max(got.separation(want).to_value("arcsec")) < 1e-9
    # Near the reference point (CRVAL = 151.319, 1.615), at HSC's scale.
    assert got[0].ra.deg == pytest.approx(151.32, abs=0.2)
    assert got[0].dec.deg == pytest.approx(1.62, abs=0.2)
    assert exposure.pixel_scale() == pytest.approx(0.168, abs=0.003)


def test_hsc_cutout_has_no_observation_or_calibration():
    exposure = read_dp1(_require(HSC))
    # FILTER='_unknown_', FLUXMAG0=0: afw's "not known" values.
    assert exposure.observation is None
    assert exposure.photo_calib.calibration == 1.0
    assert exposure.psf is None
    assert exposure.metadata == {}


@pytest.mark.parametrize(
    ("path", "xy0"),
    [(SCIENCE, (9, 9)), (TEMPLATE, (24, 24))],
    ids=["science", "template"],
)
def test_ip_diffim_masked_images(path, xy0):
    exposure = read_dp1(_require(path))
    image, mask, variance = _raw_planes(path)
    assert exposure.shape == (193, 193)
    assert exposure.xy0 == xy0
    assert exposure.wcs is None
    assert dict(exposure.mask_planes.bits) == DIFFIM_PLANES
    np.testing.assert_array_equal(exposure.mask, mask.astype(np.int32))
    np.testing.assert_array_equal(exposure.image, image)
    np.testing.assert_array_equal(exposure.variance, variance)


def test_template_xy0_comes_from_the_image_plane():
    # templateMI.fits records xy0 = (24, 24) on IMAGE and VARIANCE but
    # (9, 9) on MASK; afw's MaskedImage takes the image's, and so do we.
    _require(TEMPLATE)
    headers = [fits.getheader(TEMPLATE, i) for i in (1, 2, 3)]
    assert [h["CRVAL1A"] for h in headers] == [24, 9, 24]
    assert read_dp1(TEMPLATE).xy0 == (24, 24)


def test_read_exposure_detects_afw_layout_of_real_files():
    exposure = read_exposure(_require(SCIENCE))
    assert exposure.xy0 == (9, 9)
    assert exposure.mask_planes.bit("DETECTED_NEGATIVE") == 6


def test_real_file_survives_our_round_trip(tmp_path):
    exposure = read_dp1(_require(HSC))
    path = tmp_path / "hsc.fits"
    write_dp1(exposure, path)
    back = read_dp1(path)
    assert back.plane_hash() == exposure.plane_hash()
    assert back.mask_planes == exposure.mask_planes
    assert back.xy0 == (100, 100)
    assert back.wcs is not None
    assert exposure.wcs is not None
    got = back.wcs.pixel_to_world(199.0, 199.0)
    want = exposure.wcs.pixel_to_world(199.0, 199.0)
    assert got.separation(want).to_value("mas") < 1.0
