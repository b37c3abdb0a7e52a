"""Regions of difference images: the one seam every cutout face calls.

A region is a box of a detector's parent pixels. The faces that cut
(SODA cutouts, stamps and light curves, previews of a cutout, the
``?box=`` parameter) turn what they were given (a sky stencil, a centre
and a size) into a `PixelBox` with the helpers here, clip it to the
detector with `clip_box`, and ask `RegionService.region` for its bytes.

A region is **rendered** from the detector's stored solution
(`workers.solutions`: kept in this process, in Redis, in the durable
store, or solved once on a Dask worker), reading only what the box needs
of the visit image and the template patches: the same pixels as the full
product, bit for bit (`recreate.solution`). Where it is rendered was
decided by measurement (README, "Regions through the service"): a small
box (up to ``region_local_max_pixels``: a stamp takes tens of
milliseconds) in this process's own thread pool, where the solution is
already parsed and the files' headers are already read; a Dask task's
round trip, and the region's trip through Redis, would cost more than
the render. A larger box is a `REGION` task on the workers, cached under
its own key like a product and streamed from the cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from astropy.wcs import NoConvergence

from recreate.errors import InvalidRequestError, ProcessingError
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from recreate.pipeline.kernel.basis import forget_bases
from recreate.solution import forget_visit_image
from workers.models import ProductRequest, TaskSpec
from workers.product_answers import (
    Answer,
    NotModified,
    Pending,
    ProductInfo,
    Served,
)
from workers.products import ProductService
from workers.render_processes import RenderProcesses, keyed_solution
from workers.solution_tasks import region_meta, region_spec, render_region
from workers.solutions import FoundSolution, SolutionService

__all__ = [
    "Region",
    "RegionService",
    "box_around",
    "box_of_sky_points",
    "clip_box",
    "detector_box",
]

#: Detector geometries kept in one process (a few kB each).
GEOMETRIES_KEPT = 4096


@dataclass(frozen=True)
class Region:
    """The bytes of a region, and what they are.

    Attributes
    ----------
    data
        A FITS file in the product's layout (DP1: IMAGE, MASK, VARIANCE,
        the kernel), holding only the box, with its ``xy0`` and a WCS for
        the region.
    box
        The box the file holds (clipped to the detector).
    meta
        The region's metadata (recipe, inputs, box).
    cache_state
        ``hit`` when the solution was stored (or the region cached),
        ``miss`` when it was solved for this request.
    """

    data: bytes
    box: PixelBox
    meta: dict[str, Any]
    cache_state: str


def detector_box(geometry: ImageGeometry) -> PixelBox:
    """Return the detector's whole box of parent pixels."""
    height, width = geometry.shape
    return PixelBox(geometry.xy0[0], geometry.xy0[1], width, height)


def clip_box(box: PixelBox, geometry: ImageGeometry) -> PixelBox:
    """Return the part of ``box`` on the detector (empty if none)."""
    return box.intersection(detector_box(geometry))


def box_around(
    geometry: ImageGeometry, ra: float, dec: float, size: int
) -> PixelBox:
    """Return the ``size`` x ``size`` box centred on a sky position.

    The centre pixel is the one the position falls in; an even size
    puts the extra column and row on the low side. The box is not
    clipped.

    Raises
    ------
    InvalidRequestError
        If the detector has no sky WCS, or ``size`` is not positive.
    """
    if size <= 0:
        raise InvalidRequestError(f"size must be positive, got {size}")
    (x,), (y,) = _sky_to_parent(geometry, [ra], [dec])
    cx, cy = math.floor(x + 0.5), math.floor(y + 0.5)
    half = size // 2
    return PixelBox(cx - half, cy - half, size, size)


