"""Which difference images exist where: the registry's regions, searched.

A difference image can be recreated for every ``visit_image`` whose
detector is overlapped by a ``template_coadd`` patch of its band (the
test `recreate.butler.find_inputs` makes, on the same regions). This
module finds them without reading a pixel: one registry query for the
visit-detectors (their regions, times and filters), one for the template
patches of the bands they need, then exact tests with `lsst.sphgeom`.
SIA answers its rows from `find_footprints`; light curves find the
epochs of a position with `covering`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from recreate.butler import (
    NOMINAL_PIXEL_SCALE,
    TEMPLATE_BORDER_PX,
    TEMPLATE_COADD,
    VISIT_IMAGE,
    grow_region,
)
from recreate.butler_names import resolve_instrument
from recreate.errors import DataNotFoundError
from recreate.skyshapes import SkyCircle, SkyShape, shape_region

__all__ = [
    "BAND_WAVELENGTHS",
    "ImageFootprint",
    "covering",
    "find_footprints",
]

#: Approximate half-transmission edges of the LSST filters, metres (the
#: camera's range is 320-1050 nm): SIA's ``em_min``/``em_max``.
BAND_WAVELENGTHS: dict[str, tuple[float, float]] = {
    "u": (320e-9, 400e-9),
    "g": (400e-9, 552e-9),
    "r": (552e-9, 691e-9),
    "i": (691e-9, 818e-9),
    "z": (818e-9, 922e-9),
    "y": (922e-9, 1060e-9),
}

#: Radius of the circle a point search uses (about a fifth of a pixel).
POINT_RADIUS_DEGREES = 1e-5


@dataclass(frozen=True)
class ImageFootprint:
    """One visit-detector as the registry describes it.

    Attributes
    ----------
    instrument, visit, detector
        The data ID.
    band, physical_filter, day_obs
        From the visit's records.
    exposure_time
        Seconds, if the visit record has it.
    t_min, t_max
        Start and end of the exposure, MJD (TAI), if the visit has a
        timespan.
    vertices
        The detector's outline ``((ra, dec), ...)`` in degrees.
    target_name
        The visit's target, if recorded.
    recreatable
        Whether a template patch of the band overlaps the detector (the
        test `recreate.butler.find_inputs` makes).
    """

    instrument: str
    visit: int
    detector: int
    band: str
    physical_filter: str
    day_obs: int
    exposure_time: float | None
    t_min: float | None
    t_max: float | None
    vertices: tuple[tuple[float, float], ...]
    target_name: str | None
    recreatable: bool

    @property
    def centre(self) -> tuple[float, float]:
        """The mean direction of the vertices, ``(ra, dec)`` degrees."""
        xyz = [_unit(ra, dec) for ra, dec in self.vertices]
        sx, sy, sz = (sum(c[i] for c in xyz) for i in range(3))
        norm = math.sqrt(sx * sx + sy * sy + sz * sz)
        ra = math.degrees(math.atan2(sy, sx)) % 360.0
        return ra, math.degrees(math.asin(sz / norm))

    @property
    def field_of_view(self) -> float:
        """Diameter of the circle about `centre` through every vertex."""
        centre = _unit(*self.centre)
        cosines = [
            sum(a * b for a, b in zip(centre, _unit(ra, dec), strict=True))
            for ra, dec in self.vertices
        ]
        return 2.0 * math.degrees(math.acos(max(-1.0, min(1.0, *cosines))))


def _unit(ra: float, dec: float) -> tuple[float, float, float]:
    """Return the unit vector of a position in degrees."""
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def find_footprints(
    butler: Any,
    *,
    shapes: Sequence[SkyShape] = (),
    instrument: str | None = None,
    bands: Iterable[str] = (),
    visits: Iterable[int] = (),
    detectors: Iterable[int] = (),
    recreatable_only: bool = True,
) -> list[ImageFootprint]:
    """Return the visit-detectors that overlap any of some sky shapes.

    Parameters
    ----------
    butler
        An open Butler with default collections.
    shapes
        Keep what overlaps any of these (none: keep every position).
    instrument
        Instrument name; optional when the repository holds only one.
    bands, visits, detectors
        Keep only these (empty: any).
    recreatable_only
        Drop visit-detectors no template patch overlaps.

    Returns
    -------
    footprints
        Sorted by (t_min, visit, detector); those without a time last.

    Raises
    ------
    DataNotFoundError
        If the named instrument is not in the repository, or it has no
        ``visit_image`` dataset type.
    InvalidRequestError
        If no instrument is named and the repository holds several.
    """
    from lsst.daf.butler import MissingDatasetTypeError

    instrument = resolve_instrument(butler, instrument)
    regions = [shape_region(shape) for shape in shapes]
    try:
        rows = _visit_detector_rows(
            butler,
            instrument,
            regions,
            set(bands),
            set(visits),
            set(detectors),
        )
    except MissingDatasetTypeError as error:
        raise DataNotFoundError(
            f"the repository has no {VISIT_IMAGE} datasets ({error})"
        ) from None
    patches = _patch_regions(butler, {str(row["band"]) for row in rows})
    found = []
    for row in rows:
        region = row.records["visit_detector_region"].region
        if regions and all(region.isDisjointFrom(r) for r in regions):
            continue
        recreatable = _has_template(region, patches.get(str(row["band"]), []))
        if recreatable_only and not recreatable:
            continue
        found.append(_footprint(row, region, recreatable))
    return sorted(found, key=_time_order)


def covering(
    butler: Any,
    ra: float,
    dec: float,
    *,
    instrument: str | None = None,
    bands: Iterable[str] = (),
) -> list[ImageFootprint]:
    """Return the recreatable visit-detectors whose outline holds a point.

    Parameters
    ----------
    butler
        An open Butler with default collections.
    ra, dec
        The position, degrees.
    instrument, bands
        As `find_footprints` takes them.

    Returns
    -------
    footprints
        Sorted by time, as `find_footprints` sorts them.
    """
    from lsst.sphgeom import LonLat, UnitVector3d

    point = UnitVector3d(LonLat.fromDegrees(ra, dec))
    near = find_footprints(
        butler,
        shapes=[SkyCircle(ra, dec, POINT_RADIUS_DEGREES)],
        instrument=instrument,
        bands=bands,
    )
    return [f for f in near if _polygon(f.vertices).contains(point)]


def busiest_position(butler: Any) -> tuple[float, float, list[ImageFootprint]]:
    """Return the detector centre covered by the most epochs, and them.

    Of every visit-detector's centre, the one the most recreatable
    visit-detectors hold (the first such on a tie): a light curve's
    richest position in a repository.

    Raises
    ------
    DataNotFoundError
        If the repository has no recreatable visit-detector.
    """
    best: tuple[float, float, list[ImageFootprint]] = (0.0, 0.0, [])
    for footprint in find_footprints(butler):
        ra, dec = footprint.centre
        epochs = [f for f in covering(butler, ra, dec) if f.recreatable]
        if len(epochs) > len(best[2]):
            best = (ra, dec, epochs)
    if not best[2]:
        raise DataNotFoundError("no recreatable visit-detector")
    return best


def _visit_detector_rows(
    butler: Any,
    instrument: str,
    regions: list[Any],
    bands: set[str],
    visits: set[int],
    detectors: set[int],
) -> list[Any]:
    """Query the visit-detectors with a visit image, and their records."""
    clauses = ["instrument = inst"]
    bind: dict[str, Any] = {"inst": instrument}
    for name, values in (
        ("band", bands),
        ("visit", visits),
        ("detector", detectors),
    ):
        if values:
            clauses.append(f"{name} IN (sel_{name})")
            bind[f"sel_{name}"] = sorted(values)
    if len(regions) == 1:
        # The registry's spatial index narrows the candidates coarsely;
        # each is then tested exactly by the caller.
        clauses.append("visit_detector_region.region OVERLAPS sel_region")
        bind["sel_region"] = regions[0]
    with butler.query() as query:
        return list(
            query.join_dataset_search(VISIT_IMAGE)
            .where(" AND ".join(clauses), bind=bind)
            .data_ids(["visit", "detector"])
            .with_dimension_records()
        )


def _patch_regions(butler: Any, bands: set[str]) -> dict[str, list[Any]]:
    """Return the outer regions of the template patches, by band."""
    from lsst.daf.butler import MissingDatasetTypeError

    found: dict[str, list[Any]] = {band: [] for band in bands}
    if not bands:
        return found
    try:
        with butler.query() as query:
            refs = list(
                query.datasets(TEMPLATE_COADD, find_first=True)
                .where(
                    "band IN (sel_bands)", bind={"sel_bands": sorted(bands)}
                )
                .with_dimension_records()
            )
    except MissingDatasetTypeError:
        return found
    for ref in refs:
        found[str(ref.dataId["band"])].append(
            ref.dataId.records["patch"].region
        )
    return found


def _has_template(region: Any, patches: list[Any]) -> bool:
    """Whether a patch overlaps the detector grown by the warp border."""
    grown = grow_region(region, TEMPLATE_BORDER_PX * NOMINAL_PIXEL_SCALE)
    return any(not patch.isDisjointFrom(grown) for patch in patches)


def _footprint(row: Any, region: Any, recreatable: bool) -> ImageFootprint:
    """Return the footprint of one queried visit-detector."""
    from lsst.sphgeom import LonLat

    visit = row.records["visit"]
    timespan = getattr(visit, "timespan", None)
    t_min = t_max = None
    if timespan is not None and timespan.begin is not None:
        t_min = float(timespan.begin.tai.mjd)
        t_max = float(timespan.end.tai.mjd)
    vertices = tuple(
        (
            LonLat.longitudeOf(v).asDegrees() % 360.0,
            LonLat.latitudeOf(v).asDegrees(),
        )
        for v in region.getVertices()
    )
    exposure_time = getattr(visit, "exposure_time", None)
    return ImageFootprint(
        instrument=str(row["instrument"]),
        visit=int(row["visit"]),
        detector=int(row["detector"]),
        band=str(row["band"]),
        physical_filter=str(row["physical_filter"]),
        day_obs=int(row["day_obs"]),
        exposure_time=None if exposure_time is None else float(exposure_time),
        t_min=t_min,
        t_max=t_max,
        vertices=vertices,
        target_name=getattr(visit, "target_name", None),
        recreatable=recreatable,
    )


def _polygon(vertices: tuple[tuple[float, float], ...]) -> Any:
    """Return the sphgeom polygon of a footprint's outline."""
    from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

    return ConvexPolygon(
        [UnitVector3d(LonLat.fromDegrees(ra, dec)) for ra, dec in vertices]
    )


def _time_order(footprint: ImageFootprint) -> tuple[bool, float, int, int]:
    """Sort by time (untimed last), then by visit and detector."""
    untimed = footprint.t_min is None
    return (
        untimed,
        0.0 if footprint.t_min is None else footprint.t_min,
        footprint.visit,
        footprint.detector,
    )
