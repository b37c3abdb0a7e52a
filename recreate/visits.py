"""What a repository holds, visit by visit: the viewer's listings.

`list_visits` names the visits with visit images (newest first) and
`visit_detectors` the detectors of one visit that have a visit image,
each with the centre of its registered sky region. Both read the Butler
registry only (dimension records and dataset refs), never a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recreate.butler import (
    VISIT_IMAGE,
    _records,
    _visit_record,
)
from recreate.butler_names import resolve_instrument
from recreate.errors import DataNotFoundError, InvalidRequestError

__all__ = [
    "DetectorSummary",
    "VisitSummary",
    "list_visits",
    "visit_detectors",
]


@dataclass(frozen=True)
class DetectorSummary:
    """One detector of a visit that has a visit image.

    Attributes
    ----------
    detector
        Its id.
    ra, dec
        The centre of its registered sky region (degrees); None when
        it has none.
    """

    detector: int
    ra: float | None
    dec: float | None


@dataclass(frozen=True)
class VisitSummary:
    """A visit and, when asked for, its detectors."""

    instrument: str
    visit: int
    physical_filter: str
    band: str
    day_obs: int
    detectors: tuple[DetectorSummary, ...] = ()


def list_visits(
    butler: Any, *, instrument: str | None = None, limit: int = 100
) -> list[VisitSummary]:
    """Return the visits that have visit images, newest first.

    Parameters
    ----------
    butler
        An open Butler with default collections.
    instrument
        The instrument; the repository's only one when omitted.
    limit
        Most visits returned.

    Raises
    ------
    InvalidRequestError
        If ``limit`` is not positive, or no instrument is named and the
        repository holds several.
    DataNotFoundError
        If the instrument is not in the repository.
    """
    if limit <= 0:
        raise InvalidRequestError(f"limit must be positive, got {limit}")
    name = resolve_instrument(butler, instrument)
    refs = butler.query_datasets(
        VISIT_IMAGE, instrument=name, explain=False, limit=None
    )
    ids = sorted({int(ref.dataId["visit"]) for ref in refs}, reverse=True)
    kept = set(ids[:limit])
    bands = _bands(butler, name)
    records = [
        record
        for record in _records(butler, "visit", instrument=name)
        if int(record.id) in kept
    ]
    return sorted(
        (_summary(name, record, bands, ()) for record in records),
        key=lambda summary: -summary.visit,
    )


def visit_detectors(
    butler: Any, visit: int, *, instrument: str | None = None
) -> VisitSummary:
    """Return a visit and its detectors that have visit images.

    Raises
    ------
    DataNotFoundError
        If the visit is not in the repository, or has no visit image.
    InvalidRequestError
        If no instrument is named and the repository holds several.
    """
    name = resolve_instrument(butler, instrument)
    record = _visit_record(butler, name, visit)
    refs = butler.query_datasets(
        VISIT_IMAGE, instrument=name, visit=visit, explain=False, limit=None
    )
    detectors = sorted({int(ref.dataId["detector"]) for ref in refs})
    if not detectors:
        raise DataNotFoundError(
            f"visit {visit} of {name} has no {VISIT_IMAGE} dataset"
        )
    centres = _region_centres(butler, name, visit)
    summaries = tuple(
        DetectorSummary(d, *centres.get(d, (None, None))) for d in detectors
    )
    return _summary(name, record, _bands(butler, name), summaries)


def _bands(butler: Any, instrument: str) -> dict[str, str]:
    """Return the band of each of an instrument's physical filters."""
    return {
        str(record.name): str(record.band)
        for record in _records(
            butler, "physical_filter", instrument=instrument
        )
    }


def _summary(
    instrument: str,
    record: Any,
    bands: dict[str, str],
    detectors: tuple[DetectorSummary, ...],
) -> VisitSummary:
    """Return a visit's summary from its dimension record."""
    physical_filter = str(record.physical_filter)
    return VisitSummary(
        instrument=instrument,
        visit=int(record.id),
        physical_filter=physical_filter,
        band=bands.get(physical_filter, ""),
        day_obs=int(record.day_obs),
        detectors=detectors,
    )


def _region_centres(
    butler: Any, instrument: str, visit: int
) -> dict[int, tuple[float, float]]:
    """Return the centre (ra, dec) of each detector's registered region."""
    from lsst.sphgeom import LonLat

    centres = {}
    for record in _records(
        butler, "visit_detector_region", instrument=instrument, visit=visit
    ):
        if record.region is None:
            continue
        point = LonLat(record.region.getBoundingCircle().getCenter())
        centres[int(record.detector)] = (
            point.getLon().asDegrees(),
            point.getLat().asDegrees(),
        )
    return centres
