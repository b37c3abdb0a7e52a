"""Stored solutions: durable files, with a hot copy in Redis.

A solution (`recreate.solution`) is what a render of any region of one
difference image needs: kilobytes, keyed by its recipe hash (the input
dataset ids and runs, the recipe's name and configuration hash, the
code version), so a new template or a new code version is a new key.
Two tiers keep them:

`SolutionFiles`
    The durable store: one FITS file per solution under a root URI read
    and written through lsst-resources (a local folder in the embedded
    default, ``s3://...`` or any other URI it speaks in production), at
    ``{root}/{hash[:2]}/{hash}.fits``. A file is written under a
    temporary name beside it and moved into place, so a reader never
    sees half a file (a rename on a file system; an object store's PUT
    is whole anyway). Losing Redis loses no solution.
`RedisSolutions`
    The hot copy in the blob-cache Redis, ``P:solution:{hash}``, its own
    key space with its own lifetime (refreshed by every read). The blob
    cache evicts least recently used keys, so a solution may leave it;
    that costs one read of the durable store, never a solve.

Neither checks what it holds: the FITS file carries its own checksums,
and the service verifies every solution it reads (`recreate.solution.
solution_from_bytes`, `Solution.check_inputs`) and drops a bad one from
both tiers (`drop`), compare-and-delete, so a good solution written
meanwhile by someone else survives.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis

from cache._redis import (
    ExpiringValues,
    as_bytes,
    check_part,
    unavailable_on_error,
)
from cache.errors import CacheUnavailableError

if TYPE_CHECKING:
    from lsst.resources import ResourcePath

__all__ = ["RedisSolutions", "SolutionFiles"]

log = logging.getLogger(__name__)

#: Suffix of a solution file.
SUFFIX = ".fits"


class SolutionFiles:
    """Solutions as files under a root URI (lsst-resources).

    Parameters
    ----------
    root
        Any URI lsst-resources reads and writes: a local directory
        (made when the first solution is written), ``s3://bucket/path``,
        ``file:///...``.
    """

    def __init__(self, root: str) -> None:
        from lsst.resources import ResourcePath

        check_part("root", root)
        self._root = ResourcePath(root, forceDirectory=True)

    @property
    def root(self) -> str:
        """The root URI."""
        return str(self._root)

    def uri(self, recipe_hash: str) -> str:
        """Return where the solution of a recipe hash lives."""
        return str(self._path(recipe_hash))

    def put(self, recipe_hash: str, data: bytes) -> None:
        """Write a solution atomically (temporary name, then move).

        Raises
        ------
        CacheUnavailableError
            If the store cannot be written.
        """
        target = self._path(recipe_hash)
        partial = target.parent().join(
            f".{recipe_hash}.{secrets.token_hex(6)}.part"
        )
        with self._unavailable(f"writing solution {recipe_hash[:12]}"):
            partial.write(data)
            try:
                target.transfer_from(partial, transfer="move", overwrite=True)
            finally:
                if partial.exists():
                    partial.remove()

    def get(self, recipe_hash: str) -> bytes | None:
        """Return a stored solution's bytes, or None if there is none.

        Raises
        ------
        CacheUnavailableError
            If the store cannot be read.
        """
        with self._unavailable(f"reading solution {recipe_hash[:12]}"):
            try:
                return bytes(self._path(recipe_hash).read())
            except FileNotFoundError:
                return None

    def delete(self, recipe_hash: str, data: bytes) -> bool:
        """Delete a solution if it still holds ``data``; tell whether.

        Raises
        ------
        CacheUnavailableError
            If the store cannot be reached.
        """
        path = self._path(recipe_hash)
        with self._unavailable(f"deleting solution {recipe_hash[:12]}"):
            try:
                if bytes(path.read()) != data:
                    return False
                path.remove()
            except FileNotFoundError:
                return False
        return True

    def exists(self, recipe_hash: str) -> bool:
        """Tell whether a recipe hash's solution is stored.

        Raises
        ------
        CacheUnavailableError
            If the store cannot be reached.
        """
        with self._unavailable(f"looking for solution {recipe_hash[:12]}"):
            return bool(self._path(recipe_hash).exists())

    def _path(self, recipe_hash: str) -> ResourcePath:
        """Return the ResourcePath of a recipe hash's file."""
        _check_hash(recipe_hash)
        return self._root.join(f"{recipe_hash[:2]}/{recipe_hash}{SUFFIX}")

    @contextmanager
    def _unavailable(self, what: str) -> Iterator[None]:
        """Turn a store failure (not a missing file) into unavailable.

        Object stores fail with their clients' own exceptions, so every
        exception but a missing file means "the store did not answer".
        """
        try:
            yield
        except FileNotFoundError:
            raise
        except Exception as error:
            raise CacheUnavailableError(
                f"{what}: the solution store {self.root} failed: "
                f"{type(error).__name__}: {error}"
            ) from error


class RedisSolutions(ExpiringValues):
    """Hot copies of solutions in the blob-cache Redis.

    Parameters
    ----------
    redis_client
        Client of the blob-cache Redis (``decode_responses`` off).
    prefix
        Prefix of every key this store writes.
    ttl_seconds
        Lifetime of a copy, renewed by every read.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "recreate",
        ttl_seconds: int = 30 * 86400,
    ) -> None:
        super().__init__(redis_client, prefix=prefix, ttl_seconds=ttl_seconds)

    def put_solution(self, recipe_hash: str, data: bytes) -> None:
        """Keep a copy of a solution.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        name = self.key(recipe_hash)
        with unavailable_on_error(self._redis, f"storing {name}"):
            self._redis.set(name, data, ex=self._ttl)

    def get_solution(self, recipe_hash: str) -> bytes | None:
        """Return a copy (its lifetime renewed), or None.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        name = self.key(recipe_hash)
        with unavailable_on_error(self._redis, f"reading {name}"):
            return as_bytes(self._redis.getex(name, ex=self._ttl))

    def drop_solution(self, recipe_hash: str, data: bytes) -> bool:
        """Delete a copy if it still holds ``data``; tell whether.

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        name = self.key(recipe_hash)
        with unavailable_on_error(self._redis, f"dropping {name}"):
            return bool(self._unlink_if_equal(keys=[name], args=[data]))

    def present_solutions(self, recipe_hashes: Sequence[str]) -> list[bool]:
        """Tell which recipe hashes have a copy now (one round trip).

        Raises
        ------
        CacheUnavailableError
            If Redis cannot be reached.
        """
        names = [self.key(recipe_hash) for recipe_hash in recipe_hashes]
        with unavailable_on_error(self._redis, "checking solutions"):
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.exists(name)
            return [bool(found) for found in pipe.execute()]

    def key(self, recipe_hash: str) -> str:
        """Return the Redis key of a recipe hash's copy."""
        _check_hash(recipe_hash)
        return f"{self._prefix}:solution:{recipe_hash}"


def _check_hash(recipe_hash: str) -> None:
    """Refuse a recipe hash that is not lower-case hexadecimal.

    It names a file: nothing else may reach a path.

    Raises
    ------
    ValueError
        If ``recipe_hash`` is not 16 to 128 hexadecimal digits.
    """
    if not (
        16 <= len(recipe_hash) <= 128
        and all(c in "0123456789abcdef" for c in recipe_hash)
    ):
        raise ValueError(f"not a recipe hash: {recipe_hash!r}")
