"""Merge one tract's template patches and warp them onto the science grid.

Steps 2-3 of `recreate.pipeline.template.build`: per tract, the patches are
merged on the tract pixel grid with weights ``variance**-0.5`` over the
part of the tract that maps onto the grown science grid (plus 5 px),
then warped onto that grid with afw's Warper defaults
(`recreate.pipeline.template.warp`).

Which patch pixels can matter
-----------------------------
The merge reads a patch only inside the tract region, and the warp reads
only the merged region (a destination pixel whose Lanczos footprint,
bilinear mask footprint or ``EDGE`` footprint leaves it is an edge
pixel, whatever lies beyond). So a patch pixel outside the tract region
never reaches the template, and `patch_read_box` names a box that holds
the region's part of a patch with room to spare: reading only that box
(`recreate.io.read_dp1_region`) gives the same template, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from astropy.wcs import NoConvergence

from recreate.errors import FormatError, InvalidRequestError
from recreate.exposure import Exposure, MaskPlanes
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import TemplateConfig
from recreate.pipeline.template.lanczos import LANCZOS_ORDER, CoarseMap
from recreate.pipeline.template.patches import (
    PatchFrame,
    _Patch,
    _remap_mask,
)
from recreate.pipeline.template.warp import (
    MAX_MERGE_INPUTS,
    PlacedPlanes,
    Planes,
    count_flagged,
    merge_patches,
    source_window,
    warp_planes,
)

FloatArray = npt.NDArray[np.float64]

#: v29 grows the tract region it merges by this much, "to ensure we catch
#: all relevant input pixels" (``warpedBox.grow(5)``).
REGION_MARGIN = 5

#: afw's Warper default ``growFullMask``: these planes are taken from the
#: whole Lanczos footprint instead of the 2x2 bilinear one.
GROW_FULL_MASK_PLANES = ("EDGE",)

#: How far (pixels) two patches of a tract may disagree on the tract WCS.
WCS_TOLERANCE = 1e-3

#: Science pixels between the points sampled along each edge of the grown
#: science box by `patch_read_box`: a TAN-SIP edge bends away from its
#: chord by far less than a pixel over this length.
EDGE_SAMPLE_STEP = 64

#: Pixels `patch_read_box` reads beyond the edges' image, on top of the
#: region margin and the Lanczos half-width: room for the mapping
#: through another patch's WCS (within WCS_TOLERANCE), for the bend of
#: the edges between samples, and for rounding.
READ_MARGIN = 16


def _tract_groups(used: Sequence[_Patch]) -> list[list[_Patch]]:
    """Group sorted patches by tract; a patch with no tract is alone.

    Raises
    ------
    InvalidRequestError
        If a tract has, or the tracts are, more than the merge takes at
        once: far more than any detector-sized image overlaps.
    """
    groups: list[list[_Patch]] = []
    for patch in used:
        same_tract = groups and groups[-1][0].tract == patch.tract
        if same_tract and patch.tract is not None:
            groups[-1].append(patch)
            continue
        groups.append([patch])
    largest = max(len(groups), *(len(g) for g in groups))
    if largest > MAX_MERGE_INPUTS:
        raise InvalidRequestError(
            f"the science image overlaps {len(used)} template patches in "
            f"{len(groups)} tracts; at most {MAX_MERGE_INPUTS} of each fit"
        )
    return groups


def _grown_shape(shape: tuple[int, int], border: int) -> tuple[int, int]:
    """Return the shape of the science grid grown by ``border``."""
    return shape[0] + 2 * border, shape[1] + 2 * border


def _warp_tract(
    group: Sequence[_Patch],
    science: Exposure,
    grown: tuple[int, int],
    planes: MaskPlanes,
    config: TemplateConfig,
    window: PixelBox | None = None,
) -> tuple[Planes, dict[int, int]] | None:
    """Merge one tract's patches and warp them onto the grown grid.

    With a ``window`` (grown-grid array pixels), only the window is
    warped, from the part of the tract region its footprints reach: the
    pixels are those of the whole grid there (`warp_planes`), and a
    tract without data there still gives its (edge) planes, which a
    merge weighs 0.

    Returns
    -------
    result
        The warped planes and the pixels each patch (by input index)
        contributed to the merge; None if the tract adds no data.
    """
    # Geometry on the whole patches (cut-outs carry their frame): the
    # region and the mapping are then those of whole-patch reads.
    anchor = group[0].geometry
    _check_tract_wcs(group)
    region = _tract_region(anchor, science, config.border)
    region = region.intersection(_union_box([p.geometry for p in group]))
    if region.empty:
        return None
    coarse = CoarseMap.build(
        grown,
        _DestToTract(science, anchor, region, config.border),
        config.interp_length,
    )
    whole = PixelBox(0, 0, region.width, region.height)
    read = whole
    if window is not None:
        read = source_window(coarse, window).intersection(whole)
    # The pixels, whole patch or cut-out, each placed by its own xy0.
    origin = PixelBox(region.x0 + read.x0, region.y0 + read.y0, 0, 0)
    placed = [_place(p.exposure, origin, planes) for p in group]
    no_data = planes.value("NO_DATA")
    merged, counts = merge_patches(placed, (read.height, read.width), no_data)
    if window is None and not counts.any():
        return None
    grow_bits = planes.value_of_present(GROW_FULL_MASK_PLANES)
    warped = warp_planes(
        merged,
        coarse,
        no_data=no_data,
        grow_bits=grow_bits,
        window=window,
        source_frame=PixelBox(read.x0, read.y0, region.width, region.height),
    )
    all_edge = count_flagged(warped.mask, no_data) == warped.mask.size
    if window is None and all_edge:
        return None
    contributed = {p.index: int(n) for p, n in zip(group, counts, strict=True)}
    return warped, contributed


def _check_tract_wcs(group: Sequence[_Patch]) -> None:
    """Check that a tract's patches agree on the tract WCS.

    Merging places patches by ``xy0`` alone, which is right only if each
    patch WCS is the tract WCS shifted by its ``xy0``.

    Raises
    ------
    FormatError
        If a patch's pixels land elsewhere on the sky than its ``xy0``
        says.
    """
    anchor = group[0].geometry
    anchor_wcs = anchor.require_wcs()
    for patch in group[1:]:
        exposure = patch.geometry
        height, width = exposure.shape
        xs = np.array([0.0, width - 1.0])
        ys = np.array([0.0, height - 1.0])
        ra, dec = exposure.require_wcs().pixel_to_world_values(xs, ys)
        ax, ay = anchor_wcs.world_to_pixel_values(ra, dec)
        dx = ax - xs - (exposure.xy0[0] - anchor.xy0[0])
        dy = ay - ys - (exposure.xy0[1] - anchor.xy0[1])
        if np.max(np.hypot(dx, dy)) > WCS_TOLERANCE:
            raise FormatError(
                f"template patches {group[0].index} and {patch.index} of "
                f"tract {patch.tract} disagree on the tract WCS"
            )


def _tract_region(
    anchor: Exposure, science: Exposure, border: int
) -> PixelBox:
    """Return the tract pixels the grown science box maps onto.

    v29's ``computeWarpedBBox``: the grown box's corners mapped into the
    tract frame, expanded to whole pixels, then grown by 5 px.
    """
    height, width = _grown_shape(science.shape, border)
    xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5]) - border
    ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5]) - border
    ra, dec = science.require_wcs().pixel_to_world_values(xs, ys)
    tx, ty = anchor.require_wcs().world_to_pixel_values(ra, dec)
    tx = np.asarray(tx) + anchor.xy0[0]
    ty = np.asarray(ty) + anchor.xy0[1]
    return _expanded_box(tx, ty, REGION_MARGIN)


def patch_read_box(
    science: Exposure,
    frame: PatchFrame,
    border: int,
    window: PixelBox | None = None,
) -> PixelBox | None:
    """Return the pixels of a patch the warped template can depend on.

    The grown science box (``border`` px on every side), or a ``window``
    of it, is sampled along its outer edges every `EDGE_SAMPLE_STEP` px,
    corners included, and
    mapped through the science WCS to the sky and the patch WCS to the
    tract frame; the box holding those points, expanded to whole pixels
    as `_tract_region` does, is grown by `REGION_MARGIN` (v29's own
    margin), the Lanczos half-width and `READ_MARGIN`, and clipped to
    the patch.

    Why it is enough: the tract region that `_warp_tract` merges is the
    box of the four corners mapped through the tract's first patch's
    WCS (which agrees with this one's within `WCS_TOLERANCE`, or the
    template is refused either way), grown by `REGION_MARGIN`; the merge
    reads a patch only there, and the warp reads nothing but the merged
    region. The continuous map takes the inside of the grown box inside
    its edges' image, so nothing the science grid needs is left out.

    Parameters
    ----------
    science
        The science exposure; its shape and WCS are used.
    frame
        The whole patch's frame.
    border
        GetTemplateTask's border, in science pixels.
    window
        Only the pixels the warp of this window of the grown grid (its
        array pixels) can depend on (`recreate.pipeline.template.window`
        warps from the part of the tract region its Lanczos footprints
        reach, well inside this box).

    Returns
    -------
    box
        The box in the tract frame, inside the patch; empty when the
        template cannot use any of its pixels. None when the edges do
        not map into the patch's frame (the science image has no WCS,
        or the patch WCS cannot invert a point): then read it whole.
    """
    if science.wcs is None:
        return None
    if window is None:
        height, width = _grown_shape(science.shape, border)
        window = PixelBox(0, 0, width, height)
    xs, ys = _box_edges(window, border)
    try:
        ra, dec = science.wcs.pixel_to_world_values(xs, ys)
        tx, ty = frame.wcs.world_to_pixel_values(ra, dec)
    except (NoConvergence, ValueError):
        return None
    tx = np.asarray(tx, np.float64) + frame.xy0[0]
    ty = np.asarray(ty, np.float64) + frame.xy0[1]
    if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
        return None
    needed = _expanded_box(tx, ty, REGION_MARGIN + LANCZOS_ORDER + READ_MARGIN)
    (height, width), (px0, py0) = frame.shape, frame.xy0
    return needed.intersection(PixelBox(px0, py0, width, height))


def _expanded_box(tx: FloatArray, ty: FloatArray, grow: int) -> PixelBox:
    """Return afw's ``Box2I(Box2D, EXPAND)`` of points, grown by ``grow``.

    EXPAND keeps every pixel the float box touches.
    """
    x0 = math.floor(float(tx.min()) + 0.5) - grow
    y0 = math.floor(float(ty.min()) + 0.5) - grow
    x1 = math.ceil(float(tx.max()) - 0.5) + grow
    y1 = math.ceil(float(ty.max()) - 0.5) + grow
    return PixelBox(x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def _box_edges(window: PixelBox, border: int) -> tuple[FloatArray, FloatArray]:
    """Return points along the outer edges of a window of the grown grid.

    In science array pixels, corners first: for the whole grown grid,
    the points `_tract_region` maps; then every `EDGE_SAMPLE_STEP` px
    along each edge.
    """
    left = window.x0 - border - 0.5
    right = left + window.width
    bottom = window.y0 - border - 0.5
    top = bottom + window.height
    along_x = np.linspace(left, right, window.width // EDGE_SAMPLE_STEP + 2)
    along_y = np.linspace(bottom, top, window.height // EDGE_SAMPLE_STEP + 2)
    xs = np.concatenate(
        [
            [left, right, right, left],
            along_x,
            along_x,
            np.full(along_y.size, left),
            np.full(along_y.size, right),
        ]
    )
    ys = np.concatenate(
        [
            [bottom, bottom, top, top],
            np.full(along_x.size, bottom),
            np.full(along_x.size, top),
            along_y,
            along_y,
        ]
    )
    return xs, ys


def _union_box(exposures: Sequence[Exposure]) -> PixelBox:
    """Return the smallest box holding every exposure, parent pixels."""
    x0 = min(e.xy0[0] for e in exposures)
    y0 = min(e.xy0[1] for e in exposures)
    x1 = max(e.xy0[0] + e.shape[1] for e in exposures)
    y1 = max(e.xy0[1] + e.shape[0] for e in exposures)
    return PixelBox(x0, y0, x1 - x0, y1 - y0)


def _place(
    patch: Exposure, region: PixelBox, planes: MaskPlanes
) -> PlacedPlanes:
    """Return a patch's planes, on ``planes``' bits, placed on ``region``."""
    mask = _remap_mask(patch.mask, patch.mask_planes, planes)
    return PlacedPlanes(
        Planes(patch.image, patch.variance, mask),
        patch.xy0[0] - region.x0,
        patch.xy0[1] - region.y0,
    )


class _DestToTract:
    """Map grown-grid array pixels to tract-region array pixels."""

    def __init__(
        self,
        science: Exposure,
        anchor: Exposure,
        region: PixelBox,
        border: int,
    ) -> None:
        """Hold the two WCSs and the offsets between the frames."""
        self._science = science.require_wcs()
        self._anchor = anchor.require_wcs()
        self._border = border
        self._shift = (anchor.xy0[0] - region.x0, anchor.xy0[1] - region.y0)

    def __call__(
        self, x: FloatArray, y: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Return the tract-region pixels of grown-grid pixels."""
        ra, dec = self._science.pixel_to_world_values(
            x - self._border, y - self._border
        )
        tx, ty = self._anchor.world_to_pixel_values(ra, dec)
        return (
            np.asarray(tx, np.float64) + self._shift[0],
            np.asarray(ty, np.float64) + self._shift[1],
        )
