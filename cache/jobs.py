"""Job records and counters in the control Redis.

A job record is one JSON object per asynchronous API request, under
``P:job:{job_id}``, with a TTL refreshed on every update. Counters live
under ``P:counter:{name}`` and never expire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import redis

from cache._redis import (
    as_bytes,
    check_part,
    check_positive,
    unavailable_on_error,
)
from cache.errors import CorruptValueError, JobNotFoundError

__all__ = ["JobStore"]

#: Fields the store owns; callers cannot set them through ``fields``.
_OWN_FIELDS = frozenset({"id", "created", "updated"})


class JobStore:
    """Job records and counters in the control Redis.

    Parameters
    ----------
    redis_client
        Client of the control Redis.
    prefix
        Prefix of every key this store writes.
    ttl_seconds
        How long a record lives after its last update.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "recreate",
        ttl_seconds: int = 86400,
    ) -> None:
        check_part("prefix", prefix)
        check_positive("ttl_seconds", ttl_seconds)
        self._redis = redis_client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def create(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Write a new job record in state ``"queued"``.

        An existing record under the same id is replaced.

        Parameters
        ----------
        job_id
            The job's id.
        fields
            JSON-able fields of the record; ``state`` may override the
            initial ``"queued"``.

        Raises
        ------
        ValueError
            If ``fields`` sets ``id``, ``created`` or ``updated``.
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        _check_fields(fields)
        now = time.time()
        record = {"state": "queued", **fields}
        record.update(id=job_id, created=now, updated=now)
        name = self._job_key(job_id)
        with unavailable_on_error(self._redis, f"creating job {job_id}"):
            self._redis.set(name, _dump(record), ex=self._ttl)

    def update(self, job_id: str, **fields: Any) -> None:
        """Change fields of a job record and refresh its TTL.

        Parameters
        ----------
        job_id
            The job's id.
        **fields
            JSON-able fields to set.

        Raises
        ------
        JobNotFoundError
            If no record exists under ``job_id``.
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        _check_fields(fields)
        name = self._job_key(job_id)

        def apply(pipe: redis.client.Pipeline) -> None:
            # Runs under WATCH: a concurrent update makes the transaction
            # fail and redis-py run this again on fresh data.
            record = _load(job_id, as_bytes(pipe.get(name)))
            record.update(fields)
            record["updated"] = time.time()
            pipe.multi()
            pipe.set(name, _dump(record), ex=self._ttl)

        with unavailable_on_error(self._redis, f"updating job {job_id}"):
            self._redis.transaction(apply, name)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """Return the record of ``job_id``, or ``None`` when there is none.

        Raises
        ------
        CorruptValueError
            If the stored record is not a JSON object.
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        name = self._job_key(job_id)
        with unavailable_on_error(self._redis, f"reading job {job_id}"):
            raw = as_bytes(self._redis.get(name))
        if raw is None:
            return None
        return _load(job_id, raw)

    def delete(self, job_id: str) -> bool:
        """Remove the record of ``job_id``; tell whether it existed.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        name = self._job_key(job_id)
        with unavailable_on_error(self._redis, f"deleting job {job_id}"):
            return bool(self._redis.unlink(name))

    def ids(self, prefix: str) -> list[str]:
        """Return the ids of the records whose id starts with ``prefix``.

        Scans the store (SCAN, not KEYS: Redis answers other clients
        between batches); for listing a kind of job, not a hot path.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        check_part("prefix", prefix)
        head = f"{self._prefix}:job:"
        pattern = head + _glob_escape(prefix) + "*"
        with unavailable_on_error(self._redis, f"listing jobs {prefix}*"):
            names = [
                as_bytes(name) or b""
                for name in self._redis.scan_iter(match=pattern, count=500)
            ]
        return sorted(name.decode()[len(head) :] for name in names)

    def incr(self, name: str, amount: int = 1) -> int:
        """Add ``amount`` to the counter ``name``; return the new value.

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        key = self._counter_key(name)
        with unavailable_on_error(self._redis, f"counting {name}"):
            return int(self._redis.incrby(key, amount))

    def counter(self, name: str) -> int:
        """Return the value of the counter ``name`` (0 if never counted).

        Raises
        ------
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        key = self._counter_key(name)
        with unavailable_on_error(self._redis, f"reading counter {name}"):
            value = as_bytes(self._redis.get(key))
        return 0 if value is None else int(value)

    def _job_key(self, job_id: str) -> str:
        check_part("job_id", job_id)
        return f"{self._prefix}:job:{job_id}"

    def _counter_key(self, name: str) -> str:
        check_part("counter name", name)
        return f"{self._prefix}:counter:{name}"


def _glob_escape(text: str) -> str:
    """Escape the characters a Redis MATCH pattern treats specially."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _check_fields(fields: Mapping[str, Any]) -> None:
    """Reject fields that the store itself maintains."""
    clash = _OWN_FIELDS.intersection(fields)
    if clash:
        raise ValueError(f"fields {sorted(clash)} are set by the job store")


def _dump(record: Mapping[str, Any]) -> bytes:
    """Serialise a record; raise TypeError/ValueError if not JSON-able."""
    return json.dumps(record, sort_keys=True, allow_nan=False).encode()


def _load(job_id: str, raw: bytes | None) -> dict[str, Any]:
    """Parse a stored record; raise if it is missing or malformed."""
    if raw is None:
        raise JobNotFoundError(f"no job {job_id!r} (unknown or expired)")
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise CorruptValueError(f"job {job_id!r} is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise CorruptValueError(f"job {job_id!r} is not a JSON object")
    return record
