"""The warped template on a window of the grown science grid.

A render of a few pixels needs the template only around them.
`warp_template_window` gives, on any window of the grown grid, the very
planes `recreate.pipeline.template.build.build_template` gives there:

* the patches are chosen, checked and their planes united exactly as
  for the whole grid (on the whole detector's geometry: the science
  image's WCS and shape, and each patch's whole frame);
* each tract's coarse transform is that of the whole grid (afw's nodes
  every ``interp_length`` px, anchored to the grid's corner), its
  region the whole tract region; only the part of the region the
  window's Lanczos footprints reach is merged, and only the window
  warped (`recreate.pipeline.template.warp.warp_planes`): the merge and
  the warp compute each pixel from its own inputs alone;
* HIGH_VARIANCE (v30) is flagged from the bins around the pixels, with
  the levels the whole template gave (`HighVarianceLevels`).

The science image is given by its geometry alone (`science_outline`),
so a render need not read the whole visit image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

from recreate.errors import NoOverlapError
from recreate.exposure import Exposure, MaskPlanes
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import TemplateConfig
from recreate.pipeline.template.build import _check_kernel
from recreate.pipeline.template.high_variance import (
    HighVarianceLevels,
    high_variance_window,
    mark_high_variance,
)
from recreate.pipeline.template.patches import (
    _check_consistent,
    _common_planes,
    _overlapping,
    _patch_polygon,
    patch_geometry,
)
from recreate.pipeline.template.tracts import (
    _grown_shape,
    _tract_groups,
    _warp_tract,
)
from recreate.pipeline.template.warp import Planes, merge_warped


@dataclass(frozen=True, eq=False)
class TemplateWindow:
    """The warped template's planes on a window of the grown grid.

    Attributes
    ----------
    planes
        Image, variance and mask of the window (NaN, +inf and NO_DATA
        where no patch has data).
    mask_planes
        The mask's planes (the patches', NO_DATA, and HIGH_VARIANCE for
        a v30 recipe).
    window
        The window, in grown-grid array pixels.
    flagged
        Where HIGH_VARIANCE was set exactly (the rest of the window does
        not carry it); the whole window when the recipe has none.
    """

    planes: Planes
    mask_planes: MaskPlanes
    window: PixelBox
    flagged: PixelBox


def science_outline(
    wcs: WCS, shape: tuple[int, int], xy0: tuple[int, int]
) -> Exposure:
    """Return a science image without pixels, for its geometry alone.

    Its planes are zero-stride views of one zero (no memory), its WCS
    the whole detector's (as the visit image's reader gives it).
    """
    zero = np.broadcast_to(np.float32(0.0), shape)
    return Exposure(
        image=zero,
        variance=zero,
        mask=np.broadcast_to(np.int32(0), shape),
        wcs=wcs,
        xy0=xy0,
    )


def warp_template_window(
    science: Exposure,
    patches: Sequence[Exposure],
    config: TemplateConfig,
    window: PixelBox,
    *,
    high_variance: HighVarianceLevels | None = None,
    flag_box: PixelBox | None = None,
) -> TemplateWindow:
    """Warp and stitch the template on a window of the grown grid.

    Parameters
    ----------
    science
        The science image, or its `science_outline`: the whole
        detector's shape and WCS.
    patches
        The template patches (or cut-outs holding at least what the
        window needs, `recreate.pipeline.template.tracts.patch_read_box`
        of the whole detector will do).
    config
        GetTemplateTask parameters.
    window
        Grown-grid array pixels to warp (pixel ``(b, b)`` is the science
        image's first pixel, ``b`` the border).
    high_variance
        The whole template's HIGH_VARIANCE levels (recipes that have the
        plane; None flags nothing).
    flag_box
        Where HIGH_VARIANCE must be exact, inside the window and at
        least `high_variance_window` of it away from the window's edge
        (`template_window_for`); the whole window by default.

    Returns
    -------
    template
        The planes, bit-identical to the whole template's there.

    Raises
    ------
    NoOverlapError
        If no patch overlaps the science image.
    FormatError
        As `build_template` raises it.
    """
    _check_kernel(config.warping_kernel)
    wcs = science.require_wcs()
    geometries = [patch_geometry(p) for p in patches]
    bounds = [_patch_polygon(g, wcs) for g in geometries]
    used = _overlapping(patches, geometries, bounds, science.shape)
    if not used:
        raise NoOverlapError("no template patch overlaps the science image")
    _check_consistent([p.exposure for p in used])
    planes = _common_planes([p.exposure for p in used])
    grown = _grown_shape(science.shape, config.border)
    warped = []
    for group in _tract_groups(used):
        result = _warp_tract(group, science, grown, planes, config, window)
        if result is not None:
            warped.append(result[0])
    no_data = planes.value("NO_DATA")
    merged = (
        merge_warped(warped, no_data)
        if warped
        else _edge_planes(window, no_data)
    )
    flagged = window if flag_box is None else flag_box
    if config.high_variance is not None:
        mask, planes = mark_high_variance(
            merged.variance,
            merged.mask,
            planes,
            config.high_variance,
            high_variance or HighVarianceLevels(math.nan, math.nan),
            origin=(window.x0, window.y0),
            shape=grown,
            box=flagged,
        )
        merged = Planes(merged.image, merged.variance, mask)
    return TemplateWindow(merged, planes, window, flagged)


def template_window_for(
    needed: PixelBox,
    flag_box: PixelBox,
    grown: tuple[int, int],
    config: TemplateConfig,
) -> PixelBox:
    """Return the window to warp so both boxes come out exact.

    ``needed`` is where the planes are used; ``flag_box`` where the
    mask (and so HIGH_VARIANCE, whose bins reach further) must be
    exact. Both are in grown-grid array pixels.
    """
    window = _union(needed, flag_box)
    if config.high_variance is not None and not flag_box.empty:
        bins = high_variance_window(grown, config.high_variance, flag_box)
        window = _union(window, bins)
    height, width = grown
    return window.intersection(PixelBox(0, 0, width, height))


def _union(a: PixelBox, b: PixelBox) -> PixelBox:
    """Return the smallest box holding two boxes (either may be empty)."""
    if a.empty:
        return b
    if b.empty:
        return a
    x0, y0 = min(a.x0, b.x0), min(a.y0, b.y0)
    x1 = max(a.x0 + a.width, b.x0 + b.width)
    y1 = max(a.y0 + a.height, b.y0 + b.height)
    return PixelBox(x0, y0, x1 - x0, y1 - y0)


def _edge_planes(window: PixelBox, no_data: int) -> Planes:
    """Return planes without data (what no tract gives): NaN, +inf."""
    shape = (window.height, window.width)
    mask: npt.NDArray[np.int32] = np.full(shape, no_data, np.int32)
    return Planes(
        np.full(shape, np.nan, np.float32),
        np.full(shape, np.inf, np.float32),
        mask,
    )
