"""What a cutout file holds: its detail level, and series of stamps.

A region of a difference image comes in the product's own layout (DP1:
a primary HDU, IMAGE, MASK, VARIANCE, the PSF grid and the solved
kernel). SODA clients may ask for less, as Rubin's cutout service offers
it (``CUTOUTDETAIL``): the image alone, or the masked image (image, mask
and variance). A light curve is a series of stamps of one position, one
extension set per epoch, sorted by time, in one multi-extension FITS,
and a PNG strip of the same stamps drawn by `recreate.preview`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from recreate.errors import InvalidRequestError
from recreate.preview import strip_png

__all__ = [
    "DETAILS",
    "Stamp",
    "detail_level",
    "reduce_detail",
    "stamp_series_fits",
    "stamp_series_png",
]

#: The detail levels, as Rubin's cutout service names them.
IMAGE = "Image"
MASKED_IMAGE = "MaskedImage"
EXPOSURE = "Exposure"
DETAILS = (IMAGE, MASKED_IMAGE, EXPOSURE)

_PLANES = ("IMAGE", "MASK", "VARIANCE")


def detail_level(name: str) -> str:
    """Return the detail level called ``name`` (any letter case).

    Raises
    ------
    InvalidRequestError
        If it is none of `DETAILS`.
    """
    for level in DETAILS:
        if level.lower() == name.strip().lower():
            return level
    raise InvalidRequestError(
        f"unknown cutout detail {name!r}; choose one of {', '.join(DETAILS)}"
    )


def reduce_detail(data: bytes, detail: str) -> bytes:
    """Return a cutout file with only what a detail level keeps.

    Parameters
    ----------
    data
        A region in the DP1 layout (`workers.regions.Region.data`).
    detail
        ``Exposure``: unchanged. ``MaskedImage``: the primary header,
        IMAGE, MASK and VARIANCE. ``Image``: one primary HDU holding the
        image, with its WCS and ``xy0`` in the header.

    Raises
    ------
    InvalidRequestError
        If the detail level is unknown.
    """
    level = detail_level(detail)
    if level == EXPOSURE:
        return data
    with fits.open(io.BytesIO(data), memmap=False) as hdulist:
        if level == MASKED_IMAGE:
            kept = fits.HDUList(
                [fits.PrimaryHDU(header=hdulist[0].header)]
                + [hdulist[name].copy() for name in _PLANES]
            )
        else:
            header = hdulist[0].header.copy()
            header.extend(
                _plane_cards(hdulist["IMAGE"].header), unique=True, update=True
            )
            kept = fits.HDUList(
                [fits.PrimaryHDU(np.array(hdulist["IMAGE"].data), header)]
            )
        buffer = io.BytesIO()
        kept.writeto(buffer)
    return buffer.getvalue()


def _plane_cards(header: fits.Header) -> fits.Header:
    """Return a plane header's cards, less those of its HDU's structure."""
    structural = {
        "XTENSION",
        "BITPIX",
        "NAXIS",
        "NAXIS1",
        "NAXIS2",
        "PCOUNT",
        "GCOUNT",
        "EXTNAME",
        "EXTTYPE",
        "EXTVER",
        "INHERIT",
    }
    return fits.Header(
        [card for card in header.cards if card.keyword not in structural]
    )


@dataclass(frozen=True)
class Stamp:
    """One epoch of a light curve: where it was cut, and the cut.

    Attributes
    ----------
    visit, detector
        The difference image it comes from.
    band
        Its band.
    mjd
        The middle of its exposure (MJD, TAI), if known.
    data
        The region in the DP1 layout.
    """

    visit: int
    detector: int
    band: str
    mjd: float | None
    data: bytes


def stamp_series_fits(
    stamps: Sequence[Stamp], ra: float, dec: float, size: int
) -> bytes:
    """Return stamps of one position as one multi-extension FITS file.

    The primary header names the position and the number of epochs;
    then, for each epoch in the order given (by time), three image
    extensions IMAGE, MASK and VARIANCE with ``EXTVER`` = the epoch's
    index (from 1) and headers carrying the visit, detector, band and
    MJD beside the region's own WCS and ``xy0``; a last ``EPOCHS`` table
    lists them.
    """
    primary = fits.Header()
    primary["RA"] = (ra, "[deg] position of the stamps")
    primary["DEC"] = (dec, "[deg] position of the stamps")
    primary["STAMPSZ"] = (size, "[pixel] side of a stamp, before clipping")
    primary["NEPOCHS"] = (len(stamps), "epochs in this file")
    hdus: list[fits.PrimaryHDU | fits.ImageHDU | fits.BinTableHDU] = [
        fits.PrimaryHDU(header=primary)
    ]
    for index, stamp in enumerate(stamps, start=1):
        hdus.extend(_epoch_hdus(stamp, index))
    hdus.append(_epoch_table(stamps))
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


def stamp_series_png(stamps: Sequence[Stamp], size: int) -> bytes:
    """Return stamps of one position side by side, as one PNG.

    In the order given (by time), each in a ``size`` tile with its own
    zscale limits, masked pixels tinted and detections outlined, as the
    previews show them (`recreate.preview.strip_png`).
    """
    return strip_png([stamp.data for stamp in stamps], size)


def _epoch_hdus(stamp: Stamp, index: int) -> list[fits.ImageHDU]:
    """Return one epoch's IMAGE, MASK and VARIANCE extensions."""
    out = []
    with fits.open(io.BytesIO(stamp.data), memmap=False) as hdulist:
        for name in _PLANES:
            header = _plane_cards(hdulist[name].header)
            header["VISIT"] = (stamp.visit, "visit of this epoch")
            header["DETECTOR"] = (stamp.detector, "detector of this epoch")
            header["BAND"] = (stamp.band, "band of this epoch")
            if stamp.mjd is not None:
                header["MJD-AVG"] = (stamp.mjd, "[d] middle of the exposure")
            hdu = fits.ImageHDU(np.array(hdulist[name].data), header, name)
            hdu.ver = index
            out.append(hdu)
    return out


def _epoch_table(stamps: Sequence[Stamp]) -> fits.BinTableHDU:
    """Return the table listing every epoch of a series."""
    mjd = [np.nan if s.mjd is None else s.mjd for s in stamps]
    return fits.BinTableHDU.from_columns(
        [
            fits.Column("EXTVER", "J", array=np.arange(1, len(stamps) + 1)),
            fits.Column("VISIT", "K", array=[s.visit for s in stamps]),
            fits.Column("DETECTOR", "J", array=[s.detector for s in stamps]),
            fits.Column("BAND", "8A", array=[s.band for s in stamps]),
            fits.Column("MJD", "D", unit="d", array=mjd),
        ],
        name="EPOCHS",
    )
