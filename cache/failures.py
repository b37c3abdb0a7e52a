"""Deterministic failures, remembered for a while (a negative cache).

The same recipe fails the same way every time: a template that covers
too little of the detector, a kernel fit with too few stars. The
service remembers such a failure under the recipe's hash
(``P:failure:{recipe_hash}``, JSON ``{"code", "message"}``, with a TTL)
in the control store, and answers the next request for that recipe,
in any format, without running the pipeline again. Only failures that
are the data's (a 4xx: the class says it is the user's, and not
transient) are remembered; a new template or code version is a new
recipe, so never a stale failure.
"""

from __future__ import annotations

import json

import redis

from cache._redis import (
    as_bytes,
    check_part,
    check_positive,
    unavailable_on_error,
)

__all__ = ["FailureStore"]


class FailureStore:
    """Recipe hash -> the failure it ends in, for ``ttl_seconds``.

    Parameters
    ----------
    redis_client
        Client of the control Redis.
    ttl_seconds
        How long a failure is remembered.
    prefix
        Prefix of every key this store writes.
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

    def remember(self, recipe_hash: str, code: str, message: str) -> None:
        """Remember that a recipe fails with ``code`` and ``message``.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        body = json.dumps({"code": code, "message": message})
        with unavailable_on_error(self._redis, f"storing {recipe_hash}"):
            self._redis.set(self._key(recipe_hash), body, px=self._ttl_ms)

    def recall(self, recipe_hash: str) -> dict[str, str] | None:
        """Return the failure remembered for a recipe, or None.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        with unavailable_on_error(self._redis, f"reading {recipe_hash}"):
            raw = as_bytes(self._redis.get(self._key(recipe_hash)))
        if raw is None:
            return None
        try:
            failure = json.loads(raw)
            return {
                "code": str(failure["code"]),
                "message": failure["message"],
            }
        except (ValueError, KeyError, TypeError):
            # Not ours or damaged: forget it, recompute.
            return None

    def forget(self, recipe_hash: str) -> bool:
        """Drop a remembered failure; tell whether there was one."""
        with unavailable_on_error(self._redis, f"deleting {recipe_hash}"):
            return bool(self._redis.unlink(self._key(recipe_hash)))

    def _key(self, recipe_hash: str) -> str:
        check_part("recipe_hash", recipe_hash)
        return f"{self._prefix}:failure:{recipe_hash}"
