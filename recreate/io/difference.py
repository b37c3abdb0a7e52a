"""Difference images in the DP1 layout, with their solved kernel.

A recreated difference image is written exactly like a DP1
``difference_image`` (`recreate.io.dp1`), plus one extension,
``DIFFIM_KERNEL``: a one-row table holding the solved matching kernel as
canonical JSON (coefficients and everything that defines the basis). It
is small (a few KB) and lets a later recreation, or a cutout, reuse the
kernel instead of refitting it. Readers that do not know it skip it, as
they skip afw's archive tables.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from typing import Any

from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import Exposure
from recreate.io.dp1 import dp1_hdulist
from recreate.io.fitsfile import open_fits, write_atomically

KERNEL_EXTNAME = "DIFFIM_KERNEL"
#: The kernel table's one column.
KERNEL_COLUMN = "JSON"


def difference_hdulist(
    exposure: Exposure,
    kernel: dict[str, Any],
    *,
    compress: bool = True,
    extra_hdus: Sequence[fits.ImageHDU] = (),
) -> fits.HDUList:
    """Return the HDUs of a difference image with its kernel extension.

    Parameters
    ----------
    exposure
        The difference image.
    kernel
        The solved kernel as a JSON-able dict (``SolvedKernel.to_dict``).
    compress
        Tile-compress the planes losslessly.
    extra_hdus
        Further extensions to append (e.g. ``DECORRELATED_PSF``).
    """
    hdulist = dp1_hdulist(exposure, compress=compress)
    hdulist.append(_kernel_hdu(kernel))
    hdulist.extend(extra_hdus)
    return hdulist


def write_difference(
    exposure: Exposure,
    kernel: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    compress: bool = True,
    overwrite: bool = False,
    extra_hdus: Sequence[fits.ImageHDU] = (),
) -> None:
    """Write a difference image and its kernel, atomically.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FormatError
        If a header card cannot be written.
    """
    hdulist = difference_hdulist(
        exposure, kernel, compress=compress, extra_hdus=extra_hdus
    )
    write_atomically(hdulist, path, overwrite=overwrite)


def difference_bytes(
    exposure: Exposure,
    kernel: dict[str, Any],
    *,
    compress: bool = True,
    extra_hdus: Sequence[fits.ImageHDU] = (),
) -> bytes:
    """Return the bytes `write_difference` would write."""
    buffer = io.BytesIO()
    difference_hdulist(
        exposure, kernel, compress=compress, extra_hdus=extra_hdus
    ).writeto(buffer)
    return buffer.getvalue()


def read_kernel(path: str | os.PathLike[str] | fits.HDUList) -> dict[str, Any]:
    """Return the stored kernel dict of a difference-image file.

    Raises
    ------
    FormatError
        If the file has no kernel extension or it is not valid JSON.
    """
    if isinstance(path, fits.HDUList):
        return _kernel_from(path, "<memory>")
    with open_fits(path) as hdulist:
        return _kernel_from(hdulist, str(path))


def kernel_text(kernel: dict[str, Any]) -> str:
    """Return the kernel's canonical JSON, as its extension holds it."""
    return json.dumps(kernel, sort_keys=True, separators=(",", ":"))


def _kernel_hdu(kernel: dict[str, Any]) -> fits.BinTableHDU:
    """Return the one-row table holding the kernel's canonical JSON."""
    text = kernel_text(kernel)
    column = fits.Column(
        name=KERNEL_COLUMN, format=f"{max(len(text), 1)}A", array=[text]
    )
    hdu = fits.BinTableHDU.from_columns([column])
    hdu.header["EXTNAME"] = KERNEL_EXTNAME
    hdu.header["EXTTYPE"] = KERNEL_EXTNAME
    hdu.header["COMMENT"] = "Solved PSF-matching kernel (recreate)"
    return hdu


def _kernel_from(hdulist: fits.HDUList, source: str) -> dict[str, Any]:
    """Return the kernel dict from an open HDU list."""
    if KERNEL_EXTNAME not in hdulist:
        raise FormatError(f"{source}: no {KERNEL_EXTNAME} extension")
    data = hdulist[KERNEL_EXTNAME].data
    try:
        text = data[KERNEL_COLUMN][0]
        if isinstance(text, bytes):
            text = text.decode()
        kernel = json.loads(text)
    except (KeyError, IndexError, ValueError) as error:
        raise FormatError(
            f"{source}: {KERNEL_EXTNAME} does not hold a kernel ({error})"
        ) from None
    if not isinstance(kernel, dict):
        raise FormatError(f"{source}: {KERNEL_EXTNAME} is not a JSON object")
    return kernel
