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


class Presence(Protocol):
    """What the runner needs of the cache: is a product there now."""

    def present(self, keys: list[str]) -> list[bool] | None:
        """Tell which products are cached; None if nobody can say."""


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
    found = present.present([products[i] for i in indices]) if indices else []
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
    found = present.present([products[i] for i in made]) if made else []
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
