"""Leases in the control Redis: who runs a piece of work, while alive.

A lease is ``P:lease:{name}`` holding its holder's token, with a TTL.
The holder renews it well within the TTL while it works; a holder that
dies stops renewing, and the lease lapses within one TTL, after which
anyone may take it. The campaign runner holds one lease per campaign it
runs, so that of several API replicas exactly one works through a
campaign, and another takes it over in seconds when that one dies.
"""

from __future__ import annotations

import redis

from cache._redis import (
    UNLINK_IF_EQUAL,
    check_part,
    check_positive,
    unavailable_on_error,
)

__all__ = ["Leases"]

#: Take a free lease or renew our own; refuse one held by another.
_TAKE = """
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""


class Leases:
    """Take, renew and give back named leases.

    Parameters
    ----------
    redis_client
        Client of the control Redis (``noeviction``).
    prefix
        Prefix of every key this store writes.
    """

    def __init__(
        self, redis_client: redis.Redis, *, prefix: str = "recreate"
    ) -> None:
        check_part("prefix", prefix)
        self._redis = redis_client
        self._prefix = prefix
        self._take = redis_client.register_script(_TAKE)
        self._give_back = redis_client.register_script(UNLINK_IF_EQUAL)

    def take(self, name: str, token: str, ttl_seconds: float) -> bool:
        """Take the lease ``name`` for ``token``, or renew it.

        Returns
        -------
        bool
            False when another holder has it.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        check_positive("ttl_seconds", ttl_seconds)
        ttl_ms = max(1, round(ttl_seconds * 1000))
        with unavailable_on_error(self._redis, f"taking lease {name}"):
            return bool(
                self._take(keys=[self._key(name)], args=[token, ttl_ms])
            )

    def give_back(self, name: str, token: str) -> bool:
        """Release the lease if ``token`` holds it; tell whether it did."""
        with unavailable_on_error(self._redis, f"releasing lease {name}"):
            return bool(self._give_back(keys=[self._key(name)], args=[token]))

    def _key(self, name: str) -> str:
        check_part("lease", name)
        return f"{self._prefix}:lease:{name}"
