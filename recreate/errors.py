"""Errors raised by the science and data layers.

Codes and HTTP statuses live on the classes, never in constructor
arguments: an exception whose ``__init__`` takes extra arguments fails to
unpickle, and Dask ships worker exceptions by pickling them.
"""

from __future__ import annotations


class RecreateError(Exception):
    """Base class of every error this project raises on purpose."""

    code = "internal_error"
    status = 500
    #: The user can fix it (a 4xx): never retried, never alerted.
    user_facing = False
    #: Trying again later may succeed: the service retries these.
    transient = False


class InvalidRequestError(RecreateError):
    """The request names something malformed (a bad key, a bad option)."""

    code = "invalid_parameter"
    status = 422
    user_facing = True


class DataNotFoundError(RecreateError):
    """The request names data that the repository does not hold."""

    code = "data_not_found"
    status = 404
    user_facing = True


class NoOverlapError(RecreateError):
    """No template covers enough of the requested detector."""

    code = "no_template_overlap"
    status = 422
    user_facing = True


class FormatError(RecreateError):
    """A file is not in a layout this project can read."""

    code = "bad_format"
    status = 422
    user_facing = True


class SolutionMismatchError(RecreateError):
    """A stored solution is not of the request: recipe, inputs or code."""

    code = "solution_mismatch"
    status = 422
    user_facing = True


class ProcessingError(RecreateError):
    """Recreation failed for a reason that is not the user's."""

    code = "processing_failed"


class KernelFitError(ProcessingError):
    """The data admit no PSF-matching kernel (too few stars, no fit).

    The same inputs fail the same way every time: a 422, like a template
    that covers too little, not a fault of the service.
    """

    code = "kernel_fit_failed"
    status = 422
    user_facing = True


class UnreliableKernelError(RecreateError):
    """The kernel solution cannot be trusted: ill-conditioned or too thin.

    Raised by the any-survey mode (`recreate subtract`) unless the user
    asks for the difference anyway; Butler recreations keep v29's
    behaviour (a logged warning).
    """

    code = "unreliable_kernel"
    status = 422
    user_facing = True


class ComputeTimeoutError(RecreateError):
    """The computation did not finish in time; try again later."""

    code = "timeout"
    status = 503
    user_facing = True
    transient = True


class TransientError(RecreateError):
    """A failure that may pass: an input briefly unreadable, a lost peer."""

    code = "transient_failure"
    status = 503
    transient = True


class ServiceUnavailableError(RecreateError):
    """A part of the service (the Dask scheduler...) cannot be reached."""

    code = "service_unavailable"
    status = 503
    user_facing = True
    transient = True


class OverloadedError(RecreateError):
    """Too much work in flight: the client should retry later."""

    code = "overloaded"
    status = 503
    user_facing = True
    transient = True


class PayloadTooLargeError(RecreateError):
    """A request asks for more work than one request may."""

    code = "too_many_keys"
    status = 413
    user_facing = True


def error_class(code: str) -> type[RecreateError]:
    """Return the error class of a stable code (`RecreateError` if none).

    Parameters
    ----------
    code
        The ``code`` of a class defined in this module.
    """
    pending: list[type[RecreateError]] = [RecreateError]
    while pending:
        cls = pending.pop()
        if cls.code == code and cls.__module__ == __name__:
            return cls
        pending.extend(cls.__subclasses__())
    return RecreateError