def box_of_sky_points(
    geometry: ImageGeometry,
    ra: Sequence[float],
    dec: Sequence[float],
) -> PixelBox:
    """Return the smallest box of whole pixels holding sky points.

    For a stencil (a circle, a polygon, a range), pass points on its
    outline dense enough that the outline between them stays within a
    pixel of the chords. The box is not clipped.

    Raises
    ------
    InvalidRequestError
        If the detector has no sky WCS, or a point does not project.
    """
    xs, ys = _sky_to_parent(geometry, ra, dec)
    x0, y0 = math.floor(xs.min() + 0.5), math.floor(ys.min() + 0.5)
    x1, y1 = math.floor(xs.max() + 0.5), math.floor(ys.max() + 0.5)
    return PixelBox(x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def _sky_to_parent(
    geometry: ImageGeometry, ra: Sequence[float], dec: Sequence[float]
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], ...]:
    """Return parent-frame pixel positions of sky points (degrees)."""
    if geometry.wcs is None:
        raise InvalidRequestError(
            "the detector has no sky WCS: give a pixel box instead"
        )
    # A position far from the detector (the other side of the sky) does
    # not project, or the distortion's inversion does not converge: NaN
    # either way, refused below (numpy's warnings about them are noise).
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            x, y = geometry.wcs.all_world2pix(
                np.asarray(ra, np.float64),
                np.asarray(dec, np.float64),
                0,
                quiet=True,
            )
        except NoConvergence:
            x = y = np.array([np.nan])
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidRequestError(
            "a position does not project onto the detector's pixel grid"
        )
    return x + geometry.xy0[0], y + geometry.xy0[1]


