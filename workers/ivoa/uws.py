"""SODA asynchronous cutouts at ``/api/cutout/jobs``, as UWS 1.1 jobs.

``POST /api/cutout/jobs`` with SODA's parameters (several IDs and
stencils allowed: one result per combination, in the order ID-major)
creates a PENDING job (``PHASE=RUN`` starts it at once) and answers 303
to it. Everything is checked before the job is recorded: a bad request
is a text/plain error and leaves nothing behind. Then the UWS resources:
the job (``WAIT``/``PHASE`` block), ``phase`` (``RUN``, ``ABORT``),
``results`` and each result, ``error``, ``parameters``,
``executionduration``, ``destruction``, ``owner``, ``quote``; DELETE
(or ``ACTION=DELETE``) removes it. The runs and the records are
`workers.ivoa.jobs`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from workers.ivoa.answers import TEXT_FAILURES, in_text
from workers.ivoa.jobs import (
    FINAL,
    PENDING,
    PHASES,
    JobRunner,
    Progress,
    Work,
)
from workers.ivoa.params import (
    NotFoundFaultError,
    UsageError,
    read_params,
    single,
)
from workers.ivoa.soda import CutoutOrder, cut, parse_orders
from workers.ivoa.uws_xml import (
    NAMESPACES,
    XML_HEAD,
    field_text,
    job_document,
    parameters_xml,
    results_xml,
)
from workers.ivoa.vosi import base_url
from workers.limits import rate_limit, spender
from workers.product_answers import Pending
from workers.regions import RegionService

if TYPE_CHECKING:
    from workers.services import Services

PREFIX = "/api/cutout/jobs"
KIND = "soda"
XML = "text/xml"

#: How long a run waits before asking again for a product still being
#: recreated past the sync timeout.
PENDING_RETRY_SECONDS = 2.0

router = APIRouter()


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def soda_work(
    regions: RegionService,
    orders: list[CutoutOrder],
    concurrency: int,
    before_solve: Callable[[], Awaitable[None]] | None = None,
) -> Work:
    """Return the work of a SODA job: every order, a few at a time.

    ``before_solve`` is awaited before each solve an order starts (the
    ``recompute`` budget of whoever ran the job).
    """

    async def work(progress: Progress) -> None:
        progress.total = len(orders)
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, order: CutoutOrder) -> None:
            async with gate:
                data = await cut_waiting(regions, order, before_solve)
                await progress.keep(str(index), data, order.response_format)
                await progress.advance()

        await asyncio.gather(*(one(i, o) for i, o in enumerate(orders)))
        # Kept as they finished; listed in the order of the combinations.
        progress.results.sort(key=lambda entry: int(entry["id"]))

    return work


async def cut_waiting(
    regions: RegionService,
    order: CutoutOrder,
    before_solve: Callable[[], Awaitable[None]] | None = None,
) -> bytes | None:
    """Make one cutout, waiting out a recreation past the sync timeout.

    The job has its own execution duration, which bounds the wait.
    """
    while True:
        made = await cut(regions, order, before_solve)
        if not isinstance(made, Pending):
            return None if made is None else made.data
        await asyncio.sleep(PENDING_RETRY_SECONDS)


@in_text
async def create_job(request: Request) -> Response:
    """Create a SODA job; see the route's description."""
    services = _services(request)
    params = await read_params(request)
    orders = parse_orders(params, services.settings, sync=False)
    phase = (single(params, "PHASE") or "").upper()
    if phase not in ("", "RUN"):
        raise UsageError(f"PHASE {phase!r} at creation: only RUN")
    kept = {k: v for k, v in params.items() if k != "PHASE"}
    runner = services.async_jobs
    record = await runner.create(KIND, kept, run_id=single(params, "RUNID"))
    if phase == "RUN":
        await _run(
            services,
            runner,
            record["id"],
            orders,
            spender(request, "recompute"),
        )
    return RedirectResponse(_job_url(request, record["id"]), status_code=303)


async def _run(
    services: Services,
    runner: JobRunner,
    job_id: str,
    orders: list[CutoutOrder],
    before_solve: Callable[[], Awaitable[None]] | None,
) -> None:
    """Start a job's run (its solves charged by ``before_solve``)."""
    concurrency = services.settings.cutout_job_concurrency
    await runner.start(
        job_id,
        soda_work(services.regions, orders, concurrency, before_solve),
    )


