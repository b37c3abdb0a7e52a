"""Helpers shared by the Redis-backed classes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from cache.errors import CacheUnavailableError

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")

#: Compare-and-delete: remove a key only if it still holds the value the
#: caller read, so a value rewritten meanwhile by someone else survives.
UNLINK_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('UNLINK', KEYS[1])
end
return 0
"""


def describe(client: redis.Redis) -> str:
    """Name the server a client talks to, for error messages.

    The password is never included.
    """
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        where = f"unix://{kwargs['path']}"
    else:
        where = (
            f"redis://{kwargs.get('host', 'localhost')}:"
            f"{kwargs.get('port', 6379)}"
        )
    return f"{where}/{kwargs.get('db', 0)}"


def quick_retry() -> Retry:
    """Return the retry policy of a client that must fail fast.

    redis-py retries ten times with back-off by default: a dead server
    would hold every request (and a health probe) for seconds. Two quick
    retries ride out a blip and report a real outage within a fraction
    of a second.

    Returns
    -------
    Retry
        Two retries, with jittered exponential back-off (base 10 ms,
        capped at 200 ms).
    """
    return Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), retries=2)


def glob_escape(text: str) -> str:
    """Escape ``text`` for use inside a Redis MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def check_part(name: str, value: str) -> None:
    """Reject a key component that would make an ambiguous Redis key.

    Raises
    ------
    ValueError
        If ``value`` is empty or holds whitespace or control characters.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(f"{name} holds whitespace or control characters")


def check_positive(name: str, value: float) -> None:
    """Reject a lifetime (or size) that is not positive.

    Raises
    ------
    ValueError
        If ``value`` is not greater than zero; the message names it.
    """
    if not value > 0:
        raise ValueError(f"{name} must be positive, not {value}")


@contextmanager
def unavailable_on_error(client: redis.Redis, what: str) -> Iterator[None]:
    """Turn any Redis failure inside the block into CacheUnavailableError.

    Besides connection and timeout errors, this covers refusals such as
    OOM or READONLY: for the caller each means the same thing, "go on
    without the cache".
    """
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise CacheUnavailableError(
            f"{what}: Redis at {describe(client)} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def require_bytes(client: redis.Redis) -> None:
    """Reject a client that decodes replies: values here are binary.

    Raises
    ------
    ValueError
        If the client was made with ``decode_responses=True``.
    """
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the Redis client must not decode responses")


def as_bytes(value: object) -> bytes | None:
    """Narrow a reply of a non-decoding client to ``bytes | None``."""
    if value is None or isinstance(value, bytes):
        return value
    raise TypeError(f"expected a bytes reply, got {type(value).__name__}")


class ExpiringValues:
    """Base of the stores of small binary values with a lifetime.

    Checks the arguments every such store takes and keeps them, with the
    compare-and-delete script its ``drop`` uses.

    Parameters
    ----------
    redis_client
        Client of the blob-cache Redis (``decode_responses`` off).
    prefix
        Prefix of every key the store writes.
    ttl_seconds
        Lifetime of a value, renewed by every read.

    Raises
    ------
    ValueError
        If the prefix is not a key part, the client decodes replies or
        the lifetime is not positive.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "recreate",
        ttl_seconds: int = 30 * 86400,
    ) -> None:
        check_part("prefix", prefix)
        require_bytes(redis_client)
        check_positive("ttl_seconds", ttl_seconds)
        self._redis = redis_client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._unlink_if_equal = redis_client.register_script(UNLINK_IF_EQUAL)
