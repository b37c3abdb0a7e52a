"""Where a visit image's pixels lie, read from its headers alone.

The cutout faces turn sky stencils into pixel boxes with the visit's
WCS before any pixel is read. A local file is parsed once and kept for
the render (`recreate.io.image_file`); a remote one is opened through
lsst.resources as a stream (S3 or HTTP with ranged reads), and astropy
reads the headers of the HDUs it needs, not the planes.
"""

from __future__ import annotations

import itertools

from astropy.io import fits

from recreate.butler import DiffimInputs
from recreate.io.dp1_read import image_geometry, read_dp1_geometry
from recreate.io.fitsfile import (
    READ_ERRORS,
    hdu_label,
    is_image_2d,
    open_fits,
)
from recreate.io.image_file import LSST_IMAGES_MODEL_KEY, open_image_file
from recreate.io.region import ImageGeometry


def read_visit_geometry(
    found: DiffimInputs, *, keep: bool = True
) -> ImageGeometry:
    """Return the WCS, ``xy0`` and shape of a request's visit image.

    Parameters
    ----------
    found
        The request's inputs (the Butler's answer).
    keep
        Whether this process renders the detector next: a local file is
        then parsed whole and kept (`recreate.io.image_file`); else only
        its IMAGE plane's header is read (`image_plane_geometry`), and
        the process that renders checks the rest.

    Returns
    -------
    geometry
        As `recreate.io.read_dp1_geometry` gives it.

    Raises
    ------
    FileNotFoundError
        If the visit image is gone from its datastore.
    FormatError
        If it is not in the afw/DP1 layout.
    """
    from lsst.resources import ResourcePath

    path = ResourcePath(found.visit_image.uri)
    if path.isLocal:
        light = None if keep else image_plane_geometry(path.ospath)
        # Else parsed once and kept (`open_image_file`): a render of the
        # same detector then reads its planes without parsing again.
        return light or open_image_file(path.ospath).geometry
    with (
        path.open("rb") as stream,
        fits.open(stream, memmap=False, lazy_load_hdus=True) as hdulist,
    ):
        return read_dp1_geometry(hdulist)


def image_plane_geometry(path: str) -> ImageGeometry | None:
    """Return an afw-layout file's geometry from its IMAGE header alone.

    The HDUs are read up to the one labelled IMAGE (the first, as afw
    writes them), a tile-compressed one as the table it is stored in (its
    header as written: astropy does not convert it to an image header;
    the shape is its ZNAXISn); the WCS, ``xy0`` and shape are the ones
    `recreate.io.read_dp1_geometry` reads there, which also checks that
    the other planes exist and agree. None for a file of another layout
    (an ``lsst.images`` VisitImage, unlabelled planes).

    Raises
    ------
    FormatError
        If the IMAGE header's WCS or ``xy0`` cards are invalid, or the
        file is not FITS.
    """
    with open_fits(path, lazy=True, tables=True) as hdulist:
        if LSST_IMAGES_MODEL_KEY in hdulist[0].header:
            return None
        try:
            hdu = _image_hdu(hdulist)
        except READ_ERRORS:
            # Damaged past the primary header: the whole read says how.
            return None
        shape = None if hdu is None else _plane_shape(hdu)
        if hdu is None or shape is None:
            return None
        return image_geometry(hdu.header, shape, path)


def _plane_shape(hdu: fits.hdu.base.ExtensionHDU) -> tuple[int, int] | None:
    """Return a 2-D plane's (height, width): an image's or a table's.

    None for anything else (a table that is not a compressed 2-D image).
    """
    header = hdu.header
    if isinstance(hdu, fits.BinTableHDU):
        if header.get("ZIMAGE") is not True or header.get("ZNAXIS") != 2:
            return None
        width, height = header.get("ZNAXIS1"), header.get("ZNAXIS2")
        if not all(isinstance(n, int) and n >= 0 for n in (width, height)):
            return None
        return int(height), int(width)
    if not is_image_2d(hdu):
        return None
    height, width = (int(n) for n in hdu.shape)
    return height, width


def _image_hdu(hdulist: fits.HDUList) -> fits.hdu.base.ExtensionHDU | None:
    """Return the first HDU labelled IMAGE, reading no header past it."""
    for index in itertools.count(1):
        try:
            hdu = hdulist[index]
        except IndexError:
            return None
        if hdu_label(hdu) == "IMAGE":
            return hdu
    return None
