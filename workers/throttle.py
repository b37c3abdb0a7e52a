"""How many campaign products may be in Dask at once.

At most ``max_inflight`` campaign products are in flight, across all
campaigns (0: twice the scheduler's worker threads, read each time, so
it follows the workers as they scale and leaves a backlog that adaptive
scaling can see). A lost scheduler pauses them all for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from recreate.errors import RecreateError

#: Seconds between looks for a free slot.
POLL_SECONDS = 0.5


class Scheduler(Protocol):
    """What the runner needs of the broker: the scheduler's size."""

    async def scheduler_info(self) -> dict[str, Any]:
        """Return the scheduler's ``workers``, ``threads``, ``desired``."""


@dataclass
class Throttle:
    """Slots for campaign products in Dask, shared by every campaign.

    Parameters
    ----------
    scheduler
        The broker: how many worker threads there are.
    max_inflight
        Slots; 0: twice the worker threads.
    """

    scheduler: Scheduler
    max_inflight: int = 0
    _busy: int = 0
    _freed: asyncio.Event = field(default_factory=asyncio.Event)
    _paused_until: float = 0.0

    def pause(self, seconds: float) -> None:
        """Give no slot for ``seconds`` (the scheduler was lost)."""
        self._paused_until = time.monotonic() + seconds

    async def take(self) -> None:
        """Reserve one campaign slot, waiting for one to free up.

        The key's task frees it (`release`) when it ends.
        """
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            elif self._busy < await self._limit():
                break
            else:
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), POLL_SECONDS)
        self._busy += 1

    def release(self) -> None:
        """Free a slot taken by `take`."""
        self._busy -= 1
        self._freed.set()

    async def _limit(self) -> int:
        """Return the number of campaign tasks allowed in flight now."""
        if self.max_inflight > 0:
            return self.max_inflight
        try:
            info = await self.scheduler.scheduler_info()
        except (RecreateError, OSError, TimeoutError):
            return 1
        # A queue as deep as the workers again: the adaptive target (and
        # an autoscaler) sees the backlog, and users still overtake it.
        return max(2, 2 * int(info["threads"]))
