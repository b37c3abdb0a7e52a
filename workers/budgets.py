"""The budget table of `workers.limits`, read from its one-line form.

Kept apart from the limiter (which needs FastAPI and the cache) so that
the settings can check ``RECREATE_QUOTAS`` without loading either.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget", "parse_quotas"]


@dataclass(frozen=True)
class Budget:
    """One budget: ``count`` units per ``seconds`` (None: unlimited)."""

    name: str
    count: int | None
    seconds: float


def parse_quotas(text: str) -> dict[str, Budget]:
    """Read a budget table, ``name=count/seconds`` or ``name=off`` items.

    Raises
    ------
    ValueError
        If an item is malformed; the message names it.
    """
    budgets: dict[str, Budget] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if not name or not value:
            raise ValueError(f"quota {item!r}: expected name=count/seconds")
        if value.strip() == "off":
            budgets[name] = Budget(name, None, 1.0)
            continue
        count, _, seconds = value.partition("/")
        try:
            budget = Budget(name, int(count), float(seconds))
        except ValueError:
            raise ValueError(
                f"quota {item!r}: expected name=count/seconds"
            ) from None
        if budget.count is not None and budget.count < 1:
            raise ValueError(f"quota {item!r}: count must be at least 1")
        if not budget.seconds > 0:
            raise ValueError(f"quota {item!r}: seconds must be positive")
        budgets[name] = budget
    return budgets
