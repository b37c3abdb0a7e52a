"""Binary tables and checksums of FITS bytes, read with numpy alone.

A stored solution (`recreate.solution.fits`) is a few small binary
tables; astropy's table machinery (a ``FITS_rec`` and a ``ColDefs`` per
table, its checksum code) takes most of the milliseconds of reading one,
and a light curve reads one per epoch. With the bytes of the whole file
in hand and the headers parsed, the columns of a plain table are a numpy
view of the bytes (`table_columns`), and the checksums a sum of
big-endian words (`checksums_hold`). Both give what astropy gives, or
nothing: a table with scaled, null-flagged or variable-length columns,
or a heap, is left to astropy (None).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from astropy.io import fits

__all__ = ["checksums_hold", "table_columns"]

#: ``TFORM`` of a plain column: a repeat count and a type this reads.
_TFORM = re.compile(r"\s*(\d*)([ABIJKED])\s*\Z")
#: The numpy (big-endian) type of each FITS column type.
_DTYPES = {
    "B": "u1",
    "I": ">i2",
    "J": ">i4",
    "K": ">i8",
    "E": ">f4",
    "D": ">f8",
}
#: Cards that would make astropy change a column's values.
_CHANGING = ("TSCAL", "TZERO", "TNULL", "TDIM")
#: A FITS checksum's ones' complement sum of a whole HDU: negative zero.
_ALL_ONES = 0xFFFFFFFF


def table_columns(
    hdu: fits.BinTableHDU, data: bytes
) -> Mapping[str, npt.NDArray] | None:
    """Return a binary table's columns read from the file's bytes.

    Numbers as astropy's ``hdu.data[name]`` gives them (native byte
    order, a repeat count as a second axis), strings as Python strings
    without trailing spaces or NULs, as astropy's are.

    Parameters
    ----------
    hdu
        A table of an HDU list opened from ``data``.
    data
        The file's bytes.

    Returns
    -------
    columns
        By ``TTYPE``; None where astropy must read the table.
    """
    header = hdu.header
    info = hdu.fileinfo()
    rows, width = int(header["NAXIS2"]), int(header["NAXIS1"])
    if info is None or header.get("PCOUNT", 0) != 0 or "THEAP" in header:
        return None
    fields = []
    for index in range(1, int(header["TFIELDS"]) + 1):
        match = _TFORM.match(str(header[f"TFORM{index}"]))
        changed = any(f"{key}{index}" in header for key in _CHANGING)
        if match is None or changed:
            return None
        repeat = int(match.group(1) or 1)
        code = match.group(2)
        dtype = f"S{repeat}" if code == "A" else _DTYPES[code]
        shape = () if code == "A" or repeat == 1 else (repeat,)
        fields.append((str(header[f"TTYPE{index}"]), dtype, shape))
    record = np.dtype([(name, dtype, shape) for name, dtype, shape in fields])
    names = [name for name, _, _ in fields]
    if record.itemsize != width or len(set(names)) != len(names):
        return None
    start = int(info["datLoc"])
    table = np.frombuffer(data, record, count=rows, offset=start)
    return {name: _native(table[name], dtype) for name, dtype, _ in fields}


def checksums_hold(hdu: fits.hdu.base.ExtensionHDU, data: bytes) -> bool:
    """Say whether an HDU's ``CHECKSUM`` and ``DATASUM`` cards hold.

    The FITS checksum convention: the ones' complement sum of the data's
    32-bit words is ``DATASUM``, and that of the whole HDU (header with
    its ``CHECKSUM`` card, and data) is negative zero. An HDU without a
    ``DATASUM`` card does not hold.
    """
    info = hdu.fileinfo()
    datasum = hdu.header.get("DATASUM")
    if info is None or not isinstance(datasum, str):
        return False
    start, end = int(info["hdrLoc"]), int(info["datLoc"]) + info["datSpan"]
    words = np.frombuffer(data, ">u4", count=(end - start) // 4, offset=start)
    header_words = (int(info["datLoc"]) - start) // 4
    data_sum = _ones_complement_sum(words[header_words:])
    if not datasum.strip().isdigit() or data_sum != int(datasum):
        return False
    total = _ones_complement_sum(words[:header_words]) + data_sum
    return _folded(total) == _ALL_ONES


def _ones_complement_sum(words: npt.NDArray[np.uint32]) -> int:
    """Return the 32-bit ones' complement sum of big-endian words."""
    return _folded(int(words.sum(dtype=np.uint64)))


def _folded(total: int) -> int:
    """Fold the carries of a sum back into 32 bits (end-around carry)."""
    while total > _ALL_ONES:
        total = (total & _ALL_ONES) + (total >> 32)
    return total


def _native(column: npt.NDArray, dtype: str) -> npt.NDArray:
    """Return a column in native byte order; strings as Python strings."""
    if dtype.startswith("S"):
        # numpy drops trailing NULs; astropy also drops trailing spaces.
        texts = [value.decode("ascii").rstrip(" ") for value in column]
        return np.array(texts, dtype=object)
    return column.astype(column.dtype.newbyteorder("="))
