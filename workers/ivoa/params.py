"""DALI requests: parameters, shapes, intervals, and the protocol errors.

Every IVOA face reads its parameters here, once, the same way for GET
and POST (DALI 1.1 section 3): names are case-insensitive, values are
not, and a parameter may repeat. POST bodies are form-encoded. Shapes
follow DALI's xtypes (``circle``, ``range``, ``polygon``), in degrees;
SIA and SODA's ``POS`` prefixes them with the shape's name.

Errors carry DALI's prefixes (``UsageError``, ``NotFoundFaultError``, ...)
and an HTTP status on the class, like the project's own errors; each
face writes them in its protocol's format (text/plain for SODA and UWS,
a VOTable for SIA and DataLink). `protocol_error` maps the project's
errors onto them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from fastapi import Request

from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    NoOverlapError,
    PayloadTooLargeError,
    RecreateError,
)
from recreate.skyshapes import (
    SkyCircle,
    SkyPolygon,
    SkyRange,
    SkyShape,
    check_shape,
)
from workers.http_errors import RateLimitedError, public_message
from workers.middleware import request_id

log = logging.getLogger(__name__)

#: Parameters by upper-cased name, each with every value given.
Params = Mapping[str, list[str]]

#: Largest form body read (parameters, not data).
MAX_FORM_BYTES = 1024 * 1024


class ProtocolError(Exception):
    """An error answered in an IVOA protocol's own format."""

    prefix = "Error"
    status = 500


class UsageError(ProtocolError):
    """The request is malformed: a bad value, a missing parameter."""

    prefix = "UsageError"
    status = 400


class MultiValuedParamError(ProtocolError):
    """A parameter given several times where one value is allowed."""

    prefix = "MultiValuedParamNotSupported"
    status = 400


class NotFoundFaultError(ProtocolError):
    """The request names data this service does not have."""

    prefix = "NotFoundFault"
    status = 404


class TransientFaultError(ProtocolError):
    """A failure that may pass: ask again later (Retry-After)."""

    prefix = "TransientFault"
    status = 503


class RateLimitedFaultError(TransientFaultError):
    """A budget of the caller's is spent: ask again after Retry-After.

    DALI has no prefix of its own for it: a transient fault, with the
    429 and the seconds until the budget refills.
    """

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        """Keep the message and the seconds to wait."""
        super().__init__(message)
        self.retry_after = retry_after


class FatalFaultError(ProtocolError):
    """The service failed for a reason that is not the user's."""

    prefix = "FatalFault"
    status = 500


#: The project's errors a user can act on, and their protocol errors.
_USER_ERRORS: tuple[tuple[type[RecreateError], type[ProtocolError]], ...] = (
    (InvalidRequestError, UsageError),
    (PayloadTooLargeError, UsageError),
    (DataNotFoundError, NotFoundFaultError),
    (NoOverlapError, NotFoundFaultError),
)


def protocol_error(error: Exception) -> ProtocolError:
    """Return the protocol error of any error a face caught.

    An unexpected error is logged here, with its traceback, and answered
    as a `FatalFaultError` that names only its type.
    """
    if isinstance(error, ProtocolError):
        return error
    if isinstance(error, RateLimitedError):
        return RateLimitedFaultError(public_message(error), error.retry_after)
    # What a client reads is `public_message`'s: a server failure's
    # detail (paths, addresses) stays in the log, under the request id.
    for kind, answer in _USER_ERRORS:
        if isinstance(error, kind):
            return answer(public_message(error))
    if isinstance(error, RecreateError):
        if error.transient or error.status == 503:
            log.warning("IVOA request [%s]: %s", request_id(), error)
            return TransientFaultError(public_message(error))
        log.error("IVOA request failed [%s]: %s", request_id(), error)
        return FatalFaultError(public_message(error))
    log.error(
        "unexpected error in an IVOA request [%s]",
        request_id(),
        exc_info=error,
    )
    return FatalFaultError("internal error; it has been logged")


