"""Per-identity request budgets: fixed windows counted in Redis.

``P:quota:{name}`` counts what one identity spent of one budget in the
current window; the first spend of a window sets its expiry, so the
count starts again when the window ends. Every API replica counts in
the same control store, so a budget is the service's, not one
replica's. A fixed window lets a client spend up to twice its budget
across a window's end; that is the price of one round trip per request.
"""

from __future__ import annotations

import redis

from cache._redis import check_part, unavailable_on_error

__all__ = ["QuotaCounters"]

#: Add one; start the window on the first spend; return (count, ms left).
_SPEND = """
local spent = redis.call('INCR', KEYS[1])
if spent == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    left = tonumber(ARGV[1])
end
return {spent, left}
"""


class QuotaCounters:
    """Fixed-window spend counters in the control Redis.

    Parameters
    ----------
    redis_client
        Client of the control Redis.
    prefix
        Prefix of every key this store writes.
    """

    def __init__(
        self, redis_client: redis.Redis, *, prefix: str = "recreate"
    ) -> None:
        check_part("prefix", prefix)
        self._redis = redis_client
        self._prefix = prefix
        self._spend = redis_client.register_script(_SPEND)

    def spend(self, name: str, window_seconds: float) -> tuple[int, float]:
        """Spend one unit of the counter ``name``.

        Parameters
        ----------
        name
            The counter: a budget and an identity (hashed by the caller).
        window_seconds
            The window's length, started by its first spend.

        Returns
        -------
        tuple
            The units spent in this window, this one included, and the
            seconds until the window ends.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        check_part("name", name)
        window_ms = max(1, round(window_seconds * 1000))
        with unavailable_on_error(self._redis, "counting a quota"):
            spent, left = self._spend(
                keys=[f"{self._prefix}:quota:{name}"], args=[window_ms]
            )
        return int(spent), int(left) / 1000.0
