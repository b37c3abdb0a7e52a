"""HTTP routes of prewarm campaigns: create, list, inspect, cancel.

Campaigns live in the control store and cannot work without it: a
route that finds it down answers 503 (`cache.required`).

Who may do what (`workers.auth`): creating a campaign needs the
``write`` scope and spends the ``campaign`` budget; a user lists,
reads and cancels their own campaigns, an ``admin`` anyone's. A
campaign's counts say what is cached now (`workers.campaign_recovery`).
A finished campaign expires after ``campaign_ttl_seconds``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cache import CampaignRecord, CampaignRecords, required
from recreate.butler import MAX_DETECTOR, MAX_VISIT
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)
from recreate.formats import format_names
from recreate.selection import Selection
from workers.auth import ADMIN, WRITE, Identity, require_user
from workers.campaign_recovery import present_counts
from workers.campaigns import CampaignRunner
from workers.http_errors import ErrorModel, ForbiddenError, public_text
from workers.limits import rate_limit

if TYPE_CHECKING:
    # Services import this router's module (through the app): no cycle
    # at run time.
    from workers.services import Services

#: The store a campaign route cannot work without.
CONTROL_STORE = "the control store"

router = APIRouter(prefix="/api/v1/campaigns")

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorModel, "description": "Unknown campaign."},
    413: {
        "model": ErrorModel,
        "description": "More keys than one campaign may hold, or a body "
        "over the limit.",
    },
    422: {"model": ErrorModel, "description": "Malformed request."},
    503: {
        "model": ErrorModel,
        "description": "The control store (Redis) is down.",
    },
}


class KeyModel(BaseModel):
    """One (visit, detector) key."""

    model_config = ConfigDict(extra="forbid")

    visit: int = Field(ge=0, lt=MAX_VISIT)
    detector: int = Field(ge=0, lt=MAX_DETECTOR)


class CampaignRequest(BaseModel):
    """A campaign: keys, or a selection resolved through the Butler."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    keys: list[KeyModel] | None = Field(
        None, description="Explicit keys (give this or selection)."
    )
    selection: dict[str, Any] | None = Field(
        None,
        description="visits, visit_range, day_obs_range, band, detectors, "
        "cone {ra, dec, radius} (degrees), instrument.",
    )
    priority: int = Field(
        0,
        ge=-5,
        le=5,
        description="Order among campaigns; always below interactive work.",
    )
    instrument: str | None = None
    format: str | None = Field(
        None, description=f"Output format: {', '.join(format_names())}."
    )
    solutions_only: bool = Field(
        default=False,
        description="Store the keys' solutions (tens of KB each), from "
        "which any region renders, instead of their products.",
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, name: str | None) -> str | None:
        """Accept only a format of the registry."""
        if name is not None and name not in format_names():
            msg = f"unknown format {name!r}; choose one of {format_names()}"
            raise ValueError(msg)
        return name


class CampaignCreated(BaseModel):
    """Where to follow a new campaign."""

    id: str
    url: str
    total: int


class CampaignModel(BaseModel):
    """A campaign's state, counts, failures, throughput and ETA."""

    id: str
    name: str
    owner: str | None = Field(description="Who created it.")
    state: str = Field(description="queued, running, done or cancelled.")
    priority: int
    counts: dict[str, int] = Field(
        description="total, already_cached, queued, running, done, "
        "failed, cancelled, missing. done (recreated here) and "
        "already_cached (found cached) count products in the cache now; "
        "missing counts those made but gone since (evicted): a resumed "
        "campaign makes them again."
    )
    failed: list[dict[str, Any]] = Field(
        description="Failed keys with their error code and message."
    )
    selection: dict[str, Any] | None
    solutions_only: bool = False
    created: float
    updated: float
    started: float | None
    finished: float | None
    throughput_per_minute: float | None
    eta_seconds: float | None


def _services(request: Request) -> Services:
    """Return the app's services."""
    services: Services = request.app.state.services
    return services


def _runner(request: Request) -> CampaignRunner:
    """Return the campaign runner, or 503 when there is no control store."""
    runner = _services(request).campaigns
    if runner is None:
        raise ServiceUnavailableError(
            "campaigns need the control store (Redis), which is not set up"
        )
    return runner


def _known(campaign_id: str) -> str:
    """Return a well-formed campaign id, or 404 naming the bad one."""
    if not re.fullmatch(r"[0-9a-f]{16}", campaign_id):
        raise DataNotFoundError(f"no campaign {campaign_id!r}")
    return campaign_id


def _model(
    record: CampaignRecord, products: dict[int, str], services: Services
) -> CampaignModel:
    """Return the API model of a stored campaign, counted as of now.

    The failed keys' messages are what a client may read of them.
    """
    fields = {
        **record.__dict__,
        "counts": present_counts(record, products, services.cache),
        "failed": [
            {**failure, "message": public_text(failure)}
            for failure in record.failed
        ],
    }
    return CampaignModel(**fields)


def _visible(record: CampaignRecord, who: Identity) -> CampaignRecord:
    """Return a campaign its user (or an admin) may see; else 403."""
    if who.may(ADMIN) or record.owner == who.user:
        return record
    raise ForbiddenError(
        f"campaign {record.id} belongs to another user; only its owner "
        "or an admin may see or cancel it"
    )


async def _in_store[T](
    store: CampaignRecords, call: Callable[[CampaignRecords], T]
) -> T:
    """Run a campaign store call off the loop; 503 when Redis is down."""
    with required(CONTROL_STORE):
        return await asyncio.to_thread(call, store)