def _job_url(request: Request, job_id: str) -> str:
    return base_url(request) + f"{PREFIX}/{job_id}"


async def _record(services: Services, job_id: str) -> dict[str, Any]:
    """Return a SODA job's record, or NotFoundFaultError naming it."""
    record = None
    if job_id.startswith(f"{KIND}-"):
        record = await services.async_jobs.get(job_id)
    if record is None:
        raise NotFoundFaultError(
            f"no cutout job {job_id!r} (unknown or expired)"
        )
    return record


@in_text
async def list_jobs(request: Request) -> Response:
    """List SODA jobs (optionally only some PHASEs)."""
    services = _services(request)
    params = await read_params(request)
    phases = {p.upper() for p in params.get("PHASE", [])}
    unknown = phases - set(PHASES)
    if unknown:
        raise UsageError(f"unknown PHASE {sorted(unknown)}")
    ids = await services.async_jobs.ids(KIND)
    records = [r for i in ids if (r := await services.async_jobs.get(i))]
    refs = "".join(
        f"<uws:jobref id={quoteattr(r['id'])} xlink:href="
        f"{quoteattr(_job_url(request, r['id']))}>"
        f"<uws:phase>{r['phase']}</uws:phase></uws:jobref>"
        for r in records
        if not phases or r["phase"] in phases
    )
    jobs = f'<uws:jobs {NAMESPACES} version="1.1">{refs}</uws:jobs>'
    return Response(f"{XML_HEAD}{jobs}\n", media_type=XML)


@in_text
async def get_job(request: Request, job_id: str) -> Response:
    """Return a job (blocking up to WAIT seconds while in PHASE)."""
    services = _services(request)
    params = await read_params(request)
    record = await _record(services, job_id)
    wait = single(params, "WAIT")
    if wait is not None:
        seconds = _wait_seconds(wait, services.settings.uws_max_wait_seconds)
        phase = (single(params, "PHASE") or "").upper() or None
        record = (
            await services.async_jobs.wait(job_id, phase, seconds) or record
        )
    return Response(
        job_document(_job_url(request, record["id"]), record), media_type=XML
    )


def _wait_seconds(raw: str, limit: float) -> float:
    """Return a WAIT in seconds (-1: as long as allowed)."""
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(
            f"WAIT must be a number of seconds, got {raw!r}"
        ) from None
    return limit if value < 0 else min(value, limit)


@in_text
async def post_job(request: Request, job_id: str) -> Response:
    """ACTION=DELETE on the job resource (for clients without DELETE)."""
    params = await read_params(request)
    action = (single(params, "ACTION") or "").upper()
    if action != "DELETE":
        raise UsageError(f"ACTION must be DELETE, got {action!r}")
    return await delete_job(request, job_id)


@in_text
async def delete_job(request: Request, job_id: str) -> Response:
    """Delete a job; 303 to the job list."""
    services = _services(request)
    await _record(services, job_id)
    await services.async_jobs.delete(job_id)
    url = base_url(request) + PREFIX
    return RedirectResponse(url, status_code=303)


@in_text
async def get_phase(request: Request, job_id: str) -> Response:
    """Return a job's phase as text."""
    record = await _record(_services(request), job_id)
    return Response(record["phase"], media_type="text/plain")


@in_text
async def post_phase(request: Request, job_id: str) -> Response:
    """PHASE=RUN starts a PENDING job; PHASE=ABORT stops it."""
    services = _services(request)
    params = await read_params(request)
    record = await _record(services, job_id)
    phase = (single(params, "PHASE") or "").upper()
    if phase == "RUN":
        if record["phase"] == PENDING:
            orders = parse_orders(
                record["parameters"], services.settings, sync=False
            )
            await _run(
                services,
                services.async_jobs,
                job_id,
                orders,
                spender(request, "recompute"),
            )
    elif phase == "ABORT":
        if record["phase"] not in FINAL:
            await services.async_jobs.abort(job_id)
    else:
        raise UsageError(f"PHASE must be RUN or ABORT, got {phase!r}")
    return RedirectResponse(_job_url(request, job_id), status_code=303)


@in_text
async def get_results(request: Request, job_id: str) -> Response:
    """Return a job's results list."""
    record = await _record(_services(request), job_id)
    body = results_xml(_job_url(request, record["id"]), record, root=True)
    return Response(f"{XML_HEAD}{body}\n", media_type=XML)


