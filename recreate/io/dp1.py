"""Read and write exposures in the afw ``ExposureF`` FITS layout of DP1.

Layout written
--------------
HDU 0 (no data) carries the cards of `recreate.io.headers` (observation,
calibration, PSF FWHM) and `recreate.io.metadata` (the rest). HDUs 1-3
are IMAGE (float32, ``BUNIT = 'nJy'`` unless ``metadata["BUNIT"]`` says
otherwise), MASK (int32, ``MP_*`` cards) and VARIANCE (float32), each
with ``EXTNAME = EXTTYPE`` = its plane name, ``INHERIT = T``, the sky
WCS and the xy0 cards. With ``compress=True`` they are lossless GZIP_2
tile-compressed (floats are *not* quantized). An exposure with a PSF
grid gets a fourth extension, ``PSF_GRID`` (see `recreate.io.psfgrid`).

Files are read back by plane name (EXTTYPE or EXTNAME), falling back to
HDUs 1-3 when no HDU is labelled; any other HDU (afw's archive tables)
is ignored. `read_dp1_region` reads a box of a file only (decompressing
only the tiles it touches), and `read_dp1_geometry` the WCS, ``xy0`` and
shape from the headers alone, to choose that box.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import Exposure, MaskPlanes, PsfInfo
from recreate.io.afwplanes import (
    check_shapes,
    locate_planes,
    read_mask_plane,
    read_mask_planes,
    read_number_plane,
)
from recreate.io.cards import Card, add_cards
from recreate.io.fitsfile import (
    AnyImageHDU,
    Window,
    open_fits,
    source_name,
    write_atomically,
)
from recreate.io.geometry import (
    read_celestial_wcs,
    read_xy0,
    wcs_header,
    xy0_cards,
)
from recreate.io.headers import (
    FORMAT_VERSION,
    FORMAT_VERSION_KEY,
    PSF_FWHM_KEY,
    observation_cards,
    photo_calib_cards,
    psf_fwhm_cards,
    read_observation,
    read_photo_calib,
    read_psf_fwhm,
)
from recreate.io.metadata import metadata_cards, read_metadata
from recreate.io.psfgrid import psf_grid_hdu, read_psf_grid
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

NJY = "nJy"
#: Metadata key that overrides the IMAGE plane's unit (nJy by default).
UNIT_KEY = "BUNIT"


def write_dp1(
    exposure: Exposure,
    path: str | os.PathLike[str],
    *,
    compress: bool = True,
    overwrite: bool = False,
) -> None:
    """Write an exposure as an afw/DP1-layout FITS file, atomically.

    Parameters
    ----------
    exposure
        What to write.
    path
        The file to write.
    compress
        Tile-compress the planes losslessly (GZIP_2) when true.
    overwrite
        Replace an existing file when true.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    FormatError
        If a metadata item cannot be a FITS card or clashes with a card
        set from the exposure's fields, or a calibration or PSF value is
        not finite.
    """
    hdulist = dp1_hdulist(exposure, compress=compress)
    write_atomically(hdulist, path, overwrite=overwrite)


def dp1_hdulist(exposure: Exposure, *, compress: bool = True) -> fits.HDUList:
    """Return the in-memory HDU list `write_dp1` writes.

    Parameters
    ----------
    exposure
        What to write.
    compress
        Tile-compress the planes losslessly (GZIP_2) when true.

    Returns
    -------
    hdulist
        Primary, IMAGE, MASK, VARIANCE and, with a PSF grid, PSF_GRID.

    Raises
    ------
    FormatError
        As for `write_dp1`.
    """
    metadata = dict(exposure.metadata)
    unit = metadata.pop(UNIT_KEY, NJY)
    if not isinstance(unit, str):
        raise FormatError(f"metadata BUNIT={unit!r} is not a unit string")
    geometry = _geometry_header(exposure)
    image = _plane_header("IMAGE", geometry, [("BUNIT", unit, "")])
    mask = _plane_header("MASK", geometry, _mask_cards(exposure.mask_planes))
    variance_unit = ("BUNIT", _squared(unit), "")
    variance = _plane_header("VARIANCE", geometry, [variance_unit])
    hdus: list[Any] = [
        fits.PrimaryHDU(header=_primary_header(exposure, metadata)),
        _plane_hdu(exposure.image, image, compress=compress),
        _plane_hdu(exposure.mask, mask, compress=compress),
        _plane_hdu(exposure.variance, variance, compress=compress),
    ]
    if exposure.psf is not None and exposure.psf.grid is not None:
        hdus.append(psf_grid_hdu(exposure.psf.grid))
    return fits.HDUList(hdus)


def _primary_header(
    exposure: Exposure, metadata: dict[str, Any]
) -> fits.Header:
    """Return the primary header: fields first, then free metadata."""
    header = fits.Header()
    add_cards(header, [(FORMAT_VERSION_KEY, FORMAT_VERSION, "")])
    if exposure.observation is not None:
        add_cards(header, observation_cards(exposure.observation))
    add_cards(header, photo_calib_cards(exposure.photo_calib))
    if exposure.psf is not None:
        add_cards(header, psf_fwhm_cards(exposure.psf.fwhm))
    add_cards(header, metadata_cards(metadata))
    return header


def _geometry_header(exposure: Exposure) -> fits.Header:
    """Return the WCS and xy0 cards every plane carries."""
    wcs = exposure.wcs
    header = wcs_header(wcs) if wcs is not None else fits.Header()
    add_cards(header, xy0_cards(exposure.xy0))
    return header


def _mask_cards(planes: MaskPlanes) -> list[Card]:
    """Return the ``MP_<NAME> = bit`` cards, without HIERARCH prefixes."""
    return [
        (key.removeprefix("HIERARCH "), bit, "")
        for key, bit in planes.header_cards()
    ]


def _squared(unit: str) -> str:
    """Return the unit of the variance of a quantity in ``unit``."""
    simple = unit.replace("_", "").isalnum()
    return f"{unit}**2" if simple else f"({unit})**2"


def _plane_header(
    label: str, geometry: fits.Header, cards: list[Card]
) -> fits.Header:
    """Return one plane's header: labels, plane cards, geometry."""
    header = fits.Header()
    header["EXTTYPE"] = label
    header["EXTNAME"] = label
    header["INHERIT"] = (True, "inherit the primary header")
    add_cards(header, cards)
    header.extend(geometry)
    return header


