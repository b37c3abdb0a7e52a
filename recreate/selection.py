"""Select (visit, detector) keys for prewarm campaigns.

A `Selection` names keys by criteria rather than one by one: visits or a
visit range, a day_obs range, a band, detectors, or a sky cone. Every
criterion given must hold (AND). This module checks the criteria;
`recreate.selection_query.select_keys` resolves them through the Butler.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recreate.butler import (
    MAX_DETECTOR,
    MAX_VISIT,
)
from recreate.errors import (
    InvalidRequestError,
)

#: Largest cone radius accepted, degrees (a campaign is not a sky survey).
MAX_CONE_RADIUS = 10.0

#: The fields `Selection.from_dict` accepts.
FIELDS = frozenset(
    {
        "instrument",
        "visits",
        "visit_range",
        "visit_min",
        "visit_max",
        "day_obs_range",
        "day_obs_min",
        "day_obs_max",
        "band",
        "detectors",
        "cone",
    }
)
_CONE_FIELDS = ("ra", "dec", "radius")


@dataclass(frozen=True)
class Selection:
    """Criteria that select (visit, detector) keys; all must hold.

    Ranges are inclusive at both ends. ``visits`` and ``detectors`` are
    kept sorted and without duplicates, so equal selections compare
    equal. The constructor checks every value as `from_dict` does.

    Parameters
    ----------
    instrument
        Instrument name; `None` means the repository's only instrument.
    visits
        Visit ids to keep; empty means any visit.
    visit_min, visit_max
        Inclusive bounds on the visit id.
    day_obs_min, day_obs_max
        Inclusive bounds on the observing day, ``YYYYMMDD``.
    band
        Band name, e.g. ``"r"``.
    detectors
        Detector ids to keep; empty means any detector.
    cone
        ``(ra, dec, radius)`` in degrees: keys whose detector region
        overlaps this circle on the sky.

    Raises
    ------
    InvalidRequestError
        If a value has the wrong type or is out of range, or a minimum
        exceeds its maximum.
    """

    instrument: str | None = None
    visits: tuple[int, ...] = ()
    visit_min: int | None = None
    visit_max: int | None = None
    day_obs_min: int | None = None
    day_obs_max: int | None = None
    band: str | None = None
    detectors: tuple[int, ...] = ()
    cone: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        """Check every value and normalise the id lists."""
        _set = object.__setattr__
        if self.instrument is not None:
            _set(self, "instrument", _name("instrument", self.instrument))
        _set(self, "visits", _ids("visits", self.visits, MAX_VISIT))
        _set(
            self, "detectors", _ids("detectors", self.detectors, MAX_DETECTOR)
        )
        for field in ("visit_min", "visit_max"):
            value = getattr(self, field)
            if value is not None:
                _set(self, field, _id(field, value, MAX_VISIT))
        for field in ("day_obs_min", "day_obs_max"):
            value = getattr(self, field)
            if value is not None:
                _set(self, field, _day_obs(field, value))
        _check_order("visit_min", self.visit_min, "visit_max", self.visit_max)
        _check_order(
            "day_obs_min", self.day_obs_min, "day_obs_max", self.day_obs_max
        )
        if self.band is not None:
            _set(self, "band", _name("band", self.band))
        if self.cone is not None:
            _set(self, "cone", _cone_tuple(self.cone))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        """Return the selection a JSON object describes.

        Parameters
        ----------
        data
            A mapping with any of: ``instrument`` (str), ``visits``
            (list of ints), ``visit_range`` ([min, max]) or
            ``visit_min``/``visit_max``, ``day_obs_range`` ([min, max],
            ``YYYYMMDD``) or ``day_obs_min``/``day_obs_max``, ``band``
            (str), ``detectors`` (list of ints), ``cone``
            (``{"ra": .., "dec": .., "radius": ..}``, degrees). Ranges
            are inclusive.

        Returns
        -------
        selection
            The selection, checked.

        Raises
        ------
        InvalidRequestError
            If ``data`` is not a mapping, names an unknown field, holds
            a value of the wrong type or out of range (the message names
            the field and the value), or selects nothing in particular
            (no criterion besides the instrument).
        """
        if not isinstance(data, Mapping):
            raise InvalidRequestError(
                f"a selection must be a JSON object, got {data!r}"
            )
        unknown = sorted(str(key) for key in data if key not in FIELDS)
        if unknown:
            raise InvalidRequestError(
                f"unknown selection field(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(FIELDS))})"
            )
        visit_min, visit_max = _bounds(
            data, "visit_range", "visit_min", "visit_max", _visit
        )
        day_obs_min, day_obs_max = _bounds(
            data, "day_obs_range", "day_obs_min", "day_obs_max", _day_obs
        )
        instrument = data.get("instrument")
        band = data.get("band")
        selection = cls(
            instrument=(
                None if instrument is None else _name("instrument", instrument)
            ),
            visits=_id_list(data, "visits", MAX_VISIT),
            visit_min=visit_min,
            visit_max=visit_max,
            day_obs_min=day_obs_min,
            day_obs_max=day_obs_max,
            band=None if band is None else _name("band", band),
            detectors=_id_list(data, "detectors", MAX_DETECTOR),
            cone=_cone_dict(data["cone"]) if "cone" in data else None,
        )
        if selection.is_empty():
            raise InvalidRequestError(
                f"the selection {dict(data)!r} has no criterion: give "
                "visits, visit_range, day_obs_range, band, detectors or cone"
            )
        return selection

    def to_dict(self) -> dict[str, Any]:
        """Return the selection as a JSON object `from_dict` reads back.

        Returns
        -------
        data
            Only the criteria that are set; the cone as
            ``{"ra", "dec", "radius"}``.
        """
        data: dict[str, Any] = {}
        if self.instrument is not None:
            data["instrument"] = self.instrument
        if self.visits:
            data["visits"] = list(self.visits)
        for field in ("visit_min", "visit_max", "day_obs_min", "day_obs_max"):
            value = getattr(self, field)
            if value is not None:
                data[field] = value
        if self.band is not None:
            data["band"] = self.band
        if self.detectors:
            data["detectors"] = list(self.detectors)
        if self.cone is not None:
            data["cone"] = dict(zip(_CONE_FIELDS, self.cone, strict=True))
        return data

    def is_empty(self) -> bool:
        """Return whether no criterion is set (the instrument is none).

        Returns
        -------
        empty
            `True` when the selection would match every key.
        """
        return not (
            self.visits
            or self.detectors
            or self.cone is not None
            or self.band is not None
            or any(
                getattr(self, field) is not None
                for field in (
                    "visit_min",
                    "visit_max",
                    "day_obs_min",
                    "day_obs_max",
                )
            )
        )


def _bounds(
    data: Mapping[str, Any],
    range_field: str,
    min_field: str,
    max_field: str,
    check: Any,
) -> tuple[int | None, int | None]:
    """Return inclusive bounds given as ``[min, max]`` or separately."""
    if range_field in data:
        if min_field in data or max_field in data:
            raise InvalidRequestError(
                f"give {range_field} or {min_field}/{max_field}, not both "
                f"(got {range_field} {data[range_field]!r})"
            )
        value = data[range_field]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise InvalidRequestError(
                f"{range_field} must be [min, max], got {value!r}"
            )
        low = check(f"{range_field}[0]", value[0])
        high = check(f"{range_field}[1]", value[1])
        if low > high:
            raise InvalidRequestError(
                f"{range_field} {value!r} is empty: min {low} > max {high}"
            )
        return low, high
    low = check(min_field, data[min_field]) if min_field in data else None
    high = check(max_field, data[max_field]) if max_field in data else None
    _check_order(min_field, low, max_field, high)
    return low, high


def _check_order(
    min_field: str, low: int | None, max_field: str, high: int | None
) -> None:
    """Reject a minimum above its maximum."""
    if low is not None and high is not None and low > high:
        raise InvalidRequestError(
            f"{min_field} {low} > {max_field} {high}: the range is empty"
        )


def _id_list(
    data: Mapping[str, Any], field: str, limit: int
) -> tuple[int, ...]:
    """Return a non-empty JSON list of ids, or () when absent."""
    if field not in data:
        return ()
    value = data[field]
    if not isinstance(value, list | tuple) or not value:
        raise InvalidRequestError(
            f"{field} must be a non-empty list of integers, got {value!r}"
        )
    return _ids(field, value, limit)


def _ids(field: str, values: object, limit: int) -> tuple[int, ...]:
    """Return checked ids, sorted and without duplicates."""
    if not isinstance(values, list | tuple):
        raise InvalidRequestError(
            f"{field} must be a list of integers, got {values!r}"
        )
    return tuple(
        sorted(
            {
                _id(f"{field}[{i}]", value, limit)
                for i, value in enumerate(values)
            }
        )
    )


def _id(field: str, value: object, limit: int) -> int:
    """Return an id: an integer (not a bool) from 0 to ``limit - 1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{field} must be an integer, got {value!r}")
    if not 0 <= value < limit:
        raise InvalidRequestError(
            f"{field} {value!r} is out of range (0 to {limit - 1})"
        )
    return int(value)


