"""Single-flight locks in the control Redis.

One recompute per cache key at a time across every broker and worker: a
task takes ``SET P:lock:{key} token NX PX ttl`` when it starts, and the
losers wait for the winner's result instead of recomputing.

A single Redis instance is enough here. The lock only saves duplicate
work, and recreation is deterministic, so a lock lost to a pause or a
restart costs CPU, never correctness. The control Redis runs with
``noeviction``: a lock never vanishes before its TTL.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from types import TracebackType
from typing import Self

import redis
from redis.commands.core import Script

from cache._redis import (
    UNLINK_IF_EQUAL,
    check_part,
    check_positive,
    unavailable_on_error,
)

__all__ = ["Lock", "SingleFlight"]

logger = logging.getLogger(__name__)

#: Push the expiry back only if the lock is still ours.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: Extend a held lock this many times per TTL, so one slow round trip
#: does not let it lapse.
_EXTENSIONS_PER_TTL = 3


class Lock:
    """A held single-flight lock.

    Made by :meth:`SingleFlight.try_acquire`. As a context manager it
    keeps itself alive from a daemon thread (extending every third of the
    TTL) and releases itself on exit.

    Attributes
    ----------
    key
        The locked cache key.
    token
        The random value that proves ownership.
    ttl_seconds
        Lifetime granted by each acquire or extension.
    """

    def __init__(
        self,
        *,
        client: redis.Redis,
        name: str,
        key: str,
        token: str,
        ttl_seconds: float,
        release_script: Script,
        extend_script: Script,
    ) -> None:
        self.key = key
        self.token = token
        self.ttl_seconds = ttl_seconds
        self._redis = client
        self._name = name
        self._release = release_script
        self._extend = extend_script
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._keeper: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        """Whether the keep-alive thread found the lock gone or taken."""
        return self._lost.is_set()

    def extend(self) -> bool:
        """Reset the lock's TTL, if it is still ours.

        Returns
        -------
        bool
            ``False`` when the lock expired or another holder has it.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        ttl_ms = _milliseconds(self.ttl_seconds)
        with unavailable_on_error(self._redis, f"extending lock {self.key}"):
            return bool(
                self._extend(keys=[self._name], args=[self.token, ttl_ms])
            )

    def release(self) -> bool:
        """Delete the lock, if it is still ours.

        Returns
        -------
        bool
            ``False`` when it had expired or another holder has it (that
            holder's lock is left alone).

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        with unavailable_on_error(self._redis, f"releasing lock {self.key}"):
            return bool(self._release(keys=[self._name], args=[self.token]))

    def __enter__(self) -> Self:
        """Start the keep-alive thread; return the lock."""
        self._stop.clear()
        self._keeper = threading.Thread(
            target=self._keep_alive,
            name=f"lock-keepalive-{self.key}",
            daemon=True,
        )
        self._keeper.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the keep-alive thread and release the lock."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join()
            self._keeper = None
        try:
            self.release()
        except Exception:
            # Never hide the block's own exception: an unreleased lock
            # simply expires with its TTL.
            logger.exception("could not release lock %s", self.key)

    def _keep_alive(self) -> None:
        """Extend the lock every third of its TTL until told to stop.

        Runs in a daemon thread, so it must never raise: a lost lock or an
        unreachable Redis is logged and ends the thread.
        """
        interval = self.ttl_seconds / _EXTENSIONS_PER_TTL
        while not self._stop.wait(interval):
            try:
                still_ours = self.extend()
            except Exception:
                logger.exception("lock %s: keep-alive failed", self.key)
                self._lost.set()
                return
            if not still_ours:
                logger.warning("lock %s expired or was taken", self.key)
                self._lost.set()
                return


class SingleFlight:
    """Take, inspect and wait for single-flight locks.

    Parameters
    ----------
    redis_client
        Client of the control Redis.
    prefix
        Prefix of every key this class writes.
    ttl_seconds
        Lifetime of a lock unless extended.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "recreate",
        ttl_seconds: float = 120,
    ) -> None:
        check_part("prefix", prefix)
        check_positive("ttl_seconds", ttl_seconds)
        self._redis = redis_client
        self._prefix = prefix
        self._ttl = ttl_seconds
        # Delete the lock only if it still holds our token: a lock that
        # expired and was taken by another holder must survive our release.
        self._release = redis_client.register_script(UNLINK_IF_EQUAL)
        self._extend = redis_client.register_script(_EXTEND)

    def try_acquire(self, key: str) -> Lock | None:
        """Take the lock on ``key`` unless someone holds it.

        Parameters
        ----------
        key
            The cache key to lock.

        Returns
        -------
        Lock or None
            The held lock, or ``None`` when another holder has it.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        name = self._lock_key(key)
        token = secrets.token_hex(16)
        with unavailable_on_error(self._redis, f"locking {key}"):
            taken = self._redis.set(
                name, token, nx=True, px=_milliseconds(self._ttl)
            )
        if not taken:
            return None
        return Lock(
            client=self._redis,
            name=name,
            key=key,
            token=token,
            ttl_seconds=self._ttl,
            release_script=self._release,
            extend_script=self._extend,
        )

    def holder(self, key: str) -> str | None:
        """Return the token of the current holder of ``key``, or ``None``.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        with unavailable_on_error(self._redis, f"reading lock {key}"):
            value = self._redis.get(self._lock_key(key))
        if isinstance(value, bytes):
            return value.decode()
        return value

    def wait_released(
        self, key: str, timeout: float, poll: float = 0.05
    ) -> bool:
        """Wait until nobody holds the lock on ``key``.

        Parameters
        ----------
        key
            The locked cache key.
        timeout
            Longest wait, in seconds.
        poll
            Seconds between checks.

        Returns
        -------
        bool
            ``True`` once the lock is gone, ``False`` on timeout.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        name = self._lock_key(key)
        deadline = time.monotonic() + timeout
        while True:
            with unavailable_on_error(self._redis, f"reading lock {key}"):
                if not self._redis.exists(name):
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(poll, remaining))

    def _lock_key(self, key: str) -> str:
        check_part("key", key)
        return f"{self._prefix}:lock:{key}"


def _milliseconds(seconds: float) -> int:
    """Convert a TTL to the whole milliseconds Redis wants (at least 1)."""
    return max(1, round(seconds * 1000))
