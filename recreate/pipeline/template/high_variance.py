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

DP1 (v29) has no such plane.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.pipeline.config import HighVarianceConfig
from recreate.pipeline.match.background import binned_background

#: The plane this step sets.
HIGH_VARIANCE = "HIGH_VARIANCE"


def mark_high_variance(
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    config: HighVarianceConfig,
) -> tuple[npt.NDArray[np.int32], MaskPlanes]:
    """Return the template mask with HIGH_VARIANCE set (module notes).

    Parameters
    ----------
    variance, mask
        The warped template's variance and mask planes.
    planes
        Its mask planes; HIGH_VARIANCE is added.
    config
        Threshold, fraction and the variance background's settings.

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
    ignored = planes.value_of_present(config.background.ignored_planes)
    unmasked = (out & np.int32(ignored)) == 0
    if np.count_nonzero(unmasked) < config.min_unmasked_fraction * out.size:
        return out, planes
    good = unmasked & np.isfinite(variance)
    background = binned_background(variance, good, config.background)
    threshold = config.threshold * np.nanmedian(background)
    out[background > threshold] |= np.int32(planes.value(HIGH_VARIANCE))
    return out, planes