def _visit(field: str, value: object) -> int:
    """Return a checked visit id."""
    return _id(field, value, MAX_VISIT)


def _day_obs(field: str, value: object) -> int:
    """Return a checked observing day, an integer ``YYYYMMDD``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(
            f"{field} must be an integer YYYYMMDD, got {value!r}"
        )
    try:
        dt.date(value // 10000, value // 100 % 100, value % 100)
    except ValueError:
        valid = False
    else:
        valid = 10000101 <= value <= 99991231
    if not valid:
        raise InvalidRequestError(f"{field} {value!r} is not a YYYYMMDD date")
    return int(value)


def _name(field: str, value: object) -> str:
    """Return a non-empty name."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(
            f"{field} must be a non-empty string, got {value!r}"
        )
    return value


def _cone_dict(value: object) -> tuple[float, float, float]:
    """Return ``(ra, dec, radius)`` from ``{"ra", "dec", "radius"}``."""
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            f'cone must be {{"ra": .., "dec": .., "radius": ..}}, '
            f"got {value!r}"
        )
    missing = [key for key in _CONE_FIELDS if key not in value]
    extra = sorted(str(key) for key in value if key not in _CONE_FIELDS)
    if missing or extra:
        raise InvalidRequestError(
            f"cone must have exactly ra, dec and radius, got {value!r}"
        )
    ra, dec, radius = (
        _degrees(f"cone.{key}", value[key]) for key in _CONE_FIELDS
    )
    return _check_cone(ra, dec, radius)


