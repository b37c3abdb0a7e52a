"""Decoded rows of tile-compressed inputs, kept between reads.

A stamp decodes a few hundred rows of every plane of its visit image
and of its template patches (the render works on a fixed tile grid with
halos), and inflating them is most of a stamp's time. A light curve
asks the same template patches for every epoch (a band's coadds are
shared by all its visits), and stamps around one object ask the same
rows of a visit image again. `InputCache` keeps decoded **bands** of
rows (`BAND_ROWS` rows, all columns, aligned so that every read of a
plane shares them) keyed by the file (path, size, modification time),
the plane and the band, least recently used first out, under a bound in
bytes. A read through it returns the same pixels as a direct read, bit
for bit: a band is the decoder's own output, copied.

A read larger than a quarter of the bound (a whole detector) bypasses
the cache, so one full product cannot flush what the stamps share.

The process's cache is `input_cache`; its bound is
``RECREATE_INPUT_CACHE_BYTES`` (bytes, 0 turns it off; default
`DEFAULT_BYTES`), or what `configure_input_cache` sets.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.io.tiles import TileLayout, read_tiles

ENV_VAR = "RECREATE_INPUT_CACHE_BYTES"

#: Default bound: the bands of a light curve's template patches and of
#: a few hundred visit images' stamps (a 1018-px plane's band is 256 KB,
#: a 4072-px one's 1 MB).
DEFAULT_BYTES = 256 * 1024 * 1024

#: Rows of a band (rounded up to whole tiles).
BAND_ROWS = 64

#: A read may fill at most this fraction of the bound.
_LARGEST_READ_FRACTION = 4


@dataclass(frozen=True)
class CacheStats:
    """What a cache holds and how it has been used."""

    max_bytes: int
    bytes: int
    bands: int
    hits: int
    misses: int


class InputCache:
    """A thread-safe LRU of decoded row bands, bounded in bytes.

    Parameters
    ----------
    max_bytes
        Most bytes of pixels kept; 0 keeps nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._bands: OrderedDict[tuple[Hashable, int], npt.NDArray] = (
            OrderedDict()
        )
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._max_bytes = _checked(max_bytes)

    def resize(self, max_bytes: int) -> None:
        """Set the bound, dropping the least recently used bands over it."""
        with self._lock:
            self._max_bytes = _checked(max_bytes)
            self._evict()

    def clear(self) -> None:
        """Drop every band (the counts stay)."""
        with self._lock:
            self._bands.clear()
            self._bytes = 0

    def drop(self, planes: Callable[[Hashable], bool]) -> None:
        """Drop the bands of every plane for which ``planes`` is true."""
        with self._lock:
            for key in [k for k in self._bands if planes(k[0])]:
                self._bytes -= self._bands.pop(key).nbytes

    def stats(self) -> CacheStats:
        """Return the bound, the bytes and bands held, hits and misses."""
        with self._lock:
            return CacheStats(
                self._max_bytes,
                self._bytes,
                len(self._bands),
                self._hits,
                self._misses,
            )

    def read_rows(
        self, plane: Hashable, layout: TileLayout, rows: slice
    ) -> npt.NDArray:
        """Return rows ``rows`` (step 1, inside the plane), all columns.

        As `recreate.io.tiles.read_tiles` returns them, bit for bit.

        Parameters
        ----------
        plane
            Names the plane and the file's version (path, size,
            modification time, extension).
        layout
            The plane's tile layout.
        rows
            The rows wanted.

        Returns
        -------
        pixels
            A new array (the caller may write to it).

        Raises
        ------
        zlib.error, ValueError, OSError
            If the file's tiles are damaged or short.
        """
        height, width = layout.shape
        start, stop, _ = rows.indices(height)
        if stop <= start:
            return np.empty((0, width), dtype=layout.dtype)
        band = -(-BAND_ROWS // layout.tile_rows) * layout.tile_rows
        first, last = start // band, (stop - 1) // band
        size = (last - first + 1) * band * width * layout.dtype.itemsize
        if self._bypassed(size):
            return read_tiles(layout, slice(start, stop))
        bands = self._bands_of(plane, layout, range(first, last + 1), band)
        top = start - first * band
        return np.concatenate(bands, axis=0)[top : top + stop - start]

    def _bands_of(
        self,
        plane: Hashable,
        layout: TileLayout,
        indices: range,
        band: int,
    ) -> list[npt.NDArray]:
        """Return the bands ``indices``, decoding the missing ones."""
        found: dict[int, npt.NDArray] = {}
        with self._lock:
            for index in indices:
                kept = self._bands.get((plane, index))
                if kept is not None:
                    self._bands.move_to_end((plane, index))
                    found[index] = kept
            self._hits += len(found)
            self._misses += len(indices) - len(found)
        for run in _missing_runs(indices, found):
            top = run.start * band
            decoded = read_tiles(
                layout, slice(top, min(run.stop * band, layout.shape[0]))
            )
            for index in run:
                part = np.array(
                    decoded[(index - run.start) * band :][:band], copy=True
                )
                part.setflags(write=False)
                found[index] = part
                self._put((plane, index), part)
        return [found[index] for index in indices]

    def _put(self, key: tuple[Hashable, int], band: npt.NDArray) -> None:
        """Keep a band (another thread may have kept the same pixels)."""
        with self._lock:
            if self._max_bytes == 0:
                return
            old = self._bands.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._bands[key] = band
            self._bytes += band.nbytes
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used bands until under the bound (locked)."""
        while self._bytes > self._max_bytes and self._bands:
            _, band = self._bands.popitem(last=False)
            self._bytes -= band.nbytes

    def _bypassed(self, size: int) -> bool:
        """Say whether a read of bands of ``size`` bytes bypasses."""
        with self._lock:
            bound = self._max_bytes
        return size > bound // _LARGEST_READ_FRACTION


def _missing_runs(
    indices: range, found: dict[int, npt.NDArray]
) -> list[range]:
    """Return the runs of consecutive indices not in ``found``."""
    runs: list[range] = []
    start: int | None = None
    for index in [*indices, None]:
        missing = index is not None and index not in found
        if missing and start is None:
            start = index
        elif not missing and start is not None:
            runs.append(range(start, indices.stop if index is None else index))
            start = None
    return runs


def _checked(max_bytes: int) -> int:
    """Return a bound, refusing a negative one."""
    if max_bytes < 0:
        raise ValueError(f"a cache bound of {max_bytes} bytes is negative")
    return max_bytes


def _bound_from_environment() -> int:
    """Return ``RECREATE_INPUT_CACHE_BYTES`` or the default.

    Raises
    ------
    ValueError
        If the variable is not a non-negative integer.
    """
    text = os.environ.get(ENV_VAR)
    if text is None:
        return DEFAULT_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{ENV_VAR}={text!r} is not a non-negative integer")
    return value


#: This process's cache of decoded input rows.
input_cache = InputCache(_bound_from_environment())


def configure_input_cache(max_bytes: int) -> None:
    """Set the bound of this process's input cache (0 turns it off)."""
    input_cache.resize(max_bytes)


__all__ = [
    "BAND_ROWS",
    "DEFAULT_BYTES",
    "ENV_VAR",
    "CacheStats",
    "InputCache",
    "configure_input_cache",
    "input_cache",
]