@router.post(
    "",
    summary="Start a prewarm campaign",
    description="Recreate and cache many keys in the background, at a "
    "priority below interactive requests and throttled so they never wait "
    "for more than one task. Keys already cached are counted and skipped. "
    "With solutions_only, store the keys' solutions instead.",
    status_code=201,
    response_model=CampaignCreated,
    responses=_ERRORS,
    operation_id="create_campaign",
)
async def create_campaign(
    request: Request,
    body: CampaignRequest,
    who: Annotated[
        Identity, Depends(rate_limit("campaign", require_user(WRITE)))
    ],
) -> JSONResponse:
    """Create a campaign and start it."""
    runner = _runner(request)
    services = _services(request)
    limit = services.settings.campaign_max_keys
    keys, selection = await _resolve_keys(services, body, limit)
    campaign_id = await _in_store(
        runner.store,
        lambda store: store.create(
            body.name,
            keys,
            priority=body.priority,
            instrument=body.instrument or services.settings.instrument,
            output_format=body.format,
            selection=selection,
            solutions_only=body.solutions_only,
            owner=who.user,
        ),
    )
    runner.launch(campaign_id)
    url = str(request.url_for("get_campaign", campaign_id=campaign_id))
    return JSONResponse(
        CampaignCreated(id=campaign_id, url=url, total=len(keys)).model_dump(),
        status_code=201,
        headers={"Location": url},
    )


async def _resolve_keys(
    services: Services, body: CampaignRequest, limit: int
) -> tuple[list[tuple[int, int]], dict[str, Any] | None]:
    """Return the campaign's keys (deduplicated) and its selection."""
    if (body.keys is None) == (body.selection is None):
        raise InvalidRequestError(
            "give either 'keys' or 'selection' (exactly one of them)"
        )
    if body.keys is not None:
        if len(body.keys) > limit:
            raise PayloadTooLargeError(
                f"{len(body.keys)} keys; a campaign holds at most {limit}"
            )
        keys = list(dict.fromkeys((k.visit, k.detector) for k in body.keys))
        if not keys:
            raise InvalidRequestError("'keys' is empty")
        return keys, None
    raw = body.selection or {}
    if body.instrument and "instrument" not in raw:
        raw = {"instrument": body.instrument, **raw}
    selection = Selection.from_dict(raw)
    keys = await services.select_keys(selection, limit)
    if not keys:
        raise InvalidRequestError(
            f"the selection {selection.to_dict()} matches no visit image"
        )
    return keys, selection.to_dict()


@router.get(
    "",
    summary="List campaigns",
    description="The caller's campaigns (an admin's: every one), newest "
    "first. Finished campaigns expire after a while.",
    response_model=list[CampaignModel],
    responses={503: _ERRORS[503]},
    operation_id="list_campaigns",
)
async def list_campaigns(
    request: Request, who: Annotated[Identity, Depends(require_user())]
) -> list[CampaignModel]:
    """Return the campaigns the caller may see."""
    owner = None if who.may(ADMIN) else who.user
    found = await _in_store(
        _runner(request).store,
        lambda s: [(r, s.products(r.id)) for r in s.all(owner)],
    )
    services = _services(request)
    return await asyncio.to_thread(
        lambda: [_model(r, p, services) for r, p in found]
    )


@router.get(
    "/{campaign_id}",
    summary="Get a campaign",
    description="State, counts, failed keys, throughput and ETA.",
    response_model=CampaignModel,
    responses={404: _ERRORS[404], 503: _ERRORS[503]},
    operation_id="get_campaign",
)
async def get_campaign(
    request: Request,
    campaign_id: str,
    who: Annotated[Identity, Depends(require_user())],
) -> CampaignModel:
    """Return one campaign, or 404 naming the id."""
    known = _known(campaign_id)
    store = _runner(request).store
    record = await _in_store(store, lambda s: s.get(known))
    if record is None:
        raise DataNotFoundError(f"no campaign {campaign_id!r}")
    _visible(record, who)
    products = await _in_store(store, lambda s: s.products(known))
    services = _services(request)
    return await asyncio.to_thread(_model, record, products, services)


@router.delete(
    "/{campaign_id}",
    summary="Cancel a campaign",
    description="Cancels every key not started yet; keys already running "
    "finish (Dask never interrupts a task) and still fill the cache. "
    "Only its owner or an admin may.",
    response_model=CampaignModel,
    responses={404: _ERRORS[404], 503: _ERRORS[503]},
    operation_id="cancel_campaign",
)
async def cancel_campaign(
    request: Request,
    campaign_id: str,
    who: Annotated[Identity, Depends(require_user(WRITE))],
) -> CampaignModel:
    """Cancel what has not started; return the campaign."""
    known = _known(campaign_id)
    store = _runner(request).store
    record = await _in_store(store, lambda s: s.get(known))
    if record is None:
        raise DataNotFoundError(f"no campaign {campaign_id!r}")
    _visible(record, who)
    cancelled, products = await _in_store(store, lambda s: _cancel(s, known))
    services = _services(request)
    return await asyncio.to_thread(_model, cancelled, products, services)


def _cancel(
    store: CampaignRecords, campaign_id: str
) -> tuple[CampaignRecord, dict[int, str]]:
    """Cancel a campaign's queued keys; return it and its products."""
    store.cancel(campaign_id)
    record = store.get(campaign_id)
    if record is None:
        raise DataNotFoundError(f"no campaign {campaign_id!r}")
    return record, store.products(campaign_id)