def _pin_gzip_timestamps() -> None:
    """Make astropy's GZIP tile compression reproducible.

    astropy compresses each tile with `gzip.compress`, which stamps the
    current time into every tile: the same pixels written a second apart
    gave different bytes. The stamp carries no information, so it is
    pinned to zero, and the same planes always give the same file.
    """
    from astropy.io.fits.hdu.compressed import _codecs

    if getattr(_codecs, "gzip_compress", None) is gzip.compress:
        _codecs.gzip_compress = functools.partial(gzip.compress, mtime=0)


_pin_gzip_timestamps()


def _plane_hdu(
    data: npt.NDArray[Any], header: fits.Header, *, compress: bool
) -> fits.ImageHDU | fits.CompImageHDU:
    """Return one plane's HDU, tile-compressed losslessly if asked."""
    name = header["EXTNAME"]
    if not compress:
        return fits.ImageHDU(data=data, header=header, name=name)
    # quantize_level=0 turns off astropy's default lossy quantization of
    # floats (level 16): pixels must round-trip bit for bit.
    return fits.CompImageHDU(
        data=data,
        header=header,
        name=name,
        compression_type="GZIP_2",
        quantize_level=0.0,
    )


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
    header = planes["IMAGE"].header
    return ImageGeometry(
        wcs=read_celestial_wcs(header, source),
        xy0=read_xy0(header, source),
        shape=_plane_shape(planes, source),
    )


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
    metadata = read_metadata(primary)
    unit = image_header.get("BUNIT")
    if isinstance(unit, str) and unit.strip().lower() != NJY.lower():
        metadata[UNIT_KEY] = unit.strip()
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
