"""Where a visit image's pixels lie, read from its headers alone.

The cutout faces turn sky stencils into pixel boxes with the visit's
WCS before any pixel is read. A local file is parsed once and kept for
the render (`recreate.io.image_file`); a remote one is opened through
lsst.resources as a stream (S3 or HTTP with ranged reads), and astropy
reads the headers of the HDUs it needs, not the planes.
"""

from __future__ import annotations

from astropy.io import fits

from recreate.butler import DiffimInputs
from recreate.io.dp1_read import read_dp1_geometry
from recreate.io.image_file import open_image_file
from recreate.io.region import ImageGeometry


def read_visit_geometry(found: DiffimInputs) -> ImageGeometry:
    """Return the WCS, ``xy0`` and shape of a request's visit image.

    Parameters
    ----------
    found
        The request's inputs (the Butler's answer).

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
        # Parsed once and kept (`open_image_file`): a render of the same
        # detector then reads its planes without parsing headers again.
        return open_image_file(path.ospath).geometry
    with (
        path.open("rb") as stream,
        fits.open(stream, memmap=False, lazy_load_hdus=True) as hdulist,
    ):
        return read_dp1_geometry(hdulist)
