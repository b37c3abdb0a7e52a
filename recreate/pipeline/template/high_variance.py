"""The template's HIGH_VARIANCE plane (GetTemplateTask, v30; DP2).

v30's ``checkHighVariance`` flags the warped template where its variance
is unusually high (where few visits went into the coadd, for instance):

1. if fewer than ``min_unmasked_fraction`` (10%) of the template's
   pixels are free of the background's ignored planes (BAD, EDGE,
   DETECTED, DETECTED_NEGATIVE, NO_DATA), nothing is flagged (the plane
   exists, empty);
2. otherwise the variance plane is treated as an image and its binned
   background taken (bin 32, ``ceil`` bin count, MEDIAN, 3x3 super-pixel
   filter, LINEAR interpolation: `recreate.pipeline.match.background`);
3. HIGH_VARIANCE is set where that smooth variance exceeds ``threshold``
   (4) times its own median.

Steps 1 and 3's median need the whole template: `high_variance_levels`
measures them once (in the solve), with the empty-bin fill of the
whole grid. `mark_high_variance` then flags any window of the template
from the bins around it alone (`window_background`), bit-identical to
the whole template's flags there. DP1 (v29) has no such plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.numerics.box import PixelBox
from recreate.numerics.order_stats import nan_median
from recreate.pipeline.config import HighVarianceConfig
from recreate.pipeline.match.background import empty_bin_fill
from recreate.pipeline.match.background_grid import (
    background_from_bins,
    raw_bins,
    window_background,
    window_bins_box,
)

#: The plane this step sets.
HIGH_VARIANCE = "HIGH_VARIANCE"


@dataclass(frozen=True)
class HighVarianceLevels:
    """What HIGH_VARIANCE needs of the whole template.

    Attributes
    ----------
    threshold
        Flag where the variance background exceeds this; NaN when too
        few pixels are unmasked (nothing is flagged).
    fill
        The empty-bin fill of the whole grid's bins (NaN if unused).
    """

    threshold: float
    fill: float


def high_variance_levels(
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    config: HighVarianceConfig,
) -> tuple[HighVarianceLevels, npt.NDArray[np.bool_]]:
    """Measure the levels on the whole template, and flag it.

    Parameters
    ----------
    variance, mask
        The whole warped template's variance and mask planes.
    planes
        Its mask planes.
    config
        Threshold, fraction and the variance background's settings.

    Returns
    -------
    levels, flagged
        The levels, and the pixels to flag.
    """
    good = _good(variance, mask, planes, config)
    if good is None:
        return HighVarianceLevels(math.nan, math.nan), np.zeros(
            mask.shape, np.bool_
        )
    raw = raw_bins(variance, good, config.background)
    fill = empty_bin_fill(raw)
    height, width = mask.shape
    background = background_from_bins(
        raw,
        (0, 0),
        (height, width),
        config.background,
        fill,
        PixelBox(0, 0, width, height),
    )
    # np.nanmedian's value, without its partition of a whole copy.
    threshold = float(config.threshold * nan_median(background))
    return HighVarianceLevels(threshold, fill), background > threshold


def mark_high_variance(
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    config: HighVarianceConfig,
    levels: HighVarianceLevels,
    *,
    origin: tuple[int, int],
    shape: tuple[int, int],
    box: PixelBox,
) -> tuple[npt.NDArray[np.int32], MaskPlanes]:
    """Return a window's mask with HIGH_VARIANCE set inside ``box``.

    Parameters
    ----------
    variance, mask
        A window of the warped template's planes, its first pixel at
        array pixel ``origin = (x, y)`` of the whole template; it holds
        `high_variance_window` of ``box``.
    planes
        Its mask planes; HIGH_VARIANCE is added.
    config
        The background's settings.
    levels
        `high_variance_levels` of the whole template.
    shape
        ``(height, width)`` of the whole template.
    box
        The pixels to flag, in the whole template's array pixels.

    Returns
    -------
    mask, planes
        A new mask and the planes it uses.

    Raises
    ------
    FormatError
        If the mask has no free bit for the plane.
    """
    planes = planes.with_planes(HIGH_VARIANCE)
    out = np.array(mask, dtype=np.int32, copy=True)
    if math.isnan(levels.threshold) or box.empty:
        return out, planes
    good = _unmasked(mask, planes, config) & np.isfinite(variance)
    background = window_background(
        variance, good, origin, shape, config.background, levels.fill, box
    )
    rows = slice(box.y0 - origin[1], box.y0 - origin[1] + box.height)
    cols = slice(box.x0 - origin[0], box.x0 - origin[0] + box.width)
    flagged = background > levels.threshold
    out[rows, cols][flagged] |= np.int32(planes.value(HIGH_VARIANCE))
    return out, planes


def high_variance_window(
    shape: tuple[int, int], config: HighVarianceConfig, box: PixelBox
) -> PixelBox:
    """Return the template pixels `mark_high_variance` needs for ``box``."""
    return window_bins_box(shape, config.background, box)


def flag_high_variance(
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    flagged: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int32], MaskPlanes]:
    """Return ``mask`` with HIGH_VARIANCE set where ``flagged``."""
    planes = planes.with_planes(HIGH_VARIANCE)
    out = np.array(mask, dtype=np.int32, copy=True)
    out[flagged] |= np.int32(planes.value(HIGH_VARIANCE))
    return out, planes


def _unmasked(
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    config: HighVarianceConfig,
) -> npt.NDArray[np.bool_]:
    """Return the pixels free of the background's ignored planes."""
    ignored = planes.with_planes(HIGH_VARIANCE).value_of_present(
        config.background.ignored_planes
    )
    return (mask & np.int32(ignored)) == 0


def _good(
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    config: HighVarianceConfig,
) -> npt.NDArray[np.bool_] | None:
    """Return the bins' pixels, or None when too few are unmasked."""
    unmasked = _unmasked(mask, planes, config)
    if np.count_nonzero(unmasked) < config.min_unmasked_fraction * mask.size:
        return None
    return unmasked & np.isfinite(variance)
