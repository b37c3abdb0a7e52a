"""Matching and differencing: variance scaling, convolution, decorrelation.

``variance``, ``background``
    ScaleVarianceTask and the afw background it uses.
``convolve``, ``tiled_correlation``, ``mask_growth``
    The template convolved with the spatial kernel (3 image correlations,
    not 27) and its masks grown by the kernel box.
``decorrelate``
    DMTN-021 decorrelation as a real-space kernel, and its levels.
``background_grid``
    Binned backgrounds kept as bins and evaluated on any box.
"""

from __future__ import annotations

from recreate.pipeline.match.convolve import convolve_template
from recreate.pipeline.match.decorrelate import (
    decorrelation_kernel,
    variance_levels,
)
from recreate.pipeline.match.variance import scale_variance

__all__ = [
    "convolve_template",
    "decorrelation_kernel",
    "scale_variance",
    "variance_levels",
]
