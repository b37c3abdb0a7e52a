"""Read exposures in the afw ``ExposureF`` FITS layout of DP1.

Files (ours, written by `recreate.io.dp1`, and afw's) are read by plane
name (EXTTYPE or EXTNAME), falling back to HDUs 1-3 when no HDU is
labelled; any other HDU (afw's archive tables) is ignored.
`read_dp1_region` reads a box of a file only (decompressing only the
tiles it touches), and `read_dp1_geometry` the WCS, ``xy0`` and shape
from the headers alone, to choose that box.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import Exposure, PsfInfo
from recreate.io.afwplanes import (
    check_shapes,
    locate_planes,
    read_mask_plane,
    read_mask_planes,
    read_number_plane,
)
from recreate.io.fitsfile import AnyImageHDU, Window, open_fits, source_name
from recreate.io.geometry import read_celestial_wcs, read_xy0
from recreate.io.headers import (
    NJY,
    PSF_FWHM_KEY,
    UNIT_KEY,
    read_observation,
    read_photo_calib,
    read_psf_fwhm,
)
from recreate.io.metadata import read_metadata
from recreate.io.psfgrid import read_psf_grid
from recreate.io.region import (
    ImageGeometry,
    image_window,
    is_empty,
    window_psf,
    window_shape,
    window_wcs,
    window_xy0,
)
from recreate.numerics.box import PixelBox


def read_dp1(
    path_or_hdulist: str | os.PathLike[str] | fits.HDUList,
) -> Exposure:
    """Read an afw/DP1-layout FITS file (any afw Exposure or MaskedImage).

    Parameters
    ----------
    path_or_hdulist
        A file name, or an already open file.

    Returns
    -------
    exposure
        The exposure; see `recreate.io.metadata` for which primary-header
        cards become ``metadata``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    FormatError
        If a plane is missing or unreadable, the planes' shapes differ,
        the mask is not integer, a mask-plane card is bad, or a mapped
        card holds a value of the wrong type; the message names the file.
    """
    return _with_hdulist(path_or_hdulist, _read_hdulist)


def read_dp1_region(
    path_or_hdulist: str | os.PathLike[str] | fits.HDUList,
    bbox: PixelBox,
) -> Exposure:
    """Read the part of an afw/DP1-layout file inside a box of pixels.

    Only the pixels in the box are read, and of tile-compressed planes
    only the tiles the box touches are decompressed: for a detector
    that overlaps part of a template patch this is most of the time of
    reading it. The planes are those `read_dp1` reads, sliced.

    Parameters
    ----------
    path_or_hdulist
        A file name, or an already open file.
    bbox
        The box, in the file's parent pixel frame (that of its ``xy0``);
        it is clipped to the image. A box that misses the image gives
        empty planes, and no pixel is read.

    Returns
    -------
    exposure
        The cut-out: the box's planes, ``xy0`` the parent pixel of its
        first column and row, the WCS of its array pixels (the file's,
        with the reference pixel moved), PSF grid nodes in its array
        pixels; PSF FWHM, calibration, observation, mask planes and
        metadata as `read_dp1` reads them.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    FormatError
        As for `read_dp1`; the planes' shapes are checked from their
        headers, and the mask's range only inside the box.
    """
    return _with_hdulist(
        path_or_hdulist, functools.partial(_read_hdulist, bbox=bbox)
    )


def read_dp1_geometry(
    path_or_hdulist: str | os.PathLike[str] | fits.HDUList,
) -> ImageGeometry:
    """Return the WCS, ``xy0`` and shape of an afw-layout file.

    Only headers are read: this says which box of the file to read with
    `read_dp1_region` before any pixel is.

    Parameters
    ----------
    path_or_hdulist
        A file name, or an already open file.

    Returns
    -------
    geometry
        The IMAGE plane's WCS (exactly the one `read_dp1` gives) and
        ``xy0``, and the planes' shape.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    FormatError
        If a plane is missing, the planes' shapes differ, or the WCS or
        ``xy0`` cards are invalid.
    """
    return _with_hdulist(path_or_hdulist, _read_geometry)


def _with_hdulist[T](
    path_or_hdulist: str | os.PathLike[str] | fits.HDUList,
    read: Callable[[fits.HDUList, str], T],
) -> T:
    """Call ``read(hdulist, source)`` on an open file or a file name."""
    if isinstance(path_or_hdulist, fits.HDUList):
        return read(path_or_hdulist, source_name(path_or_hdulist))
    with open_fits(path_or_hdulist) as hdulist:
        return read(hdulist, str(path_or_hdulist))


def _read_geometry(hdulist: fits.HDUList, source: str) -> ImageGeometry:
    """Return the geometry of an open afw-layout file from its headers."""
    planes = locate_planes(hdulist, source)
    return image_geometry(
        planes["IMAGE"].header, _plane_shape(planes, source), source
    )


def image_geometry(
    header: fits.Header, shape: tuple[int, int], source: str
) -> ImageGeometry:
    """Return the geometry an IMAGE plane's header and shape give.

    ``header`` may be the plane's tile-compressed table's own (its WCS
    cards are written there as in the image header): the WCS's pixel
    shape is set from ``shape``, as an image header's NAXISn give it.

    Raises
    ------
    FormatError
        If the WCS or ``xy0`` cards are invalid.
    """
    wcs = read_celestial_wcs(header, source)
    if wcs is not None:
        height, width = shape
        wcs.pixel_shape = (width, height)
    return ImageGeometry(wcs=wcs, xy0=read_xy0(header, source), shape=shape)


def _plane_shape(
    planes: dict[str, AnyImageHDU], source: str
) -> tuple[int, int]:
    """Return the planes' common shape, from their headers.

    Raises
    ------
    FormatError
        If the planes' shapes differ.
    """
    shapes = {label: tuple(hdu.shape) for label, hdu in planes.items()}
    if len(set(shapes.values())) != 1:
        raise FormatError(f"{source}: planes differ in shape: {shapes}")
    height, width = shapes["IMAGE"]
    return int(height), int(width)


def _read_hdulist(
    hdulist: fits.HDUList, source: str, bbox: PixelBox | None = None
) -> Exposure:
    """Build an exposure from an open afw-layout file, or a box of it."""
    planes = locate_planes(hdulist, source)
    image_header = planes["IMAGE"].header
    xy0 = read_xy0(image_header, source)
    window = None
    if bbox is not None:
        window = image_window(bbox, xy0, _plane_shape(planes, source))
    image, mask, variance = _read_planes(planes, source, window)
    check_shapes(source, IMAGE=image, MASK=mask, VARIANCE=variance)
    primary = hdulist[0].header
    metadata = _metadata(primary, image_header)
    mask_planes = read_mask_planes(planes["MASK"].header, source)
    wcs = read_celestial_wcs(image_header, source)
    psf = _read_psf(hdulist, source)
    if window is not None:
        wcs = window_wcs(wcs, window)
        xy0 = window_xy0(xy0, window)
        psf = window_psf(psf, window)
    return Exposure(
        image=image,
        variance=variance,
        mask=mask,
        mask_planes=mask_planes,
        wcs=wcs,
        xy0=xy0,
        psf=psf,
        photo_calib=read_photo_calib(primary, source),
        observation=read_observation(primary, source),
        metadata=metadata,
    )


def read_dp1_shell(hdulist: fits.HDUList, geometry: ImageGeometry) -> Exposure:
    """Return an open afw-layout file's fields, from its headers alone.

    The mask planes, PSF, calibration, observation and metadata that
    `read_dp1_region` gives, the geometry's WCS and ``xy0``, and empty
    (0x0) planes: what `recreate.io.image_file` keeps of a file to cut
    boxes from, without reading a pixel or building the WCS again.

    Parameters
    ----------
    hdulist
        The open file.
    geometry
        Its geometry (`read_dp1_geometry`).

    Raises
    ------
    FormatError
        As `read_dp1_region` raises it for a card or a plane's header.
    """
    planes = locate_planes(hdulist, source_name(hdulist))
    return dp1_shell(
        hdulist, (planes["IMAGE"].header, planes["MASK"].header), geometry
    )


def dp1_shell(
    hdulist: fits.HDUList,
    headers: tuple[fits.Header, fits.Header],
    geometry: ImageGeometry,
) -> Exposure:
    """Return `read_dp1_shell`'s fields from the planes' headers.

    ``headers`` are the IMAGE and MASK planes' image headers, or their
    tile-compressed tables' own headers: the cards read from them (mask
    planes, unit) are in both, as written.

    Raises
    ------
    FormatError
        As `read_dp1_shell`.
    """
    source = source_name(hdulist)
    image_header, mask_header = headers
    primary = hdulist[0].header
    empty = (0, 0)
    return Exposure(
        image=np.empty(empty, np.float32),
        variance=np.empty(empty, np.float32),
        mask=np.empty(empty, np.int32),
        mask_planes=read_mask_planes(mask_header, source),
        wcs=geometry.wcs,
        xy0=geometry.xy0,
        psf=_read_psf(hdulist, source),
        photo_calib=read_photo_calib(primary, source),
        observation=read_observation(primary, source),
        metadata=_metadata(primary, image_header),
    )


def _metadata(
    primary: fits.Header, image_header: fits.Header
) -> dict[str, Any]:
    """Return the metadata: the primary's cards, a unit other than nJy."""
    metadata = read_metadata(primary)
    unit = image_header.get("BUNIT")
    if isinstance(unit, str) and unit.strip().lower() != NJY.lower():
        metadata[UNIT_KEY] = unit.strip()
    return metadata


def _read_planes(
    planes: dict[str, AnyImageHDU], source: str, window: Window | None
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int32], npt.NDArray[Any]]:
    """Return the image, mask and variance pixels, or a window of them."""
    if window is not None and is_empty(window):
        # Nothing to read: not even the one tile row astropy would
        # decompress for an empty section.
        shape = window_shape(window)
        return (
            np.empty(shape, np.float32),
            np.empty(shape, np.int32),
            np.empty(shape, np.float32),
        )
    image = read_number_plane(planes["IMAGE"], "IMAGE", source, window)
    mask = read_mask_plane(planes["MASK"], source, window)
    variance = read_number_plane(
        planes["VARIANCE"], "VARIANCE", source, window
    )
    return image, mask, variance


def _read_psf(hdulist: fits.HDUList, source: str) -> PsfInfo | None:
    """Return the PSF FWHM card and PSF_GRID extension, if present."""
    fwhm = read_psf_fwhm(hdulist[0].header, source)
    grid = read_psf_grid(hdulist, source)
    if fwhm is None:
        if grid is not None:
            raise FormatError(
                f"{source}: PSF_GRID extension without a {PSF_FWHM_KEY} card"
            )
        return None
    return PsfInfo(fwhm=fwhm, grid=grid)
