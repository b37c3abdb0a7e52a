"""A short-lived index from a request to its product key.

Deriving a product key means asking the Butler for the request's inputs
(a dozen registry queries); serving a hit needs only the key. The index
remembers ``request -> product key`` in the control store for a few
seconds to minutes (``P:recipe:{request_key}``, a TTL on every entry),
so a hit on a recently resolved request never opens the Butler.

What keeps it honest: the request key a caller builds includes the code
version and the configuration hash (a new version never reads an old
entry), entries are written only after a successful resolution (errors
are never remembered), and a new template is seen once its entry
expires, within the TTL. A miss always resolves afresh.
"""

from __future__ import annotations

import redis

from cache._redis import (
    as_bytes,
    check_part,
    check_positive,
    unavailable_on_error,
)

__all__ = ["RecipeIndex"]


class RecipeIndex:
    """Request -> product key, for ``ttl_seconds``, in the control Redis.

    Parameters
    ----------
    redis_client
        Client of the control Redis.
    ttl_seconds
        How long an entry answers: the longest a new template can go
        unseen by a request whose old product is still cached.
    prefix
        Prefix of every key this index writes.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        ttl_seconds: float,
        prefix: str = "recreate",
    ) -> None:
        check_part("prefix", prefix)
        check_positive("ttl_seconds", ttl_seconds)
        self._redis = redis_client
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._prefix = prefix

    def lookup(self, request_key: str) -> str | None:
        """Return the product key remembered for a request, if any.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        with unavailable_on_error(self._redis, f"reading {request_key}"):
            value = as_bytes(self._redis.get(self._key(request_key)))
        return None if value is None else value.decode()

    def remember(self, request_key: str, product_key: str) -> None:
        """Remember a request's product key for the index's TTL.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        check_part("product_key", product_key)
        with unavailable_on_error(self._redis, f"storing {request_key}"):
            self._redis.set(
                self._key(request_key), product_key, px=self._ttl_ms
            )

    def _key(self, request_key: str) -> str:
        check_part("request_key", request_key)
        return f"{self._prefix}:recipe:{request_key}"
