"""Solved PSF-matching kernels in the blob-cache Redis.

A kernel is a few hundred bytes of JSON, solved once per recipe and
reused by a later recreation of the same recipe (a cutout, a product
evicted and recomputed). It is stored under ``P:kernel:{recipe_hash}``
with a checksum, and kept longer than the pixels it came from.
"""

from __future__ import annotations

import hashlib
import logging
import threading

import redis

from cache._redis import (
    ExpiringValues,
    as_bytes,
    check_part,
    unavailable_on_error,
)

__all__ = ["KernelStore"]

logger = logging.getLogger(__name__)

#: Separates a kernel's checksum from its JSON in the stored value.
_SEPARATOR = b":"


class KernelStore(ExpiringValues):
    """Solved kernels, guarded by checksums, in the blob-cache Redis.

    Parameters
    ----------
    redis_client
        Client of the blob-cache Redis (``decode_responses`` off).
    prefix
        Prefix of every key this store writes.
    ttl_seconds
        Lifetime of a kernel (small and reused: kept longer than images).

    Attributes
    ----------
    corrupt_dropped
        How many kernels this store has dropped for a bad checksum.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "recreate",
        ttl_seconds: int = 30 * 86400,
    ) -> None:
        super().__init__(redis_client, prefix=prefix, ttl_seconds=ttl_seconds)
        self._counter_lock = threading.Lock()
        self.corrupt_dropped = 0

    def put_kernel(self, recipe_hash: str, kernel_json: str) -> None:
        """Store a solved kernel, guarded by a checksum.

        Parameters
        ----------
        recipe_hash
            The hash of the recipe that solved it.
        kernel_json
            The kernel, serialised as JSON.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        check_part("recipe_hash", recipe_hash)
        body = kernel_json.encode()
        value = _checksum(body) + _SEPARATOR + body
        with unavailable_on_error(
            self._redis, f"storing kernel {recipe_hash}"
        ):
            self._redis.set(self._key(recipe_hash), value, ex=self._ttl)

    def get_kernel(self, recipe_hash: str) -> str | None:
        """Return the kernel solved for ``recipe_hash``, or ``None``.

        A kernel that fails its checksum is dropped and reads as ``None``.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        check_part("recipe_hash", recipe_hash)
        name = self._key(recipe_hash)
        with unavailable_on_error(
            self._redis, f"reading kernel {recipe_hash}"
        ):
            value = as_bytes(self._redis.get(name))
            if value is None:
                return None
            checksum, _, body = value.partition(_SEPARATOR)
            if checksum == _checksum(body):
                try:
                    return body.decode()
                except UnicodeDecodeError:
                    pass
            self._unlink_if_equal(keys=[name], args=[value])
        with self._counter_lock:
            self.corrupt_dropped += 1
        logger.warning("dropped kernel %s: fails its checksum", recipe_hash)
        return None

    def _key(self, recipe_hash: str) -> str:
        return f"{self._prefix}:kernel:{recipe_hash}"


def _checksum(body: bytes) -> bytes:
    """Return the hex BLAKE2b digest that guards a stored kernel."""
    return hashlib.blake2b(body, digest_size=16).hexdigest().encode()
