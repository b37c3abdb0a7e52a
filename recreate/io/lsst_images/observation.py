"""Observation info, image unit, metadata and photometric scaling.

Turns `recreate.exposure.ObservationInfo` into an
`astro_metadata_translator.ObservationInfo`, and ``Exposure.metadata``
and ``Exposure.photo_calib`` into the unit, metadata and photometric
scaling of an ``lsst.images`` image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import astropy.units as u
import lsst.images as li
import numpy as np
from astro_metadata_translator import ObservationInfo as AstroObservationInfo
from astropy.coordinates import Angle, SkyCoord
from astropy.time import Time
from lsst.images import fields
from lsst.images.serialization import MetadataValue

from recreate.errors import FormatError
from recreate.exposure import ObservationInfo, PhotoCalib
from recreate.io.headers import UNIT_KEY
from recreate.io.lsst_images.detector import comcam_detector_name
from recreate.io.metadata import plain_value


def _to_obs_info(observation: ObservationInfo) -> AstroObservationInfo:
    """Return an ``astro_metadata_translator`` observation info.

    The exposure id is the visit id (DP1 has one exposure per visit);
    the begin and end times are ``date_avg`` -/+ half the exposure
    time, and are left unset without an exposure time.

    Raises
    ------
    FormatError
        If ``date_avg`` is not an ISO time.
    """
    values: dict[str, Any] = {
        "instrument": observation.instrument,
        "physical_filter": observation.physical_filter,
        "visit_id": observation.visit,
        "exposure_id": observation.visit,
        "detector_num": observation.detector,
        "observing_day": observation.day_obs,
        "boresight_airmass": observation.airmass,
    }
    values.update(_detector_names(observation))
    values.update(_times(observation))
    values.update(_boresight(observation))
    present = {
        key: value for key, value in values.items() if value is not None
    }
    return AstroObservationInfo(**present)


def _detector_names(observation: ObservationInfo) -> dict[str, str]:
    """Return detector name, group and unique name, LSST-style.

    LSST names a detector ``R22_S11``: group ``R22``, name ``S11``.
    """
    if observation.detector is None:
        return {}
    unique = comcam_detector_name(observation.detector)
    group, _, name = unique.partition("_")
    return {
        "detector_unique_name": unique,
        "detector_group": group,
        "detector_name": name,
    }


def _times(observation: ObservationInfo) -> dict[str, Any]:
    """Return the exposure time and the begin and end times.

    Raises
    ------
    FormatError
        If ``date_avg`` is not an ISO time.
    """
    result: dict[str, Any] = {}
    exposure_time = observation.exposure_time
    if exposure_time is not None:
        result["exposure_time"] = exposure_time * u.s
    if observation.date_avg is None or exposure_time is None:
        return result
    try:
        middle = Time(observation.date_avg, scale="tai")
    except ValueError as exc:
        raise FormatError(
            f"date_avg {observation.date_avg!r} is not an ISO time"
        ) from exc
    half = 0.5 * exposure_time * u.s
    result["datetime_begin"] = middle - half
    result["datetime_end"] = middle + half
    return result


def _boresight(observation: ObservationInfo) -> dict[str, Any]:
    """Return the tracking position and the sky rotation angle."""
    result: dict[str, Any] = {}
    ra, dec = observation.boresight_ra, observation.boresight_dec
    if ra is not None and dec is not None:
        result["tracking_radec"] = SkyCoord(
            ra * u.deg, dec * u.deg, frame="icrs"
        )
    if observation.rotation_angle is not None:
        result["boresight_rotation_angle"] = Angle(
            observation.rotation_angle * u.deg
        )
        result["boresight_rotation_coord"] = "sky"
    return result


# --- units, calibration and metadata ---------------------------------------


def _unit_and_metadata(
    metadata: Mapping[str, Any],
) -> tuple[u.UnitBase, dict[str, MetadataValue]]:
    """Return the image unit (``BUNIT``, else nJy) and the other items.

    Raises
    ------
    FormatError
        If ``BUNIT`` is not a unit astropy knows, or an item's value is
        not None, bool, int, finite float or str.
    """
    items = dict(metadata)
    text = items.pop(UNIT_KEY, "nJy")
    try:
        unit = u.Unit(text)
    except (ValueError, TypeError) as exc:
        raise FormatError(f"metadata BUNIT={text!r} is not a unit") from exc
    return unit, {
        key: _metadata_value(key, value) for key, value in items.items()
    }


def _metadata_value(key: str, value: object) -> MetadataValue:
    """Return ``value`` as lsst.images metadata, or raise naming it.

    Raises
    ------
    FormatError
        If the value is not None, bool, int, finite float or str.
    """
    return plain_value(key, value, target="lsst.images metadata")


def _photometric_scaling(
    calib: PhotoCalib, unit: u.UnitBase, bbox: li.Box
) -> fields.ChebyshevField | None:
    """Return the scaling from post-ISR units to nJy, where known.

    ``lsst.images`` defines it as what multiplies post-ISR pixels to give
    calibrated ones: for an nJy image the scaling that was applied (nJy
    per electron), for an image in instrumental units the one to apply.
    An image in another flux unit, or with no known calibration, gets
    none.

    Raises
    ------
    FormatError
        If an nJy image has a calibration other than 1.
    """
    if unit == u.nJy:
        if calib.calibration != 1.0:
            raise FormatError(
                "the image is in nJy but its calibration is "
                f"{calib.calibration}, not 1"
            )
        if calib.njy_per_electron is None:
            return None
        return _constant_field(
            calib.njy_per_electron, u.nJy / u.electron, bbox
        )
    # recreate.io.plain gives calibration 1 when no zero point is known.
    if unit.is_equivalent(u.nJy) or calib.calibration == 1.0:
        return None
    return _constant_field(calib.calibration, u.nJy / unit, bbox)


def _constant_field(
    value: float, unit: u.UnitBase, bbox: li.Box
) -> fields.ChebyshevField:
    """Return a field that is ``value`` everywhere on ``bbox``."""
    return fields.ChebyshevField(bbox, np.array([[value]]), unit=unit)