def _cone_tuple(value: object) -> tuple[float, float, float]:
    """Return a checked ``(ra, dec, radius)`` tuple."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise InvalidRequestError(
            f"cone must be (ra, dec, radius) in degrees, got {value!r}"
        )
    ra, dec, radius = (
        _degrees(f"cone.{key}", item)
        for key, item in zip(_CONE_FIELDS, value, strict=True)
    )
    return _check_cone(ra, dec, radius)


def _degrees(field: str, value: object) -> float:
    """Return a finite number of degrees."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"{field} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidRequestError(f"{field} must be finite, got {value!r}")
    return float(value)


def _check_cone(
    ra: float, dec: float, radius: float
) -> tuple[float, float, float]:
    """Reject a cone centre off the sphere or a radius out of range."""
    if not 0.0 <= ra < 360.0:
        raise InvalidRequestError(
            f"cone.ra {ra!r} is out of range (0 <= ra < 360 degrees)"
        )
    if not -90.0 <= dec <= 90.0:
        raise InvalidRequestError(
            f"cone.dec {dec!r} is out of range (-90 to 90 degrees)"
        )
    if not 0.0 < radius <= MAX_CONE_RADIUS:
        raise InvalidRequestError(
            f"cone.radius {radius!r} is out of range "
            f"(0 < radius <= {MAX_CONE_RADIUS:g} degrees)"
        )
    return ra, dec, radius
