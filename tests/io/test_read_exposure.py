"""Layout detection in read_exposure."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import recreate.io
from recreate.errors import FormatError
from recreate.io import read_exposure, write_dp1
from tests.support.exposures import make_exposure, tan_sip_wcs


def test_public_api():
    assert set(recreate.io.__all__) >= {
        "read_dp1",
        "read_exposure",
        "read_plain",
        "write_dp1",
    }


def test_dp1_layout_is_detected(tmp_path):
    exposure = make_exposure()
    path = tmp_path / "dp1.fits"
    write_dp1(exposure, path)
    back = read_exposure(path)
    assert back.plane_hash() == exposure.plane_hash()
    assert back.observation == exposure.observation


def test_partly_labelled_file_is_read_as_plain(tmp_path):
    # IMAGE and MASK labels but no VARIANCE: not the afw layout, so the
    # IMAGE HDU is read as a plain image (and needs a WCS).
    header = tan_sip_wcs(sip=False).to_header()
    hdulist = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(np.ones((30, 30), np.float32), header, "IMAGE"),
            fits.ImageHDU(np.zeros((30, 30), np.int32), name="MASK"),
        ]
    )
    hdulist[1].data += np.random.default_rng(1).normal(size=(30, 30))
    hdulist.writeto(tmp_path / "partial.fits")
    exposure = read_exposure(tmp_path / "partial.fits")
    assert exposure.metadata["VARIANCE_ESTIMATED"] is True


def test_plain_file_without_wcs_fails_clearly(tmp_path):
    fits.PrimaryHDU(np.ones((30, 30), np.float32)).writeto(tmp_path / "p.fits")
    with pytest.raises(FormatError, match="no celestial WCS"):
        read_exposure(tmp_path / "p.fits")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gone\.fits"):
        read_exposure(tmp_path / "gone.fits")
