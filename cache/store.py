"""The result store: chunked, checksummed values in the blob-cache Redis.

The blob cache runs with ``maxmemory`` and ``allkeys-lru``, so any key may
vanish at any moment. A value is therefore stored as independent chunk
keys plus one manifest key, written last: the manifest write is the single
commit point, and a reader that finds a chunk missing or corrupt drops the
whole entry and reports a miss (the caller recomputes).

Keys, for a store with prefix ``P``:

``P:result:{key}``
    The JSON manifest (:class:`~cache.codec.Manifest`) of a value,
    including the token of the write and the chunk count.
``P:blob:{key}:{token}:{i}``
    Chunk ``i`` of that write. A fresh random token per write means a
    concurrent rewrite of the same key never mixes chunks.
``P:kernel:{recipe_hash}``
    A solved PSF-matching kernel (small JSON) with its checksum.

Needs Redis 6.2 or later (``SET ... GET`` and ``GETDEL``). Every key
carries a TTL. Chunks are written one SET each, a few per round
trip but never inside MULTI/EXEC: one huge transaction would block Redis
for every other client, which is what chunking avoids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from cache._redis import (
    UNLINK_IF_EQUAL,
    as_bytes,
    check_part,
    check_positive,
    glob_escape,
    require_bytes,
    unavailable_on_error,
)
from cache.codec import DEFAULT_CHUNK_BYTES, Manifest, decode, encode
from cache.errors import CorruptValueError

__all__ = ["CachedValue", "ResultStore"]

logger = logging.getLogger(__name__)

#: Bytes of chunk data moved per round trip: enough to keep the socket
#: busy, little enough that a client never buffers a whole 200 MB value
#: twice.
_BYTES_PER_ROUND_TRIP = 16 * 1024 * 1024

#: Most chunk keys recovered from a malformed manifest (a Redis string
#: holds at most 512 MB, so a real value has far fewer chunks).
_MAX_CHUNKS = 1 << 17

#: Separates a kernel's checksum from its JSON in the stored value.
_KERNEL_SEPARATOR = b":"


@dataclass(frozen=True)
class CachedValue:
    """A value read back from the store.

    Attributes
    ----------
    data
        The stored bytes, verified against their checksums.
    manifest
        The value's manifest (``sha256``, ``size``, ``meta``).
    """

    data: bytes
    manifest: Manifest


class ResultStore:
    """Chunked result values and solved kernels in the blob-cache Redis.

    Parameters
    ----------
    redis_client
        Client of the blob-cache Redis (``decode_responses`` off).
    prefix
        Prefix of every key this store writes.
    ttl_seconds
        Lifetime of result values.
    kernel_ttl_seconds
        Lifetime of solved kernels (small and reused: kept longer).
    chunk_bytes
        Raw length of each stored chunk.

    Attributes
    ----------
    corrupt_dropped
        How many entries this store has dropped because a chunk was
        missing or corrupt or a manifest malformed.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "recreate",
        ttl_seconds: int = 7 * 86400,
        kernel_ttl_seconds: int = 30 * 86400,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        check_part("prefix", prefix)
        require_bytes(redis_client)
        for name, value in (
            ("ttl_seconds", ttl_seconds),
            ("kernel_ttl_seconds", kernel_ttl_seconds),
            ("chunk_bytes", chunk_bytes),
        ):
            check_positive(name, value)
        self._redis = redis_client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._kernel_ttl = kernel_ttl_seconds
        self._chunk_bytes = chunk_bytes
        self._unlink_if_equal = redis_client.register_script(UNLINK_IF_EQUAL)
        self._counter_lock = threading.Lock()
        self.corrupt_dropped = 0

    # Results.

    def put(
        self, key: str, data: bytes, *, meta: Mapping[str, Any]
    ) -> Manifest:
        """Store a value under ``key``, replacing any earlier one.

        Parameters
        ----------
        key
            The cache key (the recipe hash).
        data
            The value.
        meta
            JSON-able metadata kept in the manifest.

        Returns
        -------
        Manifest
            The committed manifest, with the write's token.

        Raises
        ------
        CacheUnavailableError
            If Redis fails before the commit; no manifest is then written
            and the chunks already written are removed (best effort).
        """
        check_part("key", key)
        encoded = encode(data, chunk_bytes=self._chunk_bytes, meta=meta)
        manifest = replace(encoded.manifest, token=secrets.token_hex(16))
        chunk_keys = self._chunk_keys(key, manifest)
        with unavailable_on_error(self._redis, f"storing {key}"):
            try:
                self._write_chunks(chunk_keys, encoded.chunks)
                # The commit point: readers see the new value only now.
                # SET ... GET hands back the manifest it replaces, in the
                # same atomic step, so its chunks can be freed.
                previous = as_bytes(
                    self._redis.set(
                        self._result_key(key),
                        manifest.to_json(),
                        ex=self._ttl,
                        get=True,
                    )
                )
            except BaseException:
                self._unlink_quietly(chunk_keys, f"the chunks of {key}")
                raise
        if previous is not None:
            self._unlink_replaced(key, previous)
        return manifest

    def get(self, key: str) -> CachedValue | None:
        """Return the value stored under ``key``, or ``None`` on a miss.

        A missing (evicted) or corrupt chunk, or a malformed manifest,
        drops the whole entry, counts it in :attr:`corrupt_dropped`, logs
        a warning and reads as a miss: a corrupt value is never served.

        Parameters
        ----------
        key
            The cache key.

        Returns
        -------
        CachedValue or None
            The verified value and its manifest.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        check_part("key", key)
        with unavailable_on_error(self._redis, f"reading {key}"):
            raw = self._get(self._result_key(key))
            if raw is None:
                return None
            manifest = self._parse_or_drop(key, raw)
            if manifest is None:
                return None
            chunks = self._read_chunks(self._chunk_keys(key, manifest))
            if any(chunk is None for chunk in chunks):
                self._drop(key, raw, manifest, "a chunk is missing (evicted)")
                return None
            try:
                data = decode(manifest, [c for c in chunks if c is not None])
            except CorruptValueError as exc:
                self._drop(key, raw, manifest, str(exc))
                return None
        return CachedValue(data=data, manifest=manifest)

    def head(self, key: str) -> Manifest | None:
        """Return the manifest under ``key`` without reading any chunk.

        A cheap existence and metadata check: a chunk may still turn out
        evicted when :meth:`get` reads it. A malformed manifest is dropped
        and reads as ``None``.

        Parameters
        ----------
        key
            The cache key.

        Returns
        -------
        Manifest or None
            The manifest, or ``None`` when there is none.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        check_part("key", key)
        with unavailable_on_error(self._redis, f"reading {key}"):
            raw = self._get(self._result_key(key))
            if raw is None:
                return None
            return self._parse_or_drop(key, raw)

    def delete(self, key: str) -> bool:
        """Remove the value under ``key`` and its chunks.

        Parameters
        ----------
        key
            The cache key.

        Returns
        -------
        bool
            Whether a value was there.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        check_part("key", key)
        with unavailable_on_error(self._redis, f"deleting {key}"):
            raw = as_bytes(self._redis.getdel(self._result_key(key)))
            if raw is None:
                return False
            self._redis.unlink(*self._chunk_keys_of_raw(key, raw))
        return True

    def keys(self) -> list[str]:
        """Return the cache keys that currently have a manifest, sorted.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        head = self._result_key("")
        pattern = glob_escape(head) + "*"
        with unavailable_on_error(self._redis, "listing keys"):
            found = {
                name.decode()[len(head) :]
                for name in self._redis.scan_iter(match=pattern, count=1000)
            }
        return sorted(found)

    # Kernels.

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
        value = _kernel_checksum(body) + _KERNEL_SEPARATOR + body
        with unavailable_on_error(
            self._redis, f"storing kernel {recipe_hash}"
        ):
            self._redis.set(
                self._kernel_key(recipe_hash), value, ex=self._kernel_ttl
            )

    def get_kernel(self, recipe_hash: str) -> str | None:
        """Return the kernel solved for ``recipe_hash``, or ``None``.

        A kernel that fails its checksum is dropped and reads as ``None``.

        Parameters
        ----------
        recipe_hash
            The hash of the recipe that solved it.

        Returns
        -------
        str or None
            The kernel JSON.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        check_part("recipe_hash", recipe_hash)
        name = self._kernel_key(recipe_hash)
        with unavailable_on_error(
            self._redis, f"reading kernel {recipe_hash}"
        ):
            value = self._get(name)
            if value is None:
                return None
            checksum, _, body = value.partition(_KERNEL_SEPARATOR)
            if checksum == _kernel_checksum(body):
                try:
                    return body.decode()
                except UnicodeDecodeError:
                    pass
            self._unlink_if_equal(keys=[name], args=[value])
        self._count_drop(f"kernel {recipe_hash}", "fails its checksum")
        return None

    # Health.

    def ping(self) -> bool:
        """Tell whether the blob-cache Redis answers; never raises."""
        try:
            return bool(self._redis.ping())
        except (redis.exceptions.RedisError, OSError):
            return False

    # Key names and plain reads.

    def _get(self, name: str) -> bytes | None:
        return as_bytes(self._redis.get(name))

    def _result_key(self, key: str) -> str:
        return f"{self._prefix}:result:{key}"

    def _chunk_keys(self, key: str, manifest: Manifest) -> list[str]:
        base = f"{self._prefix}:blob:{key}:{manifest.token}"
        return [f"{base}:{i}" for i in range(len(manifest.chunks))]

    def _kernel_key(self, recipe_hash: str) -> str:
        return f"{self._prefix}:kernel:{recipe_hash}"

    # Chunk transfer.

    def _batches(self, chunk_keys: Sequence[str]) -> Iterator[Sequence[str]]:
        """Split chunk keys into groups moved in one round trip each."""
        size = max(1, _BYTES_PER_ROUND_TRIP // self._chunk_bytes)
        for start in range(0, len(chunk_keys), size):
            yield chunk_keys[start : start + size]

    def _write_chunks(
        self, chunk_keys: Sequence[str], chunks: Sequence[bytes]
    ) -> None:
        """SET every chunk with the TTL, a few per round trip."""
        stored = dict(zip(chunk_keys, chunks, strict=True))
        for batch in self._batches(chunk_keys):
            # transaction=False: a plain pipeline, no MULTI/EXEC.
            pipe = self._redis.pipeline(transaction=False)
            for name in batch:
                pipe.set(name, stored[name], ex=self._ttl)
            pipe.execute()

    def _read_chunks(self, chunk_keys: Sequence[str]) -> list[bytes | None]:
        """MGET the chunks, a few per round trip."""
        chunks: list[bytes | None] = []
        for batch in self._batches(chunk_keys):
            chunks.extend(as_bytes(c) for c in self._redis.mget(batch))
        return chunks

    # Dropping entries.

    def _parse_or_drop(self, key: str, raw: bytes) -> Manifest | None:
        """Parse a stored manifest; drop the entry if it is malformed."""
        try:
            manifest = Manifest.from_json(raw)
        except CorruptValueError as exc:
            self._drop(key, raw, None, str(exc))
            return None
        if manifest.token is None:
            self._drop(key, raw, None, "manifest has no write token")
            return None
        return manifest

    def _drop(
        self, key: str, raw: bytes, manifest: Manifest | None, reason: str
    ) -> None:
        """Remove a broken entry: its manifest (if unchanged) and chunks.

        The manifest goes only if it still holds what was read, so a value
        rewritten meanwhile by another writer survives; chunks are keyed
        by the broken write's token and belong to it alone.
        """
        self._unlink_if_equal(keys=[self._result_key(key)], args=[raw])
        if manifest is None:
            chunk_keys = self._chunk_keys_of_raw(key, raw)
        else:
            chunk_keys = self._chunk_keys(key, manifest)
        if chunk_keys:
            self._redis.unlink(*chunk_keys)
        self._count_drop(key, reason)

    def _count_drop(self, what: str, reason: str) -> None:
        with self._counter_lock:
            self.corrupt_dropped += 1
        logger.warning("dropped cache entry %s: %s", what, reason)

    def _chunk_keys_of_raw(self, key: str, raw: bytes) -> list[str]:
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

    def _unlink_replaced(self, key: str, previous: bytes) -> None:
        """Free the chunks of the manifest that a put just replaced.

        Tokens are fresh per write, so these never include the new chunks.
        """
        self._unlink_quietly(
            self._chunk_keys_of_raw(key, previous),
            f"the replaced chunks of {key}",
        )

    def _unlink_quietly(self, chunk_keys: Sequence[str], what: str) -> None:
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


def _kernel_checksum(body: bytes) -> bytes:
    """Return the hex BLAKE2b digest that guards a stored kernel."""
    return hashlib.blake2b(body, digest_size=16).hexdigest().encode()
