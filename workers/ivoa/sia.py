"""SIAv2 at ``/api/sia``: ObsCore rows for every recreatable difference image.

``/api/sia/query`` (GET and POST) answers the constraints of SIA 2.0
(POS, BAND, TIME, POL, FOV, SPATRES, EXPTIME, ID, COLLECTION, FACILITY,
INSTRUMENT, DPTYPE, CALIB, TARGET, FORMAT, MAXREC, RESPONSEFORMAT; the
same parameter repeated is OR, different ones AND) with one ObsCore row
per recreatable visit-detector, found from the Butler registry's regions
(`recreate.discovery`): ``calib_level`` 3, subtype
``lsst.difference_image``, and an ``access_url`` to the image's DataLink
document, as DP1 served its stored difference images. The rows end with
a DataLink service descriptor so that clients follow rows without
guessing. VOSI capabilities and availability sit beside the query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from recreate.discovery import BAND_WAVELENGTHS, ImageFootprint
from workers.ivoa.answers import VOTABLE_FAILURES, in_votable, votable_answer
from workers.ivoa.ids import format_id, parse_id, quoted
from workers.ivoa.params import (
    NotFoundFaultError,
    Params,
    UsageError,
    integer,
    interval,
    pos,
    read_params,
    single,
)
from workers.ivoa.vosi import (
    Capability,
    add_get_and_post,
    add_vosi_routes,
    base_url,
)
from workers.ivoa.votable import (
    Column,
    Param,
    ServiceDescriptor,
    results_document,
)

if TYPE_CHECKING:
    from workers.services import Services
    from workers.settings import Settings

PREFIX = "/api/sia"
DATALINK_PATH = "/api/datalink/links"
DATALINK_FORMAT = "application/x-votable+xml;content=datalink"
FACILITY = "Rubin:Simonyi"
SUBTYPE = "lsst.difference_image"

#: RESPONSEFORMAT values that mean a VOTable (the only format served).
VOTABLE_FORMATS = frozenset(
    {
        "votable",
        "application/x-votable+xml",
        "application/x-votable+xml;serialization=tabledata",
        "text/xml",
    }
)

router = APIRouter()

_S = "char"
COLUMNS = (
    Column("dataproduct_type", _S, "*", ucd="meta.code.class"),
    Column("dataproduct_subtype", _S, "*", ucd="meta.code.class"),
    Column("calib_level", "short", ucd="meta.code;obs.calib"),
    Column("obs_collection", _S, "*", ucd="meta.id"),
    Column("obs_id", _S, "*", ucd="meta.id"),
    Column(
        "obs_publisher_did",
        _S,
        "*",
        ucd="meta.ref.ivoid",
        id="obs_publisher_did",
    ),
    Column("access_url", _S, "*", ucd="meta.ref.url"),
    Column("access_format", _S, "*", ucd="meta.code.mime"),
    Column(
        "access_estsize",
        "long",
        unit="kbyte",
        ucd="phys.size;meta.file",
        null="-1",
    ),
    Column("target_name", _S, "*", ucd="meta.id;src"),
    Column("s_ra", "double", unit="deg", ucd="pos.eq.ra"),
    Column("s_dec", "double", unit="deg", ucd="pos.eq.dec"),
    Column("s_fov", "double", unit="deg", ucd="phys.angSize;instr.fov"),
    Column(
        "s_region",
        "double",
        "*",
        unit="deg",
        xtype="polygon",
        ucd="pos.outline;obs.field",
    ),
    Column("s_resolution", "double", unit="arcsec", ucd="pos.angResolution"),
    Column(
        "t_min", "double", unit="d", ucd="time.start;obs.exposure", xtype="mjd"
    ),
    Column(
        "t_max", "double", unit="d", ucd="time.end;obs.exposure", xtype="mjd"
    ),
    Column("t_exptime", "double", unit="s", ucd="time.duration;obs.exposure"),
    Column("t_resolution", "double", unit="s", ucd="time.resolution"),
    Column("em_min", "double", unit="m", ucd="em.wl;stat.min"),
    Column("em_max", "double", unit="m", ucd="em.wl;stat.max"),
    Column("o_ucd", _S, "*", ucd="meta.ucd"),
    Column("pol_states", _S, "*", ucd="meta.code;phys.polarization"),
    Column("facility_name", _S, "*", ucd="meta.id;instr.tel"),
    Column("instrument_name", _S, "*", ucd="meta.id;instr"),
    Column("lsst_visit", "long", ucd="meta.id;obs"),
    Column("lsst_detector", "int", ucd="meta.id;instr.det"),
    Column("lsst_band", _S, "*", ucd="instr.bandpass"),
    Column("lsst_physical_filter", _S, "*", ucd="meta.id;instr.filter"),
)


def obscore_row(
    footprint: ImageFootprint, settings: Settings, base: str
) -> dict[str, Any]:
    """Return the ObsCore row of one recreatable visit-detector."""
    identifier = format_id(settings, footprint.visit, footprint.detector)
    ra, dec = footprint.centre
    em = BAND_WAVELENGTHS.get(footprint.band, (None, None))
    return {
        "dataproduct_type": "image",
        "dataproduct_subtype": SUBTYPE,
        "calib_level": 3,
        "obs_collection": settings.repository_label(),
        "obs_id": str(footprint.visit),
        "obs_publisher_did": identifier,
        "access_url": f"{base}{DATALINK_PATH}?ID={quoted(identifier)}",
        "access_format": DATALINK_FORMAT,
        "access_estsize": None,
        "target_name": footprint.target_name,
        "s_ra": ra,
        "s_dec": dec,
        "s_fov": footprint.field_of_view,
        "s_region": [c for vertex in footprint.vertices for c in vertex],
        "s_resolution": None,
        "t_min": footprint.t_min,
        "t_max": footprint.t_max,
        "t_exptime": footprint.exposure_time,
        "t_resolution": footprint.exposure_time,
        "em_min": em[0],
        "em_max": em[1],
        "o_ucd": "phot.flux.density",
        "pol_states": None,
        "facility_name": FACILITY,
        "instrument_name": footprint.instrument,
        "lsst_visit": footprint.visit,
        "lsst_detector": footprint.detector,
        "lsst_band": footprint.band,
        "lsst_physical_filter": footprint.physical_filter,
    }


@dataclass
class SiaQuery:
    """A validated SIA query: what the registry narrows, what rows test."""

    shapes: list[Any] = field(default_factory=list)
    visits: set[int] = field(default_factory=set)
    detectors: set[int] = field(default_factory=set)
    tests: list[Callable[[dict[str, Any]], bool]] = field(default_factory=list)
    maxrec: int = 0
    nothing: bool = False

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether a row meets every constraint."""
        return all(test(row) for test in self.tests)


