"""How a result entry lies in Redis, and how a broken one is removed.

An entry is a manifest key ``P:result:{key}`` and chunk keys
``P:blob:{key}:{token}:{i}`` (see `cache.store`). This module names
those keys and removes entries: a broken one (manifest only if
unchanged, then its chunks), the chunks a rewrite replaced, the chunks
of a write that failed before its commit.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence

import redis

from cache._redis import UNLINK_IF_EQUAL
from cache.codec import Manifest

__all__ = ["Entries"]

logger = logging.getLogger(__name__)

#: Most chunk keys recovered from a malformed manifest (a Redis string
#: holds at most 512 MB, so a real value has far fewer chunks).
_MAX_CHUNKS = 1 << 17


class Entries:
    """Key names and removal of the result entries under one prefix.

    Attributes
    ----------
    corrupt_dropped
        How many entries have been dropped because a chunk was missing
        or corrupt or a manifest malformed.
    """

    def __init__(self, redis_client: redis.Redis, prefix: str) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._unlink_if_equal = redis_client.register_script(UNLINK_IF_EQUAL)
        self._counter_lock = threading.Lock()
        self.corrupt_dropped = 0

    def result_key(self, key: str) -> str:
        """Return the manifest's Redis key."""
        return f"{self._prefix}:result:{key}"

    def present(self, keys: Sequence[str]) -> list[bool]:
        """Tell which keys have a manifest (their chunks are not read)."""
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.exists(self.result_key(key))
        return [bool(found) for found in pipe.execute()]

    def chunk_keys(self, key: str, manifest: Manifest) -> list[str]:
        """Return the Redis keys of a manifest's chunks, in order."""
        base = f"{self._prefix}:blob:{key}:{manifest.token}"
        return [f"{base}:{i}" for i in range(len(manifest.chunks))]

    def chunk_keys_of_raw(self, key: str, raw: bytes) -> list[str]:
        """Best-effort chunk keys of a manifest that may be malformed.

        Recovers the token and chunk count when the JSON still parses;
        otherwise the orphaned chunks are left to their TTL.
        """
        try:
            document = json.loads(raw)
        except ValueError:
            return []
        if not isinstance(document, dict):
            return []
        token, count = document.get("token"), document.get("nchunks")
        if not isinstance(token, str) or type(count) is not int:
            return []
        base = f"{self._prefix}:blob:{key}:{token}"
        return [f"{base}:{i}" for i in range(min(max(count, 0), _MAX_CHUNKS))]

    def drop(
        self, key: str, raw: bytes, manifest: Manifest | None, reason: str
    ) -> None:
        """Remove a broken entry: its manifest (if unchanged) and chunks.

        The manifest goes only if it still holds what was read, so a value
        rewritten meanwhile by another writer survives; chunks are keyed
        by the broken write's token and belong to it alone.
        """
        self._unlink_if_equal(keys=[self.result_key(key)], args=[raw])
        if manifest is None:
            chunk_keys = self.chunk_keys_of_raw(key, raw)
        else:
            chunk_keys = self.chunk_keys(key, manifest)
        if chunk_keys:
            self._redis.unlink(*chunk_keys)
        with self._counter_lock:
            self.corrupt_dropped += 1
        logger.warning("dropped cache entry %s: %s", key, reason)

    def unlink_replaced(self, key: str, previous: bytes) -> None:
        """Free the chunks of the manifest that a put just replaced.

        Tokens are fresh per write, so these never include the new chunks.
        """
        self.unlink_quietly(
            self.chunk_keys_of_raw(key, previous),
            f"the replaced chunks of {key}",
        )

    def unlink_quietly(self, chunk_keys: Sequence[str], what: str) -> None:
        """Remove chunks nobody will read again; never raises."""
        if not chunk_keys:
            return
        try:
            self._redis.unlink(*chunk_keys)
        except redis.exceptions.RedisError as exc:
            logger.warning(
                "could not remove %s (they expire with their TTL): %s",
                what,
                exc,
            )
