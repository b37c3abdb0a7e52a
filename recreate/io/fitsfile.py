"""Open, inspect and atomically write FITS files, with clear errors.

Every reader in this package goes through `open_fits` and `read_array`
so that a missing, corrupt or truncated file surfaces as one error that
names the file, never as an astropy traceback from deep inside a read.
"""

from __future__ import annotations

import errno
import os
import secrets
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from recreate.errors import FormatError
from recreate.io.tiles import read_tiles, tile_layout

type PathLike = str | os.PathLike[str]
type AnyImageHDU = fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU
#: ``(rows, columns)`` of a 2-D image: slices of its array pixels.
type Window = tuple[slice, slice]

#: What astropy raises (or, for truncation, warns) on broken FITS content.
READ_ERRORS = (OSError, ValueError, TypeError, EOFError, zlib.error)


@contextmanager
def open_fits(
    path: PathLike, *, lazy: bool = False, tables: bool = False
) -> Iterator[fits.HDUList]:
    """Open a FITS file read-only and read every HDU header.

    Parameters
    ----------
    path
        The file to open.
    lazy
        Read the HDUs' headers only as they are asked for (damage past
        them goes unseen): for a reader of the first few headers.
    tables
        Give tile-compressed images as the binary tables they are stored
        in (astropy's ``disable_image_compression``): their headers as
        written, not converted to image headers.

    Yields
    ------
    hdulist
        The open file; it is closed when the context exits.

    Raises
    ------
    FileNotFoundError
        If there is no such file; the message names the path.
    FormatError
        If the file is not FITS, or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such FITS file", str(path))
    with warnings.catch_warnings():
        # astropy only *warns* that a file "may have been truncated" and
        # then hands back short or zero-filled data: make that fatal.
        warnings.simplefilter("error", AstropyUserWarning)
        try:
            hdulist = fits.open(
                path, memmap=False, disable_image_compression=tables
            )
        except (*READ_ERRORS, AstropyUserWarning) as exc:
            raise _unreadable(path, exc) from exc
        try:
            # HDUs load lazily; read every header now so that damage
            # anywhere in the file is reported here, against its name.
            if not lazy:
                hdulist.readall()
        except (*READ_ERRORS, AstropyUserWarning) as exc:
            hdulist.close()
            raise _unreadable(path, exc) from exc
    with hdulist:
        yield hdulist


def _unreadable(path: Path, exc: BaseException) -> FormatError:
    """Return the error for a file astropy cannot parse."""
    return FormatError(f"{path}: not a readable FITS file ({exc})")


def source_name(hdulist: fits.HDUList) -> str:
    """Return the file name of an HDU list, for error messages."""
    name = hdulist.filename()
    return str(name) if name else "<in-memory FITS>"


def hdu_label(hdu: fits.hdu.base.ExtensionHDU | fits.PrimaryHDU) -> str:
    """Return an HDU's EXTTYPE, else its EXTNAME, upper-cased ('' if none).

    afw writes EXTTYPE on every plane; only newer files add EXTNAME.
    """
    for key in ("EXTTYPE", "EXTNAME"):
        value = hdu.header.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().upper()
    return ""


def is_image_2d(hdu: fits.hdu.base.ExtensionHDU | fits.PrimaryHDU) -> bool:
    """Say whether an HDU holds a 2-D image (plain or tile-compressed)."""
    if not isinstance(
        hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU
    ):
        return False
    return hdu.header.get("NAXIS") == 2


def read_array(
    hdu: AnyImageHDU,
    what: str,
    source: str,
    window: Window | None = None,
) -> npt.NDArray:
    """Return an image HDU's pixels as a native-endian in-memory copy.

    Parameters
    ----------
    hdu
        The HDU to read.
    what
        What the pixels are (e.g. ``"MASK plane"``), for error messages.
    source
        The file name, for error messages.
    window
        ``(rows, columns)`` of a 2-D image to read, as slices of array
        pixels with non-negative starts and steps of 1, inside the image;
        None reads every pixel. Only the pixels needed are read from the
        file, and of a tile-compressed image only the tiles the window
        touches are decompressed; the values are those of the whole read.

    Returns
    -------
    array
        The pixels, with BZERO/BSCALE applied by astropy.

    Raises
    ------
    FormatError
        If the pixels cannot be read or decompressed, or there are none.
    """
    try:
        fast = _read_simple_tiles(hdu, window)
        if fast is not None:
            return fast
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            data = hdu.data if window is None else _read_window(hdu, window)
    except (*READ_ERRORS, AstropyUserWarning) as exc:
        raise FormatError(f"{source}: cannot read the {what} ({exc})") from exc
    if data is None:
        raise FormatError(f"{source}: the {what} has no pixel data")
    return np.array(data, dtype=data.dtype.newbyteorder("="))


def _read_simple_tiles(
    hdu: AnyImageHDU, window: Window | None
) -> npt.NDArray | None:
    """Read a losslessly GZIP-compressed image with `recreate.io.tiles`.

    Returns None for any other HDU: astropy reads those.
    """
    if not isinstance(hdu, fits.CompImageHDU):
        return None
    layout = tile_layout(hdu)
    if layout is None:
        return None
    if window is None:
        return read_tiles(layout, slice(0, layout.shape[0]))
    rows, columns = window
    return np.ascontiguousarray(read_tiles(layout, rows)[:, columns])


def _read_window(hdu: AnyImageHDU, window: Window) -> npt.NDArray:
    """Return the pixels of a window of a 2-D image HDU.

    astropy's ``section`` reads from the file only what the slice needs
    and applies BZERO/BSCALE as ``data`` does. A plain image is read as
    whole rows, then cut: its rows are contiguous on disk, so that is
    one read, where a 2-D section would read (and convert) row by row.
    """
    rows, columns = window
    if hdu.fileinfo() is None:
        # Built in memory: there is no file to read a section from.
        return hdu.data[rows, columns]
    if isinstance(hdu, fits.CompImageHDU):
        return hdu.section[rows, columns]
    return hdu.section[rows][:, columns]


def write_atomically(
    hdulist: fits.HDUList, path: PathLike, *, overwrite: bool
) -> None:
    """Write an HDU list so that ``path`` is either complete or untouched.

    Parameters
    ----------
    hdulist
        What to write.
    path
        The final file name.
    overwrite
        Whether an existing file may be replaced.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    FormatError
        If astropy refuses to write the content (a header it cannot
        represent).
    """
    with atomic_destination(path, overwrite=overwrite) as temp:
        # O_EXCL: never write through a temporary name someone else made.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as stream:
            try:
                hdulist.writeto(stream)
            except fits.VerifyError as exc:
                raise FormatError(
                    f"{path}: cannot write FITS ({exc})"
                ) from exc


@contextmanager
def atomic_destination(path: PathLike, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary name to write; move it to ``path`` on success.

    The temporary file sits in the same directory, so the final rename is
    atomic: a crash or error mid-way never leaves a half-written file
    under the final name, and the temporary file is removed on failure.
    The file is synced to disk before the rename.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, "no such directory", str(path.parent)
        )
    if path.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield temp
        with temp.open("rb+") as stream:
            os.fsync(stream.fileno())
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
