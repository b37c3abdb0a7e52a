"""Prewarm campaigns in the control Redis: their keys and progress.

A campaign is a named list of (visit, detector) keys to recreate ahead of
use. Its state lives in the control store (``noeviction``), so a broker
that restarts, or a scheduler that loses its queue, resumes from here:

``P:campaign:{id}``
    JSON: name, state, priority, total, selection, solutions_only, times.
``P:campaign:{id}:keys``
    List of the keys as ``visit/detector``, in submission order.
``P:campaign:{id}:states``
    Hash: key index -> ``queued|running|cached|done|failed|cancelled``.
``P:campaign:{id}:errors``
    Hash: key index -> JSON ``{"code", "message"}`` of a failed key.
``P:campaign:{id}:products``
    Hash: key index -> product key (or ``solution:{recipe hash}``) of a
    key made or found, so what is there *now* can be checked.
``P:campaigns``
    Sorted set of campaign ids by creation time.

Counts are computed from the state hash, never kept separately, so they
cannot drift from the per-key truth. A campaign that ends (done or
cancelled) expires after ``ttl_seconds``; its id leaves the index when
the index is next read.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from cache._redis import check_part, unavailable_on_error

__all__ = ["KEY_STATES", "CampaignRecord", "CampaignStore"]

#: Every state a key of a campaign can be in.
KEY_STATES = ("queued", "running", "cached", "done", "failed", "cancelled")
#: Campaign states in which the runner still has work to do.
ACTIVE = frozenset({"queued", "running"})
#: The keys of a campaign besides its meta.
_PARTS = ("keys", "states", "errors", "products")


@dataclass(frozen=True)
class CampaignRecord:
    """A campaign as the API reports it.

    Attributes
    ----------
    counts
        ``total`` and one count per key state; ``already_cached`` counts
        keys found cached when their turn came (skipped, not recomputed).
    failed
        The failed keys with their error codes and messages.
    throughput_per_minute
        Keys finished per minute since the first one started.
    eta_seconds
        Time to finish the keys left at that throughput (None before
        any key has finished).
    """

    id: str
    name: str
    state: str
    priority: int
    counts: dict[str, int]
    failed: list[dict[str, Any]] = field(default_factory=list)
    owner: str | None = None
    selection: dict[str, Any] | None = None
    solutions_only: bool = False
    created: float = 0.0
    updated: float = 0.0
    started: float | None = None
    finished: float | None = None
    throughput_per_minute: float | None = None
    eta_seconds: float | None = None


class CampaignStore:
    """Campaign records in the control Redis.

    Parameters
    ----------
    redis_client
        Client of the control Redis (``noeviction``).
    prefix
        Prefix of every key this store writes.
    ttl_seconds
        How long a finished campaign is kept.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "recreate",
        ttl_seconds: int = 7 * 86400,
    ) -> None:
        check_part("prefix", prefix)
        self._redis = redis_client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def create(
        self,
        name: str,
        keys: Sequence[tuple[int, int]],
        *,
        priority: int = 0,
        instrument: str | None = None,
        output_format: str | None = None,
        selection: Mapping[str, Any] | None = None,
        solutions_only: bool = False,
        owner: str | None = None,
    ) -> str:
        """Record a new campaign with every key queued; return its id.

        ``owner`` is the user who may cancel it (besides an admin);
        ``solutions_only``: store the keys' solutions, not products.

        Raises
        ------
        ValueError
            If ``keys`` is empty.
        CacheUnavailableError
            If the control Redis cannot be reached.
        """
        if not keys:
            raise ValueError("a campaign needs at least one key")
        campaign_id = secrets.token_hex(8)
        now = time.time()
        meta = {
            "id": campaign_id,
            "name": name,
            "owner": owner,
            "state": "queued",
            "priority": priority,
            "instrument": instrument,
            "format": output_format,
            "total": len(keys),
            "selection": dict(selection) if selection else None,
            "solutions_only": solutions_only,
            "created": now,
            "updated": now,
            "started": None,
            "finished": None,
        }
        with unavailable_on_error(self._redis, f"creating campaign {name}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self._meta_key(campaign_id), json.dumps(meta))
            pipe.rpush(
                self._part(campaign_id, "keys"),
                *(f"{visit}/{detector}" for visit, detector in keys),
            )
            pipe.hset(
                self._part(campaign_id, "states"),
                mapping={str(i): "queued" for i in range(len(keys))},
            )
            pipe.zadd(self._index_key(), {campaign_id: now})
            pipe.execute()
        return campaign_id

    def meta(self, campaign_id: str) -> dict[str, Any] | None:
        """Return a campaign's stored fields, or None if it is unknown."""
        with unavailable_on_error(self._redis, f"reading {campaign_id}"):
            raw = self._redis.get(self._meta_key(campaign_id))
        if raw is None:
            return None
        meta: dict[str, Any] = json.loads(raw)
        return meta

    def get(self, campaign_id: str) -> CampaignRecord | None:
        """Return a campaign with its counts, failures, rate and ETA."""
        meta = self.meta(campaign_id)
        if meta is None:
            return None
        with unavailable_on_error(self._redis, f"reading {campaign_id}"):
            states = self._redis.hgetall(self._part(campaign_id, "states"))
            errors = self._redis.hgetall(self._part(campaign_id, "errors"))
            keys = self._redis.lrange(self._part(campaign_id, "keys"), 0, -1)
        tally = Counter(_text(value) for value in states.values())
        counts = {"total": int(meta["total"])}
        counts.update({state: tally.get(state, 0) for state in KEY_STATES})
        counts["already_cached"] = counts.pop("cached")
        failed = [
            _failure(keys[int(index)], raw)
            for index, raw in sorted(errors.items(), key=lambda i: int(i[0]))
        ]
        rate, eta = _progress(meta, counts)
        return CampaignRecord(
            id=campaign_id,
            name=meta["name"],
            state=meta["state"],
            priority=int(meta["priority"]),
            counts=counts,
            failed=failed,
            owner=meta.get("owner"),
            selection=meta.get("selection"),
            solutions_only=bool(meta.get("solutions_only", False)),
            created=meta["created"],
            updated=meta["updated"],
            started=meta.get("started"),
            finished=meta.get("finished"),
            throughput_per_minute=rate,
            eta_seconds=eta,
        )

    def all(self, owner: str | None = None) -> list[CampaignRecord]:
        """Return every campaign (or ``owner``'s), newest first."""
        records = [self.get(i) for i in reversed(self._ids())]
        return [
            record
            for record in records
            if record is not None and owner in (None, record.owner)
        ]

    def active(self) -> list[str]:
        """Return the ids of campaigns with work left, oldest first."""
        return [
            campaign_id
            for campaign_id in self._ids()
            if (meta := self.meta(campaign_id)) and meta["state"] in ACTIVE
        ]

    def _ids(self) -> list[str]:
        """Return the indexed ids, oldest first; forget expired ones."""
        with unavailable_on_error(self._redis, "listing campaigns"):
            ids = [
                _text(i) for i in self._redis.zrange(self._index_key(), 0, -1)
            ]
            pipe = self._redis.pipeline(transaction=False)
            for campaign_id in ids:
                pipe.exists(self._meta_key(campaign_id))
            gone = [
                i
                for i, there in zip(ids, pipe.execute(), strict=True)
                if not there
            ]
            if gone:
                self._redis.zrem(self._index_key(), *gone)
        return [i for i in ids if i not in gone]

    def products(self, campaign_id: str) -> dict[int, str]:
        """Return the product key of every key made or found cached."""
        with unavailable_on_error(self._redis, f"reading {campaign_id}"):
            raw = self._redis.hgetall(self._part(campaign_id, "products"))
        return {int(index): _text(key) for index, key in raw.items()}

    def keys(self, campaign_id: str) -> list[tuple[int, int]]:
        """Return a campaign's keys in submission order."""
        with unavailable_on_error(self._redis, f"reading {campaign_id}"):
            raw = self._redis.lrange(self._part(campaign_id, "keys"), 0, -1)
        return [_parse_key(item) for item in raw]

    def states(self, campaign_id: str) -> dict[int, str]:
        """Return the state of every key, by index."""
        with unavailable_on_error(self._redis, f"reading {campaign_id}"):
            raw = self._redis.hgetall(self._part(campaign_id, "states"))
        return {int(index): _text(value) for index, value in raw.items()}

    def mark(
        self,
        campaign_id: str,
        index: int,
        state: str,
        *,
        code: str | None = None,
        message: str | None = None,
        product: str | None = None,
    ) -> None:
        """Set one key's state (its error when it failed, its product).

        Raises
        ------
        ValueError
            If ``state`` is not one of `KEY_STATES`.
        """
        if state not in KEY_STATES:
            raise ValueError(f"unknown key state {state!r}")
        with unavailable_on_error(self._redis, f"updating {campaign_id}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(self._part(campaign_id, "states"), str(index), state)
            if state == "failed":
                pipe.hset(
                    self._part(campaign_id, "errors"),
                    str(index),
                    json.dumps({"code": code, "message": message}),
                )
            if product is not None:
                pipe.hset(
                    self._part(campaign_id, "products"), str(index), product
                )
            pipe.execute()
        self._update_meta(campaign_id, {}, first_start=state == "running")

    def set_state(self, campaign_id: str, state: str) -> None:
        """Set the campaign's own state (queued, running, done...).

        A finished campaign (done, cancelled) expires after the store's
        TTL; one made active again is kept until it finishes.
        """
        extra: dict[str, Any] = {"state": state}
        if state not in ACTIVE:
            extra["finished"] = time.time()
        self._update_meta(campaign_id, extra)
        names = [self._meta_key(campaign_id)]
        names += [self._part(campaign_id, part) for part in _PARTS]
        with unavailable_on_error(self._redis, f"updating {campaign_id}"):
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                if state in ACTIVE:
                    pipe.persist(name)
                else:
                    pipe.expire(name, self._ttl)
            pipe.execute()

    def cancel(self, campaign_id: str) -> int:
        """Cancel every key not started yet; return how many.

        Keys already running finish (Dask never interrupts a task); the
        campaign's state becomes ``cancelled``.
        """
        cancelled = self._move(
            campaign_id, "queued", "cancelled", what="cancelling"
        )
        self.set_state(campaign_id, "cancelled")
        return cancelled

    def requeue_running(self, campaign_id: str) -> int:
        """Put keys left ``running`` by a dead broker back in the queue."""
        return self._move(campaign_id, "running", "queued", what="resuming")

    def requeue(self, campaign_id: str, indices: Sequence[int]) -> int:
        """Put the keys at ``indices`` back in the queue; return how many."""
        if indices:
            with unavailable_on_error(self._redis, f"requeuing {campaign_id}"):
                self._redis.hset(
                    self._part(campaign_id, "states"),
                    mapping={str(i): "queued" for i in indices},
                )
        return len(indices)

    def _move(
        self, campaign_id: str, from_state: str, to_state: str, *, what: str
    ) -> int:
        """Set every key in ``from_state`` to ``to_state``; return how many.

        ``what`` names the operation in the error raised when the control
        Redis cannot be reached.
        """
        states = self.states(campaign_id)
        moved = [str(i) for i, state in states.items() if state == from_state]
        with unavailable_on_error(self._redis, f"{what} {campaign_id}"):
            if moved:
                self._redis.hset(
                    self._part(campaign_id, "states"),
                    mapping=dict.fromkeys(moved, to_state),
                )
        return len(moved)

    def _update_meta(
        self,
        campaign_id: str,
        fields: Mapping[str, Any],
        *,
        first_start: bool = False,
    ) -> None:
        """Rewrite a campaign's fields with ``fields`` and a new time.

        A read-modify-write under WATCH: the runner touches the record
        after every key while a cancel may set its state from another
        thread, and a plain GET then SET could write the old state back
        over ``cancelled``. ``first_start`` sets ``started`` if unset.
        """
        name = self._meta_key(campaign_id)

        def apply(pipe: redis.client.Pipeline) -> None:
            # A concurrent write makes the transaction fail and redis-py
            # run this again on fresh data.
            raw = pipe.get(name)
            if raw is None:
                return
            meta: dict[str, Any] = json.loads(raw)
            now = time.time()
            meta.update(fields)
            if first_start and meta.get("started") is None:
                meta["started"] = now
            meta["updated"] = now
            pipe.multi()
            pipe.set(name, json.dumps(meta))

        with unavailable_on_error(self._redis, f"updating {campaign_id}"):
            self._redis.transaction(apply, name)

    def _meta_key(self, campaign_id: str) -> str:
        check_part("campaign id", campaign_id)
        return f"{self._prefix}:campaign:{campaign_id}"

    def _part(self, campaign_id: str, part: str) -> str:
        """Return the key of one of a campaign's `_PARTS`."""
        return f"{self._meta_key(campaign_id)}:{part}"

    def _index_key(self) -> str:
        return f"{self._prefix}:campaigns"


def _text(raw: object) -> str:
    """Return a Redis reply as text (clients here do not decode)."""
    if isinstance(raw, bytes):
        return raw.decode()
    if isinstance(raw, str):
        return raw
    raise TypeError(f"expected a bytes reply, got {type(raw).__name__}")


def _parse_key(raw: object) -> tuple[int, int]:
    """Return (visit, detector) from ``b"visit/detector"``."""
    visit, detector = _text(raw).split("/")
    return int(visit), int(detector)


def _failure(raw_key: object, raw_error: object) -> dict[str, Any]:
    """Return one failed key with its error."""
    visit, detector = _parse_key(raw_key)
    error = json.loads(_text(raw_error))
    return {"visit": visit, "detector": detector, **error}


def _progress(
    meta: Mapping[str, Any], counts: Mapping[str, int]
) -> tuple[float | None, float | None]:
    """Return (keys per minute, seconds to go) since the first start."""
    started = meta.get("started")
    finished = sum(
        counts[name] for name in ("already_cached", "done", "failed")
    )
    if started is None or finished == 0:
        return None, None
    end = meta.get("finished") or time.time()
    elapsed = max(end - started, 1e-3)
    rate = finished / elapsed
    left = counts["queued"] + counts["running"]
    return rate * 60.0, left / rate