async def read_params(request: Request) -> dict[str, list[str]]:
    """Return a request's parameters, from the query and a form body.

    Raises
    ------
    UsageError
        If a POST body is not form-encoded or is too large.
    """
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise UsageError(
                f"the request body holds {len(body)} bytes; "
                f"parameters may take at most {MAX_FORM_BYTES}"
            )
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if body and kind not in ("application/x-www-form-urlencoded", ""):
            raise UsageError(f"send parameters form-encoded, not as {kind!r}")
        try:
            items += parse_qsl(
                body.decode(), keep_blank_values=True, strict_parsing=False
            )
        except UnicodeDecodeError:
            raise UsageError("the request body is not UTF-8") from None
    params: dict[str, list[str]] = {}
    for name, value in items:
        params.setdefault(name.upper(), []).append(value)
    return params


def single(params: Params, name: str) -> str | None:
    """Return a parameter given at most once (None if absent).

    Raises
    ------
    MultiValuedParamError
        If it is given more than once.
    """
    values = params.get(name, [])
    if len(values) > 1:
        raise MultiValuedParamError(
            f"{name} may be given once; got {len(values)} values"
        )
    return values[0] if values else None


def numbers(name: str, text: str, count: int | None = None) -> list[float]:
    """Return the numbers of a space-separated value.

    ``count``, when given, is how many there must be.

    Raises
    ------
    UsageError
        If a word is not a number, or there are not ``count`` of them.
    """
    words = text.split()
    try:
        values = [float(word) for word in words]
    except ValueError:
        raise UsageError(f"{name} must be numbers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise UsageError(
            f"{name} must be {count} numbers, got {len(values)}: {text!r}"
        )
    return values


def circle(name: str, text: str) -> SkyCircle:
    """Return a DALI circle: ``ra dec radius`` (degrees)."""
    ra, dec, radius = numbers(name, text, 3)
    return _checked(name, SkyCircle(ra, dec, radius))


def sky_range(name: str, text: str) -> SkyRange:
    """Return a DALI range: ``ra_min ra_max dec_min dec_max``."""
    values = numbers(name, text, 4)
    return _checked(name, SkyRange(*values))


def polygon(name: str, text: str) -> SkyPolygon:
    """Return a DALI polygon: ``ra1 dec1 ra2 dec2 ...`` (3+ vertices)."""
    values = numbers(name, text)
    if len(values) % 2 or len(values) < 6:
        raise UsageError(
            f"{name} must be 3 or more (ra, dec) pairs, got "
            f"{len(values)} numbers: {text!r}"
        )
    vertices = tuple(
        (values[i], values[i + 1]) for i in range(0, len(values), 2)
    )
    return _checked(name, SkyPolygon(vertices))


def pos(name: str, text: str) -> SkyShape:
    """Return a POS value: ``CIRCLE ...``, ``RANGE ...`` or ``POLYGON ...``.

    Raises
    ------
    UsageError
        If the shape is unknown or its numbers are malformed.
    """
    kind, _, rest = text.strip().partition(" ")
    parsers: dict[str, Callable[[str, str], SkyShape]] = {
        "CIRCLE": circle,
        "RANGE": sky_range,
        "POLYGON": polygon,
    }
    parser = parsers.get(kind.upper())
    if parser is None:
        raise UsageError(
            f"{name} must start with CIRCLE, RANGE or POLYGON, got {text!r}"
        )
    return parser(name, rest)


def _checked[S: (SkyCircle, SkyRange, SkyPolygon)](name: str, shape: S) -> S:
    """Return a shape if it is well formed; a UsageError naming it if not."""
    try:
        check_shape(shape)
    except InvalidRequestError as error:
        raise UsageError(f"{name}: {error}") from None
    return shape


def interval(name: str, text: str) -> tuple[float, float]:
    """Return a DALI interval ``lo hi`` (``-Inf``/``+Inf`` open ends).

    One number is the interval of that value alone.

    Raises
    ------
    UsageError
        If the numbers are malformed, NaN, or ``lo`` exceeds ``hi``.
    """
    values = numbers(name, text)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or any(math.isnan(v) for v in values):
        raise UsageError(f"{name} must be an interval 'lo hi', got {text!r}")
    lo, hi = values
    if lo > hi:
        raise UsageError(f"{name} lower bound {lo:g} exceeds upper {hi:g}")
    return lo, hi


def integer(name: str, text: str, minimum: int = 0) -> int:
    """Return an integer parameter, at least ``minimum``."""
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}")
    return value
