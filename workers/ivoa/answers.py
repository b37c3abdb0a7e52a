"""Protocol errors and documents as HTTP responses, one way per format.

SIA and DataLink answer errors as VOTables (DALI 1.1 section 5.2); SODA
and UWS as text/plain starting with the error's prefix. A transient
fault carries Retry-After.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response

from workers.ivoa.params import (
    RateLimitedFaultError,
    TransientFaultError,
    protocol_error,
)
from workers.ivoa.votable import VOTABLE_MEDIA_TYPE, error_document

#: Seconds a client is told to wait after a transient fault.
RETRY_AFTER_SECONDS = 10


def documented_failures(media_type: str) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI answers of a face's failures in ``media_type``.

    UsageError and MultiValuedParamNotSupported are 400, NotFoundFault
    404, TransientFault 503 with Retry-After (FatalFault, a 500, is a bug
    and left undocumented).
    """
    content: dict[str, Any] = {"content": {media_type: {}}}
    return {
        400: {"description": "UsageError: a bad parameter.", **content},
        404: {"description": "NotFoundFault: unknown data or job.", **content},
        503: {
            "description": "TransientFault: try again after Retry-After.",
            **content,
        },
    }


#: The failures of SIA and DataLink (VOTable error documents).
VOTABLE_FAILURES = documented_failures(VOTABLE_MEDIA_TYPE)
#: The failures of SODA and UWS (text/plain with a prefix).
TEXT_FAILURES = documented_failures("text/plain")


def votable_answer(document: str, status: int = 200) -> Response:
    """Return a VOTable document."""
    return Response(
        document, status_code=status, media_type=VOTABLE_MEDIA_TYPE
    )


def votable_failure(error: Exception) -> Response:
    """Return any error as a VOTable error document."""
    problem = protocol_error(error)
    return Response(
        error_document(f"{problem.prefix}: {problem}"),
        status_code=problem.status,
        media_type=VOTABLE_MEDIA_TYPE,
        headers=_retry(problem),
    )


def text_failure(error: Exception) -> Response:
    """Return any error as text/plain with its DALI prefix."""
    problem = protocol_error(error)
    return Response(
        f"{problem.prefix}: {problem}\n",
        status_code=problem.status,
        media_type="text/plain",
        headers=_retry(problem),
    )


Handler = Callable[..., Awaitable[Response]]


def _answering(
    failure: Callable[[Exception], Response],
) -> Callable[[Handler], Handler]:
    """Return a decorator: a handler's every failure becomes ``failure``."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def answered(*args: object, **kwargs: object) -> Response:
            try:
                return await handler(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the protocol's own error format answers every failure
                return failure(error)

        return answered

    return decorate


#: A route whose every failure is a VOTable error (SIA, DataLink).
in_votable = _answering(votable_failure)
#: A route whose every failure is text/plain with a prefix (SODA, UWS).
in_text = _answering(text_failure)


def _retry(problem: Exception) -> dict[str, str] | None:
    """Return Retry-After for a transient fault (a budget's own wait)."""
    if isinstance(problem, RateLimitedFaultError):
        return {"Retry-After": str(problem.retry_after)}
    if isinstance(problem, TransientFaultError):
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return None