@dataclass
class RegionService:
    """Regions of products: geometry first, then the pixels of a box.

    Parameters
    ----------
    products
        The product service (cache, broker, Butler).
    solutions
        The solutions (made from ``products`` when not given).
    local_max_pixels
        Largest box rendered in this process; larger ones on Dask.
    threads
        Threads of this process's render pool.
    processes
        Processes that render small boxes instead of that thread pool
        (`workers.render_processes`); None renders them in this process.
    """

    products: ProductService
    solutions: SolutionService | None = None
    local_max_pixels: int = 512 * 512
    threads: int = 2
    processes: RenderProcesses | None = None
    _pool: ThreadPoolExecutor | None = field(default=None, init=False)
    _geometries: dict[
        tuple[str | None, int, int], tuple[float, ImageGeometry]
    ] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        """Make the solution service if none was given."""
        if self.solutions is None:
            self.solutions = SolutionService(self.products)

    @property
    def solution_service(self) -> SolutionService:
        """The solution service."""
        if self.solutions is None:  # pragma: no cover - set at init
            raise ProcessingError("the region service has no solutions")
        return self.solutions

    async def geometry(self, request: ProductRequest) -> ImageGeometry:
        """Return the detector's WCS, ``xy0`` and shape (headers only).

        Read from the visit image's headers (parsed once, kept for the
        render), and remembered in this process for
        ``recipe_index_ttl_seconds`` (a cutout face asks for it on every
        request).

        Raises
        ------
        DataNotFoundError, InvalidRequestError
            The Butler's answer for an unknown key.
        """
        from recreate.visit_geometry import read_visit_geometry

        settings = self.products.settings
        key = (request.instrument, request.visit, request.detector)
        now = time.monotonic()
        remembered = self._geometries.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        # The same Butler answer as the solution's spec (one lookup on a
        # detector's first stamp), and the visit image's headers parsed
        # once for this and the render (a local file; a remote one has
        # only its headers streamed).
        found = await self.solution_service.find_inputs(request)
        # Kept for the render when it is rendered in this process.
        geometry = await asyncio.to_thread(
            read_visit_geometry, found, keep=self.processes is None
        )
        if len(self._geometries) >= GEOMETRIES_KEPT:
            self._geometries.clear()
        expires = now + settings.recipe_index_ttl_seconds
        self._geometries[key] = (expires, geometry)
        return geometry

    async def region(
        self,
        request: ProductRequest,
        box: PixelBox,
        *,
        before_solve: Callable[[], Awaitable[None]] | None = None,
    ) -> Region | Pending:
        """Return the pixels of ``box`` (already clipped, not empty).

        A `Pending` comes back when the solve (or a large region's task)
        is still running after the sync timeout (a job to follow).
        ``before_solve`` is awaited before a solve (the caller's budget).

        Raises
        ------
        InvalidRequestError
            If the box is empty.
        DataNotFoundError, NoOverlapError
            As the product service raises them.
        """
        answer = await self.serve(request, box, before_solve=before_solve)
        if isinstance(answer, Pending):
            return answer
        served = _served(answer, request)
        data = await _collect(served)
        return Region(data, box, dict(served.info.meta), served.cache_state)

    async def serve(
        self,
        request: ProductRequest,
        box: PixelBox,
        *,
        etags: frozenset[str] = frozenset(),
        body: bool = True,
        url: str = "",
        before_solve: Callable[[], Awaitable[None]] | None = None,
    ) -> Answer:
        """Answer a request for a region as the product service answers.

        ``box`` is clipped to the detector and not empty. The solution
        comes first (kept, stored, or solved once: ``before_solve`` is
        awaited before a solve); then a small box is rendered here (its
        bytes whole), a large one by a region task on a worker (cached,
        then streamed from the cache). ``hit``: the solution was stored.

        Raises
        ------
        InvalidRequestError
            If the box is empty.
        DataNotFoundError, NoOverlapError, KernelFitError
            As the product and solution services raise them.
        """
        if box.empty:
            raise InvalidRequestError(f"the box {tuple(box)} holds no pixel")
        solutions = self.solution_service
        spec = await solutions.resolve(request)
        found = await solutions.get(spec, url=url, before_solve=before_solve)
        if isinstance(found, Pending):
            return found
        state: Literal["hit", "miss"] = "hit" if found.was_stored else "miss"
        if box.width * box.height > self.local_max_pixels:
            answer = await self.products.serve_spec(
                region_spec(spec, box), etags=etags, body=body, url=url
            )
            if isinstance(answer, Served):
                return dataclasses.replace(answer, cache_state=state)
            return answer
        started = time.perf_counter()
        data = await self._render(spec, found, box)
        sha256 = hashlib.sha256(data).hexdigest()
        if "*" in etags or sha256 in etags:
            return NotModified(sha256)
        meta = {
            **region_meta(spec, box),
            "solution": found.source,
            "region_seconds": round(time.perf_counter() - started, 4),
        }
        self.products.metrics.bytes_served.inc(len(data) if body else 0)
        return Served(
            ProductInfo(sha256, len(data), meta, spec.output_format),
            state,
            data if body else None,
            degraded=self.products.cache.degraded,
        )

    def start(self) -> None:
        """Start and warm the render processes, if any."""
        if self.processes is not None:
            self.processes.start()

    def forget(self) -> None:
        """Drop what this process keeps of the detectors it served.

        Their solutions, resolved specs and inputs
        (`SolutionService.forget`), their geometries, and what their
        visit images' reads keep (parsed headers, decoded rows:
        `recreate.solution.forget_visit_image`), so that a detector's
        next stamp costs what a never-seen epoch's first stamp costs (the
        light-curve benchmark forgets so). The template patches, which
        every epoch of a band shares, stay, as does the Butler's lookup
        of them by sky cell (`recreate.template_lookup`).
        """
        solutions = self.solution_service
        for found in solutions.remembered_inputs():
            forget_visit_image(found)
        solutions.forget()
        self._geometries.clear()
        forget_bases()
        if self.processes is not None:
            self.processes.forget()

    def close(self) -> None:
        """Stop the render pool (renders running finish first)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.processes is not None:
            self.processes.close()

    async def _render(
        self, spec: TaskSpec, found: FoundSolution, box: PixelBox
    ) -> bytes:
        """Render a small box here: in the render processes or threads."""
        if self.processes is not None:
            return await self.processes.render(
                spec, keyed_solution(found.solution, found.data), box
            )
        return await asyncio.get_running_loop().run_in_executor(
            self._render_pool(), render_region, spec, found.solution, box
        )

    def _render_pool(self) -> ThreadPoolExecutor:
        """Return this process's render pool, made on first use."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.threads, thread_name_prefix="recreate-render"
            )
        return self._pool


def _served(answer: Answer, request: ProductRequest) -> Served:
    """Return the served region (a request without ETags never gets 304)."""
    if not isinstance(answer, Served):
        raise ProcessingError(
            f"the region of {request.describe()} came back as "
            f"{type(answer).__name__}"
        )
    return answer


async def _collect(served: Served) -> bytes:
    """Return a served region's bytes (streamed or whole)."""
    body = served.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return b"".join([chunk async for chunk in body])
