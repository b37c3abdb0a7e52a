"""Template patches near a sky cell: one registry query per band and cell.

`recreate.butler.find_inputs` asks the registry, for every detector, for
the template patches of its band that overlap its grown region: a
daf_butler query (about 5 ms of Python on a 2-core machine), which is
most of a light curve's lookup per epoch. The epochs of one position
share their patches, so a service that answers stamps keeps, per band
and per sky cell (an HTM trixel of `CELL_LEVEL`), the patches that
overlap a circle around the cell (`cell_circle`), and tests each
detector's region against them exactly (the same test as the query
path: a patch overlaps unless its region is disjoint from the detector's).
The answer is the query path's: the same patches, sorted alike.

A detector whose grown region is not inside its cell's circle (a
detector larger than `CELL_MARGIN_DEG`) is looked up by the query path.
What is kept expires after ``lifetime`` seconds: a template added to the
repository is seen by then, as the service's other Butler answers are.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: HTM level of a cell: trixels about 0.35 deg across.
CELL_LEVEL = 8
#: The circle kept for a cell is the trixel's bounding circle grown by
#: this much: any detector whose grown region's centre falls in the
#: trixel and that is smaller than this across (LSSTCam's are 0.23 deg
#: across their diagonal) lies inside it.
CELL_MARGIN_DEG = 0.35
#: Cells kept in one process: a cell holds a few dozen patch refs with
#: their records (35 refs pickle to 14 kB on the demo repository, about
#: 0.1 MB in memory), so at most some 25 MB; a light curve needs one a band.
CELLS_KEPT = 256

Refs = list[Any]
Query = Callable[[Any, str, Any], Refs]


@dataclass
class TemplateLookup:
    """The template patches of a band overlapping a region, cells kept.

    Parameters
    ----------
    lifetime
        Seconds a cell's patches are kept (0: nothing is kept, every
        lookup is a query).
    cells_kept
        Cells kept; the least recently used leaves first.
    clock
        Monotonic seconds (a test's clock).
    """

    lifetime: float = 60.0
    cells_kept: int = CELLS_KEPT
    clock: Callable[[], float] = time.monotonic
    queries: int = field(default=0, init=False)
    _cells: OrderedDict[tuple[str, int], tuple[float, Refs]] = field(
        default_factory=OrderedDict, init=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def overlapping(
        self, butler: Any, band: str, region: Any, query: Query
    ) -> Refs:
        """Return the band's template refs overlapping ``region``, sorted.

        Parameters
        ----------
        butler
            The open Butler.
        band
            The visit's band.
        region
            The detector's grown region (an ``lsst.sphgeom`` region).
        query
            The query path, ``query(butler, band, region)``: the refs
            whose patch regions overlap ``region`` (`overlapping_patches`;
            with their patch records), as `recreate.butler` asks the
            registry; unsorted.

        Returns
        -------
        refs
            The ``template_coadd`` refs, sorted by (skymap, tract, patch).
        """
        cell = _cell_of(region)
        circle = cell_circle(cell)
        if self.lifetime <= 0 or not region.isWithin(circle):
            self.queries += 1
            return sorted_refs(query(butler, band, region))
        candidates = self._kept(band, cell)
        if candidates is None:
            self.queries += 1
            # The query's own overlap test against the circle keeps only
            # patches that can overlap a detector of this cell.
            candidates = query(butler, band, circle)
            self._keep(band, cell, candidates)
        return sorted_refs(overlapping_patches(candidates, region))

    def forget(self) -> None:
        """Drop every kept cell."""
        with self._lock:
            self._cells.clear()

    def _kept(self, band: str, cell: int) -> Refs | None:
        """Return a cell's kept candidates, if they have not expired."""
        with self._lock:
            kept = self._cells.get((band, cell))
            if kept is None or kept[0] <= self.clock():
                return None
            self._cells.move_to_end((band, cell))
            return kept[1]

    def _keep(self, band: str, cell: int, refs: Refs) -> None:
        """Keep a cell's candidates (the least recently used leave)."""
        with self._lock:
            self._cells[(band, cell)] = (self.clock() + self.lifetime, refs)
            self._cells.move_to_end((band, cell))
            while len(self._cells) > self.cells_kept:
                self._cells.popitem(last=False)


def cell_circle(cell: int) -> Any:
    """Return the circle whose patches a cell keeps (an sphgeom Circle)."""
    from lsst.sphgeom import Angle, HtmPixelization

    trixel = HtmPixelization(CELL_LEVEL).triangle(cell)
    return trixel.getBoundingCircle().dilatedBy(
        Angle.fromDegrees(CELL_MARGIN_DEG)
    )


def sorted_refs(refs: Refs) -> Refs:
    """Return template refs sorted by (skymap, tract, patch)."""
    return sorted(
        refs,
        key=lambda ref: (
            str(ref.dataId["skymap"]),
            int(ref.dataId["tract"]),
            int(ref.dataId["patch"]),
        ),
    )


def overlapping_patches(candidates: Refs, region: Any) -> Refs:
    """Return the refs whose patch region is not disjoint from ``region``.

    GetTemplateTask's test of a patch against the detector, exactly.
    """
    return [
        ref
        for ref in candidates
        if not ref.dataId.records["patch"].region.isDisjointFrom(region)
    ]


def _cell_of(region: Any) -> int:
    """Return the HTM index of the centre of a region's bounding circle."""
    from lsst.sphgeom import HtmPixelization

    centre = region.getBoundingCircle().getCenter()
    return int(HtmPixelization(CELL_LEVEL).index(centre))
