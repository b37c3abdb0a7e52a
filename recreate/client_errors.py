"""The project's errors from the HTTP API's answers, for the client.

The API answers every error as ``{"detail": [{"msg", "type"}]}`` with a
stable code in ``type``; the client raises the class of that code.
"""

from __future__ import annotations

import httpx

from recreate import errors

__all__ = ["ERRORS_BY_CODE", "error_from_response"]

#: Error classes by the stable code the API sends in ``type``.
ERRORS_BY_CODE: dict[str, type[errors.RecreateError]] = {
    cls.code: cls
    for cls in (
        errors.InvalidRequestError,
        errors.DataNotFoundError,
        errors.NoOverlapError,
        errors.KernelFitError,
        errors.FormatError,
        errors.ProcessingError,
        errors.ComputeTimeoutError,
        errors.TransientError,
        errors.ServiceUnavailableError,
        errors.OverloadedError,
        errors.PayloadTooLargeError,
    )
}


def error_from_response(response: httpx.Response) -> errors.RecreateError:
    """Return the error a failed response describes.

    An answer without the documented body is an `InvalidRequestError`
    (4xx) or a `ProcessingError` (5xx) quoting its start.
    """
    try:
        detail = response.json()["detail"][0]
        code, message = detail["type"], detail["msg"]
    except (ValueError, KeyError, IndexError, TypeError):
        code = "internal_error"
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = (
            errors.InvalidRequestError
            if 400 <= response.status_code < 500
            else errors.ProcessingError
        )
    return cls(message)
