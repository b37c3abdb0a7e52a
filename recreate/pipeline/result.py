"""What a recreation returns: the difference image and what made it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from recreate.exposure import Exposure
    from recreate.pipeline.kernel import SolvedKernel
    from recreate.pipeline.provenance import Provenance
    from recreate.pipeline.template import WarpedTemplate
    from recreate.solution.model import Solution


@dataclass(frozen=True, eq=False)
class DifferenceResult:
    """A difference image with what made it.

    Attributes
    ----------
    exposure
        The difference image on the science grid, with the science
        image's WCS, PSF, calibration and observation metadata, and the
        provenance cards in ``metadata``.
    kernel
        The solved (or reused) matching kernel.
    template
        The warped template (None when the image was rendered from a
        stored solution).
    provenance
        Inputs, config hash, code version, kernel summary, notes.
    timings
        Seconds spent in each stage.
    variance_levels
        The science and template variance levels the decorrelation used:
        with the kernel they give the difference image's true PSF
        (`decorrelated_psf`).
    solution
        The solution the image was rendered from (`recreate.solution`):
        store it to render any region of this image later.
    patch_bounds
        Per input patch, in input order, its outer box in science array
        pixels (`WarpedTemplate.patch_bounds`).
    science
        The science image as it came in (a reference, not a copy), for
        the previews that show it beside the template and the difference.
    """

    exposure: Exposure
    kernel: SolvedKernel
    template: WarpedTemplate | None
    provenance: Provenance
    timings: dict[str, float] = field(default_factory=dict)
    variance_levels: tuple[float, float] = (float("nan"), float("nan"))
    solution: Solution | None = None
    patch_bounds: tuple[npt.NDArray[np.float64], ...] = ()
    science: Exposure | None = None
