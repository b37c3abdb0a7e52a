"""Fast reads of losslessly GZIP tile-compressed images.

Rubin writes its planes with the FITS tiled-image convention (a binary
table with one compressed tile per row). astropy decompresses such an
image tile by tile through Python's ``gzip`` module, about half a second
per 4072x4000 plane here, half of it Python work per tile that holds the
GIL. For the one layout that is simple and lossless, this module reads
the tiles itself: one read of the descriptors, one of the heap, each
tile inflated by Intel's ISA-L (``isal``: DEFLATE is lossless, so the
bytes are zlib's, 1.7x faster here) on `thread_count` threads (it
releases the GIL), un-shuffled and byte-swapped straight into the
output rows. The pixels are the same, bit for bit (tests compare with
astropy).

The layout read here: ``ZCMPTYPE`` ``GZIP_1`` or ``GZIP_2``, tiles of
whole rows, a single ``COMPRESSED_DATA`` column (so no quantisation
scale or zero columns, no ``ZBLANK`` column), no ``ZQUANTIZ`` other than
``NONE``, no ``ZBLANK`` keyword, and no ``BSCALE``/``BZERO`` scaling.
Anything else, or anything unexpected in the file, returns None and the
caller reads through astropy.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from isal import isal_zlib

from recreate.numerics.row_blocks import run_row_blocks

#: ZBITPIX -> the pixels' native dtype.
_DTYPES: dict[int, np.dtype] = {
    8: np.dtype(np.uint8),
    16: np.dtype(np.int16),
    32: np.dtype(np.int32),
    64: np.dtype(np.int64),
    -32: np.dtype(np.float32),
    -64: np.dtype(np.float64),
}

#: A variable-length byte array column: P (32-bit) or Q (64-bit)
#: descriptors.
_VLA_BYTES = re.compile(r"^1?([PQ])B(\(\d+\))?$")

#: zlib window bits that accept a gzip (or zlib) stream.
_GZIP_OR_ZLIB = 47

#: Fewest tiles worth a thread: enough to amortise starting threads.
_TILES_PER_TASK = 512


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of a compressed image are and how to decode them.

    Attributes
    ----------
    path
        The file.
    shape
        ``(height, width)`` of the image.
    dtype
        Native dtype of the pixels.
    tile_rows
        Image rows per tile (the last tile may hold fewer).
    shuffled
        Whether each tile's bytes are shuffled (``GZIP_2``).
    table_offset, row_bytes, wide
        File offset of the descriptor table, its row length, and whether
        descriptors are 64-bit (``Q``).
    heap_offset
        File offset of the heap.
    """

    path: str
    shape: tuple[int, int]
    dtype: np.dtype
    tile_rows: int
    shuffled: bool
    table_offset: int
    row_bytes: int
    wide: bool
    heap_offset: int


def tile_layout(hdu: fits.CompImageHDU) -> TileLayout | None:
    """Return the layout of a compressed image this module can read.

    Returns
    -------
    layout
        The layout, or None when the image is not in the simple lossless
        layout the module docstring describes (or is not in a file).
    """
    info = hdu.fileinfo()
    path = getattr(info["file"], "name", None) if info else None
    if not isinstance(path, str) or hdu.header.get("BSCALE", 1) != 1:
        return None
    if hdu.header.get("BZERO", 0) != 0:
        return None
    raw = _table_header(hdu)
    if raw is None:
        try:
            with Path(path).open("rb") as handle:
                handle.seek(info["hdrLoc"])
                raw = fits.Header.fromfile(handle)
        except (OSError, ValueError):
            return None
    return _layout(path, raw, info["datLoc"])


def table_layout(hdu: fits.BinTableHDU) -> TileLayout | None:
    """Return the layout of a compressed image read as its table.

    As `tile_layout`, for a file opened with astropy's
    ``disable_image_compression`` (the HDU's header is the table's).
    """
    info = hdu.fileinfo()
    path = getattr(info["file"], "name", None) if info else None
    raw = hdu.header
    if not isinstance(path, str) or raw.get("ZIMAGE") is not True:
        return None
    if raw.get("BSCALE", 1) != 1 or raw.get("BZERO", 0) != 0:
        return None
    return _layout(path, raw, info["datLoc"])


def _table_header(hdu: fits.CompImageHDU) -> fits.Header | None:
    """Return the binary table's header astropy read, if it kept it.

    astropy 6.1 and later keep the table a compressed HDU was read from
    (``_bintable``); its header, as in the file, saves reading and
    parsing it again (a sixth of a visit image's first open). None when
    this astropy keeps no such table.
    """
    table = getattr(hdu, "_bintable", None)
    header = getattr(table, "header", None)
    if isinstance(header, fits.Header) and header.get("ZIMAGE") is True:
        return header
    return None


def read_tiles(layout: TileLayout, rows: slice) -> npt.NDArray:
    """Return image rows ``rows`` (step 1, inside the image), all columns.

    Only the tiles holding those rows are read and inflated.

    Raises
    ------
    zlib.error, ValueError, OSError
        If the file's tiles are damaged or short (the caller reports it).
    """
    start, stop, _ = rows.indices(layout.shape[0])
    first = start // layout.tile_rows
    last = (stop - 1) // layout.tile_rows
    with Path(layout.path).open("rb") as handle:
        descriptors = _descriptors(handle, layout, first, last + 1)
        counts, offsets = descriptors[:, 0], descriptors[:, 1]
        heap_start = int(offsets.min())
        heap = _read_at(
            handle,
            layout.heap_offset + heap_start,
            int((offsets + counts).max()) - heap_start,
        )
    tile_start = first * layout.tile_rows
    out = np.empty(
        (
            min(layout.shape[0], (last + 1) * layout.tile_rows) - tile_start,
            layout.shape[1],
        ),
        dtype=layout.dtype,
    )
    view = memoryview(heap)

    def inflate(tiles: tuple[int, int]) -> None:
        parts = [
            _inflate(view[offset : offset + count])
            for count, offset in zip(
                counts[tiles[0] : tiles[1]].tolist(),
                (offsets[tiles[0] : tiles[1]] - heap_start).tolist(),
                strict=True,
            )
        ]
        top = tiles[0] * layout.tile_rows
        bottom = min(tiles[1] * layout.tile_rows, len(out))
        _place(parts, out[top:bottom], layout)

    # A stamp's few hundred small tiles inflate in about a millisecond:
    # less than starting threads for them.
    run_row_blocks(inflate, len(counts), min_rows=_TILES_PER_TASK)
    return out[start - tile_start : stop - tile_start]


