"""Where virtual ``difference_image`` datasets live: a Butler's view.

``recreate register`` (`recreate.virtual`) records one URL per
recreatable visit-detector in a Butler repository::

    /api/butler/{format}/{visit}/{detector}.fits

A GET is the product route's: the difference image in that format,
from the cache or recreated. A HEAD says only whether the image can be
made (the Butler lookup, no recreation): Butler's ingest and existence
checks ask it, and must not recreate a detector each. Errors are the
API's JSON errors.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request, Response

from recreate.butler import MAX_DETECTOR, MAX_VISIT
from recreate.errors import DataNotFoundError
from recreate.formats import FORMATS
from workers.http_errors import ErrorModel, bad_parameter
from workers.limits import rate_limit
from workers.models import ProductRequest
from workers.responses import if_none_match, respond

if TYPE_CHECKING:
    from workers.services import Services

PREFIX = "/api/butler"

router = APIRouter()


def _request(name: str, visit: int, detector: str) -> ProductRequest:
    """Return the product request of a dataset location, or 404/422."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise DataNotFoundError(f"no datasets in format {name!r}")
    if not detector.endswith(".fits"):
        raise DataNotFoundError(f"no dataset {detector!r}: names end in .fits")
    try:
        number = int(detector.removesuffix(".fits"))
    except ValueError:
        raise bad_parameter(
            "path",
            "detector",
            f"detector must be an integer, got {detector!r}",
        ) from None
    if not (0 <= visit < MAX_VISIT and 0 <= number < MAX_DETECTOR):
        raise bad_parameter(
            "path", "visit", f"visit {visit} detector {number} is out of range"
        )
    return ProductRequest(visit, number, None, fmt)


async def get_dataset(
    request: Request, output: str, visit: int, detector: str
) -> Response:
    """Serve a virtual dataset (GET) or say it can be made (HEAD)."""
    services: Services = request.app.state.services
    product = _request(output, visit, detector)
    if request.method == "HEAD":
        spec = await services.products.resolve(product)
        manifest = await asyncio.to_thread(
            services.cache.head, spec.product_key
        )
        headers = {}
        if manifest is not None:
            headers = {
                "Content-Length": str(manifest.size),
                "ETag": f'"{manifest.sha256}"',
            }
        return Response(
            media_type=product.output_format.media_type, headers=headers
        )
    answer = await services.products.get(
        product, etags=if_none_match(request), url=str(request.url)
    )
    return respond(request, answer, services.settings.retry_after_seconds)


for _method in ("GET", "HEAD"):
    router.add_api_route(
        f"{PREFIX}/{{output}}/{{visit}}/{{detector}}",
        get_dataset,
        methods=[_method],
        summary="A virtual difference_image dataset (Butler access)",
        description="Where `recreate register` points a Butler's "
        "difference_image datasets. GET: the product, as the product route "
        "serves it. HEAD: 200 when it can be recreated (no recreation; "
        "Content-Length and ETag only when it is cached).",
        response_class=Response,
        responses={
            404: {"model": ErrorModel, "description": "Unknown data."},
            422: {"model": ErrorModel, "description": "A bad parameter."},
            503: {"model": ErrorModel, "description": "Retry-After."},
        },
        operation_id=f"butler_dataset_{_method.lower()}",
        dependencies=[Depends(rate_limit("request"))],
    )
