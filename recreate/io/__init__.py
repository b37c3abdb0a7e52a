"""FITS input and output of exposures.

Two layouts are read: the afw ``ExposureF`` layout of Rubin DP1 (and of
older afw files), and plain single-image FITS files from other surveys.
Only the afw/DP1 layout is written.
"""

from __future__ import annotations

import os

from recreate.exposure import Exposure
from recreate.io.afwplanes import is_afw_layout
from recreate.io.dp1 import write_dp1
from recreate.io.dp1_read import (
    read_dp1,
    read_dp1_geometry,
    read_dp1_region,
)
from recreate.io.fitsfile import open_fits
from recreate.io.noise import estimate_variance
from recreate.io.plain import read_plain
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox

__all__ = [
    "ImageGeometry",
    "PixelBox",
    "estimate_variance",
    "read_dp1",
    "read_dp1_geometry",
    "read_dp1_region",
    "read_exposure",
    "read_plain",
    "write_dp1",
]


def read_exposure(path: str | os.PathLike[str]) -> Exposure:
    """Read a FITS file in whichever layout it has.

    A file with extensions labelled (EXTTYPE or EXTNAME) IMAGE, MASK and
    VARIANCE is read as afw/DP1 layout with `read_dp1`; any other as a
    plain image with `read_plain` and its defaults (variance estimated
    from the image's noise).

    Parameters
    ----------
    path
        The file to read.

    Returns
    -------
    exposure
        The exposure.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    FormatError
        If the file cannot be read in the layout it appears to have.
    """
    with open_fits(path) as hdulist:
        if is_afw_layout(hdulist):
            return read_dp1(hdulist)
    return read_plain(path)
