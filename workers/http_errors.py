"""One JSON shape for every error of the HTTP API.

FastAPI's own 422 shape, with a stable code in ``type`` and a message
naming the bad value::

    {"detail": [{"loc": ["path", "visit"], "msg": "...", "type": "..."}]}

Project errors carry their code and status on the class; validation
errors become ``invalid_parameter``; anything unexpected is a logged 500
with no traceback in the body. A 503 carries Retry-After.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from recreate.errors import InvalidRequestError, RecreateError

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    """One error: where, what, and its stable code."""

    loc: list[str] = Field(description="Where the bad value is.")
    msg: str = Field(description="What is wrong, naming the value.")
    type: str = Field(description="Stable error code.")


class ErrorModel(BaseModel):
    """The body of every error response."""

    detail: list[ErrorDetail]


class ParameterError(InvalidRequestError):
    """A bad request parameter, with where it was found."""

    loc: tuple[str, ...] = ("query",)


def bad_parameter(where: str, name: str, msg: str) -> ParameterError:
    """Return a 422 error located at ``where``/``name``."""
    error = ParameterError(msg)
    error.loc = (where, name)
    return error


def parse_id(name: str, raw: str, limit: int) -> int:
    """Return a non-negative integer path id, or a 422 naming the value."""
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(
            "path", name, f"{name} must be an integer, got {raw!r}"
        ) from None
    if value < 0:
        raise bad_parameter(
            "path", name, f"{name} must not be negative, got {value}"
        )
    if value >= limit:
        raise bad_parameter(
            "path",
            name,
            f"{name} {value} is out of range (0 to {limit - 1})",
        )
    return value


def _error_response(
    status: int, code: str, msg: str, loc: tuple[str, ...], retry: int
) -> JSONResponse:
    """Return the JSON error response (with Retry-After on a 503)."""
    headers = {"Retry-After": str(retry)} if status == 503 else None
    body = ErrorModel(detail=[ErrorDetail(loc=list(loc), msg=msg, type=code)])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON shape; never a traceback."""

    def retry_after(request: Request) -> int:
        services = getattr(request.app.state, "services", None)
        return services.settings.retry_after_seconds if services else 10

    @app.exception_handler(RecreateError)
    async def recreate_error(
        request: Request, error: RecreateError
    ) -> JSONResponse:
        if not error.user_facing and not error.transient:
            log.error("request %s failed: %s", request.url.path, error)
        loc = getattr(error, "loc", ("request",))
        return _error_response(
            error.status, error.code, str(error), loc, retry_after(request)
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(
        request: Request, error: RequestValidationError
    ) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        loc = tuple(str(part) for part in first.get("loc", ("request",)))
        msg = f"{first.get('msg', 'invalid request')}: {loc[-1]}"
        return _error_response(
            422, "invalid_parameter", msg, loc, retry_after(request)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error on %s", request.url.path, exc_info=error)
        return _error_response(
            500,
            "internal_error",
            f"internal error ({type(error).__name__}); it has been logged",
            ("request",),
            retry_after(request),
        )
