"""DataLink at ``/api/datalink/links``: what can be done with an image.

For each identifier (``ID``, repeated; or ``VISIT``/``DETECTOR`` pairs)
the links document lists, as DataLink 1.1 rows:

* ``#this``: the full recreated FITS (the product route);
* ``#preview``: a PNG of the difference;
* ``#progenitor``: the visit image and each template patch the
  recreation reads, by Butler dataset id, run and URI;
* ``#cutout``: the SODA service, described by a service descriptor
  pyvo follows (sync and async);
* ``#derivation``: the stored solution the image is rendered from, when
  there is one (`stored_solution_links`).

An identifier that cannot be resolved is one row with its error
(``NotFoundFault: ...``), and the others are still answered.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from recreate.cutouts import DETAILS, EXPOSURE
from workers.ivoa.answers import VOTABLE_FAILURES, in_votable, votable_answer
from workers.ivoa.ids import ids_of, parse_id
from workers.ivoa.params import (
    Params,
    UsageError,
    protocol_error,
    read_params,
    single,
)
from workers.ivoa.sia import VOTABLE_FORMATS
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
from workers.models import TaskSpec

if TYPE_CHECKING:
    from workers.services import Services

PREFIX = "/api/datalink"
CUTOUT_SYNC_PATH = "/api/cutout/sync"
CUTOUT_JOBS_PATH = "/api/cutout/jobs"
SYNC_DESCRIPTOR = "cutout-sync"
ASYNC_DESCRIPTOR = "cutout-async"
FITS = "application/fits"
PNG = "image/png"
#: The formats the SODA service answers in.
CUTOUT_FORMATS = (FITS, PNG)

router = APIRouter()

_S = "char"
COLUMNS = (
    Column("ID", _S, "*", ucd="meta.id;meta.main", id="linkid"),
    Column("access_url", _S, "*", ucd="meta.ref.url"),
    Column("service_def", _S, "*", ucd="meta.ref"),
    Column("error_message", _S, "*", ucd="meta.code.error"),
    Column("semantics", _S, "*", ucd="meta.code"),
    Column("description", _S, "*", ucd="meta.note"),
    Column("content_type", _S, "*", ucd="meta.code.mime"),
    Column(
        "content_length",
        "long",
        unit="byte",
        ucd="phys.size;meta.file",
        null="-1",
    ),
    Column("content_qualifier", _S, "*", ucd="meta.code.class"),
    Column("local_semantics", _S, "*", ucd="meta.code"),
)


def _row(identifier: str, semantics: str, **values: Any) -> dict[str, Any]:
    """Return one links row."""
    return {"ID": identifier, "semantics": semantics, **values}


def error_row(identifier: str, error: Exception) -> dict[str, Any]:
    """Return the row of an identifier that could not be resolved."""
    problem = protocol_error(error)
    return _row(
        identifier, "#this", error_message=f"{problem.prefix}: {problem}"
    )


def image_links(
    identifier: str,
    spec: TaskSpec,
    base: str,
    cached_size: int | None,
    solution_size: int | None = None,
) -> list[dict[str, Any]]:
    """Return the links of one resolved difference image.

    ``cached_size`` is the full product's size when it is cached,
    ``solution_size`` its solution's when that is stored.
    """
    product = f"{base}/api/v1/diffims/{spec.visit}/{spec.detector}"
    rows = [
        _row(
            identifier,
            "#this",
            access_url=product,
            description="The difference image, recreated on demand (DP1 "
            "layout, with its solved kernel)",
            content_type=FITS,
            content_length=cached_size,
            content_qualifier="#image",
        ),
        _row(
            identifier,
            "#preview",
            access_url=f"{product}?format=png",
            description="A PNG preview of the difference image",
            content_type=PNG,
            content_qualifier="#image",
        ),
    ]
    for handle in (spec.inputs.visit_image, *spec.inputs.templates):
        data_id = ", ".join(f"{k}={v}" for k, v in handle.data_id.items())
        rows.append(
            _row(
                identifier,
                "#progenitor",
                access_url=handle.uri,
                description=f"{handle.dataset_type} {handle.dataset_id} "
                f"(run {handle.run}; {data_id})",
                content_type=FITS,
                content_qualifier="#image",
                local_semantics=handle.dataset_type,
            )
        )
    rows.append(
        _row(
            identifier,
            "#cutout",
            service_def=SYNC_DESCRIPTOR,
            description="Cut a region (CIRCLE, POLYGON or POS) of the "
            "difference image with SODA",
            content_type=FITS,
            content_qualifier="#image",
        )
    )
    rows.extend(stored_solution_links(identifier, spec, base, solution_size))
    return rows


def stored_solution_links(
    identifier: str, spec: TaskSpec, base: str, size: int | None
) -> list[dict[str, Any]]:
    """Return the ``#derivation`` link of a stored solution, if any.

    ``size`` is the stored solution's size; None: none is stored, and
    there is no row (the route would solve it).
    """
    if size is None:
        return []
    return [
        _row(
            identifier,
            "#derivation",
            access_url=f"{base}/api/v1/solutions/{spec.visit}/"
            f"{spec.detector}?recipe={spec.config.recipe}",
            description="The stored solution the difference image is "
            "rendered from (matching kernel, variance factors, "
            "decorrelation kernel, inputs; FITS)",
            content_type=FITS,
            content_length=size,
            local_semantics="solution",
        )
    ]


def cutout_descriptors(base: str) -> list[ServiceDescriptor]:
    """Return the SODA service descriptors (sync, then async)."""
    inputs = [
        Param("ID", ref="linkid", ucd="meta.id;meta.main"),
        Param(
            "CIRCLE",
            "double",
            "3",
            unit="deg",
            xtype="circle",
            ucd="phys.angArea;obs",
            description="ra dec radius",
        ),
        Param(
            "POLYGON",
            "double",
            "*",
            unit="deg",
            xtype="polygon",
            ucd="phys.angArea;obs",
            description="ra1 dec1 ra2 dec2 ...",
        ),
        Param(
            "POS",
            ucd="phys.angArea;obs",
            description="CIRCLE, RANGE or POLYGON and its numbers",
        ),
        Param(
            "CUTOUTDETAIL",
            value=EXPOSURE,
            options=DETAILS,
            description="Image; MaskedImage (image, mask, variance); "
            "Exposure (the product's whole layout)",
        ),
        Param("RESPONSEFORMAT", value=FITS, options=CUTOUT_FORMATS),
    ]
    return [
        ServiceDescriptor(
            id=SYNC_DESCRIPTOR,
            standard_id="ivo://ivoa.net/std/SODA#sync-1.0",
            access_url=f"{base}{CUTOUT_SYNC_PATH}",
            inputs=inputs,
            description="Cutouts of the difference image, synchronously",
        ),
        ServiceDescriptor(
            id=ASYNC_DESCRIPTOR,
            standard_id="ivo://ivoa.net/std/SODA#async-1.0",
            access_url=f"{base}{CUTOUT_JOBS_PATH}",
            inputs=inputs,
            description="Cutouts of the difference image, as UWS jobs",
        ),
    ]


async def _links_of(
    services: Services, base: str, identifier: str
) -> list[dict[str, Any]]:
    """Return the rows of one identifier (one error row if it fails)."""
    try:
        image = parse_id(services.settings, identifier)
        spec = await services.products.resolve(image.request())
        manifest = await asyncio.to_thread(
            services.cache.head, spec.product_key
        )
        solution = await asyncio.to_thread(
            services.cache.solution, spec.recipe_hash
        )
    except Exception as error:  # noqa: BLE001 - an ID's error is its row
        return [error_row(identifier, error)]
    size = None if manifest is None else manifest.size
    solution_size = None if solution is None else len(solution[0])
    return image_links(identifier, spec, base, size, solution_size)


def _check_format(params: Params) -> None:
    """Accept only VOTable response formats."""
    response_format = single(params, "RESPONSEFORMAT")
    if response_format is None:
        return
    normalised = response_format.strip().lower().replace(" ", "")
    if normalised.split(";content=")[0] not in VOTABLE_FORMATS:
        raise UsageError(
            f"RESPONSEFORMAT {response_format!r} is not served; ask for "
            "application/x-votable+xml;content=datalink"
        )


@in_votable
async def answer_links(request: Request) -> Response:
    """Answer one links request; see the route's description."""
    services: Services = request.app.state.services
    params = await read_params(request)
    _check_format(params)
    identifiers = ids_of(services.settings, params)
    limit = services.settings.ivoa_max_ids
    if len(identifiers) > limit:
        raise UsageError(
            f"{len(identifiers)} IDs in one request; at most {limit}"
        )
    base = base_url(request)
    rows = [
        row
        for identifier in identifiers
        for row in await _links_of(services, base, identifier)
    ]
    return votable_answer(
        results_document(COLUMNS, rows, descriptors=cutout_descriptors(base))
    )


_DESCRIPTION = (
    "DataLink 1.1 links of difference images named by ID (repeatable) or "
    "by VISIT and DETECTOR pairs: #this (the FITS), #preview (PNG), "
    "#progenitor (visit image and template patches), #cutout (a SODA "
    "service descriptor) and #derivation (a stored solution, when one "
    "exists). An ID that fails is one row with its error_message."
)

add_get_and_post(
    router,
    f"{PREFIX}/links",
    answer_links,
    operation="datalink_links",
    summary="DataLink links",
    description=_DESCRIPTION,
    responses={
        200: {"content": {"application/x-votable+xml": {}}},
        **VOTABLE_FAILURES,
    },
    budget="request",
)
add_vosi_routes(
    router,
    PREFIX,
    "DataLink",
    lambda: [Capability("ivo://ivoa.net/std/DataLink#links-1.1", "/links")],
)
