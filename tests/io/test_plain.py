"""Reading plain FITS images from other surveys."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from recreate.errors import FormatError, InvalidRequestError
from recreate.exposure import MaskPlanes
from recreate.io import read_exposure, read_plain
from tests.support.exposures import tan_sip_wcs

SHAPE = (60, 70)
SIGMA = 4.0


def _wcs_header(**cards) -> fits.Header:
    header = tan_sip_wcs(crpix=(35.0, 30.0), sip=False).to_header()
    for key, value in cards.items():
        header[key] = value
    return header


def _image(seed=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (100.0 + rng.normal(0.0, SIGMA, SHAPE)).astype(np.float32)


def _write(path, data, header=None):
    fits.PrimaryHDU(data=data, header=header).writeto(path)
    return path


def test_image_alone_gets_wcs_and_estimated_variance(tmp_path):
    path = _write(tmp_path / "img.fits", _image(), _wcs_header())
    exposure = read_plain(path)
    assert exposure.shape == SHAPE
    assert exposure.wcs is not None
    assert exposure.pixel_scale() == pytest.approx(0.2, rel=1e-3)
    want = WCS(_wcs_header()).pixel_to_world(69.0, 59.0)
    assert exposure.wcs.pixel_to_world(69.0, 59.0).separation(want) == 0
    np.testing.assert_array_equal(exposure.image, _image())
    assert np.all(exposure.mask == 0)
    assert np.median(exposure.variance) == pytest.approx(SIGMA**2, rel=0.1)
    assert exposure.metadata["VARIANCE_ESTIMATED"] is True
    assert "MAD" in exposure.metadata["VARIANCE_METHOD"]
    assert exposure.photo_calib.calibration == 1.0
    assert "NO_DATA" in exposure.mask_planes


def test_nan_fill_instead_of_estimate(tmp_path):
    path = _write(tmp_path / "img.fits", _image(), _wcs_header())
    exposure = read_plain(path, fill_variance="nan")
    assert np.all(np.isnan(exposure.variance))
    assert exposure.metadata["VARIANCE_ESTIMATED"] is False


def test_nan_pixels_become_no_data_zeros(tmp_path):
    image = _image()
    image[5, 6] = np.nan
    image[7, 8] = np.inf
    path = _write(tmp_path / "img.fits", image, _wcs_header())
    exposure = read_plain(path)
    no_data = exposure.mask_planes.value("NO_DATA")
    flagged = (exposure.mask & no_data) != 0
    assert np.argwhere(flagged).tolist() == [[5, 6], [7, 8]]
    assert exposure.image[5, 6] == 0.0
    assert exposure.image[7, 8] == 0.0
    assert np.isinf(exposure.variance[5, 6])
    assert np.all(np.isfinite(exposure.variance[~flagged]))


def test_separate_variance_file(tmp_path):
    variance = np.full(SHAPE, 9.0, np.float32)
    variance[1, 2] = 0.0
    variance[3, 4] = np.nan
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    var = _write(tmp_path / "var.fits", variance)
    exposure = read_plain(image, variance=var)
    flagged = (exposure.mask & exposure.mask_planes.value("NO_DATA")) != 0
    assert np.argwhere(flagged).tolist() == [[1, 2], [3, 4]]
    assert exposure.variance[0, 0] == 9.0
    assert np.isinf(exposure.variance[1, 2])
    # Unlike a NaN image pixel, a pixel with a bad variance keeps its value.
    assert exposure.image[1, 2] == _image()[1, 2]
    assert exposure.metadata["VARIANCE_ESTIMATED"] is False
    assert "var.fits" in exposure.metadata["VARIANCE_METHOD"]


def test_weight_file_is_inverted_and_zero_weight_is_no_data(tmp_path):
    weight = np.full(SHAPE, 0.25, np.float32)
    weight[10, 11] = 0.0
    weight[12, 13] = -1.0
    weight[14, 15] = 1e-45  # its inverse overflows float32
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    wht = _write(tmp_path / "wht.fits", weight)
    exposure = read_plain(str(image), weight=str(wht))
    assert exposure.variance[0, 0] == 4.0
    flagged = (exposure.mask & exposure.mask_planes.value("NO_DATA")) != 0
    assert np.argwhere(flagged).tolist() == [[10, 11], [12, 13], [14, 15]]
    assert np.all(np.isinf(exposure.variance[flagged]))


def test_planes_from_hdus_of_the_same_file(tmp_path):
    mask = np.zeros(SHAPE, np.int16)
    mask[20, 21] = 64
    hdulist = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(_image(), _wcs_header(), name="SCI"),
            fits.ImageHDU(np.full(SHAPE, 0.5, np.float32), name="WHT"),
            fits.ImageHDU(mask, name="DQ"),
        ]
    )
    path = tmp_path / "mef.fits"
    hdulist.writeto(path)
    exposure = read_plain(path, weight="wht", mask="DQ")
    assert exposure.variance[0, 0] == 2.0
    bad = exposure.mask_planes.value("BAD")
    assert np.argwhere(exposure.mask == bad).tolist() == [[20, 21]]
    by_index = read_plain(path, hdu=1, weight=2, mask=3)
    assert by_index.plane_hash() == exposure.plane_hash()
    # The image is the first 2-D HDU: the empty primary is skipped.
    np.testing.assert_array_equal(exposure.image, _image())


def test_mask_with_plane_cards_keeps_its_bits(tmp_path):
    mask = np.zeros(SHAPE, np.int32)
    mask[2, 3] = 1 << 5
    header = fits.Header()
    header["MP_BAD"] = 0
    header["MP_SAT"] = 5
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    msk = _write(tmp_path / "msk.fits", mask, header)
    exposure = read_plain(image, mask=msk)
    assert exposure.mask_planes.bit("SAT") == 5
    assert exposure.mask[2, 3] == 1 << 5
    assert "NO_DATA" in exposure.mask_planes


def test_mask_planes_argument_keeps_values(tmp_path):
    mask = np.zeros(SHAPE, np.uint8)
    mask[4, 4] = 3
    planes = MaskPlanes({"HOT": 0, "COLD": 1})
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    msk = _write(tmp_path / "msk.fits", mask)
    exposure = read_plain(image, mask=msk, mask_planes=planes)
    assert exposure.mask[4, 4] == exposure.mask_planes.value("HOT", "COLD")
    assert set(exposure.mask_planes.names) == {"HOT", "COLD", "NO_DATA"}


def test_non_njy_unit_and_zero_point(tmp_path):
    header = _wcs_header(BUNIT="ADU", MAGZERO=27.0)
    path = _write(tmp_path / "img.fits", _image(), header)
    exposure = read_plain(path)
    assert exposure.metadata["BUNIT"] == "ADU"
    # 1 ADU at zero point 27 is 10**((31.4 - 27) / 2.5) nJy.
    assert exposure.photo_calib.calibration == pytest.approx(57.5439937)
    assert exposure.photo_calib.zero_point == pytest.approx(27.0)
    np.testing.assert_array_equal(exposure.image, _image())


def test_njy_image_keeps_unit_calibration(tmp_path):
    header = _wcs_header(BUNIT="nJy", ZP=27.0)
    exposure = read_plain(_write(tmp_path / "img.fits", _image(), header))
    assert exposure.photo_calib.calibration == 1.0
    assert "BUNIT" not in exposure.metadata


def test_wcs_inherited_from_primary(tmp_path):
    header = fits.Header()
    header["INHERIT"] = True
    hdulist = fits.HDUList(
        [
            fits.PrimaryHDU(header=_wcs_header()),
            fits.ImageHDU(_image(), header),
        ]
    )
    hdulist.writeto(tmp_path / "inherit.fits")
    exposure = read_plain(tmp_path / "inherit.fits")
    assert exposure.wcs is not None


def test_read_exposure_reads_plain_files(tmp_path):
    path = _write(tmp_path / "img.fits", _image(), _wcs_header())
    exposure = read_exposure(path)
    assert exposure.metadata["VARIANCE_ESTIMATED"] is True
    assert exposure.wcs is not None


def test_no_wcs_is_refused(tmp_path):
    path = _write(tmp_path / "nowcs.fits", _image())
    with pytest.raises(FormatError, match=r"nowcs\.fits: HDU 0 has no"):
        read_plain(path)


def test_nonexistent_plain_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.fits"):
        read_plain(tmp_path / "absent.fits")


def test_missing_weight_names_both_readings(tmp_path):
    path = _write(tmp_path / "img.fits", _image(), _wcs_header())
    with pytest.raises(FileNotFoundError, match=r"'WEIGHTS'.*no HDU of"):
        read_plain(path, weight="WEIGHTS")


def test_shape_mismatch_is_named(tmp_path):
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    var = _write(tmp_path / "var.fits", np.ones((5, 5), np.float32))
    with pytest.raises(FormatError, match=r"var\.fits: variance shape"):
        read_plain(image, variance=var)


def test_non_integer_mask_is_refused(tmp_path):
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    msk = _write(tmp_path / "msk.fits", np.full(SHAPE, 0.5, np.float32))
    with pytest.raises(FormatError, match=r"mask .*non-integer values"):
        read_plain(image, mask=msk)


def test_variance_and_weight_together_are_refused(tmp_path):
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    with pytest.raises(InvalidRequestError, match="not both"):
        read_plain(image, variance=0, weight=0)


def test_unknown_hdu_name(tmp_path):
    image = _write(tmp_path / "img.fits", _image(), _wcs_header())
    with pytest.raises(FormatError, match="no HDU named 'SCI'"):
        read_plain(image, hdu="SCI")


def test_bad_gain_is_refused_before_reading(tmp_path):
    with pytest.raises(InvalidRequestError, match="gain 0"):
        read_plain(tmp_path / "never-opened.fits", gain=0.0)


def test_gain_adds_the_poisson_term(tmp_path):
    image = _image()
    image[30, 30] += 5000.0
    path = _write(tmp_path / "img.fits", image, _wcs_header())
    exposure = read_plain(path, gain=4.0)
    sky = np.median(exposure.variance)
    assert exposure.variance[30, 30] == pytest.approx(sky + 1250.0, rel=0.01)
    assert "gain 4" in exposure.metadata["VARIANCE_METHOD"]