def _inflate(data: memoryview) -> bytes:
    """Inflate one gzip (or zlib) stream.

    Raises
    ------
    zlib.error
        If it is damaged or short (as zlib would say).
    """
    try:
        return isal_zlib.decompress(data, _GZIP_OR_ZLIB)
    except isal_zlib.error as error:  # type: ignore[misc]
        raise zlib.error(str(error)) from error


def _place(parts: list[bytes], rows: npt.NDArray, layout: TileLayout) -> None:
    """Write inflated tiles (big-endian, maybe shuffled) into ``rows``.

    ``parts`` are consecutive tiles whose rows ``rows`` are; all but the
    last are full. They are joined and placed by one numpy copy (a copy
    per tile costs more than the inflation of a one-row tile).
    """
    itemsize = layout.dtype.itemsize
    full = layout.tile_rows * layout.shape[1]
    sizes = [full] * (len(parts) - 1) + [rows.size - full * (len(parts) - 1)]
    for data, pixels in zip(parts, sizes, strict=True):
        expected = pixels * itemsize
        if len(data) != expected:
            raise ValueError(
                f"a tile inflates to {len(data)} bytes, not {expected}"
            )
    target = rows.reshape(-1).view(np.uint8).reshape(rows.size, itemsize)
    if sizes[-1] == full:
        _place_tiles(b"".join(parts), target, len(parts), layout)
        return
    head = full * (len(parts) - 1)
    _place_tiles(b"".join(parts[:-1]), target[:head], len(parts) - 1, layout)
    _place_tiles(parts[-1], target[head:], 1, layout)


def _place_tiles(
    data: bytes, target: npt.NDArray[np.uint8], n: int, layout: TileLayout
) -> None:
    """Place ``n`` equal inflated tiles into ``target`` (pixels x bytes)."""
    if n == 0:
        return
    itemsize = layout.dtype.itemsize
    pixels = target.shape[0] // n
    flat = np.frombuffer(data, dtype=np.uint8)
    # GZIP_2 stores byte 0 of every pixel of a tile, then byte 1, ...
    raw = (
        flat.reshape(n, itemsize, pixels).transpose(0, 2, 1)
        if layout.shuffled
        else flat.reshape(n, pixels, itemsize)
    )
    out = target.reshape(n, pixels, itemsize)
    if layout.dtype.byteorder in ("=", "|") and np.little_endian:
        out[...] = raw[..., ::-1]
    else:
        out[...] = raw


def _layout(
    path: str, raw: fits.Header, data_offset: int
) -> TileLayout | None:
    """Return the layout a raw compressed-table header describes."""
    kind = raw.get("ZCMPTYPE")
    dtype = _DTYPES.get(int(raw.get("ZBITPIX", 0)))
    form = _VLA_BYTES.match(str(raw.get("TFORM1", "")))
    simple = (
        kind in ("GZIP_1", "GZIP_2")
        and dtype is not None
        and form is not None
        and raw.get("ZNAXIS") == 2
        and raw.get("TFIELDS") == 1
        and raw.get("TTYPE1") == "COMPRESSED_DATA"
        and raw.get("ZQUANTIZ", "NONE") == "NONE"
        and "ZBLANK" not in raw
        and raw.get("ZTILE1") == raw.get("ZNAXIS1")
        and isinstance(raw.get("ZTILE2"), int)
        and raw["ZTILE2"] >= 1
    )
    if not simple or form is None or dtype is None:
        return None
    height, width = int(raw["ZNAXIS2"]), int(raw["ZNAXIS1"])
    tile_rows = int(raw["ZTILE2"])
    if raw["NAXIS2"] != -(-height // tile_rows):
        return None
    row_bytes, n_rows = int(raw["NAXIS1"]), int(raw["NAXIS2"])
    return TileLayout(
        path=path,
        shape=(height, width),
        dtype=dtype,
        tile_rows=tile_rows,
        shuffled=kind == "GZIP_2",
        table_offset=data_offset,
        row_bytes=row_bytes,
        wide=form.group(1) == "Q",
        heap_offset=data_offset + int(raw.get("THEAP", row_bytes * n_rows)),
    )


def _descriptors(
    handle: BinaryIO, layout: TileLayout, first: int, stop: int
) -> npt.NDArray[np.int64]:
    """Return ``(count, offset)`` of tiles ``first .. stop - 1``."""
    size = 16 if layout.wide else 8
    table = _read_at(
        handle,
        layout.table_offset + first * layout.row_bytes,
        (stop - first) * layout.row_bytes,
    )
    rows = np.frombuffer(table, dtype=np.uint8).reshape(
        stop - first, layout.row_bytes
    )[:, :size]
    pairs = np.ascontiguousarray(rows).view(">i8" if layout.wide else ">i4")
    return pairs.reshape(stop - first, 2).astype(np.int64)


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    """Read exactly ``size`` bytes at ``offset``."""
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"read {len(data)} bytes of {size}: truncated file")
    return data
