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

Solved kernels live beside them (`cache.kernels.KernelStore`).

A value is read whole (`ResultStore.get`) or streamed (`ResultStore.open`
then `ResultStore.read_chunks`): opening checks the manifest and the
length of every chunk in one round trip, so an evicted chunk is found
before a byte is sent; each chunk's checksum is then verified as it is
read, and a chunk that fails drops the entry and stops the stream.

Needs Redis 6.2 or later (``SET ... GET`` and ``GETDEL``). Every key
carries a TTL. Chunks are written one SET each, a few per round
trip but never inside MULTI/EXEC: one huge transaction would block Redis
for every other client, which is what chunking avoids.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from cache._redis import (
    as_bytes,
    check_part,
    check_positive,
    glob_escape,
    require_bytes,
    unavailable_on_error,
)
from cache.codec import (
    DEFAULT_CHUNK_BYTES,
    Manifest,
    decode,
    decode_chunk,
    encode,
)
from cache.entries import Entries
from cache.errors import CorruptValueError

__all__ = ["CachedValue", "ResultStore", "StoredValue"]

logger = logging.getLogger(__name__)

#: Bytes of chunk data moved per round trip: enough to keep the socket
#: busy, little enough that a client never buffers a whole 200 MB value
#: twice.
_BYTES_PER_ROUND_TRIP = 16 * 1024 * 1024


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


@dataclass(frozen=True)
class StoredValue:
    """A value found complete in the store, to be read chunk by chunk.

    Made by `ResultStore.open`; read with `ResultStore.read_chunks`.

    Attributes
    ----------
    key
        The cache key.
    manifest
        The value's manifest (``sha256``, ``size``, ``meta``).
    raw_manifest
        The manifest as stored (a drop removes it only if unchanged).
    chunk_keys
        The Redis keys of its chunks, in order.
    """

    key: str
    manifest: Manifest
    raw_manifest: bytes
    chunk_keys: tuple[str, ...]


class ResultStore:
    """Chunked result values in the blob-cache Redis.

    Parameters
    ----------
    redis_client
        Client of the blob-cache Redis (``decode_responses`` off).
    prefix
        Prefix of every key this store writes.
    ttl_seconds
        Lifetime of result values.
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
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        check_part("prefix", prefix)
        require_bytes(redis_client)
        check_positive("ttl_seconds", ttl_seconds)
        check_positive("chunk_bytes", chunk_bytes)
        self._redis = redis_client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._chunk_bytes = chunk_bytes
        self._entries = Entries(redis_client, prefix)

    @property
    def corrupt_dropped(self) -> int:
        """How many broken entries this store has dropped."""
        return self._entries.corrupt_dropped

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
                self._entries.unlink_quietly(chunk_keys, f"chunks of {key}")
                raise
        if previous is not None:
            self._entries.unlink_replaced(key, previous)
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

    def open(self, key: str) -> StoredValue | None:
        """Find a value whose every chunk is there, without reading any.

        Two round trips: the manifest, then the length of every chunk.
        An entry with a malformed manifest or a chunk missing (evicted)
        or of the wrong length is dropped here, before the caller has
        sent anything; a chunk's checksum is verified when it is read
        (`read_chunks`).

        Returns
        -------
        StoredValue or None
            The value, or ``None`` when there is none.

        Raises
        ------
        CorruptValueError
            If the entry was there but broken (it has been dropped).
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
                raise CorruptValueError(f"the manifest of {key} is malformed")
            names = self._chunk_keys(key, manifest)
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.strlen(name)
            lengths = pipe.execute() if names else []
            for index, (info, length) in enumerate(
                zip(manifest.chunks, lengths, strict=True)
            ):
                if length != info.stored_length:
                    reason = f"chunk {index} is missing or truncated"
                    self._drop(key, raw, manifest, reason)
                    raise CorruptValueError(f"cached {key}: {reason}")
        return StoredValue(key, manifest, raw, tuple(names))

    def read_chunks(self, value: StoredValue) -> Iterator[bytes]:
        """Yield an opened value's raw chunks, verified one by one.

        Each chunk is fetched when the caller asks for it, so a reader
        holds one chunk at a time, never the whole value.

        Raises
        ------
        CorruptValueError
            When a chunk is missing or fails its checksum: the entry is
            dropped first, so the next reader finds a miss.
        CacheUnavailableError
            If Redis cannot be reached.
        """
        chunks = zip(value.chunk_keys, value.manifest.chunks, strict=True)
        for index, (name, info) in enumerate(chunks):
            with unavailable_on_error(self._redis, f"reading {value.key}"):
                try:
                    piece = decode_chunk(index, info, self._get(name))
                except CorruptValueError as exc:
                    self._drop(
                        value.key, value.raw_manifest, value.manifest, str(exc)
                    )
                    raise
            yield piece

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
            self._redis.unlink(*self._entries.chunk_keys_of_raw(key, raw))
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

    def present(self, keys: Sequence[str]) -> list[bool]:
        """Tell which keys have a manifest now, in one round trip.

        Raises `CacheUnavailableError` if Redis cannot be reached.
        """
        with unavailable_on_error(self._redis, "checking keys"):
            return self._entries.present(keys)

    def ping(self) -> bool:
        """Tell whether the blob-cache Redis answers; never raises."""
        try:
            return bool(self._redis.ping())
        except (redis.exceptions.RedisError, OSError):
            return False

    def _get(self, name: str) -> bytes | None:
        return as_bytes(self._redis.get(name))

    def _result_key(self, key: str) -> str:
        return self._entries.result_key(key)

    def _chunk_keys(self, key: str, manifest: Manifest) -> list[str]:
        return self._entries.chunk_keys(key, manifest)

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
        self._entries.drop(key, raw, manifest, reason)