#: Interval constraints: parameter -> (low column, high column).
_INTERVALS = {
    "BAND": ("em_min", "em_max"),
    "TIME": ("t_min", "t_max"),
    "EXPTIME": ("t_exptime", "t_exptime"),
    "FOV": ("s_fov", "s_fov"),
    "SPATRES": ("s_resolution", "s_resolution"),
    "TIMERES": ("t_resolution", "t_resolution"),
    "SPECRP": ("em_res_power", "em_res_power"),
}

#: Exact-value constraints: parameter -> column.
_VALUES = {
    "COLLECTION": "obs_collection",
    "FACILITY": "facility_name",
    "INSTRUMENT": "instrument_name",
    "DPTYPE": "dataproduct_type",
    "TARGET": "target_name",
    "FORMAT": "access_format",
    "POL": "pol_states",
}


def parse_query(params: Params, settings: Settings) -> SiaQuery:
    """Return the validated query of a request's parameters.

    Raises
    ------
    UsageError
        If a value is malformed or RESPONSEFORMAT is not a VOTable.
    """
    response_format = single(params, "RESPONSEFORMAT")
    if response_format is not None and (
        response_format.strip().lower().replace(" ", "") not in VOTABLE_FORMATS
    ):
        raise UsageError(
            f"RESPONSEFORMAT {response_format!r} is not served; ask for "
            "application/x-votable+xml"
        )
    query = SiaQuery(
        shapes=[pos("POS", value) for value in params.get("POS", [])],
        maxrec=settings.sia_max_records,
    )
    maxrec = single(params, "MAXREC")
    if maxrec is not None:
        query.maxrec = min(integer("MAXREC", maxrec), settings.sia_max_records)
    for name, (low, high) in _INTERVALS.items():
        if name in params:
            bounds = [interval(name, value) for value in params[name]]
            query.tests.append(_overlaps(low, high, bounds))
    for name, column in _VALUES.items():
        if name in params:
            query.tests.append(_one_of(column, set(params[name])))
    if "CALIB" in params:
        levels = {integer("CALIB", value) for value in params["CALIB"]}
        query.tests.append(lambda row: row["calib_level"] in levels)
    if "ID" in params:
        _narrow_by_ids(query, params["ID"], settings)
    return query


