"""Turn the product service's answers into HTTP responses.

A hit or a freshly computed product streams with its Content-Length and
ETag known from the manifest before the first byte; the recipe travels
in ``X-Recreate-*`` headers; a degraded answer (computed, not cached:
Redis is down) says so in ``X-Recreate-Degraded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from workers.models import JobModel
from workers.product_answers import (
    Answer,
    NotModified,
    Pending,
    ProductInfo,
    Served,
)

#: Manifest metadata sent back as headers.
_RECIPE_HEADERS = {
    "recipe": "X-Recreate-Recipe",
    "recipe_hash": "X-Recreate-Recipe-Hash",
    "config_hash": "X-Recreate-Config-Hash",
    "code_version": "X-Recreate-Code-Version",
    "planes_sha256": "X-Recreate-Planes-Sha256",
    "format": "X-Recreate-Format",
    "recompute_seconds": "X-Recreate-Recompute-Seconds",
    "solution": "X-Recreate-Solution",
    "region_seconds": "X-Recreate-Region-Seconds",
    "rendered_from": "X-Recreate-Rendered-From",
}


def if_none_match(request: Request) -> frozenset[str]:
    """Return the entity tags of If-None-Match, unquoted."""
    header = request.headers.get("if-none-match", "")
    tags = {part.strip() for part in header.split(",") if part.strip()}
    return frozenset(tag.removeprefix("W/").strip('"') for tag in tags)


def respond(
    request: Request, answer: Answer, retry_after_seconds: int
) -> Response:
    """Return the response for one answer of the product service."""
    if isinstance(answer, NotModified):
        return Response(status_code=304, headers=_etag(answer.sha256))
    if isinstance(answer, Pending):
        return _accepted(request, answer, retry_after_seconds)
    if isinstance(answer, Served):
        return _product(answer)
    msg = f"no response for a {type(answer).__name__}"
    raise TypeError(msg)


def _product(answer: Served) -> Response:
    """Return the product: streamed, as bytes, or headers alone."""
    headers = _product_headers(answer.info, answer.cache_state)
    if answer.degraded:
        headers["X-Recreate-Degraded"] = "cache-unavailable"
    media_type = answer.info.output_format.media_type
    if isinstance(answer.body, bytes):
        return Response(answer.body, media_type=media_type, headers=headers)
    if answer.body is None:
        # HEAD: the headers of the GET, Content-Length included.
        return Response(media_type=media_type, headers=headers)
    return StreamingResponse(
        answer.body, media_type=media_type, headers=headers
    )


def _product_headers(info: ProductInfo, cache_state: str) -> dict[str, str]:
    """Return ETag, X-Cache, the file name and the recipe headers."""
    meta = info.meta
    fmt = info.output_format
    stem = (
        f"diffim_{meta.get('instrument', 'x')}_{meta.get('visit', 0)}_"
        f"{meta.get('detector', 0)}"
    )
    # A preview is shown where it is linked (an <img>, a browser tab);
    # a FITS file is saved.
    disposition = "attachment"
    if fmt.media_type.startswith("image/"):
        disposition, stem = "inline", f"{stem}_{fmt.name}"
    return {
        **_etag(info.sha256),
        "X-Cache": cache_state,
        "Cache-Control": "no-cache",
        "Content-Disposition": f"{disposition}; filename={stem}{fmt.suffix}",
        "Content-Length": str(info.size),
        **_recipe_headers(meta),
    }


def _etag(sha256: str) -> dict[str, str]:
    return {"ETag": f'"{sha256}"'}


def _recipe_headers(meta: Mapping[str, Any]) -> dict[str, str]:
    """Return the recipe as X-Recreate-* headers."""
    headers = {
        header: str(meta[name])
        for name, header in _RECIPE_HEADERS.items()
        if name in meta
    }
    if "input_ids" in meta:
        headers["X-Recreate-Inputs"] = ",".join(meta["input_ids"])
    return headers


def _accepted(
    request: Request, answer: Pending, retry_after_seconds: int
) -> Response:
    """Answer 202: the task goes on; poll the job, then GET again."""
    job_url = str(request.url_for("get_job", job_id=answer.job_id))
    return JSONResponse(
        JobModel(**answer.record).model_dump(),
        status_code=202,
        headers={
            "Location": job_url,
            "Retry-After": str(retry_after_seconds),
        },
    )
