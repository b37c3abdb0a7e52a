"""Primary-header cards <-> ObservationInfo, PhotoCalib and PSF FWHM.

Card names
----------
ObservationInfo
    afw VisitInfo cards ``INSTRUMENT``, ``EXPTIME``, ``DATE-AVG`` (with
    ``TIMESYS = 'TAI'``, as afw writes it; the string is kept verbatim),
    ``BORE-RA``, ``BORE-DEC``, ``BORE-ROTANG``, ``BORE-AIRMASS``, plus
    ``DETNAME`` and ``FILTER`` (physical filter, else band), and the
    Butler data ID as ``HIERARCH LSST BUTLER DATAID <DIM>`` for
    INSTRUMENT, VISIT, DETECTOR, BAND, PHYSICAL_FILTER, DAY_OBS, SKYMAP,
    TRACT and PATCH.
PhotoCalib
    ``HIERARCH RECREATE PHOTOCALIB MEAN`` (nJy per pixel unit),
    ``... ERR`` and ``... NJY_PER_ELECTRON``. On reading, afw's old
    ``FLUXMAG0``/``FLUXMAG0ERR`` are used when ours are absent.
PSF
    ``HIERARCH RECREATE PSF FWHM``, in pixels.
Format marker
    ``HIERARCH RECREATE FORMAT VERSION = 1`` marks files this package
    wrote (see `recreate.io.metadata` for what that changes).
"""

from __future__ import annotations

import math
from typing import Any

from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import ObservationInfo, PhotoCalib
from recreate.io.cards import Card, typed_card

FORMAT_VERSION_KEY = "RECREATE FORMAT VERSION"
FORMAT_VERSION = 1
PHOTOCALIB_MEAN_KEY = "RECREATE PHOTOCALIB MEAN"
PHOTOCALIB_ERR_KEY = "RECREATE PHOTOCALIB ERR"
PHOTOCALIB_NJY_PER_E_KEY = "RECREATE PHOTOCALIB NJY_PER_ELECTRON"
PSF_FWHM_KEY = "RECREATE PSF FWHM"
#: The unit of DP1's image planes.
NJY = "nJy"
#: Metadata key that overrides the IMAGE plane's unit (nJy by default).
UNIT_KEY = "BUNIT"
DATAID_PREFIX = "LSST BUTLER DATAID "

#: ObservationInfo field -> (afw VisitInfo card, type).
_VISIT_CARDS: dict[str, tuple[str, type]] = {
    "instrument": ("INSTRUMENT", str),
    "exposure_time": ("EXPTIME", float),
    "date_avg": ("DATE-AVG", str),
    "boresight_ra": ("BORE-RA", float),
    "boresight_dec": ("BORE-DEC", float),
    "rotation_angle": ("BORE-ROTANG", float),
    "airmass": ("BORE-AIRMASS", float),
    "detector_name": ("DETNAME", str),
}
#: ObservationInfo field -> (Butler data ID dimension, type).
_DATAID_CARDS: dict[str, tuple[str, type]] = {
    "instrument": ("INSTRUMENT", str),
    "visit": ("VISIT", int),
    "detector": ("DETECTOR", int),
    "band": ("BAND", str),
    "physical_filter": ("PHYSICAL_FILTER", str),
    "day_obs": ("DAY_OBS", int),
    "skymap": ("SKYMAP", str),
    "tract": ("TRACT", int),
    "patch": ("PATCH", int),
}
#: afw's "no filter" placeholder in the FILTER card.
_UNKNOWN_FILTER = "_unknown_"


def mapped_keys() -> frozenset[str]:
    """Return the primary-header keys this module maps to fields."""
    keys = {card for card, _ in _VISIT_CARDS.values()}
    keys |= {DATAID_PREFIX + dim for dim, _ in _DATAID_CARDS.values()}
    keys |= {"TIMESYS", "FILTER", "FLUXMAG0", "FLUXMAG0ERR"}
    keys |= {PHOTOCALIB_MEAN_KEY, PHOTOCALIB_ERR_KEY}
    keys |= {PHOTOCALIB_NJY_PER_E_KEY, PSF_FWHM_KEY, FORMAT_VERSION_KEY}
    return frozenset(keys)


def observation_cards(observation: ObservationInfo) -> list[Card]:
    """Return the VisitInfo and Butler data ID cards of an observation.

    Parameters
    ----------
    observation
        What to describe.

    Returns
    -------
    cards
        One card per known field (non-finite floats are left out, as afw
        does), a FILTER card, and a data ID card per known dimension.
    """
    cards: list[Card] = []
    for field_name, (key, _) in _VISIT_CARDS.items():
        value = getattr(observation, field_name)
        # afw writes only finite values; FITS cannot hold a NaN.
        if value is not None and _is_finite(value):
            cards.append((key, value, f"ObservationInfo.{field_name}"))
    if observation.date_avg is not None:
        cards.append(("TIMESYS", "TAI", "time scale of DATE-AVG"))
    label = observation.physical_filter or observation.band
    cards.append(("FILTER", label, "physical filter, else band"))
    for field_name, (dim, _) in _DATAID_CARDS.items():
        value = getattr(observation, field_name)
        if value is not None:
            cards.append((DATAID_PREFIX + dim, value, ""))
    return cards


