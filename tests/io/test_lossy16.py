"""DP2's lossy16 quantisation: the step, the seed, and what astropy reads.

Verified here: the ZSCALE formula (afw's STDEV_MASKED), the seed formula
against the Butler's own data-ID order, the FITS cards, and that every
pixel reads back within half a ZSCALE (zeros and NaN exactly). Not
verifiable here: bit-equality with a released DP2 file (none is public
yet), and that astropy's dither and quantisation code gives CFITSIO's
bits (astropy ports CFITSIO's algorithm; no CFITSIO writer is at hand).
"""

from __future__ import annotations

import hashlib
import json

import lsst.images as li
import numpy as np
import pytest
from astropy.io import fits
from lsst.daf.butler import DataCoordinate, DimensionUniverse

from recreate.errors import FormatError
from recreate.io.lsst_images import write_lsst_images
from recreate.io.lsst_images.lossy16 import (
    dither_seed,
    lossy16_settings,
    stdev_masked_zscale,
)
from tests.io.test_lsst_images import (
    make_exposure,
    make_kernel,
    make_templates,
)


def test_zscale_is_afws_stdev_masked_step():
    # n = 100: the order statistics 25 and 75 (no interpolation), so
    # 0.741 * 50 / 16, rounded to float32.
    values = np.arange(100, dtype=np.float32)[::-1].copy()
    zscale = stdev_masked_zscale(values, np.zeros(100, dtype=bool))
    assert zscale == float(np.float32(0.741 * 50 / 16))
    # Excluded and non-finite pixels are left out: 0..49 remain, n = 50:
    # statistics 12 and 37.
    excluded = values >= 50
    values[0] = np.nan
    zscale = stdev_masked_zscale(values, excluded)
    assert zscale == float(np.float32(0.741 * 25 / 16))
    assert stdev_masked_zscale(np.ones(10), np.zeros(10, dtype=bool)) == 0


def test_seed_is_the_formatters_md5_of_the_butler_data_id():
    instrument, detector, visit = "LSSTComCam", 4, 2024110900002
    coordinate = DataCoordinate.standardize(
        instrument=instrument,
        visit=visit,
        detector=detector,
        universe=DimensionUniverse(),
    )
    text = json.dumps(list(coordinate.required_values))
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    expected = 1 + int.from_bytes(digest) % 9999
    assert dither_seed(instrument, detector, visit) == expected
    assert 1 <= expected <= 9999


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    exposure = make_exposure()
    no_data = exposure.mask_planes.value("NO_DATA")
    exposure.image[exposure.mask & no_data != 0] = 0.0
    exposure.image[0, 0] = np.nan
    path = tmp_path_factory.mktemp("lossy16") / "difference_image.fits"
    write_lsst_images(
        exposure, make_kernel(), make_templates(), path, lossy16=True
    )
    return exposure, path


def test_lossy16_cards_and_tiles(lossy):
    exposure, path = lossy
    settings = lossy16_settings(exposure)
    width = exposure.shape[1]
    with fits.open(path, disable_image_compression=True) as hdulist:
        for name, zscale in (
            ("IMAGE", settings.image_zscale),
            ("VARIANCE", settings.variance_zscale),
        ):
            hdu = hdulist[name]
            assert hdu.header["ZCMPTYPE"] == "RICE_1"
            assert hdu.header["ZQUANTIZ"] == "SUBTRACTIVE_DITHER_2"
            assert hdu.header["ZDITHER0"] == settings.seed
            assert (hdu.header["ZTILE1"], hdu.header["ZTILE2"]) == (width, 1)
            np.testing.assert_array_equal(
                hdu.data["ZSCALE"], np.float32(zscale)
            )
        assert hdulist["MASK"].header["ZCMPTYPE"] == "GZIP_2"


def test_lossy16_reads_back_within_half_a_step(lossy):
    exposure, path = lossy
    settings = lossy16_settings(exposure)
    back = li.DifferenceImage.read(str(path))
    for plane, got, zscale in (
        (exposure.image, back.image.array, settings.image_zscale),
        (exposure.variance, back.variance.array, settings.variance_zscale),
    ):
        finite = np.isfinite(plane)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        error = np.abs(got[finite] - plane[finite])
        assert error.max() <= 0.5 * zscale * (1 + 1e-6)
        assert error.max() > 0.0  # it is lossy
    # SUBTRACTIVE_DITHER_2 keeps zeros exactly (DP2's NO_DATA pixels).
    zeros = exposure.image == 0.0
    assert np.any(zeros)
    assert np.all(back.image.array[zeros] == 0.0)
    np.testing.assert_array_equal(back.mask.array.shape[:2], exposure.shape)


def test_lossy16_needs_a_data_id():
    exposure = make_exposure()
    exposure.observation = None
    with pytest.raises(FormatError, match="data ID"):
        lossy16_settings(exposure)
