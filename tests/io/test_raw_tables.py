"""Tables and checksums read with numpy: astropy's values, or nothing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from recreate.io.raw_tables import checksums_hold, table_columns


def _table(*columns: fits.Column, checksum: bool = False) -> bytes:
    hdu = fits.BinTableHDU.from_columns(list(columns), name="T")
    hdulist = fits.HDUList([fits.PrimaryHDU(), hdu])
    if checksum:
        for each in hdulist:
            each.add_checksum(when="test")
    buffer = io.BytesIO()
    hdulist.writeto(buffer)
    return buffer.getvalue()


def _opened(data: bytes) -> fits.HDUList:
    hdulist = fits.open(io.BytesIO(data), memmap=False)
    hdulist.readall()
    return hdulist


def test_plain_columns_are_astropys():
    rng = np.random.default_rng(2)
    data = _table(
        fits.Column("NAME", "12A", array=["a", "b  c", " lead", "", "x" * 12]),
        fits.Column("D", "D", array=rng.normal(size=5)),
        fits.Column("E", "E", array=rng.normal(size=5).astype(np.float32)),
        fits.Column("J", "J", array=np.arange(5, dtype=np.int32) - 2),
        fits.Column("K", "K", array=np.arange(5, dtype=np.int64) * 2**40),
        fits.Column("I", "I", array=np.arange(5, dtype=np.int16)),
        fits.Column("B", "B", array=np.arange(5, dtype=np.uint8)),
        fits.Column("V", "3D", array=rng.normal(size=(5, 3))),
    )
    with _opened(data) as hdulist:
        hdu = hdulist["T"]
        columns = table_columns(hdu, data)
        assert columns is not None
        for name in hdu.columns.names:
            want = hdu.data[name]
            got = columns[name]
            if name == "NAME":
                assert list(got) == [str(value) for value in want]
            else:
                assert got.dtype == want.dtype.newbyteorder("=")
                assert got.shape == want.shape
                assert got.tobytes() == want.astype(got.dtype).tobytes()


@pytest.mark.parametrize(
    "column",
    [
        fits.Column("S", "E", array=[1.0, 2.0], bscale=2.0),
        fits.Column("Z", "J", array=[1, 2], bzero=2**31),
        fits.Column("P", "PJ()", array=[[1], [2, 3]]),
        fits.Column("L", "L", array=[True, False]),
    ],
    ids=["scaled", "offset", "variable-length", "logical"],
)
def test_what_astropy_would_change_is_left_to_it(column):
    data = _table(column)
    with _opened(data) as hdulist:
        assert table_columns(hdulist["T"], data) is None


def test_checksums_hold_as_astropy_says():
    data = _table(fits.Column("D", "D", array=[1.0, 2.0]), checksum=True)
    with _opened(data) as hdulist:
        for hdu in hdulist:
            assert hdu.verify_checksum() == 1
            assert checksums_hold(hdu, data)
        data_start = hdulist["T"].fileinfo()["datLoc"]
        header_start = hdulist["T"].fileinfo()["hdrLoc"]
    # A byte of a card's comment, a byte of the data.
    for where in (header_start + 80 + 60, data_start + 3):
        changed = bytearray(data)
        changed[where] ^= 0x01
        with _opened(bytes(changed)) as hdulist:
            assert hdulist[1].verify_checksum() != 1
            assert not checksums_hold(hdulist[1], bytes(changed))


def test_an_hdu_without_checksums_does_not_hold():
    data = _table(fits.Column("D", "D", array=[1.0]))
    with _opened(data) as hdulist:
        assert not checksums_hold(hdulist["T"], data)
