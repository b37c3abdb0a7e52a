"""Errors raised by the Redis layer.

Like every project error, these carry their code and HTTP status on the
class and take only a message: Dask ships worker exceptions by pickling
them, and an ``__init__`` with extra arguments would not unpickle.
"""

from __future__ import annotations

from recreate.errors import DataNotFoundError, RecreateError


class CacheUnavailableError(RecreateError):
    """Redis cannot be reached, or refuses to serve the request.

    Transient: the service goes on without the cache (degraded).
    """

    code = "cache_unavailable"
    status = 503
    user_facing = False


class CorruptValueError(RecreateError):
    """A stored value failed its checksum or does not parse."""

    code = "corrupt_cache_value"
    status = 500
    user_facing = False


class JobNotFoundError(DataNotFoundError):
    """No job record exists under the given id (never made, or expired)."""

    code = "job_not_found"
    status = 404
    user_facing = True


class RedisServerError(RecreateError):
    """A local ``redis-server`` process could not be started."""

    code = "redis_server_failed"
    status = 500
    user_facing = False


class RedisServerNotFoundError(RedisServerError, FileNotFoundError):
    """No ``redis-server`` executable was found.

    Also a :class:`FileNotFoundError`, so callers that probe for optional
    executables the usual way catch it.
    """

    code = "redis_server_not_found"