def _overlaps(
    low: str, high: str, bounds: Sequence[tuple[float, float]]
) -> Callable[[dict[str, Any]], bool]:
    """Return a test: the row's [low, high] meets any of the intervals."""

    def test(row: dict[str, Any]) -> bool:
        lo, hi = row.get(low), row.get(high)
        if lo is None or hi is None:
            return False
        return any(lo <= b_hi and b_lo <= hi for b_lo, b_hi in bounds)

    return test


def _one_of(column: str, values: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Return a test: the row's column is one of the values."""
    return lambda row: row.get(column) in values


def _narrow_by_ids(
    query: SiaQuery, raw: list[str], settings: Settings
) -> None:
    """Keep only the rows of some identifiers (unknown ones match none)."""
    wanted: set[str] = set()
    for value in raw:
        try:
            image = parse_id(settings, value)
        except NotFoundFaultError:
            continue
        query.visits.add(image.visit)
        query.detectors.add(image.detector)
        wanted.add(format_id(settings, image.visit, image.detector))
    if not wanted:
        query.nothing = True
    query.tests.append(lambda row: row["obs_publisher_did"] in wanted)


@in_votable
async def answer_query(request: Request) -> Response:
    """Answer one SIA query; see the route's description."""
    services: Services = request.app.state.services
    settings = services.settings
    query = parse_query(await read_params(request), settings)
    footprints: list[ImageFootprint] = []
    if not query.nothing:
        footprints = await asyncio.to_thread(
            services.butler.find_footprints,
            shapes=query.shapes,
            instrument=settings.instrument,
            visits=query.visits,
            detectors=query.detectors,
        )
    base = base_url(request)
    rows = [
        row
        for footprint in footprints
        if query.matches(row := obscore_row(footprint, settings, base))
    ]
    overflow = len(rows) > query.maxrec
    return votable_answer(
        results_document(
            COLUMNS,
            rows[: query.maxrec],
            overflow=overflow,
            descriptors=[datalink_descriptor(base)],
        )
    )


def datalink_descriptor(base: str) -> ServiceDescriptor:
    """Return the descriptor of the DataLink service for SIA's rows."""
    return ServiceDescriptor(
        id="datalink",
        standard_id="ivo://ivoa.net/std/DataLink#links-1.1",
        access_url=f"{base}{DATALINK_PATH}",
        inputs=[
            Param("ID", ref="obs_publisher_did", ucd="meta.id;meta.main"),
        ],
        description="Links of a difference image: the image, a preview, "
        "its inputs, and a cutout service.",
    )


def _capabilities() -> list[Capability]:
    return [
        Capability("ivo://ivoa.net/std/SIA#query-2.0", "/query", "base", "2.0")
    ]


_QUERY_DESCRIPTION = (
    "SIA 2.0: ObsCore rows (a VOTable) of the recreatable difference "
    "images that meet the constraints. Repeating a parameter ORs its "
    "values; different parameters AND. Errors are VOTables with "
    "QUERY_STATUS ERROR."
)

# Rubin's RSP budget: 70 SIA queries per user and 15 minutes.
add_get_and_post(
    router,
    f"{PREFIX}/query",
    answer_query,
    operation="sia_query",
    summary="SIA 2.0 query",
    description=_QUERY_DESCRIPTION,
    responses={
        200: {"content": {"application/x-votable+xml": {}}},
        **VOTABLE_FAILURES,
    },
    budget="sia",
)
add_vosi_routes(router, PREFIX, "SIA", _capabilities)
