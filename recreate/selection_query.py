"""Resolve a campaign `~recreate.selection.Selection` through the Butler.

`select_keys` turns the id, day_obs and band criteria into a registry
``where`` expression with bind values, so the database does the
narrowing; a cone is first a coarse spatial constraint in the same
query, then an exact test of each candidate's ``visit_detector_region``
against an `lsst.sphgeom.Circle`. Only keys that have a ``visit_image``
dataset in the repository's default collections are returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from recreate.butler import VISIT_IMAGE
from recreate.butler_names import resolve_instrument
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    PayloadTooLargeError,
)
from recreate.selection import Selection


def select_keys(
    butler: Any,
    selection: Selection,
    *,
    limit: int | None = None,
) -> list[tuple[int, int]]:
    """Return the (visit, detector) keys a selection matches.

    Parameters
    ----------
    butler
        An open Butler with default collections (see
        `recreate.butler.open_butler`).
    selection
        The criteria; every one must hold.
    limit
        Most keys accepted; `None` for no limit.

    Returns
    -------
    keys
        Sorted, distinct keys that have a ``visit_image`` dataset and
        meet every criterion; empty when none does.

    Raises
    ------
    InvalidRequestError
        If the selection is empty, ``limit`` is not a non-negative
        integer, or no instrument is named and the repository holds
        several.
    DataNotFoundError
        If the named instrument is not in the repository, or the
        repository has no ``visit_image`` dataset type or no collection
        to search.
    PayloadTooLargeError
        If more than ``limit`` keys match.
    """
    from lsst.daf.butler import (
        MissingDatasetTypeError,
        NoDefaultCollectionError,
    )

    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
    ):
        raise InvalidRequestError(
            f"limit must be a non-negative integer, got {limit!r}"
        )
    if selection.is_empty():
        raise InvalidRequestError(
            "the selection has no criterion: a campaign must select something"
        )
    instrument = resolve_instrument(butler, selection.instrument)
    expression, bind, circle = _where(selection)
    try:
        with butler.query() as query:
            results = (
                query.join_dataset_search(VISIT_IMAGE)
                .where(expression, bind=bind, instrument=instrument)
                .data_ids(["visit", "detector"])
            )
            if circle is None:
                found: Iterable[Any] = results
            else:
                found = _overlapping(results.with_dimension_records(), circle)
            keys = sorted(
                {
                    (int(data_id["visit"]), int(data_id["detector"]))
                    for data_id in found
                }
            )
    except (MissingDatasetTypeError, NoDefaultCollectionError) as error:
        raise DataNotFoundError(
            f"the repository has no {VISIT_IMAGE} datasets ({error})"
        ) from None
    if limit is not None and len(keys) > limit:
        raise PayloadTooLargeError(
            f"selection matches {len(keys)} keys; at most {limit} per campaign"
        )
    return keys


def _where(selection: Selection) -> tuple[str, dict[str, Any], Any]:
    """Return a where expression, its bind values and the cone's circle."""
    clauses: list[str] = []
    bind: dict[str, Any] = {}

    def add(clause: str, **values: Any) -> None:
        clauses.append(clause)
        bind.update(values)

    if selection.visits:
        add("visit IN (sel_visits)", sel_visits=selection.visits)
    if selection.visit_min is not None:
        add("visit >= sel_visit_min", sel_visit_min=selection.visit_min)
    if selection.visit_max is not None:
        add("visit <= sel_visit_max", sel_visit_max=selection.visit_max)
    if selection.day_obs_min is not None:
        add("day_obs >= sel_day_min", sel_day_min=selection.day_obs_min)
    if selection.day_obs_max is not None:
        add("day_obs <= sel_day_max", sel_day_max=selection.day_obs_max)
    if selection.band is not None:
        add("band = sel_band", sel_band=selection.band)
    if selection.detectors:
        add("detector IN (sel_detectors)", sel_detectors=selection.detectors)
    circle = None
    if selection.cone is not None:
        circle = cone_circle(*selection.cone)
        # The registry's spatial index narrows candidates coarsely; each
        # one's own region is then tested exactly (see _overlapping).
        add("visit_detector_region.region OVERLAPS sel_cone", sel_cone=circle)
    return " AND ".join(clauses), bind, circle


def cone_circle(ra: float, dec: float, radius: float) -> Any:
    """Return the `lsst.sphgeom.Circle` of a cone.

    Parameters
    ----------
    ra, dec
        Centre in degrees.
    radius
        Opening angle in degrees.

    Returns
    -------
    circle
        The circle on the unit sphere.
    """
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

    return Circle(
        UnitVector3d(LonLat.fromDegrees(ra, dec)), Angle.fromDegrees(radius)
    )


def _overlapping(data_ids: Iterable[Any], circle: Any) -> list[Any]:
    """Return the data ids whose detector region touches the circle."""
    return [
        data_id
        for data_id in data_ids
        if (record := data_id.records["visit_detector_region"]) is not None
        and record.region is not None
        and not record.region.isDisjointFrom(circle)
    ]
