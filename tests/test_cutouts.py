"""Cutout files (detail levels, stamp series) and the tiny PNG renderer."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from recreate.cutout_png import grey_png, strip, zscale_limits
from recreate.cutouts import (
    Stamp,
    cutout_image,
    detail_level,
    reduce_detail,
    stamp_series_fits,
)
from recreate.errors import InvalidRequestError


def _region(seed: int = 1, shape=(20, 30)) -> bytes:
    """A small file in the product's layout (primary, planes, a table)."""
    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.0, -28.0]
    wcs.wcs.crpix = [10.0, 10.0]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    header = wcs.to_header()
    header["LTV1"], header["LTV2"] = -100, -200
    primary = fits.Header()
    primary["VISIT"] = 7
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=primary),
            fits.ImageHDU(
                rng.normal(size=shape).astype(np.float32), header, "IMAGE"
            ),
            fits.ImageHDU(np.zeros(shape, np.int32), header, "MASK"),
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
        np.testing.assert_array_equal(image[0].data, cutout_image(data))
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
            np.testing.assert_array_equal(image.data, cutout_image(stamp.data))
            assert hdulist["VARIANCE", index].data.shape == (20, 30)
        table = hdulist["EPOCHS"].data
        assert list(table["VISIT"]) == [100, 101, 102]
        assert list(table["MJD"]) == [60000.0, 60001.0, 60002.0]


def _decode_png(data: bytes) -> np.ndarray:
    """Read an 8-bit greyscale PNG with no filters (as ours are)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(
            ">I", data[offset + 8 + length : offset + 12 + length]
        )
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 0)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8)
    rows = raw.reshape(height, width + 1)
    assert not rows[:, 0].any()
    return rows[:, 1:]


def test_pngs_are_zscaled_and_flipped_to_fits_orientation():
    image = np.zeros((10, 12), np.float32)
    image[0, 0] = np.nan
    image[1:, :] = np.linspace(0, 1, 12)[None, :]
    image[9, 11] = 1e6  # an outlier does not set the scale
    z1, z2 = zscale_limits(image)
    # IRAF's contrast (0.25) widens the fitted range; the outlier is out.
    assert 0.0 <= z1 < 0.5 < z2 < 10.0
    picture = _decode_png(grey_png(image))
    assert picture.shape == (10, 12)
    # FITS row 0 is the PNG's bottom row; NaN is black.
    assert picture[-1, 0] == 0
    assert picture[0, 11] == 255
    assert picture[5, 11] > picture[5, 0]


def test_a_strip_puts_stamps_side_by_side():
    stamps = [np.random.default_rng(i).normal(size=(51, 51)) for i in range(3)]
    stamps.append(np.ones((51, 30)))  # clipped at a detector edge
    picture = _decode_png(strip(stamps, 51, gap=2))
    assert picture.shape == (51, 4 * 53 - 2)
    # The gaps are black.
    assert not picture[:, 51:53].any()
