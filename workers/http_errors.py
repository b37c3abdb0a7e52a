"""One JSON shape for every error of the HTTP API, and nothing internal.

FastAPI's own 422 shape, with a stable code in ``type`` and a message
naming the bad value::

    {"detail": [{"loc": ["path", "visit"], "msg": "...", "type": "..."}]}

Every error takes this shape: the project's errors (their code and
status on the class), request validation (``invalid_parameter``), the
framework's own 404, 405 and 400 (``not_found``, ``method_not_allowed``,
``bad_request``), and anything unexpected (a 500 ``internal_error``).

What a client never sees: server paths, Redis or scheduler addresses,
exception texts of the parts behind the API. A 5xx says what kind of
failure it was, in a fixed sentence per code, and carries the request
id (``X-Request-Id``, `workers.middleware`); the detail goes to the log
under that id. A 4xx names the client's bad value, with any path or
URL in it masked. 503 and 429 carry Retry-After.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from recreate.errors import InvalidRequestError, RecreateError, error_class
from workers.middleware import REQUEST_ID_HEADER, request_id

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


class UnauthorizedError(RecreateError):
    """No identity, or a bearer token that is not valid."""

    code = "unauthorized"
    status = 401
    user_facing = True


class ForbiddenError(RecreateError):
    """An identity without the scope (or ownership) an action needs."""

    code = "forbidden"
    status = 403
    user_facing = True


class RateLimitedError(RecreateError):
    """An identity spent a budget; Retry-After says when it refills."""

    code = "rate_limited"
    status = 429
    user_facing = True
    #: Seconds until the budget refills (set by whoever raises it).
    retry_after: int = 1


class BodyTooLargeError(RecreateError):
    """A request body over the limit, refused before it was read."""

    code = "payload_too_large"
    status = 413
    user_facing = True


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


#: What a client reads for each server-side failure: the kind of failure
#: and what to do, never its internals (they are in the log).
_SAFE_MESSAGES = {
    "service_unavailable": "a part of the service is unavailable; try "
    "again later",
    "transient_failure": "the recreation failed for a reason that may "
    "pass; try again later",
    "timeout": "the computation did not finish in time; try again later",
    "cache_unavailable": "the cache is unavailable; try again later",
    "processing_failed": "the recreation failed; it has been logged",
    "internal_error": "internal error; it has been logged",
}
#: Server-side errors whose own message is safe and useful to a client.
_PUBLIC_5XX = frozenset({"overloaded"})

#: Framework statuses and their codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_PATH = re.compile(r"(?<![\w/.])/(?:[^\s'\"/]+/)+[^\s'\",)]*")


def masked(message: str) -> str:
    """Return a message with URLs and absolute paths masked.

    Parameters
    ----------
    message
        An error message that may quote a server path or address.

    Returns
    -------
    str
        The message, with ``<url>`` and ``<path>`` in their place.
    """
    return _PATH.sub("<path>", _URL.sub("<url>", message))


def public_message(error: RecreateError) -> str:
    """Return what a client may read of an error.

    A client's own mistake (4xx) is named, masked; a server-side
    failure is one fixed sentence per code.
    """
    if error.status < 500 or error.code in _PUBLIC_5XX:
        text = str(error)
        return text if isinstance(error, ParameterError) else masked(text)
    return _SAFE_MESSAGES.get(error.code, _SAFE_MESSAGES["internal_error"])


def public_text(failure: Mapping[str, str]) -> str:
    """Return what a client may read of a recorded ``{code, message}``.

    For the failures a campaign keeps: the same rule as `public_message`.
    """
    code = failure.get("code") or "internal_error"
    cls = error_class(code)
    if cls.status < 500 or code in _PUBLIC_5XX:
        return masked(failure.get("message") or "")
    return _SAFE_MESSAGES.get(code, _SAFE_MESSAGES["internal_error"])


def error_body(
    status: int,
    code: str,
    msg: str,
    loc: tuple[str, ...] = ("request",),
    *,
    headers: Mapping[str, str] | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    """Return the JSON error response (with Retry-After on 503 and 429).

    Parameters
    ----------
    status, code, msg, loc
        The HTTP status and the one error detail.
    headers
        Extra response headers (the framework's Allow on a 405...).
    retry_after
        Seconds for Retry-After; sent on a 503 or 429 only.
    """
    out = dict(headers or {})
    if status in (429, 503):
        out["Retry-After"] = str(max(1, retry_after or 1))
    body = ErrorModel(detail=[ErrorDetail(loc=list(loc), msg=msg, type=code)])
    return JSONResponse(body.model_dump(), status_code=status, headers=out)


def _log_failure(request: Request, error: RecreateError) -> None:
    """Log a server-side failure's detail under the request id."""
    where = f"{request.method} {request.url.path} [{request_id()}]"
    if error.status < 500:
        return
    if error.transient or error.code in _PUBLIC_5XX:
        log.warning("%s: %s: %s", where, error.code, error)
    else:
        log.error("%s: %s: %s", where, error.code, error)


def add_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON shape; never internals."""

    def retry_after(request: Request) -> int:
        services = getattr(request.app.state, "services", None)
        return services.settings.retry_after_seconds if services else 10

    @app.exception_handler(RecreateError)
    async def recreate_error(
        request: Request, error: RecreateError
    ) -> JSONResponse:
        _log_failure(request, error)
        wait = (
            error.retry_after
            if isinstance(error, RateLimitedError)
            else retry_after(request)
        )
        return error_body(
            error.status,
            error.code,
            public_message(error),
            getattr(error, "loc", ("request",)),
            retry_after=wait,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(
        _: Request, error: RequestValidationError
    ) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        loc = tuple(str(part) for part in first.get("loc", ("request",)))
        msg = f"{first.get('msg', 'invalid request')}: {loc[-1]}"
        if first.get("type") == "json_invalid":
            why = first.get("ctx", {}).get("error", "")
            msg = f"the body is not valid JSON ({why}, at {loc[-1]})"
            loc = ("body",)
        return error_body(422, "invalid_parameter", msg, loc)

    @app.exception_handler(HTTPException)
    async def framework_error(
        request: Request, error: HTTPException
    ) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        if error.status_code == 404:
            msg = f"no route {request.method} {request.url.path}"
        elif error.status_code == 405:
            msg = f"{request.method} is not allowed on {request.url.path}"
        else:
            msg = masked(str(error.detail))
        return error_body(
            error.status_code,
            code,
            msg,
            headers=error.headers,
            retry_after=retry_after(request),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error(
            "%s %s [%s]: unexpected error",
            request.method,
            request.url.path,
            request_id(),
            exc_info=error,
        )
        # Answered outside the middleware that sets the header.
        return error_body(
            500,
            "internal_error",
            _SAFE_MESSAGES["internal_error"],
            headers={REQUEST_ID_HEADER: request_id()},
        )