def read_observation(
    header: fits.Header, source: str
) -> ObservationInfo | None:
    """Return the ObservationInfo of a primary header, if it names one.

    Parameters
    ----------
    header
        The primary header.
    source
        The file name, for error messages.

    Returns
    -------
    observation
        None unless both an instrument and a band are given: ObservationInfo
        needs both, and a guess would be worse than nothing.

    Raises
    ------
    FormatError
        If a card holds a value of the wrong type.
    """
    fields: dict[str, Any] = {}
    for field_name, (key, kind) in _VISIT_CARDS.items():
        fields[field_name] = typed_card(header, key, kind, source)
    for field_name, (dim, kind) in _DATAID_CARDS.items():
        value = typed_card(header, DATAID_PREFIX + dim, kind, source)
        if value is not None:
            fields[field_name] = value
    if fields.get("instrument") is None or fields.get("band") is None:
        return None
    label = typed_card(header, "FILTER", str, source)
    if fields.get("physical_filter") is None and label not in (
        None,
        _UNKNOWN_FILTER,
        fields["band"],
    ):
        fields["physical_filter"] = label
    return ObservationInfo(**fields)


def photo_calib_cards(photo_calib: PhotoCalib) -> list[Card]:
    """Return the cards of a photometric calibration.

    Parameters
    ----------
    photo_calib
        The calibration to write.

    Returns
    -------
    cards
        MEAN and ERR, plus NJY_PER_ELECTRON when known.

    Raises
    ------
    FormatError
        If a value is not finite, or the calibration is not positive.
    """
    _require_positive(PHOTOCALIB_MEAN_KEY, photo_calib.calibration)
    cards: list[Card] = [
        (PHOTOCALIB_MEAN_KEY, photo_calib.calibration, ""),
        (PHOTOCALIB_ERR_KEY, photo_calib.calibration_error, ""),
    ]
    if photo_calib.njy_per_electron is not None:
        cards.append(
            (PHOTOCALIB_NJY_PER_E_KEY, photo_calib.njy_per_electron, "")
        )
    for key, value, _ in cards:
        if not math.isfinite(value):
            raise FormatError(f"{key}={value} is not finite")
    return cards


def read_photo_calib(header: fits.Header, source: str) -> PhotoCalib:
    """Return the calibration of a primary header (1 nJy/unit if none).

    Parameters
    ----------
    header
        The primary header.
    source
        The file name, for error messages.

    Returns
    -------
    photo_calib
        From our cards, else from afw's ``FLUXMAG0`` (flux of a
        magnitude-0 source; 0 is afw's "unknown"), else the identity.

    Raises
    ------
    FormatError
        If a card is not a number, or the calibration is not positive.
    """
    mean = typed_card(header, PHOTOCALIB_MEAN_KEY, float, source)
    if mean is not None:
        _require_positive(PHOTOCALIB_MEAN_KEY, mean, source)
        error = typed_card(header, PHOTOCALIB_ERR_KEY, float, source)
        per_electron = typed_card(
            header, PHOTOCALIB_NJY_PER_E_KEY, float, source
        )
        return PhotoCalib(mean, error or 0.0, per_electron)
    flux_mag0 = typed_card(header, "FLUXMAG0", float, source)
    if not flux_mag0:
        return PhotoCalib()
    _require_positive("FLUXMAG0", flux_mag0, source)
    calibration = 10.0 ** (0.4 * 31.4) / flux_mag0
    flux_error = typed_card(header, "FLUXMAG0ERR", float, source) or 0.0
    return PhotoCalib(calibration, calibration * flux_error / flux_mag0)


def psf_fwhm_cards(fwhm: float) -> list[Card]:
    """Return the PSF FWHM card.

    Parameters
    ----------
    fwhm
        PSF FWHM in pixels.

    Returns
    -------
    cards
        The one ``RECREATE PSF FWHM`` card.

    Raises
    ------
    FormatError
        If the FWHM is not a positive finite number.
    """
    _require_positive(PSF_FWHM_KEY, fwhm)
    return [(PSF_FWHM_KEY, float(fwhm), "")]


def read_psf_fwhm(header: fits.Header, source: str) -> float | None:
    """Return the PSF FWHM in pixels, if the header gives one.

    Parameters
    ----------
    header
        The primary header.
    source
        The file name, for error messages.

    Returns
    -------
    fwhm
        The FWHM, or None without a ``RECREATE PSF FWHM`` card.

    Raises
    ------
    FormatError
        If the value is not a positive number.
    """
    fwhm = typed_card(header, PSF_FWHM_KEY, float, source)
    if fwhm is not None:
        _require_positive(PSF_FWHM_KEY, fwhm, source)
    return fwhm


def _require_positive(key: str, value: float, source: str = "") -> None:
    """Raise a FormatError naming the card unless value is positive."""
    if not (math.isfinite(value) and value > 0):
        where = f"{source}: " if source else ""
        raise FormatError(f"{where}{key}={value} is not a positive number")


def _is_finite(value: object) -> bool:
    """Say whether a value is not a non-finite float."""
    return not isinstance(value, float) or math.isfinite(value)
