"""A cached product's chunks, sent as they come from Redis.

The API process never holds a whole product: `ChunkStream` yields the
first chunk (already read and verified, before the status line went
out), then reads and verifies chunk N+1 in a thread while chunk N is
being sent, so Redis, the checksums and the socket work at once.

What happens when a chunk turns out broken after the status is sent
(it fails its checksum, or was evicted between the opening check and
its read): the store has already dropped the entry, and the stream
raises, which aborts the connection. The client sees a body shorter
than its Content-Length (an error in any HTTP client, never a short
file taken for whole), and its next request is a miss that recomputes.
Eviction, the common case, is caught before any byte is sent: opening
a product checks every chunk's length in one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

from cache import OpenedValue


class ChunkStream:
    """An opened product's chunks as an async iterator, one read ahead.

    Parameters
    ----------
    opened
        The product, its first chunk read and verified.
    on_sent
        Called with the length of every chunk handed on (metrics).
    """

    def __init__(
        self, opened: OpenedValue, on_sent: Callable[[int], None]
    ) -> None:
        self._opened = opened
        self._on_sent = on_sent

    @property
    def size(self) -> int:
        """Length of the whole product in bytes."""
        return self._opened.manifest.size

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield the chunks in order."""
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        rest = self._opened.rest
        if self._opened.first:
            self._on_sent(len(self._opened.first))
            ahead = asyncio.ensure_future(asyncio.to_thread(_next, rest))
            try:
                yield self._opened.first
                while (chunk := await ahead) is not None:
                    ahead = asyncio.ensure_future(
                        asyncio.to_thread(_next, rest)
                    )
                    self._on_sent(len(chunk))
                    yield chunk
            finally:
                # A client gone mid-way: let the read in flight finish
                # (a thread cannot be cancelled), then drop the rest.
                if not ahead.done():
                    await asyncio.wait([ahead])
                if not ahead.cancelled() and ahead.done():
                    ahead.exception()  # retrieved: never "never retrieved"


def _next(chunks: Iterator[bytes]) -> bytes | None:
    """Return the next chunk, or None at the end (runs in a thread)."""
    return next(chunks, None)
