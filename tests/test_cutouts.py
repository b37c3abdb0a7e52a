"""Cutout files: detail levels, stamp series as FITS and as a PNG strip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from recreate.cutouts import (
    Stamp,
    detail_level,
    reduce_detail,
    stamp_series_fits,
    stamp_series_png,
)
from recreate.errors import InvalidRequestError
from recreate.exposure import MaskPlanes
from recreate.preview import fits_to_png
from recreate.preview.render import BACKGROUND, GAP, POSITIVE_OUTLINE
from tests.support.png import read_png

PLANES = MaskPlanes.afw_default()


def _region(seed: int = 1, shape=(20, 30), detected=None) -> bytes:
    """A small file in the product's layout (primary, planes, a table).

    ``detected``: a (rows, columns) slice pair set DETECTED in the mask.
    """
    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.0, -28.0]
    wcs.wcs.crpix = [10.0, 10.0]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    header = wcs.to_header()
    header["LTV1"], header["LTV2"] = -100, -200
    mask = np.zeros(shape, np.int32)
    if detected is not None:
        mask[detected] = PLANES.value("DETECTED")
    mask_header = header.copy()
    mask_header.update(PLANES.header_cards())
    primary = fits.Header()
    primary["VISIT"] = 7
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=primary),
            fits.ImageHDU(
                rng.normal(size=shape).astype(np.float32), header, "IMAGE"
            ),
            fits.ImageHDU(mask, mask_header, "MASK"),
            fits.ImageHDU(np.ones(shape, np.float32), header, "VARIANCE"),
            fits.BinTableHDU.from_columns(
                [fits.Column("JSON", "10A", array=["{}"])],
                name="DIFFIM_KERNEL",
            ),
        ]
    )
    buffer = io.BytesIO()
    hdus.writeto(buffer)
    return buffer.getvalue()


def _image_plane(data: bytes) -> np.ndarray:
    with fits.open(io.BytesIO(data)) as hdulist:
        return np.array(hdulist["IMAGE"].data)


def test_detail_levels_keep_what_they_say():
    data = _region()
    assert reduce_detail(data, "Exposure") == data
    with fits.open(io.BytesIO(reduce_detail(data, "maskedimage"))) as masked:
        assert [h.name for h in masked] == [
            "PRIMARY",
            "IMAGE",
            "MASK",
            "VARIANCE",
        ]
        assert masked[0].header["VISIT"] == 7
    with fits.open(io.BytesIO(reduce_detail(data, "IMAGE"))) as image:
        assert len(image) == 1
        header = image[0].header
        assert header["LTV1"] == -100
        assert header["CTYPE1"] == "RA---TAN"
        assert header["VISIT"] == 7
        np.testing.assert_array_equal(image[0].data, _image_plane(data))
    with pytest.raises(
        InvalidRequestError, match="unknown cutout detail 'Raw'"
    ):
        detail_level("Raw")


def test_a_stamp_series_is_one_extension_set_per_epoch():
    stamps = [
        Stamp(100 + i, i, "r", 60000.0 + i, _region(seed=i)) for i in range(3)
    ]
    data = stamp_series_fits(stamps, 53.0, -28.0, 51)
    with fits.open(io.BytesIO(data)) as hdulist:
        assert hdulist[0].header["NEPOCHS"] == 3
        for index, stamp in enumerate(stamps, start=1):
            image = hdulist["IMAGE", index]
            assert image.header["VISIT"] == stamp.visit
            assert image.header["MJD-AVG"] == stamp.mjd
            assert image.header["LTV1"] == -100
            np.testing.assert_array_equal(image.data, _image_plane(stamp.data))
            assert hdulist["VARIANCE", index].data.shape == (20, 30)
        table = hdulist["EPOCHS"].data
        assert list(table["VISIT"]) == [100, 101, 102]
        assert list(table["MJD"]) == [60000.0, 60001.0, 60002.0]


def test_a_stamp_strip_is_each_stamps_preview_side_by_side():
    stamps = [
        Stamp(
            100, 0, "r", 60000.0, _region(1, (51, 51), (slice(20, 30),) * 2)
        ),
        Stamp(101, 0, "r", 60001.0, _region(2, (51, 51))),
        # Clipped at a detector's edge: centred in its tile.
        Stamp(102, 0, "r", 60002.0, _region(3, (51, 30))),
    ]
    strip = read_png(stamp_series_png(stamps, 51))
    assert strip.shape == (51, 3 * 51 + 2 * GAP, 3)
    step = 51 + GAP
    for index, stamp in enumerate(stamps):
        alone = read_png(fits_to_png(stamp.data))
        height, width, _ = alone.shape
        left = index * step + (51 - width) // 2
        assert np.array_equal(strip[:height, left : left + width], alone)
    # The first stamp's detection is outlined; the gaps and the clipped
    # stamp's margins are the background.
    assert np.all(strip[:, :51] == POSITIVE_OUTLINE, axis=2).sum() == 36
    assert np.all(strip[:, 51:step] == BACKGROUND)
    assert np.all(strip[:, 2 * step : 2 * step + 10] == BACKGROUND)


def test_no_stamp_is_an_empty_strip():
    assert read_png(stamp_series_png([], 21)).shape == (21, 1, 3)
