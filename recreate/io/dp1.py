"""Write exposures in the afw ``ExposureF`` FITS layout of DP1.

HDU 0 (no data) carries the cards of `recreate.io.headers` (observation,
calibration, PSF FWHM) and `recreate.io.metadata` (the rest). HDUs 1-3
are IMAGE (float32, ``BUNIT = 'nJy'`` unless ``metadata["BUNIT"]`` says
otherwise), MASK (int32, ``MP_*`` cards) and VARIANCE (float32), each
with ``EXTNAME = EXTTYPE`` = its plane name, ``INHERIT = T``, the sky
WCS and the xy0 cards. With ``compress=True`` they are lossless GZIP_2
tile-compressed (floats are *not* quantized). An exposure with a PSF
grid gets a fourth extension, ``PSF_GRID`` (see `recreate.io.psfgrid`).

Such files (and afw's own) are read by `recreate.io.dp1_read`.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import Exposure, MaskPlanes
from recreate.io.cards import Card, add_cards
from recreate.io.fitsfile import write_atomically
from recreate.io.geometry import wcs_header, xy0_cards
from recreate.io.headers import (
    FORMAT_VERSION,
    FORMAT_VERSION_KEY,
    NJY,
    UNIT_KEY,
    observation_cards,
    photo_calib_cards,
    psf_fwhm_cards,
)
from recreate.io.metadata import metadata_cards
from recreate.io.psfgrid import psf_grid_hdu

#: The planes, in the order they are written.
PLANES = ("IMAGE", "MASK", "VARIANCE")


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
    cards = dp1_cards(exposure)
    geometry = _geometry_header(exposure)
    hdus: list[Any] = [fits.PrimaryHDU(header=_header(cards.primary))]
    for label in PLANES:
        header = _header(cards.planes[label])
        header.extend(geometry)
        data = getattr(exposure, label.lower())
        hdus.append(_plane_hdu(data, header, compress=compress))
    if exposure.psf is not None and exposure.psf.grid is not None:
        hdus.append(psf_grid_hdu(exposure.psf.grid))
    return fits.HDUList(hdus)


@dataclass(frozen=True)
class Dp1Cards:
    """The cards of a DP1-layout file that come from the exposure.

    What astropy (`dp1_hdulist`) and the direct writer
    (`recreate.io.direct`) both format, so that they write the same.

    Attributes
    ----------
    primary
        The primary header's cards: fields first, then free metadata.
    planes
        Each plane's cards (IMAGE, MASK, VARIANCE): its labels and unit
        or mask bits; the geometry's cards (`geometry_cards`) follow.
    """

    primary: list[Card]
    planes: dict[str, list[Card]]


def dp1_cards(exposure: Exposure) -> Dp1Cards:
    """Return the cards the exposure's fields and metadata give.

    Raises
    ------
    FormatError
        As for `write_dp1`.
    """
    metadata = dict(exposure.metadata)
    unit = metadata.pop(UNIT_KEY, NJY)
    if not isinstance(unit, str):
        raise FormatError(f"metadata BUNIT={unit!r} is not a unit string")
    planes = {
        "IMAGE": [*_label_cards("IMAGE"), ("BUNIT", unit, "")],
        "MASK": [*_label_cards("MASK"), *_mask_cards(exposure.mask_planes)],
        "VARIANCE": [*_label_cards("VARIANCE"), ("BUNIT", _squared(unit), "")],
    }
    return Dp1Cards(_primary_cards(exposure, metadata), planes)


def geometry_cards(exposure: Exposure) -> list[Card]:
    """Return the xy0 cards every plane carries after its sky WCS."""
    return xy0_cards(exposure.xy0)


def _primary_cards(exposure: Exposure, metadata: dict[str, Any]) -> list[Card]:
    """Return the primary header's cards: fields first, then metadata."""
    cards: list[Card] = [(FORMAT_VERSION_KEY, FORMAT_VERSION, "")]
    if exposure.observation is not None:
        cards += observation_cards(exposure.observation)
    cards += photo_calib_cards(exposure.photo_calib)
    if exposure.psf is not None:
        cards += psf_fwhm_cards(exposure.psf.fwhm)
    cards += metadata_cards(metadata)
    return cards


def _header(cards: list[Card]) -> fits.Header:
    """Return a header holding ``cards``, in order."""
    header = fits.Header()
    add_cards(header, cards)
    return header


def _geometry_header(exposure: Exposure) -> fits.Header:
    """Return the WCS and xy0 cards every plane carries."""
    wcs = exposure.wcs
    header = wcs_header(wcs) if wcs is not None else fits.Header()
    add_cards(header, geometry_cards(exposure))
    return header


def _label_cards(label: str) -> list[Card]:
    """Return a plane's label cards: EXTTYPE, EXTNAME and INHERIT."""
    return [
        ("EXTTYPE", label, ""),
        ("EXTNAME", label, ""),
        ("INHERIT", True, "inherit the primary header"),
    ]


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
