"""Matching and differencing: variance scaling, convolution, decorrelation.

``variance``, ``background``
    ScaleVarianceTask and the afw background it uses.
``convolve``, ``tiled_correlation``, ``mask_growth``
    The template convolved with the spatial kernel (3 image correlations,
    not 27) and its masks grown by the kernel box.
``decorrelate``
    DMTN-021 decorrelation of the difference image.
"""

from __future__ import annotations

from recreate.pipeline.match.convolve import convolve_template
from recreate.pipeline.match.decorrelate import decorrelate
from recreate.pipeline.match.variance import scale_variance

__all__ = [
    "convolve_template",
    "decorrelate",
    "scale_variance",
]
