"""Header cards for the pixel geometry: the sky WCS and the xy0 offset.

afw records an image's origin in its parent frame twice: IRAF-style
``LTV1/LTV2`` (= -x0, -y0) and the linear WCS "A" (``CRVAL1A/CRVAL2A``
= x0, y0 at ``CRPIX1A/CRPIX2A`` = 1). Both are written; either is read.
The celestial WCS (key " ") maps array pixels to the sky.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from recreate.errors import FormatError

#: CTYPE prefixes of celestial axes (equatorial, galactic, ecliptic, ...).
_CELESTIAL_CTYPES = ("RA--", "DEC-", "GLON", "GLAT", "ELON", "ELAT")


def xy0_cards(xy0: tuple[int, int]) -> list[tuple[str, Any, str]]:
    """Return afw's cards recording the array origin ``(x0, y0)``."""
    x0, y0 = xy0
    return [
        ("LTV1", -x0, "minus the parent x of the first column"),
        ("LTV2", -y0, "minus the parent y of the first row"),
        ("CRVAL1A", x0, "Column pixel of Reference Pixel"),
        ("CRVAL2A", y0, "Row pixel of Reference Pixel"),
        ("CRPIX1A", 1, "Column Pixel Coordinate of Reference"),
        ("CRPIX2A", 1, "Row Pixel Coordinate of Reference"),
        ("CTYPE1A", "LINEAR", "Type of projection"),
        ("CTYPE2A", "LINEAR", "Type of projection"),
        ("CUNIT1A", "PIXEL", "Column unit"),
        ("CUNIT2A", "PIXEL", "Row unit"),
    ]


def read_xy0(
    header: fits.Header, source: str, *, fractional: bool = False
) -> tuple[int, int]:
    """Return the array origin from ``LTV*`` or the "A" WCS, else (0, 0).

    Parameters
    ----------
    header
        An image header.
    source
        The file name, for error messages.
    fractional
        Accept offsets that are not whole pixels (legal FITS: IRAF writes
        them for resampled or binned sections) and round them to the
        nearest integer (a missing ``LTV`` card is 0, as in IRAF);
        `fractional_offset` says whether that happened. afw's xy0 is
        integral, so Rubin-layout files never need this.

    Returns
    -------
    xy0
        ``(x0, y0)`` in the parent pixel frame.

    Raises
    ------
    FormatError
        If a card is not a number (not an integer, unless
        ``fractional``), or the two records disagree.
    """
    from_ltv = _xy0_from_ltv(header, source, fractional=fractional)
    from_offset = _xy0_from_offset_wcs(header, source, fractional=fractional)
    if from_ltv and from_offset and from_ltv != from_offset:
        raise FormatError(
            f"{source}: LTV1/LTV2 give xy0={from_ltv} but CRVAL1A/CRVAL2A "
            f"give xy0={from_offset}"
        )
    return from_ltv or from_offset or (0, 0)


def fractional_offset(header: fits.Header) -> str | None:
    """Describe the offset cards that are not whole pixels, if any.

    Returns
    -------
    description
        E.g. ``"LTV1=-17.7"``, or None when every offset card present is
        a whole number (or not a number at all: `read_xy0` reports that).
    """
    found = []
    for key in ("LTV1", "LTV2", "CRVAL1A", "CRVAL2A"):
        value = header.get(key)
        is_number = isinstance(value, int | float) and not isinstance(
            value, bool
        )
        if is_number and not float(value).is_integer():
            found.append(f"{key}={value}")
    return ", ".join(found) or None


def _xy0_from_ltv(
    header: fits.Header, source: str, *, fractional: bool = False
) -> tuple[int, int] | None:
    """Return xy0 from the IRAF ``LTV1/LTV2`` cards, if present."""
    if "LTV1" not in header and "LTV2" not in header:
        return None
    # IRAF takes a missing LTV as 0; afw always writes both.
    default = 0 if fractional else None
    ltv1 = _integral(header, "LTV1", source, default, fractional=fractional)
    ltv2 = _integral(header, "LTV2", source, default, fractional=fractional)
    return -ltv1, -ltv2


def _xy0_from_offset_wcs(
    header: fits.Header, source: str, *, fractional: bool = False
) -> tuple[int, int] | None:
    """Return xy0 from the linear "A" WCS, if there is one.

    Only ``CTYPE1A`` is checked: ip_diffim's files omit ``CTYPE2A``.
    """
    ctype = header.get("CTYPE1A")
    if not isinstance(ctype, str) or ctype.strip().upper() != "LINEAR":
        return None
    x0 = _integral(header, "CRVAL1A", source, fractional=fractional)
    y0 = _integral(header, "CRVAL2A", source, fractional=fractional)
    # The reference pixel is 1-based: shift if a writer chose another.
    x_ref = _integral(header, "CRPIX1A", source, default=1)
    y_ref = _integral(header, "CRPIX2A", source, default=1)
    return x0 - (x_ref - 1), y0 - (y_ref - 1)


def _integral(
    header: fits.Header,
    key: str,
    source: str,
    default: int | None = None,
    *,
    fractional: bool = False,
) -> int:
    """Return a card's value as an int, accepting integral floats.

    With ``fractional``, any finite number is accepted and rounded to the
    nearest integer (halves to even, as Python rounds).
    """
    value = header.get(key, default)
    if value is None:
        raise FormatError(f"{source}: card {key} is missing")
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if fractional and is_number and math.isfinite(value):
        return round(value)
    if not is_number or not float(value).is_integer():
        raise FormatError(f"{source}: card {key}={value!r} is not an integer")
    return int(value)


def wcs_header(wcs: WCS) -> fits.Header:
    """Return the FITS cards of a celestial WCS, SIP terms included.

    ``relax=True`` is what makes astropy write the SIP polynomials; without
    it a TAN-SIP WCS would silently lose its distortion.
    """
    return wcs.to_header(relax=True)


def read_celestial_wcs(header: fits.Header, source: str) -> WCS | None:
    """Return the celestial WCS (key " ") of a header, or None if it has none.

    Parameters
    ----------
    header
        An image header.
    source
        The file name, for error messages.

    Returns
    -------
    wcs
        A 2-axis celestial WCS, or None when no CTYPE names a sky axis.

    Raises
    ------
    FormatError
        If the header names sky axes but the WCS cannot be built from it.
    """
    if not _has_celestial_ctype(header):
        return None
    try:
        with warnings.catch_warnings():
            # afw headers carry RADESYS/EQUINOX pairs that astropy "fixes"
            # and announces; the fixed WCS is the one we want.
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header)
    except (ValueError, KeyError, MemoryError) as exc:
        raise FormatError(f"{source}: invalid sky WCS ({exc})") from exc
    if not wcs.has_celestial:
        return None
    if wcs.naxis != 2:
        wcs = wcs.celestial
    _check_finite(wcs, source)
    return wcs


def _has_celestial_ctype(header: fits.Header) -> bool:
    """Say whether any primary-WCS CTYPE names a celestial axis."""
    for axis in (1, 2, 3, 4):
        ctype = header.get(f"CTYPE{axis}")
        if isinstance(ctype, str) and ctype.upper().startswith(
            _CELESTIAL_CTYPES
        ):
            return True
    return False


def _check_finite(wcs: WCS, source: str) -> None:
    """Reject a WCS whose reference values or matrix are not finite."""
    parts = (wcs.wcs.crval, wcs.wcs.crpix, wcs.pixel_scale_matrix)
    if not all(np.all(np.isfinite(part)) for part in parts):
        raise FormatError(f"{source}: sky WCS has non-finite terms")
