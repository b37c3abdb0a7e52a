"""DP2's bin-40 background of a whole difference image (a solve step).

v30's detectAndMeasure subtracts an empirical background from the
difference: a copy less a bin-8 background is detected, and the bin-40
background's bins skip what that found (`shared/rubin-recipe-dp2.md`
section 2.3). The bins need the whole difference, so a DP2 solve renders
it and keeps the bins in the solution; a render subtracts them.
"""

from __future__ import annotations

import numpy as np

from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.match.background_grid import (
    BackgroundGrid,
    background_grid,
)
from recreate.pipeline.sources.detect_and_measure import (
    subtracted_background,
)
from recreate.pipeline.sources.detection import set_detection_planes
from recreate.solution.render_types import Planes


def difference_background(
    planes: Planes, psf_fwhm: float, config: PipelineConfig
) -> BackgroundGrid:
    """Return DP2's bin-40 background bins of a whole difference image.

    As detectAndMeasure does: a copy less the bin-8 background is
    detected (the cleared planes cleared first), and the bin-40 bins
    skip what it found. The bins are rounded to float32 (afw's
    statistics image holds them so), which a solution stores exactly.

    Raises
    ------
    ValueError
        If the recipe has no difference backgrounds.
    """
    backgrounds = config.subtract.difference_background
    if backgrounds is None:
        raise ValueError(f"recipe {config.recipe!r} has no such background")
    names = planes.planes.with_planes(*backgrounds.cleared_planes)
    copy = planes.image - subtracted_background(
        planes.image, planes.mask, names, backgrounds.initial
    )
    cleared = np.int32(names.value(*backgrounds.cleared_planes))
    mask, names = set_detection_planes(
        copy,
        planes.variance,
        planes.mask & ~cleared,
        names,
        psf_fwhm,
        config.subtract,
    )
    del copy
    ignored = np.int32(
        names.value_of_present(backgrounds.final.ignored_planes)
    )
    good = ((mask & ignored) == 0) & np.isfinite(planes.image)
    return background_grid(
        planes.image, good, backgrounds.final, float32_bins=True
    )