@in_text
async def get_result(
    request: Request, job_id: str, result_id: str
) -> Response:
    """Return one result's bytes (made again if the cache lost them)."""
    services = _services(request)
    record = await _record(services, job_id)
    entry = next(
        (r for r in record.get("results", []) if r["id"] == result_id),
        None,
    )
    if entry is None:
        raise NotFoundFaultError(f"job {job_id} has no result {result_id!r}")
    if entry["empty"]:
        return Response(status_code=204)
    data = await services.async_jobs.result(job_id, result_id)
    if data is None:
        orders = parse_orders(
            record["parameters"], services.settings, sync=False
        )
        data = await cut_waiting(services.regions, orders[int(result_id)])
    if data is None:
        return Response(status_code=204)
    return Response(data, media_type=entry["media_type"])


@in_text
async def get_error(request: Request, job_id: str) -> Response:
    """Return a failed job's error as text."""
    record = await _record(_services(request), job_id)
    if not record.get("error"):
        raise NotFoundFaultError(f"job {job_id} has no error")
    error = record["error"]
    return Response(
        f"{error['prefix']}: {error['message']}\n", media_type="text/plain"
    )


@in_text
async def get_parameters(request: Request, job_id: str) -> Response:
    """Return a job's parameters."""
    record = await _record(_services(request), job_id)
    body = parameters_xml(record["parameters"], root=True)
    return Response(f"{XML_HEAD}{body}\n", media_type=XML)


def _text_field(name: str) -> Any:
    """Return a handler answering one of a job's fields as text."""

    @in_text
    async def handler(request: Request, job_id: str) -> Response:
        record = await _record(_services(request), job_id)
        return Response(field_text(record, name), media_type="text/plain")

    return handler


# --------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------

_CREATE = (
    "Create a SODA cutout job (UWS 1.1) with SODA's parameters; several "
    "IDs and stencils give one result per combination (ID-major). "
    "PHASE=RUN starts it. 303 to the job. Errors are text/plain."
)


def _route(
    path: str, handler: Any, method: str, summary: str, op: str
) -> None:
    router.add_api_route(
        f"{PREFIX}{path}",
        handler,
        methods=[method],
        summary=summary,
        description=summary + " (UWS 1.1).",
        response_class=Response,
        responses=TEXT_FAILURES,
        operation_id=op,
    )


router.add_api_route(
    PREFIX,
    create_job,
    methods=["POST"],
    summary="Create a SODA cutout job",
    description=_CREATE,
    response_class=Response,
    status_code=303,
    responses=TEXT_FAILURES,
    operation_id="cutout_job_create",
    # A job of cutouts spends the cutout budget once.
    dependencies=[Depends(rate_limit("cutout"))],
)
_route("", list_jobs, "GET", "List SODA cutout jobs", "cutout_jobs_list")
_route("/{job_id}", get_job, "GET", "Get a SODA cutout job", "cutout_job_get")
_route(
    "/{job_id}",
    post_job,
    "POST",
    "Delete a job (ACTION=DELETE)",
    "cutout_job_post",
)
_route(
    "/{job_id}",
    delete_job,
    "DELETE",
    "Delete a SODA cutout job",
    "cutout_job_delete",
)
_route(
    "/{job_id}/phase",
    get_phase,
    "GET",
    "Get a job's phase",
    "cutout_job_phase",
)
_route(
    "/{job_id}/phase",
    post_phase,
    "POST",
    "Run or abort a job",
    "cutout_job_phase_post",
)
_route(
    "/{job_id}/results",
    get_results,
    "GET",
    "Get a job's results",
    "cutout_job_results",
)
_route(
    "/{job_id}/results/{result_id}",
    get_result,
    "GET",
    "Get one result of a job",
    "cutout_job_result",
)
_route(
    "/{job_id}/error",
    get_error,
    "GET",
    "Get a job's error",
    "cutout_job_error",
)
_route(
    "/{job_id}/parameters",
    get_parameters,
    "GET",
    "Get a job's parameters",
    "cutout_job_parameters",
)
for _name in ("executionduration", "destruction", "owner", "quote"):
    _route(
        f"/{{job_id}}/{_name}",
        _text_field(_name),
        "GET",
        f"Get a job's {_name}",
        f"cutout_job_{_name}",
    )
