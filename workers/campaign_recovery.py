"""What a campaign has now, and what must be made again.

The control store records how each key of a campaign ended; the blob
cache says whether its product is still there (evicted, a restarted
cache). The API reports both (`present_counts`: a key made but gone is
``missing``, not ``done``), and the runner queues again what is gone
(`missing_keys`) or what nobody is making any more (`lost_keys`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from cache import CampaignRecord, CampaignRecords

#: A campaign of solutions records a key's solution as its recipe hash
#: under this prefix, where a campaign of products records a product key.
SOLUTION_PREFIX = "solution:"


class Presence(Protocol):
    """What the runner needs of the cache: is a product there now."""

    def present(self, keys: list[str]) -> list[bool] | None:
        """Tell which products are cached; None if nobody can say."""

    def solutions_present(self, recipe_hashes: list[str]) -> list[bool] | None:
        """Tell which solutions are stored; None if nobody can say."""


def solution_entry(recipe_hash: str) -> str:
    """Return what a campaign records for a solution it made sure of."""
    return f"{SOLUTION_PREFIX}{recipe_hash}"


def found_now(present: Presence, keys: list[str]) -> list[bool] | None:
    """Tell which recorded products and solutions are there now.

    None if the cache (or the solution store) cannot say.
    """
    solutions = [k.startswith(SOLUTION_PREFIX) for k in keys]
    hashes = [
        k.removeprefix(SOLUTION_PREFIX)
        for k in keys
        if k.startswith(SOLUTION_PREFIX)
    ]
    products = [k for k in keys if not k.startswith(SOLUTION_PREFIX)]
    stored = present.solutions_present(hashes) if hashes else []
    cached = present.present(products) if products else []
    if stored is None or cached is None:
        return None
    stored_it, cached_it = iter(stored), iter(cached)
    return [next(stored_it if s else cached_it) for s in solutions]


def present_counts(
    record: CampaignRecord, products: dict[int, str], present: Presence
) -> dict[str, int]:
    """Return a campaign's counts as the cache stands now.

    A key counted ``done`` or ``already_cached`` whose product is gone
    from the cache is counted ``missing`` instead (a resumed campaign
    queues it again). With the cache unreachable the recorded counts
    stand, and ``missing`` is 0.
    """
    counts = {**record.counts, "missing": 0}
    indices = sorted(products)
    found = found_now(present, [products[i] for i in indices])
    if found is None:
        return counts
    gone = len(indices) - sum(found)
    # Which of the two a gone key was counted under is not kept apart in
    # the record: take it from done first, the larger of the two.
    from_done = min(gone, counts["done"])
    counts["done"] -= from_done
    counts["already_cached"] -= gone - from_done
    counts["missing"] = gone
    return counts


def missing_keys(
    store: CampaignRecords, present: Presence, campaign_id: str
) -> list[int]:
    """Return the done or cached keys whose product is gone now.

    Raises
    ------
    CacheUnavailableError
        If the control store cannot be reached.
    """
    products = store.products(campaign_id)
    states = store.states(campaign_id)
    made = sorted(i for i in products if states.get(i) in ("done", "cached"))
    found = found_now(present, [products[i] for i in made])
    if found is None:
        return []
    return [i for i, there in zip(made, found, strict=True) if not there]


def lost_keys(
    store: CampaignRecords, campaign_id: str, live: Collection[int]
) -> list[int]:
    """Return the keys left ``running`` that no task of ``live`` makes.

    After a control-store outage: a key whose end could not be recorded
    is still ``running`` there.
    """
    return [
        index
        for index, state in store.states(campaign_id).items()
        if state == "running" and index not in live
    ]


def queued_keys(states: dict[int, str]) -> list[int]:
    """Return the indices of queued keys, in submission order."""
    return sorted(
        index for index, state in states.items() if state == "queued"
    )
