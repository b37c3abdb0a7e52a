"""Read a plain FITS image from another survey as an `Exposure`.

A plain image is one 2-D image HDU with a celestial WCS; its variance,
weight (inverse variance) and mask may come from other files or other
HDUs of the same file. Conventions:

- Pixels that are not finite in the image, or have a non-positive or
  non-finite variance (a zero or non-finite weight), are masked NO_DATA;
  their image value becomes 0 (only where it was not finite) and their
  variance +inf, so any inverse-variance weighting ignores them.
- Without a variance or weight, the variance is estimated from the
  image's own noise (`recreate.io.noise.estimate_variance`), or filled
  with NaN when ``fill_variance="nan"``. ``metadata`` always records
  ``VARIANCE_ESTIMATED`` (bool) and ``VARIANCE_METHOD`` (how).
- A ``SATURATE`` card (the saturation level in pixel units, as NOAO,
  DECam and SDSS write it) flags SAT on the pixels at or above it;
  ``metadata["SATURATION"]`` records the level.
- Offsets (``LTV1/LTV2``) that are not whole pixels are legal FITS and
  accepted: xy0 is rounded to the nearest pixel and
  ``metadata["XY0_ROUNDED"]`` names the cards. The sky WCS, not xy0,
  places a plain image's pixels.
- Pixel values are kept as they are. A ``BUNIT`` other than nJy goes
  to ``metadata["BUNIT"]``; then a zero-point card (MAGZERO, MAGZPT or
  ZP, AB magnitudes) sets ``photo_calib.calibration`` so that
  pixel * calibration is in nJy. Without one the calibration stays 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.wcs import WCS

from recreate.errors import FormatError, InvalidRequestError
from recreate.exposure import Exposure, MaskPlanes, PhotoCalib
from recreate.io.auxiliary import (
    Source,
    describe_hdu,
    find_named_hdu,
    read_mask,
    read_variance,
)
from recreate.io.cards import typed_card
from recreate.io.fitsfile import (
    AnyImageHDU,
    is_image_2d,
    open_fits,
    read_array,
)
from recreate.io.geometry import (
    fractional_offset,
    read_celestial_wcs,
    read_xy0,
)
from recreate.io.noise import estimate_variance

VARIANCE_ESTIMATED_KEY = "VARIANCE_ESTIMATED"
VARIANCE_METHOD_KEY = "VARIANCE_METHOD"
SATURATION_KEY = "SATURATION"
XY0_ROUNDED_KEY = "XY0_ROUNDED"
#: Zero-point cards, in order of preference.
ZERO_POINT_KEYS = ("MAGZERO", "MAGZPT", "ZP")
#: AB magnitude of 1 nJy.
NJY_AB_ZERO_POINT = 31.4


def read_plain(
    image: str | os.PathLike[str],
    *,
    variance: Source | None = None,
    weight: Source | None = None,
    mask: Source | None = None,
    hdu: int | str | None = None,
    mask_planes: MaskPlanes | None = None,
    fill_variance: Literal["estimate", "nan"] = "estimate",
    gain: float | None = None,
    require_wcs: bool = True,
) -> Exposure:
    """Read a plain FITS image, with optional variance/weight and mask.

    Parameters
    ----------
    image
        The image file.
    variance, weight
        Where the variance, or the weight (inverse variance), is: an int
        is an HDU index of the image file; a str is a file if one exists
        under that name, else an HDU name (EXTNAME or EXTTYPE) of the
        image file; a path-like is a file, whose first 2-D HDU is read.
        At most one of the two may be given.
    mask
        Where the mask is, as for ``variance``. Its values are kept with
        ``mask_planes`` when given, else with the planes of its ``MP_*``
        cards; without either, every nonzero pixel becomes BAD.
    hdu
        Index or name of the image HDU; default the first 2-D image HDU.
    mask_planes
        Planes of the mask file's values (see ``mask``).
    fill_variance
        Without a variance or weight: ``"estimate"`` it from the image's
        noise, or fill it with ``"nan"``.
    gain
        Electrons per pixel unit, for the Poisson term of an estimated
        variance; used only when the variance is estimated.
    require_wcs
        Refuse an image without a celestial WCS (the default). Images
        that are pixel-aligned with their partner need none.

    Returns
    -------
    exposure
        The exposure, with no PSF and no ObservationInfo.

    Raises
    ------
    FileNotFoundError
        If a named file does not exist.
    InvalidRequestError
        If both a variance and a weight are given, or ``fill_variance``
        or ``gain`` is invalid.
    FormatError
        If the image has no celestial WCS, an HDU is missing or not a 2-D
        image, a plane's shape differs from the image's, the mask is not
        integer, or the noise cannot be estimated.
    """
    _check_options(variance, weight, fill_variance, gain)
    with open_fits(image) as hdulist:
        inputs = _read_inputs(
            hdulist, str(image), hdu, variance, weight, mask, mask_planes
        )
    if inputs.wcs is None and require_wcs:
        raise FormatError(
            f"{image}: {inputs.described} has no celestial WCS (CTYPE "
            "RA---/DEC--...); a plain image needs one"
        )
    return _assemble(inputs, fill_variance, gain)


def _check_options(
    variance: Source | None,
    weight: Source | None,
    fill_variance: str,
    gain: float | None,
) -> None:
    """Reject contradictory or invalid options before opening anything."""
    if variance is not None and weight is not None:
        raise InvalidRequestError("give a variance or a weight, not both")
    if fill_variance not in ("estimate", "nan"):
        raise InvalidRequestError(f"fill_variance {fill_variance!r}")
    if gain is not None and not (np.isfinite(gain) and gain > 0):
        raise InvalidRequestError(f"gain {gain} is not positive")


@dataclass
class _Inputs:
    """What the files give, before NO_DATA and variance are settled."""

    pixels: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]
    planes: MaskPlanes
    variance: npt.NDArray[np.float32] | None
    unusable_variance: npt.NDArray[np.bool_]
    variance_method: str
    wcs: WCS | None
    xy0: tuple[int, int]
    unit: str | None
    photo_calib: PhotoCalib
    described: str
    saturation: float | None
    rounded_offsets: str | None


def _read_inputs(
    hdulist: fits.HDUList,
    source: str,
    hdu: int | str | None,
    variance: Source | None,
    weight: Source | None,
    mask: Source | None,
    mask_planes: MaskPlanes | None,
) -> _Inputs:
    """Read the image, its WCS, and the optional planes, from open files."""
    image_hdu = _select_image_hdu(hdulist, hdu, source)
    header = _effective_header(hdulist, image_hdu)
    wcs = read_celestial_wcs(header, source)
    pixels = _as_float32(read_array(image_hdu, "image", source))
    shape = pixels.shape
    mask_values, planes = read_mask(mask, hdulist, source, shape, mask_planes)
    variance_values, unusable, method = read_variance(
        variance, weight, hdulist, source, shape
    )
    unit, photo_calib = _unit_and_calibration(header, source)
    return _Inputs(
        pixels=pixels,
        mask=mask_values,
        planes=planes,
        variance=variance_values,
        unusable_variance=unusable,
        variance_method=method,
        wcs=wcs,
        xy0=read_xy0(header, source, fractional=True),
        unit=unit,
        photo_calib=photo_calib,
        described=describe_hdu(hdulist, image_hdu),
        saturation=_saturation(header, source),
        rounded_offsets=fractional_offset(header),
    )


def _assemble(
    inputs: _Inputs, fill_variance: str, gain: float | None
) -> Exposure:
    """Flag NO_DATA pixels, settle the variance, and build the exposure."""
    pixels, mask = inputs.pixels, inputs.mask
    not_finite = ~np.isfinite(pixels)
    no_data = not_finite | inputs.unusable_variance
    mask[no_data] |= np.int32(inputs.planes.value("NO_DATA"))
    planes = inputs.planes
    if inputs.saturation is not None:
        planes = planes.with_planes("SAT")
        mask[pixels >= inputs.saturation] |= np.int32(planes.value("SAT"))
    pixels[not_finite] = 0.0
    variance, method = inputs.variance, inputs.variance_method
    estimated = variance is None and fill_variance == "estimate"
    if variance is None:
        variance, method = _missing_variance(pixels, mask, fill_variance, gain)
    variance[no_data] = np.inf
    metadata: dict[str, Any] = {
        VARIANCE_ESTIMATED_KEY: estimated,
        VARIANCE_METHOD_KEY: method,
    }
    if inputs.unit is not None:
        metadata["BUNIT"] = inputs.unit
    if inputs.saturation is not None:
        metadata[SATURATION_KEY] = inputs.saturation
    if inputs.rounded_offsets is not None:
        metadata[XY0_ROUNDED_KEY] = inputs.rounded_offsets
    return Exposure(
        image=pixels,
        variance=variance,
        mask=mask,
        mask_planes=planes,
        wcs=inputs.wcs,
        xy0=inputs.xy0,
        photo_calib=inputs.photo_calib,
        metadata=metadata,
    )


def _select_image_hdu(
    hdulist: fits.HDUList, hdu: int | str | None, source: str
) -> AnyImageHDU:
    """Return the requested image HDU, or the first 2-D image HDU."""
    if hdu is None:
        for candidate in hdulist:
            if is_image_2d(candidate):
                return candidate
        raise FormatError(f"{source}: no HDU holds a 2-D image")
    if isinstance(hdu, int):
        if not 0 <= hdu < len(hdulist):
            raise FormatError(
                f"{source}: no HDU {hdu} (the file has {len(hdulist)})"
            )
        chosen = hdulist[hdu]
    else:
        chosen = find_named_hdu(hdulist, hdu, source)
    if not is_image_2d(chosen):
        raise FormatError(
            f"{source}: {describe_hdu(hdulist, chosen)} is not a 2-D image"
        )
    return chosen


def _effective_header(hdulist: fits.HDUList, hdu: AnyImageHDU) -> fits.Header:
    """Return an HDU's header, plus the primary's cards if it inherits.

    ``INHERIT = T`` is the FITS convention for "my metadata (often the
    WCS) is in the primary header"; the extension's own cards win.
    """
    header = hdu.header.copy()
    if hdu is hdulist[0] or header.get("INHERIT") is not True:
        return header
    for card in hdulist[0].header.cards:
        if card.keyword not in header and card.keyword not in (
            "SIMPLE",
            "BITPIX",
            "EXTEND",
            "COMMENT",
            "HISTORY",
            "",
        ):
            header.append(card)
    return header


def _as_float32(data: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Return the pixels as float32; values beyond float32 become inf.

    ``data`` is `read_array`'s own fresh copy, so float32 pixels are
    used as they are rather than copied again.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(data, dtype=np.float32)


def _missing_variance(
    pixels: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    fill_variance: str,
    gain: float | None,
) -> tuple[npt.NDArray[np.float32], str]:
    """Return an estimated or NaN variance, and how it was made."""
    if fill_variance == "nan":
        nan = np.full(pixels.shape, np.nan, dtype=np.float32)
        return nan, "unknown: no variance or weight given, filled with NaN"
    return estimate_variance(pixels, mask, gain)


def _saturation(header: fits.Header, source: str) -> float | None:
    """Return the ``SATURATE`` level, if the header gives a finite one."""
    level = typed_card(header, "SATURATE", float, source)
    if level is None or not np.isfinite(level):
        return None
    return float(level)


def _unit_and_calibration(
    header: fits.Header, source: str
) -> tuple[str | None, PhotoCalib]:
    """Return the non-nJy BUNIT (if any) and the calibration to nJy.

    An image already in nJy keeps calibration 1 whatever zero point it
    also states: the unit is the more direct statement.
    """
    unit = typed_card(header, "BUNIT", str, source)
    unit = unit.strip() if unit else None
    if unit is not None and unit.lower() == "njy":
        return None, PhotoCalib()
    for key in ZERO_POINT_KEYS:
        zero_point = typed_card(header, key, float, source)
        if zero_point is not None:
            return unit, _calibration_from_zero_point(zero_point, key, source)
    return unit, PhotoCalib()


def _calibration_from_zero_point(
    zero_point: float, key: str, source: str
) -> PhotoCalib:
    """Return nJy per pixel unit for an AB zero point."""
    try:
        calibration = 10.0 ** ((NJY_AB_ZERO_POINT - zero_point) / 2.5)
    except OverflowError:
        calibration = float("inf")
    if not (np.isfinite(calibration) and calibration > 0):
        raise FormatError(f"{source}: zero point {key}={zero_point}")
    return PhotoCalib(calibration=calibration)
